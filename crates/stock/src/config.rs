//! The Redis settings as an operator writes them for one deployment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::redis_ledger::RedisLedgerOptions;

/// Embedded as `[redis]` in the platform's configuration: the stock store and the change
/// feed of configuration edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    /// Prefix of every key (default: the deployment's name), so deployments sharing a Redis
    /// keep apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Bound on getting a connection and on each operation, in milliseconds (unset: 2 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn default_pool() -> usize {
    32
}

/// A [`RedisConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid redis configuration: {0}")]
pub struct RedisConfigError(String);

impl RedisConfig {
    /// The server at `url` with the default pool and bound.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: None,
            pool_size: default_pool(),
            timeout_ms: None,
        }
    }

    /// The stock store's settings, keys under the configured prefix, else `default_prefix`.
    #[must_use]
    pub fn ledger_options(&self, default_prefix: &str) -> RedisLedgerOptions {
        let mut options = RedisLedgerOptions {
            prefix: self.key_prefix(default_prefix),
            pool_size: self.pool_size,
            ..RedisLedgerOptions::default()
        };
        if let Some(ms) = self.timeout_ms {
            options.timeout = Duration::from_millis(ms);
        }
        options
    }

    /// The key prefix: configured, else `default_prefix` (the deployment's name).
    #[must_use]
    pub fn key_prefix(&self, default_prefix: &str) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| default_prefix.to_owned())
    }

    /// Checks the URL, the pool and the bound without connecting.
    ///
    /// # Errors
    /// [`RedisConfigError`] naming the first problem.
    pub fn validate(&self) -> Result<(), RedisConfigError> {
        let bad = |m: &str| Err(RedisConfigError(m.to_owned()));
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return bad("url must start with redis:// or rediss://");
        }
        if self.pool_size == 0 {
            return bad("pool_size must be at least 1");
        }
        if self.timeout_ms == Some(0) {
            return bad("timeout_ms must be at least 1");
        }
        if self
            .prefix
            .as_deref()
            .is_some_and(|p| p.contains(['{', '}']))
        {
            // Keys carry the activity in a hash tag; braces in the prefix would move it.
            return bad("prefix must not contain { or }");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_defaults_to_the_deployment() {
        let mut c = RedisConfig::new("redis://127.0.0.1");
        assert_eq!(c.ledger_options("spring").prefix, "spring");
        c.prefix = Some("p".into());
        c.timeout_ms = Some(250);
        let o = c.ledger_options("spring");
        assert_eq!(o.prefix, "p");
        assert_eq!(o.timeout, Duration::from_millis(250));
    }

    #[test]
    fn unusable_settings_are_named() {
        let mut c = RedisConfig::new("127.0.0.1:6379");
        assert!(
            c.validate()
                .expect_err("no scheme")
                .to_string()
                .contains("redis://")
        );
        c.url = "redis://127.0.0.1".into();
        c.validate().expect("valid");
        c.pool_size = 0;
        assert!(c.validate().is_err());
        c.pool_size = 4;
        c.prefix = Some("a{b}".into());
        assert!(c.validate().is_err());
    }
}
