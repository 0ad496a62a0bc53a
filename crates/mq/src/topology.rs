//! Names and declaration of the exchanges, queues and bindings.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};
use lottery_activity::Topic;

use crate::config::MqConfig;
use crate::error::MqError;

/// The broker objects the platform uses:
///
/// - `{exchange}`: durable topic exchange; events are published with routing key = topic name.
/// - `{prefix}.{topic}`: durable queue per topic, bound with routing key = topic name, whose
///   rejected messages are dead-lettered to `{exchange}.dlx`.
/// - `{exchange}.dlx`: durable direct exchange; dead-lettered messages keep their routing key.
/// - `{prefix}.{topic}.dead`: durable queue per topic bound to the dead-letter exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    exchange: ShortString,
    dead_letter_exchange: ShortString,
    queue_prefix: String,
}

fn short(name: String) -> Result<ShortString, MqError> {
    let len = name.len();
    ShortString::try_new(name)
        .map_err(|_| MqError::Config(format!("name of {len} bytes exceeds AMQP's 255")))
}

impl Topology {
    /// Checks that every name fits AMQP's limits.
    pub fn new(config: &MqConfig) -> Result<Topology, MqError> {
        if config.exchange.is_empty() {
            // The empty name is the default exchange, which cannot be declared or bound.
            return Err(MqError::Config("exchange name is empty".into()));
        }
        let topology = Topology {
            exchange: short(config.exchange.clone())?,
            dead_letter_exchange: short(format!("{}.dlx", config.exchange))?,
            queue_prefix: config.queue_prefix.clone(),
        };
        for topic in Topic::ALL {
            short(topology.dead_letter_queue(topic))?;
        }
        Ok(topology)
    }

    pub fn exchange(&self) -> &str {
        self.exchange.as_str()
    }

    pub fn dead_letter_exchange(&self) -> &str {
        self.dead_letter_exchange.as_str()
    }

    /// `{prefix}.{topic}`
    pub fn queue(&self, topic: Topic) -> String {
        format!("{}.{}", self.queue_prefix, topic.as_str())
    }

    /// `{prefix}.{topic}.dead`
    pub fn dead_letter_queue(&self, topic: Topic) -> String {
        format!("{}.{}.dead", self.queue_prefix, topic.as_str())
    }

    pub(crate) fn exchange_name(&self) -> ShortString {
        self.exchange.clone()
    }

    /// Declares everything for every topic. Idempotent while the existing objects have the
    /// same settings; the broker closes the channel if they differ.
    pub(crate) async fn declare_all(&self, channel: &Channel) -> Result<(), MqError> {
        self.declare_exchanges(channel).await?;
        for topic in Topic::ALL {
            self.declare_queues(channel, topic).await?;
        }
        Ok(())
    }

    pub(crate) async fn declare_exchanges(&self, channel: &Channel) -> Result<(), MqError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.clone(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(MqError::amqp(format!("declare exchange {}", self.exchange)))?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.clone(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(MqError::amqp(format!(
                "declare exchange {}",
                self.dead_letter_exchange
            )))
    }

    /// The topic's queue and dead-letter queue with their bindings; the exchanges must exist.
    pub(crate) async fn declare_queues(
        &self,
        channel: &Channel,
        topic: Topic,
    ) -> Result<(), MqError> {
        let queue = short(self.queue(topic))?;
        let dead = short(self.dead_letter_queue(topic))?;
        let key = ShortString::from(topic.as_str());

        channel
            .queue_declare(
                dead.clone(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map_err(MqError::amqp(format!("declare queue {dead}")))?;
        channel
            .queue_bind(
                dead.clone(),
                self.dead_letter_exchange.clone(),
                key.clone(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(MqError::amqp(format!("bind queue {dead}")))?;

        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange.as_str().into()),
        );
        channel
            .queue_declare(queue.clone(), QueueDeclareOptions::durable(), arguments)
            .await
            .map_err(MqError::amqp(format!("declare queue {queue}")))?;
        channel
            .queue_bind(
                queue.clone(),
                self.exchange.clone(),
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(MqError::amqp(format!("bind queue {queue}")))
    }

    /// Removes the queues (with their messages) and the exchanges.
    pub(crate) async fn delete_all(&self, channel: &Channel) -> Result<(), MqError> {
        for topic in Topic::ALL {
            for queue in [self.queue(topic), self.dead_letter_queue(topic)] {
                channel
                    .queue_delete(short(queue.clone())?, QueueDeleteOptions::default())
                    .await
                    .map_err(MqError::amqp(format!("delete queue {queue}")))?;
            }
        }
        for exchange in [&self.exchange, &self.dead_letter_exchange] {
            channel
                .exchange_delete(exchange.clone(), ExchangeDeleteOptions::default())
                .await
                .map_err(MqError::amqp(format!("delete exchange {exchange}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix_and_exchange() {
        let t = Topology::new(&MqConfig::new("amqp://x")).expect("default names are valid");
        assert_eq!(t.exchange(), "lottery.events");
        assert_eq!(t.dead_letter_exchange(), "lottery.events.dlx");
        assert_eq!(t.queue(Topic::AwardInvoice), "lottery.award_invoice");
        assert_eq!(
            t.dead_letter_queue(Topic::AwardInvoice),
            "lottery.award_invoice.dead"
        );
    }

    #[test]
    fn overlong_or_empty_names_are_refused() {
        let mut cfg = MqConfig::new("amqp://x");
        cfg.queue_prefix = "q".repeat(250);
        assert!(matches!(Topology::new(&cfg), Err(MqError::Config(_))));
        let mut cfg = MqConfig::new("amqp://x");
        cfg.exchange = String::new();
        assert!(matches!(Topology::new(&cfg), Err(MqError::Config(_))));
    }
}
