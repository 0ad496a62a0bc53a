//! Connection and topology settings.

use std::time::Duration;

use serde::Deserialize;

/// How to reach the broker and how the platform's exchanges and queues are named.
///
/// Deserializable so it can be embedded in an application's config file; only `url` is
/// required:
///
/// ```
/// let cfg: lottery_mq::MqConfig =
///     serde_json::from_str(r#"{ "url": "amqp://guest:guest@127.0.0.1:5672/%2f" }"#).unwrap();
/// assert_eq!(cfg.exchange, "lottery.events");
/// assert_eq!(cfg.prefetch, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqConfig {
    /// `amqp://user:pass@host:port/vhost` (the vhost URL-encoded, `%2f` for `/`). Append
    /// `?heartbeat=10` to notice a silently dead peer sooner than the broker's default.
    pub url: String,
    /// Durable topic exchange the events are published to.
    #[serde(default = "defaults::exchange")]
    pub exchange: String,
    /// Queues are named `{queue_prefix}.{topic}` and `{queue_prefix}.{topic}.dead`.
    #[serde(default = "defaults::queue_prefix")]
    pub queue_prefix: String,
    /// Unacknowledged deliveries per consumer, which is also how many are handled at once.
    #[serde(default = "defaults::prefetch")]
    pub prefetch: u16,
    /// Confirmations one `publish_all` call keeps outstanding before it waits for the oldest.
    #[serde(default = "defaults::publish_concurrency")]
    pub publish_concurrency: usize,
    /// How long a published message may wait for its confirmation before it counts as
    /// unavailable (and the connection is replaced).
    #[serde(default = "defaults::confirm_timeout_ms")]
    pub confirm_timeout_ms: u64,
    /// Upper bound on opening a connection and its channel, so calls fail fast while the
    /// broker is unreachable.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// After a failed connection attempt the publisher fails calls at once for this long
    /// instead of dialling again for every call.
    #[serde(default = "defaults::reconnect_cooldown_ms")]
    pub reconnect_cooldown_ms: u64,
    /// First and largest pause between a consumer's reconnection attempts (doubling).
    #[serde(default = "defaults::reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Pause before a message the handler asked to retry is handed back to the queue, so a
    /// failing dependency is not hammered.
    #[serde(default = "defaults::retry_delay_ms")]
    pub retry_delay_ms: u64,
    /// On graceful stop, how long in-flight handlers may take before they are abandoned
    /// (their messages are then redelivered).
    #[serde(default = "defaults::shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Declare the exchanges, queues and bindings on every (re)connection. Turn off when the
    /// topology is managed outside the application (e.g. broker definitions) and the user
    /// lacks configure rights.
    #[serde(default = "defaults::declare_topology")]
    pub declare_topology: bool,
}

mod defaults {
    pub(super) fn exchange() -> String {
        "lottery.events".to_owned()
    }
    pub(super) fn queue_prefix() -> String {
        "lottery".to_owned()
    }
    pub(super) fn prefetch() -> u16 {
        64
    }
    pub(super) fn publish_concurrency() -> usize {
        1_000
    }
    // Below the platform's 10 s request timeout, as every bound on a backend is.
    pub(super) fn confirm_timeout_ms() -> u64 {
        5_000
    }
    pub(super) fn connect_timeout_ms() -> u64 {
        3_000
    }
    pub(super) fn reconnect_cooldown_ms() -> u64 {
        1_000
    }
    pub(super) fn reconnect_min_ms() -> u64 {
        200
    }
    pub(super) fn reconnect_max_ms() -> u64 {
        10_000
    }
    pub(super) fn retry_delay_ms() -> u64 {
        1_000
    }
    pub(super) fn shutdown_grace_ms() -> u64 {
        30_000
    }
    pub(super) fn declare_topology() -> bool {
        true
    }
}

impl MqConfig {
    /// A config with the default names and timings.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: defaults::exchange(),
            queue_prefix: defaults::queue_prefix(),
            prefetch: defaults::prefetch(),
            publish_concurrency: defaults::publish_concurrency(),
            confirm_timeout_ms: defaults::confirm_timeout_ms(),
            connect_timeout_ms: defaults::connect_timeout_ms(),
            reconnect_cooldown_ms: defaults::reconnect_cooldown_ms(),
            reconnect_min_ms: defaults::reconnect_min_ms(),
            reconnect_max_ms: defaults::reconnect_max_ms(),
            retry_delay_ms: defaults::retry_delay_ms(),
            shutdown_grace_ms: defaults::shutdown_grace_ms(),
            declare_topology: defaults::declare_topology(),
        }
    }

    pub(crate) fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub(crate) fn reconnect_cooldown(&self) -> Duration {
        Duration::from_millis(self.reconnect_cooldown_ms)
    }
    pub(crate) fn reconnect_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_min_ms.max(1))
    }
    pub(crate) fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms.max(self.reconnect_min_ms).max(1))
    }
    pub(crate) fn retry_delay(&self) -> Duration {
        Duration::from_millis(self.retry_delay_ms)
    }
    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// The URL with its password replaced, for logs and errors.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_everything_but_the_url() {
        let cfg: MqConfig =
            serde_json::from_str(r#"{"url":"amqp://localhost"}"#).expect("minimal config parses");
        assert_eq!(cfg, MqConfig::new("amqp://localhost"));
        assert_eq!(cfg.queue_prefix, "lottery");
        assert!(cfg.declare_topology);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<MqConfig>(r#"{"url":"amqp://x","prefech":1}"#);
        assert!(err.is_err());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
    }
}
