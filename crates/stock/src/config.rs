//! The Redis settings as an operator writes them for one deployment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::connection::RedisTarget;
use crate::redis_ledger::RedisLedgerOptions;

/// Embedded as `[redis]` in the platform's configuration: the stock store, the change feed
/// of configuration edits and the per-user draw rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The server, or with `cluster = true` the first seed node of a Redis Cluster.
    pub url: String,
    /// Whether `url` (and `cluster_seeds`) are nodes of a Redis Cluster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
    /// More seed nodes of the cluster, tried when `url` does not answer (at start, and when
    /// the change feed's node goes away). The client learns the rest of the cluster from any
    /// one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_seeds: Vec<String>,
    /// Prefix of every key (default: the deployment's name), so deployments sharing a Redis
    /// keep apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Single server: the most connections open at once. Operations share one multiplexed
    /// connection; the others are only used while a failed one is replaced.
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
            cluster: false,
            cluster_seeds: Vec::new(),
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

    /// Where Redis is: the server at `url`, or the cluster seeded by `url` and
    /// `cluster_seeds`.
    #[must_use]
    pub fn target(&self) -> RedisTarget {
        if self.cluster {
            let mut seeds = vec![self.url.clone()];
            seeds.extend(self.cluster_seeds.iter().cloned());
            RedisTarget::Cluster(seeds)
        } else {
            RedisTarget::Server(self.url.clone())
        }
    }

    /// The key prefix: configured, else `default_prefix` (the deployment's name).
    #[must_use]
    pub fn key_prefix(&self, default_prefix: &str) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| default_prefix.to_owned())
    }

    /// Checks the URLs, the pool and the bound without connecting.
    ///
    /// # Errors
    /// [`RedisConfigError`] naming the first problem.
    pub fn validate(&self) -> Result<(), RedisConfigError> {
        let bad = |m: &str| Err(RedisConfigError(m.to_owned()));
        if !has_scheme(&self.url) {
            return bad("url must start with redis:// or rediss://");
        }
        if let Some(seed) = self.cluster_seeds.iter().find(|s| !has_scheme(s)) {
            return Err(RedisConfigError(format!(
                "cluster_seeds: {seed:?} must start with redis:// or rediss://"
            )));
        }
        if !self.cluster && !self.cluster_seeds.is_empty() {
            return bad("cluster_seeds are seed nodes of a cluster: set cluster = true too");
        }
        if self.cluster
            && let Some(url) = std::iter::once(&self.url)
                .chain(&self.cluster_seeds)
                .find(|u| database(u).is_some_and(|db| db != "0"))
        {
            return Err(RedisConfigError(format!(
                "{url:?} selects a database: a Redis Cluster has only database 0"
            )));
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

fn has_scheme(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// The database a URL selects (`redis://host:6379/3` -> `3`), if any.
fn database(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.split_once('/')?.1;
    let db = path.split(['?', '#']).next().unwrap_or_default();
    (!db.is_empty()).then_some(db)
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

    #[test]
    fn a_cluster_is_seeded_by_the_url_and_the_seeds() {
        let mut c = RedisConfig::new("redis://10.0.0.1:7000");
        assert_eq!(
            c.target(),
            RedisTarget::Server("redis://10.0.0.1:7000".into())
        );
        c.cluster_seeds = vec!["redis://10.0.0.2:7000".into()];
        let e = c.validate().expect_err("seeds without cluster");
        assert!(e.to_string().contains("cluster = true"), "{e}");
        c.cluster = true;
        c.validate().expect("a cluster with two seeds");
        assert_eq!(
            c.target(),
            RedisTarget::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7000".into()
            ])
        );
        c.cluster_seeds.push("10.0.0.3:7000".into());
        let e = c.validate().expect_err("a seed without a scheme");
        assert!(e.to_string().contains("10.0.0.3"), "{e}");
        c.cluster_seeds.pop();
        c.url = "redis://10.0.0.1:7000/2".into();
        let e = c.validate().expect_err("a database on a cluster");
        assert!(e.to_string().contains("database 0"), "{e}");
        c.url = "redis://:secret@10.0.0.1:7000/0".into();
        c.validate().expect("database 0 is the cluster's one");
    }

    #[test]
    fn the_cluster_keys_are_optional() {
        let c: RedisConfig = parse(
            r#"{"url": "redis://a:7000", "cluster": true, "cluster_seeds": ["redis://b:7000"]}"#,
        );
        assert!(c.cluster);
        assert_eq!(c.cluster_seeds, vec!["redis://b:7000".to_owned()]);
        let plain: RedisConfig = parse(r#"{"url": "redis://a:6379"}"#);
        assert!(!plain.cluster && plain.cluster_seeds.is_empty());
    }

    fn parse(json: &str) -> RedisConfig {
        serde_json::from_str(json).expect("config")
    }
}
