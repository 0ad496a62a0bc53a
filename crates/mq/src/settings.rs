//! The broker settings as an operator writes them for one deployment.

use serde::{Deserialize, Serialize};

use crate::config::MqConfig;
use crate::error::MqError;
use crate::topology::Topology;

/// Embedded as `[amqp]` in the platform's configuration. The exchange and queue names
/// default to the deployment's, so two deployments sharing a vhost never consume each
/// other's messages; [`AmqpConfig::mq_config`] fills them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    pub url: String,
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Topic exchange for events (default `<deployment>.events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// Prefix of the queue names (default: the deployment's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_prefix: Option<String>,
    /// Bound on opening a connection and its channel, in milliseconds (unset: the adapter's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Bound on waiting for a publish confirmation, in milliseconds (unset: the adapter's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_timeout_ms: Option<u64>,
}

fn default_prefetch() -> u16 {
    64
}

impl AmqpConfig {
    /// The broker at `url` with the default names and timings.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefetch: default_prefetch(),
            exchange: None,
            queue_prefix: None,
            connect_timeout_ms: None,
            confirm_timeout_ms: None,
        }
    }

    /// The adapter's settings, its names derived from `deployment` unless set.
    #[must_use]
    pub fn mq_config(&self, deployment: &str) -> MqConfig {
        let mut mq = MqConfig::new(self.url.clone());
        mq.prefetch = self.prefetch;
        mq.exchange = self
            .exchange
            .clone()
            .unwrap_or_else(|| format!("{deployment}.events"));
        mq.queue_prefix = self
            .queue_prefix
            .clone()
            .unwrap_or_else(|| deployment.to_owned());
        if let Some(ms) = self.connect_timeout_ms {
            mq.connect_timeout_ms = ms;
        }
        if let Some(ms) = self.confirm_timeout_ms {
            mq.confirm_timeout_ms = ms;
        }
        mq
    }

    /// Checks the URL, the bounds and the names `deployment` gives, without connecting.
    ///
    /// # Errors
    /// [`MqError::Config`] naming the first problem.
    pub fn validate(&self, deployment: &str) -> Result<(), MqError> {
        if !(self.url.starts_with("amqp://") || self.url.starts_with("amqps://")) {
            return Err(MqError::Config(
                "url must start with amqp:// or amqps://".into(),
            ));
        }
        if self.prefetch == 0 {
            return Err(MqError::Config("prefetch must be at least 1".into()));
        }
        if self.connect_timeout_ms == Some(0) || self.confirm_timeout_ms == Some(0) {
            return Err(MqError::Config(
                "connect_timeout_ms and confirm_timeout_ms must be at least 1".into(),
            ));
        }
        Topology::new(&self.mq_config(deployment)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_deployment_unless_set() {
        let mut c = AmqpConfig::new("amqp://127.0.0.1");
        let mq = c.mq_config("spring");
        assert_eq!(mq.exchange, "spring.events");
        assert_eq!(mq.queue_prefix, "spring");
        c.exchange = Some("ex".into());
        c.confirm_timeout_ms = Some(1_500);
        let mq = c.mq_config("spring");
        assert_eq!(mq.exchange, "ex");
        assert_eq!(mq.confirm_timeout_ms, 1_500);
    }

    #[test]
    fn unusable_settings_are_named() {
        let mut c = AmqpConfig::new("http://broker");
        let e = c.validate("d").expect_err("not an AMQP URL");
        assert!(e.to_string().contains("amqp://"), "{e}");
        c.url = "amqp://broker".into();
        c.validate("d").expect("valid");
        c.prefetch = 0;
        assert!(c.validate("d").is_err());
        c.prefetch = 8;
        c.exchange = Some(String::new());
        assert!(
            c.validate("d").is_err(),
            "the default exchange cannot be bound"
        );
    }
}
