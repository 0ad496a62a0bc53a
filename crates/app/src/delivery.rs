//! Award delivery: the outbox relay (outbox -> transport), the consumer that grants awards
//! exactly once per message, and the in-process transport used in embedded mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;
use lottery_activity::{
    AwardInvoice, EventPublisher, GrantRepository, Handled, Inbound, MessageHandler, OutboxMessage,
    OutboxRepository, PublishError, Topic,
};
use lottery_award::{DistributeError, Grant, GrantState};
use tracing::{debug, error, info, warn};

use lottery_award::AwardRegistry;
use lottery_domain::Clock;

use crate::{AppError, Failure, LogGate};

/// How the relay works through the outbox.
#[derive(Debug, Clone, Copy)]
pub struct RelayOptions {
    /// Messages claimed per shard database per round.
    pub batch: u32,
    /// How long a claimed message is hidden from other relays while being published.
    pub lease: Duration,
    /// Attempts before a message is parked for an operator.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch: 500,
            lease: Duration::seconds(30),
            max_attempts: 20,
            backoff: Duration::milliseconds(500),
            max_backoff: Duration::minutes(5),
        }
    }
}

/// What one relay round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub parked: usize,
}

/// What the relay reads and writes: the outbox, and the time.
#[derive(Clone)]
struct RelayPorts {
    outbox: Arc<dyn OutboxRepository>,
    clock: Arc<dyn Clock>,
}

/// What a grant needs: the orders' grant records, the award kinds, and the time.
#[derive(Clone)]
struct DeliveryPorts {
    grants: Arc<dyn GrantRepository>,
    registry: AwardRegistry,
    clock: Arc<dyn Clock>,
}

/// Publishes outbox messages and marks them sent only once the transport confirmed them.
#[derive(Clone)]
pub struct OutboxRelay {
    ports: RelayPorts,
    publisher: Arc<dyn EventPublisher>,
    options: RelayOptions,
    /// A broker outage fails every message of every round: logged as one run of failures.
    publish_log: Arc<LogGate>,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    pub fn new(
        outbox: Arc<dyn OutboxRepository>,
        clock: Arc<dyn Clock>,
        publisher: Arc<dyn EventPublisher>,
        options: RelayOptions,
    ) -> Self {
        Self {
            ports: RelayPorts { outbox, clock },
            publisher,
            options,
            publish_log: Arc::new(LogGate::new(std::time::Duration::from_secs(30))),
        }
    }

    /// One round: claim what is due, publish it with confirms in flight together, record the
    /// outcome of each message.
    pub async fn run_once(&self) -> Result<RelayReport, AppError> {
        let now = self.ports.clock.now();
        let claimed = self
            .ports
            .outbox
            .claim_due(now, self.options.lease, self.options.batch)
            .await?;
        let mut report = RelayReport {
            claimed: claimed.len(),
            ..RelayReport::default()
        };
        if claimed.is_empty() {
            return Ok(report);
        }
        let messages: Vec<OutboxMessage> = claimed.iter().map(|p| p.message.clone()).collect();
        let results = self.publisher.publish_all(&messages).await;
        let mut confirmed = Vec::with_capacity(messages.len());
        let mut first_error = None;
        for ((pending, message), result) in claimed.iter().zip(&messages).zip(results) {
            match result {
                Ok(()) => confirmed.push(message.clone()),
                Err(e) => {
                    let attempts = pending.attempts + 1;
                    let park = attempts >= self.options.max_attempts;
                    let next = self.ports.clock.now() + self.backoff(attempts);
                    if park {
                        error!(message = %message.message_id, attempts, error = %lottery_domain::Chain(&e), "outbox message parked");
                        report.parked += 1;
                    } else {
                        debug!(message = %message.message_id, attempts, error = %lottery_domain::Chain(&e), "outbox publish failed; will retry");
                        report.retried += 1;
                    }
                    first_error.get_or_insert_with(|| e.to_string());
                    self.ports
                        .outbox
                        .retry_later(message, next, &e.to_string(), park)
                        .await?;
                }
            }
        }
        self.log_round(&report, first_error.as_deref());
        if !confirmed.is_empty() {
            self.ports
                .outbox
                .mark_sent(&confirmed, self.ports.clock.now())
                .await?;
            report.sent = confirmed.len();
        }
        Ok(report)
    }

    /// One line when publishing starts failing, one a period while it goes on, one when it
    /// works again.
    fn log_round(&self, report: &RelayReport, error: Option<&str>) {
        let Some(error) = error else {
            if report.claimed > 0 && self.publish_log.succeeded() {
                info!("outbox messages are published again");
            }
            return;
        };
        match self.publish_log.failed() {
            Failure::Started => {
                warn!(retried = report.retried, %error, "outbox messages not published; they will be retried");
            }
            Failure::Continuing { held_back } => {
                warn!(retried = report.retried, rounds = held_back + 1, %error,
                    "outbox messages still not published");
            }
            Failure::Quiet => {}
        }
    }

    /// Rounds until nothing more is due now (used at shutdown and by tests).
    pub async fn drain(&self) -> Result<RelayReport, AppError> {
        let mut total = RelayReport::default();
        loop {
            let r = self.run_once().await?;
            total.claimed += r.claimed;
            total.sent += r.sent;
            total.retried += r.retried;
            total.parked += r.parked;
            if r.claimed == 0 || r.sent == 0 {
                return Ok(total);
            }
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1i32 << attempts.saturating_sub(1).min(20);
        let delay = self.options.backoff * factor;
        delay.min(self.options.max_backoff)
    }
}

/// Grants won awards: decodes the invoice, delivers through the award registry, and records
/// the grant together with the message id, so a redelivered message changes nothing.
#[derive(Clone)]
pub struct AwardDelivery {
    ports: DeliveryPorts,
    /// Delivery attempts per message that failed with a retryable error.
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    max_attempts: u32,
}

impl std::fmt::Debug for AwardDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwardDelivery")
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl AwardDelivery {
    pub fn new(
        grants: Arc<dyn GrantRepository>,
        registry: AwardRegistry,
        clock: Arc<dyn Clock>,
        max_attempts: u32,
    ) -> Self {
        Self {
            ports: DeliveryPorts {
                grants,
                registry,
                clock,
            },
            attempts: Arc::new(Mutex::new(HashMap::new())),
            max_attempts: max_attempts.max(1),
        }
    }

    async fn grant(&self, message: &Inbound, invoice: AwardInvoice) -> Handled {
        let user = invoice.user_id.clone();
        match self
            .ports
            .grants
            .is_processed(&user, &message.message_id)
            .await
        {
            Ok(true) => return Handled::Done,
            Ok(false) => {}
            Err(e) => return Handled::Retry(e.to_string()),
        }
        let grant = Grant {
            order_id: invoice.order_id,
            user_id: user.clone(),
            award: invoice.award,
            shipping: invoice.shipping,
        };
        let (state, detail) = match self.distribute(&grant, &message.message_id).await {
            Ok(done) => done,
            Err(reason) => return Handled::Retry(reason),
        };
        let now = self.ports.clock.now();
        match self
            .ports
            .grants
            .apply_grant(
                &user,
                grant.order_id,
                &message.message_id,
                state,
                detail.as_deref(),
                now,
            )
            .await
        {
            Ok(applied) => {
                self.attempts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&message.message_id);
                if applied {
                    debug!(order = %grant.order_id, %state, "award granted");
                }
                Handled::Done
            }
            Err(e) => Handled::Retry(e.to_string()),
        }
    }
}

impl AwardDelivery {
    /// Hands the prize out: the grant's final state and what to keep on the order, or the
    /// reason to try again later (a downstream system down, attempts left).
    async fn distribute(
        &self,
        grant: &Grant,
        message_id: &str,
    ) -> Result<(GrantState, Option<String>), String> {
        match self.ports.registry.distribute(grant).await {
            Ok(delivery) => Ok((GrantState::Complete, Some(delivery.detail))),
            Err(DistributeError::Permanent(reason)) => Ok((GrantState::Failed, Some(reason))),
            Err(DistributeError::Retryable(reason)) => {
                let attempts = {
                    let mut map = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
                    let n = map.entry(message_id.to_owned()).or_insert(0);
                    *n += 1;
                    *n
                };
                if attempts < self.max_attempts {
                    return Err(reason);
                }
                Ok((
                    GrantState::Failed,
                    Some(format!("gave up after {attempts} attempts: {reason}")),
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl MessageHandler for AwardDelivery {
    async fn handle(&self, message: &Inbound) -> Handled {
        match message.topic {
            Topic::AwardInvoice => match serde_json::from_str::<AwardInvoice>(&message.payload) {
                Ok(invoice) if invoice.version == AwardInvoice::VERSION => {
                    if invoice.order_id.to_string() != message.message_id {
                        return Handled::Poison(format!(
                            "message id {} does not match order {}",
                            message.message_id, invoice.order_id
                        ));
                    }
                    self.grant(message, invoice).await
                }
                Ok(invoice) => {
                    Handled::Poison(format!("unsupported invoice version {}", invoice.version))
                }
                Err(e) => Handled::Poison(format!("malformed invoice: {e}")),
            },
        }
    }
}

/// The embedded transport: publishing hands the message straight to the consumer and
/// confirms only once it was processed, so the outbox row stays pending until then and a
/// crash at any point loses nothing.
#[derive(Clone)]
pub struct InProcessBus {
    handler: Arc<dyn MessageHandler>,
    concurrency: usize,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl InProcessBus {
    pub fn new(handler: Arc<dyn MessageHandler>, concurrency: usize) -> Self {
        Self {
            handler,
            concurrency: concurrency.max(1),
        }
    }
}

#[async_trait::async_trait]
impl EventPublisher for InProcessBus {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), PublishError> {
        let inbound = Inbound {
            message_id: message.message_id.clone(),
            topic: message.topic,
            payload: message.payload.clone(),
            redelivered: false,
        };
        match self.handler.handle(&inbound).await {
            Handled::Done => Ok(()),
            Handled::Retry(reason) => Err(PublishError::Unavailable(reason)),
            // Rejected rows are parked in the outbox: the embedded dead-letter queue.
            Handled::Poison(reason) => Err(PublishError::Rejected(reason)),
        }
    }

    async fn publish_all(&self, messages: &[OutboxMessage]) -> Vec<Result<(), PublishError>> {
        let mut out = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(self.concurrency) {
            let results = futures::future::join_all(chunk.iter().map(|m| self.publish(m))).await;
            out.extend(results);
        }
        out
    }
}
