//! Confirmed publishing of outbox messages.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use lottery_activity::{EventPublisher, OutboxMessage, PublishError};
use tokio::sync::{Mutex, MutexGuard};

use crate::config::MqConfig;
use crate::connect;
use crate::error::MqError;
use crate::topology::Topology;

/// Persistent messages survive a broker restart once confirmed.
const PERSISTENT: u8 = 2;

/// [`EventPublisher`] over one connection and one confirm-mode channel.
///
/// Connects lazily on the first call and again on the first call after the connection was
/// lost, so a broker restart costs the calls made while it is down (they fail fast with
/// [`PublishError::Unavailable`]), not the publisher.
///
/// Calls are serialised on the channel: RabbitMQ reports unroutable messages through a
/// separate `basic.return`, which only identifies its message by id when no other caller's
/// messages are in flight on the same channel.
#[derive(Debug)]
pub struct AmqpPublisher {
    config: MqConfig,
    topology: Topology,
    state: Mutex<LinkState>,
}

#[derive(Debug, Default)]
struct LinkState {
    link: Option<Link>,
    /// Set after a failed connection attempt: until then calls fail without dialling.
    quiet_until: Option<Instant>,
    /// The broker was reported unreachable and has not been reached since: later failures
    /// are not logged again (the readiness probe calls this every few seconds).
    reported_down: bool,
}

#[derive(Debug)]
struct Link {
    connection: Connection,
    channel: Channel,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Holds the link for one `publish_all` call.
struct Batch<'a> {
    state: MutexGuard<'a, LinkState>,
    finished: bool,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // The call was cancelled with confirmations outstanding; on this channel they could
            // be paired with the next call's returned messages, so the next call starts afresh.
            self.state.link = None;
        }
    }
}

/// A sent message waiting for its confirmation.
struct InFlight {
    index: usize,
    deadline: tokio::time::Instant,
    confirm: PublisherConfirm,
}

impl AmqpPublisher {
    /// Checks the configuration; does not connect.
    pub fn new(config: MqConfig) -> Result<AmqpPublisher, MqError> {
        if config.publish_concurrency == 0 {
            return Err(MqError::Config(
                "publish_concurrency must be at least 1".into(),
            ));
        }
        Ok(AmqpPublisher {
            topology: Topology::new(&config)?,
            config,
            state: Mutex::new(LinkState::default()),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Connects now (and declares the topology when configured), for a start-up check.
    pub async fn ensure_connected(&self) -> Result<(), MqError> {
        let mut state = self.state.lock().await;
        self.channel(&mut state, true).await.map(drop)
    }

    /// Closes the connection; a later call reconnects.
    pub async fn close(&self) {
        let link = self.state.lock().await.link.take();
        if let Some(link) = link {
            connect::close(&link.connection, self.config.connect_timeout()).await;
        }
    }

    /// The live channel, reconnecting if the last one is gone. `force` ignores the cooldown.
    async fn channel(&self, state: &mut LinkState, force: bool) -> Result<Channel, MqError> {
        if let Some(link) = &state.link {
            if link.usable() {
                return Ok(link.channel.clone());
            }
            tracing::info!(url = %self.config.redacted_url(), "publisher connection lost; reconnecting");
            self.discard(state);
        }
        if let Some(until) = state.quiet_until
            && !force
            && Instant::now() < until
        {
            return Err(MqError::Connect {
                url: self.config.redacted_url(),
                reason: "broker unreachable on the last attempt; waiting before the next".into(),
            });
        }
        match connect::bounded(self.config.connect_timeout(), "open publisher", self.open()).await {
            Ok(link) => {
                let channel = link.channel.clone();
                state.link = Some(link);
                state.quiet_until = None;
                if std::mem::take(&mut state.reported_down) {
                    tracing::info!("publisher reached the broker again");
                }
                Ok(channel)
            }
            Err(e) => {
                if std::mem::replace(&mut state.reported_down, true) {
                    tracing::debug!(error = %e, "publisher still cannot reach the broker");
                } else {
                    tracing::warn!(error = %e, "publisher cannot reach the broker");
                }
                state.quiet_until = Some(Instant::now() + self.config.reconnect_cooldown());
                Err(e)
            }
        }
    }

    async fn open(&self) -> Result<Link, MqError> {
        let connection = connect::open(&self.config, "lottery-mq publisher").await?;
        let channel = connect::channel(&connection).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(MqError::amqp("enable publisher confirms"))?;
        if self.config.declare_topology {
            self.topology.declare_all(&channel).await?;
        }
        Ok(Link {
            connection,
            channel,
        })
    }

    /// Drops the current connection so the next call opens a fresh one; the close itself runs
    /// in the background because a hung peer may never answer it.
    fn discard(&self, state: &mut LinkState) {
        if let Some(link) = state.link.take() {
            let after = self.config.connect_timeout();
            tokio::spawn(async move { connect::close(&link.connection, after).await });
        }
    }

    fn properties(message: &OutboxMessage, message_id: ShortString) -> BasicProperties {
        let properties = BasicProperties::default()
            .with_message_id(message_id)
            .with_type(message.topic.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT);
        match u64::try_from(message.created_at.timestamp()) {
            Ok(seconds) => properties.with_timestamp(seconds),
            Err(_) => properties,
        }
    }

    /// Waits for one confirmation and records its outcome.
    async fn settle(
        &self,
        flight: InFlight,
        results: &mut [Option<Result<(), PublishError>>],
        returned: &mut HashSet<String>,
        broken: &mut Option<String>,
    ) {
        let mut note_returned = |message: Option<lapin::message::BasicReturnMessage>| {
            if let Some(message) = message {
                match message.delivery.properties.message_id() {
                    Some(id) => {
                        returned.insert(id.to_string());
                    }
                    None => tracing::warn!("broker returned a message without id"),
                }
            }
        };
        let outcome = match tokio::time::timeout_at(flight.deadline, flight.confirm).await {
            Ok(Ok(Confirmation::Ack(message))) => {
                note_returned(message);
                Ok(())
            }
            Ok(Ok(Confirmation::Nack(message))) => {
                note_returned(message);
                Err(PublishError::Rejected(
                    "the broker negatively acknowledged the message".into(),
                ))
            }
            Ok(Ok(Confirmation::NotRequested)) => {
                let reason = "channel is not in confirm mode".to_owned();
                *broken = Some(reason.clone());
                Err(PublishError::Unavailable(reason))
            }
            Ok(Err(e)) => {
                let reason = format!("confirmation failed: {e}");
                *broken = Some(reason.clone());
                Err(PublishError::Unavailable(reason))
            }
            Err(_) => {
                let reason = format!("no confirmation within {:?}", self.config.confirm_timeout());
                *broken = Some(reason.clone());
                Err(PublishError::Unavailable(reason))
            }
        };
        if let Some(slot) = results.get_mut(flight.index) {
            *slot = Some(outcome);
        }
    }
}

#[async_trait::async_trait]
impl EventPublisher for AmqpPublisher {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), PublishError> {
        self.publish_all(std::slice::from_ref(message))
            .await
            .pop()
            .unwrap_or_else(|| Err(PublishError::Unavailable("no result".into())))
    }

    /// Sends every message, keeping up to `publish_concurrency` confirmations outstanding,
    /// then waits for the rest.
    async fn publish_all(&self, messages: &[OutboxMessage]) -> Vec<Result<(), PublishError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let mut batch = Batch {
            state: self.state.lock().await,
            finished: false,
        };
        let channel = match self.channel(&mut batch.state, false).await {
            Ok(channel) => channel,
            Err(e) => {
                let error = PublishError::Unavailable(e.to_string());
                return messages.iter().map(|_| Err(error.clone())).collect();
            }
        };

        let mut results: Vec<Option<Result<(), PublishError>>> = vec![None; messages.len()];
        let mut pending: VecDeque<InFlight> = VecDeque::new();
        let mut returned = HashSet::new();
        let mut broken: Option<String> = None;
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };

        for (index, message) in messages.iter().enumerate() {
            if let Some(reason) = &broken {
                results[index] = Some(Err(PublishError::Unavailable(reason.clone())));
                continue;
            }
            let Ok(message_id) = ShortString::try_new(message.message_id.clone()) else {
                results[index] = Some(Err(PublishError::Rejected(format!(
                    "message id of {} bytes exceeds AMQP's 255",
                    message.message_id.len()
                ))));
                continue;
            };
            while pending.len() >= self.config.publish_concurrency {
                if let Some(flight) = pending.pop_front() {
                    self.settle(flight, &mut results, &mut returned, &mut broken)
                        .await;
                }
            }
            let send = channel.basic_publish(
                self.topology.exchange_name(),
                message.topic.as_str().into(),
                options,
                message.payload.as_bytes(),
                Self::properties(message, message_id),
            );
            // The send only waits for the socket, but a broker that stopped reading (memory
            // alarm, hung peer) would hold it forever.
            match tokio::time::timeout(self.config.confirm_timeout(), send).await {
                Ok(Ok(confirm)) => pending.push_back(InFlight {
                    index,
                    deadline: tokio::time::Instant::now() + self.config.confirm_timeout(),
                    confirm,
                }),
                Ok(Err(e)) => {
                    let reason = format!("publish failed: {e}");
                    results[index] = Some(Err(PublishError::Unavailable(reason.clone())));
                    broken = Some(reason);
                }
                Err(_) => {
                    let reason = format!("send blocked for {:?}", self.config.confirm_timeout());
                    results[index] = Some(Err(PublishError::Unavailable(reason.clone())));
                    broken = Some(reason);
                }
            }
        }
        while let Some(flight) = pending.pop_front() {
            self.settle(flight, &mut results, &mut returned, &mut broken)
                .await;
        }

        if let Some(reason) = &broken {
            tracing::warn!(%reason, "publisher channel failed; reconnecting on the next call");
            self.discard(&mut batch.state);
        }
        batch.finished = true;
        drop(batch);

        // The broker acks an unroutable mandatory message after returning it, and the client
        // pairs returns with acks by arrival rather than by message, so match them by id.
        messages
            .iter()
            .zip(results)
            .map(|(message, result)| match result {
                Some(Ok(())) if returned.contains(&message.message_id) => {
                    Err(PublishError::Rejected(format!(
                        "unroutable: no queue bound to {} for routing key {}",
                        self.topology.exchange(),
                        message.topic.as_str()
                    )))
                }
                Some(result) => result,
                None => Err(PublishError::Unavailable("not sent".into())),
            })
            .collect()
    }
}
