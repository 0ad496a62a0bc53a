//! The database settings as an operator writes them for one instance.

use serde::{Deserialize, Serialize};

use crate::config::RouterConfig;
use crate::error::RouterError;

/// One instance's databases: where they are, the table layout, its connection budget and
/// any bounds that differ from the router's defaults. Embedded as `[database]` in the
/// platform's configuration; [`DatabaseConfig::router_config`] turns it into the router's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub global_url: String,
    pub shard_urls: Vec<String>,
    /// Tables per shard database.
    pub tables: u32,
    /// Database connections this instance may open in all, over the global database and
    /// every shard: each pool gets `max(2, max_connections / (1 + shards))`. Size it so
    /// that instances times this stays below the server's `max_connections`.
    #[serde(default = "default_connections")]
    pub max_connections: u32,
    /// Bounds on waiting for the databases, in milliseconds (unset: the router's defaults,
    /// see [`RouterConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_transaction_timeout_secs: Option<u64>,
}

fn default_connections() -> u32 {
    48
}

impl DatabaseConfig {
    /// The layout with the default budget and bounds.
    #[must_use]
    pub fn new(global_url: impl Into<String>, shard_urls: Vec<String>, tables: u32) -> Self {
        Self {
            global_url: global_url.into(),
            shard_urls,
            tables,
            max_connections: default_connections(),
            acquire_timeout_ms: None,
            statement_timeout_ms: None,
            read_timeout_ms: None,
            idle_transaction_timeout_secs: None,
        }
    }

    /// The size of each of the instance's pools (one per database).
    #[must_use]
    pub fn per_pool(&self) -> u32 {
        let pools = 1 + u32::try_from(self.shard_urls.len()).unwrap_or(u32::MAX);
        (self.max_connections / pools.max(1)).max(2)
    }

    /// The router's settings: this instance's connection budget split over its pools, and
    /// the bounds that are set (the router's defaults otherwise).
    #[must_use]
    pub fn router_config(&self) -> RouterConfig {
        let mut rc = RouterConfig::new(
            self.global_url.clone(),
            self.shard_urls.clone(),
            self.tables,
        );
        rc.max_connections = self.per_pool();
        let set = |field: &mut u64, value: Option<u64>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut rc.acquire_timeout_ms, self.acquire_timeout_ms);
        set(&mut rc.statement_timeout_ms, self.statement_timeout_ms);
        set(&mut rc.read_timeout_ms, self.read_timeout_ms);
        set(
            &mut rc.idle_transaction_timeout_secs,
            self.idle_transaction_timeout_secs,
        );
        rc
    }

    /// Checks the layout, the URLs and the bounds without touching any database.
    ///
    /// # Errors
    /// A configuration variant of [`RouterError`] naming the first problem.
    pub fn validate(&self) -> Result<(), RouterError> {
        if self.max_connections == 0 {
            return Err(RouterError::NoConnections);
        }
        self.router_config().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_is_per_instance() {
        let mut db = DatabaseConfig::new(
            "mysql://root@127.0.0.1/g",
            vec!["mysql://a/s1".into(), "mysql://b/s2".into()],
            4,
        );
        db.max_connections = 32;
        // Three pools of 10: 30 connections at most, within the budget of 32.
        assert_eq!(db.per_pool(), 10);
        assert_eq!(db.router_config().max_connections, 10);
        db.max_connections = 3;
        assert_eq!(db.per_pool(), 2, "every pool keeps two connections");
    }

    #[test]
    fn set_bounds_reach_the_router_and_unset_ones_keep_its_defaults() {
        let mut db = DatabaseConfig::new("sqlite://g.db", vec!["sqlite://a.db".into()], 2);
        db.read_timeout_ms = Some(900);
        let rc = db.router_config();
        assert_eq!(rc.read_timeout_ms, 900);
        let defaults = RouterConfig::new("sqlite://g.db", vec!["sqlite://a.db".into()], 2);
        assert_eq!(rc.statement_timeout_ms, defaults.statement_timeout_ms);
        assert_eq!(rc.acquire_timeout_ms, defaults.acquire_timeout_ms);
    }

    #[test]
    fn invalid_settings_are_named() {
        let mut db = DatabaseConfig::new("sqlite://g.db", vec!["sqlite://a.db".into()], 3);
        assert!(matches!(
            db.validate(),
            Err(RouterError::NotPowerOfTwo { .. })
        ));
        db.tables = 2;
        db.validate().expect("valid");
        db.max_connections = 0;
        assert!(matches!(db.validate(), Err(RouterError::NoConnections)));
        db.max_connections = 8;
        db.read_timeout_ms = Some(0);
        assert!(matches!(db.validate(), Err(RouterError::NoReadTimeout)));
        db.read_timeout_ms = None;
        db.global_url = "postgres://h/g".into();
        assert!(matches!(
            db.validate(),
            Err(RouterError::UnsupportedUrl { .. })
        ));
    }
}
