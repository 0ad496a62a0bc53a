//! Consuming a topic's queue with manual acknowledgements.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use lottery_activity::{Handled, Inbound, MessageHandler, Topic};
use tokio::task::JoinSet;

use crate::config::MqConfig;
use crate::connect;
use crate::error::MqError;
use crate::topology::Topology;

/// Drives a [`MessageHandler`] from a topic's queue.
///
/// Up to `prefetch` deliveries are handled at once, each acknowledged only after the handler
/// returns, so a crash loses nothing: the broker redelivers what was not acknowledged.
#[derive(Debug, Clone)]
pub struct AmqpConsumer {
    config: MqConfig,
    topology: Topology,
}

/// How one connection's consuming ended.
enum Ended {
    Stopped,
    Lost { error: MqError, consumed: bool },
}

impl AmqpConsumer {
    /// Checks the configuration; does not connect.
    pub fn new(config: MqConfig) -> Result<AmqpConsumer, MqError> {
        if config.prefetch == 0 {
            // Zero means "unlimited" to the broker, which would defeat the concurrency bound.
            return Err(MqError::Config("prefetch must be at least 1".into()));
        }
        Ok(AmqpConsumer {
            topology: Topology::new(&config)?,
            config,
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Consumes `{prefix}.{topic}` until `shutdown` completes, reconnecting with backoff
    /// whenever the connection is lost.
    ///
    /// On shutdown it stops taking deliveries, lets in-flight handlers finish (up to
    /// `shutdown_grace_ms`), then closes the connection; deliveries the client had buffered
    /// but not started go back to the queue. Dropping the future instead aborts the handlers
    /// and drops the connection, and the broker redelivers everything unacknowledged.
    pub async fn run(
        &self,
        handler: Arc<dyn MessageHandler>,
        topic: Topic,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut delay = self.config.reconnect_min();
        loop {
            match self.session(&handler, topic, shutdown.as_mut()).await {
                Ended::Stopped => return,
                Ended::Lost { error, consumed } => {
                    if consumed {
                        delay = self.config.reconnect_min();
                    }
                    tracing::warn!(
                        queue = %self.topology.queue(topic),
                        %error,
                        retry_in = ?delay,
                        "consumer lost its connection"
                    );
                    tokio::select! {
                        () = shutdown.as_mut() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.config.reconnect_max());
                }
            }
        }
    }

    /// One connection: set up, consume until shutdown or loss, wind down.
    async fn session(
        &self,
        handler: &Arc<dyn MessageHandler>,
        topic: Topic,
        mut shutdown: Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Ended {
        let lost = |error| Ended::Lost {
            error,
            consumed: false,
        };
        let connection = tokio::select! {
            () = shutdown.as_mut() => return Ended::Stopped,
            opened = connect::open(&self.config, "lottery-mq consumer") => match opened {
                Ok(connection) => connection,
                Err(e) => return lost(e),
            },
        };
        let setup = connect::bounded(
            self.config.connect_timeout(),
            "start consumer",
            self.start(&connection, topic),
        );
        let (channel, mut consumer) = tokio::select! {
            () = shutdown.as_mut() => {
                connect::close(&connection, self.config.connect_timeout()).await;
                return Ended::Stopped;
            }
            started = setup => match started {
                Ok(started) => started,
                Err(e) => {
                    connect::close(&connection, self.config.connect_timeout()).await;
                    return lost(e);
                }
            },
        };
        tracing::info!(queue = %self.topology.queue(topic), "consuming");

        let mut in_flight = JoinSet::new();
        let mut consumed = false;
        let ended = loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => break Ended::Stopped,
                Some(joined) = in_flight.join_next() => {
                    if let Err(e) = joined {
                        tracing::error!(error = %e, "delivery task failed");
                    }
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        consumed = true;
                        in_flight.spawn(handle(
                            Arc::clone(handler),
                            delivery,
                            self.config.retry_delay(),
                        ));
                    }
                    Some(Err(e)) => break Ended::Lost {
                        error: MqError::Amqp { context: "consume".into(), source: e },
                        consumed,
                    },
                    None => break Ended::Lost {
                        error: MqError::Cancelled { queue: self.topology.queue(topic) },
                        consumed,
                    },
                },
            }
        };

        match ended {
            Ended::Stopped => {
                // Ask for no more deliveries, then let the handlers finish and acknowledge.
                let cancel = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default());
                if let Ok(Err(e)) =
                    tokio::time::timeout(self.config.connect_timeout(), cancel).await
                {
                    tracing::debug!(error = %e, "cancel failed");
                }
                self.drain(&mut in_flight, self.config.shutdown_grace())
                    .await;
                connect::close(&connection, self.config.connect_timeout()).await;
                tracing::info!(queue = %self.topology.queue(topic), "consumer stopped");
                Ended::Stopped
            }
            lost @ Ended::Lost { .. } => {
                // Their acknowledgements cannot reach the broker any more, which redelivers
                // those messages; waiting keeps the next connection within the prefetch bound.
                self.drain(&mut in_flight, self.config.shutdown_grace())
                    .await;
                connect::close(&connection, self.config.connect_timeout()).await;
                lost
            }
        }
    }

    async fn start(
        &self,
        connection: &Connection,
        topic: Topic,
    ) -> Result<(Channel, lapin::Consumer), MqError> {
        let channel = connect::channel(connection).await?;
        if self.config.declare_topology {
            self.topology.declare_exchanges(&channel).await?;
            self.topology.declare_queues(&channel, topic).await?;
        }
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(MqError::amqp("set prefetch"))?;
        let queue = self.topology.queue(topic);
        let name = ShortString::try_new(queue.clone())
            .map_err(|e| MqError::Config(format!("queue {queue}: {e}")))?;
        let consumer = channel
            .basic_consume(
                name,
                // The broker generates a unique tag.
                ShortString::default(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(MqError::amqp(format!("consume {queue}")))?;
        Ok((channel, consumer))
    }

    async fn drain(&self, in_flight: &mut JoinSet<()>, grace: Duration) {
        let all_done = async { while in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!(
                abandoned = in_flight.len(),
                "handlers still running after the grace period; their messages will be redelivered"
            );
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
        }
    }
}

/// The message the handler sees, or why the delivery can never be handled.
fn inbound(delivery: &Delivery) -> Result<Inbound, String> {
    let message_id = match delivery.properties.message_id() {
        Some(id) if !id.as_str().is_empty() => id.to_string(),
        _ => return Err("no message id".into()),
    };
    let Some(topic) = Topic::parse(delivery.routing_key.as_str()) else {
        return Err(format!("unknown topic {:?}", delivery.routing_key.as_str()));
    };
    let payload = String::from_utf8(delivery.data.clone())
        .map_err(|_| format!("payload of {message_id} is not UTF-8"))?;
    Ok(Inbound {
        message_id,
        topic,
        payload,
        redelivered: delivery.redelivered,
    })
}

/// Runs the handler on one delivery and settles it with the broker.
async fn handle(handler: Arc<dyn MessageHandler>, delivery: Delivery, retry_delay: Duration) {
    let outcome = match inbound(&delivery) {
        Ok(message) => {
            let handled = AssertUnwindSafe(handler.handle(&message))
                .catch_unwind()
                .await;
            match handled {
                Ok(outcome) => outcome,
                // A second panic on the same message sets it aside instead of looping forever.
                Err(_) if message.redelivered => {
                    Handled::Poison("handler panicked on a redelivery".into())
                }
                Err(_) => Handled::Retry("handler panicked".into()),
            }
        }
        Err(reason) => Handled::Poison(reason),
    };
    let tag = delivery.delivery_tag;
    let settled = match outcome {
        Handled::Done => delivery.ack(BasicAckOptions::default()).await,
        Handled::Retry(reason) => {
            tracing::info!(tag, %reason, "message will be redelivered");
            tokio::time::sleep(retry_delay).await;
            delivery
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
        }
        Handled::Poison(reason) => {
            tracing::warn!(tag, %reason, "message set aside in the dead-letter queue");
            delivery.reject(BasicRejectOptions { requeue: false }).await
        }
    };
    if let Err(e) = settled {
        // The channel is gone; the broker redelivers the message to the next consumer.
        tracing::debug!(tag, error = %e, "could not settle delivery");
    }
}
