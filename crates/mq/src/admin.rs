//! Declaring, inspecting and removing the topology, for start-up, operations and tests.

use lapin::Connection;
use lapin::options::QueueDeclareOptions;
use lapin::types::{FieldTable, ShortString};
use lottery_activity::Topic;

use crate::config::MqConfig;
use crate::connect;
use crate::error::MqError;
use crate::topology::Topology;

/// A connection for topology management and queue inspection.
#[derive(Debug)]
pub struct MqAdmin {
    config: MqConfig,
    topology: Topology,
    connection: Connection,
}

impl MqAdmin {
    pub async fn connect(config: &MqConfig) -> Result<MqAdmin, MqError> {
        let topology = Topology::new(config)?;
        let connection = connect::open(config, "lottery-mq admin").await?;
        Ok(MqAdmin {
            config: config.clone(),
            topology,
            connection,
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Declares the exchanges and every topic's queues (idempotent).
    pub async fn declare_topology(&self) -> Result<(), MqError> {
        let channel = connect::channel(&self.connection).await?;
        let declared = connect::bounded(
            self.config.confirm_timeout(),
            "declare topology",
            self.topology.declare_all(&channel),
        )
        .await;
        let _ = channel.close(200, "done".into()).await;
        declared
    }

    /// Messages ready for delivery in `{prefix}.{topic}` (not counting unacknowledged ones).
    pub async fn queue_depth(&self, topic: Topic) -> Result<u32, MqError> {
        self.depth(self.topology.queue(topic)).await
    }

    /// Messages ready in `{prefix}.{topic}.dead`.
    pub async fn dead_letter_depth(&self, topic: Topic) -> Result<u32, MqError> {
        self.depth(self.topology.dead_letter_queue(topic)).await
    }

    async fn depth(&self, queue: String) -> Result<u32, MqError> {
        let name = ShortString::try_new(queue.clone())
            .map_err(|e| MqError::Config(format!("queue {queue}: {e}")))?;
        // A passive declare of a missing queue closes its channel, so each look-up gets its own.
        let channel = connect::channel(&self.connection).await?;
        let declared = connect::bounded(self.config.confirm_timeout(), "inspect queue", async {
            channel
                .queue_declare(
                    name,
                    QueueDeclareOptions::default().passive(),
                    FieldTable::default(),
                )
                .await
                .map_err(MqError::amqp(format!("inspect queue {queue}")))
        })
        .await;
        if channel.status().connected() {
            let _ = channel.close(200, "done".into()).await;
        }
        Ok(declared?.message_count())
    }

    /// Deletes every queue (with its messages) and both exchanges. Meant for tests and
    /// decommissioning, never for a running system.
    pub async fn delete_topology(&self) -> Result<(), MqError> {
        let channel = connect::channel(&self.connection).await?;
        let deleted = connect::bounded(
            self.config.confirm_timeout(),
            "delete topology",
            self.topology.delete_all(&channel),
        )
        .await;
        if channel.status().connected() {
            let _ = channel.close(200, "done".into()).await;
        }
        deleted
    }

    pub async fn close(self) {
        connect::close(&self.connection, self.config.connect_timeout()).await;
    }
}
