use chrono::{DateTime, Utc};
use lottery_award::{Award, ShippingAddress};
use lottery_domain::{ActivityId, OrderId, UserId};
use serde::{Deserialize, Serialize};

/// The streams the platform publishes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// A win to deliver ([`AwardInvoice`]).
    AwardInvoice,
}

impl Topic {
    pub const ALL: [Topic; 1] = [Self::AwardInvoice];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwardInvoice => "award_invoice",
        }
    }

    pub fn parse(name: &str) -> Option<Topic> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Message to deliver a won award. Versioned so consumers can tell formats apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardInvoice {
    pub version: u32,
    pub user_id: UserId,
    pub order_id: OrderId,
    pub activity_id: ActivityId,
    pub award: Award,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingAddress>,
}

impl AwardInvoice {
    pub const VERSION: u32 = 1;
}

/// A message as written to the outbox in the same transaction as the record it announces,
/// then relayed to the broker. `message_id` makes redeliveries recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub message_id: String,
    pub topic: Topic,
    /// The user whose shard holds the outbox row and the record.
    pub user_id: UserId,
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

impl OutboxMessage {
    pub fn invoice(invoice: &AwardInvoice, at: DateTime<Utc>) -> Result<Self, serde_json::Error> {
        Ok(Self {
            message_id: invoice.order_id.to_string(),
            topic: Topic::AwardInvoice,
            user_id: invoice.user_id.clone(),
            payload: serde_json::to_string(invoice)?,
            created_at: at,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker did not confirm; the message stays pending and is retried.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message.
    #[error("broker rejected the message: {0}")]
    Rejected(String),
}

/// Sends outbox messages to the broker (or the in-process queue). Returns only once the
/// message is confirmed, so a row is never marked sent without a confirmation.
#[async_trait::async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, message: &OutboxMessage) -> Result<(), PublishError>;

    /// Publishes several messages with their confirmations in flight together; one result per
    /// message, in order. The default publishes one at a time.
    async fn publish_all(&self, messages: &[OutboxMessage]) -> Vec<Result<(), PublishError>> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.publish(m).await);
        }
        out
    }
}

/// A message as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub message_id: String,
    pub topic: Topic,
    pub payload: String,
    /// The broker delivered it before (a previous consumer died before acknowledging).
    pub redelivered: bool,
}

/// What a consumer did with a message; the transport acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Processed (or recognised as a duplicate): acknowledge.
    Done,
    /// Could not process now (a dependency is down): deliver again later.
    Retry(String),
    /// Can never be processed (malformed): set aside in the dead-letter queue.
    Poison(String),
}

/// Processes delivered messages. Implemented by the application, driven by a transport
/// (RabbitMQ in cluster mode, an in-process queue embedded).
#[async_trait::async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(&self, message: &Inbound) -> Handled;
}
