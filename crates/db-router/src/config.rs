//! Router configuration.

use serde::Deserialize;

use crate::dialect::{Dialect, redact_url};
use crate::error::RouterError;
use crate::spread::Spread;

/// Where the databases are and how tables are spread over them.
///
/// Deserializable so it can be embedded in an application's config file:
///
/// ```
/// let cfg: db_router::RouterConfig = serde_json::from_str(r#"{
///     "global_url": "sqlite://data/global.db",
///     "shard_urls": ["sqlite://data/db01.db", "sqlite://data/db02.db"],
///     "tb_count": 4
/// }"#).unwrap();
/// assert_eq!(cfg.db_count(), 2);
/// cfg.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Database for unsharded tables.
    pub global_url: String,
    /// One URL per shard, in order: the first is database `01`.
    /// `db_count` is the length of this list.
    pub shard_urls: Vec<String>,
    /// Tables per shard database.
    pub tb_count: u32,
    /// Pool size limit, per database.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Upper bound, in milliseconds, on waiting for a pooled connection,
    /// including opening a new one (sqlx has no separate connect timeout
    /// behind `AnyPool`), so an unreachable server fails within this time.
    #[serde(default = "defaults::acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// Idle connections are closed after this many seconds.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// MariaDB/MySQL: the server stops a statement running longer than this
    /// (`max_statement_time`); a lock wait ends after 5 s or this, whichever is shorter
    /// (`innodb_lock_wait_timeout`; callers retry lock timeouts as contention). 0 leaves the
    /// server's.
    #[serde(default = "defaults::statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// MariaDB: a session idle inside a transaction this long is ended by the server
    /// (`idle_transaction_timeout`), so a client that vanished mid-transaction (a dead
    /// process, a black-holed network) cannot hold row locks for long. 0 leaves the server's.
    #[serde(default = "defaults::idle_transaction_timeout_secs")]
    pub idle_transaction_timeout_secs: u64,
    /// Upper bound, in milliseconds, on waiting for the database's answer to one operation
    /// (a statement, or a whole transaction of the storage layer). Past it the operation
    /// fails as unavailable and its connection is closed, never reused: a half-open
    /// connection (a black-holed network) would otherwise wedge its holder and, on its
    /// return to the pool, the pool. Longer than `statement_timeout_ms`, so the server ends
    /// a merely slow statement first and the connection stays usable.
    #[serde(default = "defaults::read_timeout_ms")]
    pub read_timeout_ms: u64,
}

mod defaults {
    pub(super) fn max_connections() -> u32 {
        10
    }
    pub(super) fn acquire_timeout_ms() -> u64 {
        5_000
    }
    pub(super) fn idle_timeout_secs() -> u64 {
        600
    }
    // An OLTP platform's statements take milliseconds; these bounds only catch the stuck
    // ones, and the read bound is also how long a caller can wait on a dead network path.
    pub(super) fn statement_timeout_ms() -> u64 {
        2_500
    }
    pub(super) fn read_timeout_ms() -> u64 {
        3_000
    }
    pub(super) fn idle_transaction_timeout_secs() -> u64 {
        10
    }
}

impl RouterConfig {
    /// A config with default pool settings.
    #[must_use]
    pub fn new(global_url: impl Into<String>, shard_urls: Vec<String>, tb_count: u32) -> Self {
        Self {
            global_url: global_url.into(),
            shard_urls,
            tb_count,
            max_connections: defaults::max_connections(),
            acquire_timeout_ms: defaults::acquire_timeout_ms(),
            idle_timeout_secs: defaults::idle_timeout_secs(),
            statement_timeout_ms: defaults::statement_timeout_ms(),
            idle_transaction_timeout_secs: defaults::idle_transaction_timeout_secs(),
            read_timeout_ms: defaults::read_timeout_ms(),
        }
    }

    /// Session settings applied to every new MariaDB/MySQL connection, from the bounds
    /// above. Each is tried on its own: a server without one (MySQL lacks
    /// `max_statement_time` and `idle_transaction_timeout`) keeps the others.
    #[must_use]
    pub fn mysql_session_settings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.statement_timeout_ms > 0 {
            out.push(format!(
                "SET SESSION max_statement_time = {:.3}",
                self.statement_timeout_ms as f64 / 1000.0
            ));
            out.push(format!(
                "SET SESSION innodb_lock_wait_timeout = {}",
                self.statement_timeout_ms.div_ceil(1000).clamp(1, 5)
            ));
        }
        if self.idle_transaction_timeout_secs > 0 {
            out.push(format!(
                "SET SESSION idle_transaction_timeout = {}",
                self.idle_transaction_timeout_secs
            ));
        }
        out
    }

    /// Number of shard databases.
    #[must_use]
    pub fn db_count(&self) -> u32 {
        // More than u32::MAX shards cannot be configured meaningfully; saturating
        // makes such a config fail the power-of-two check instead of wrapping.
        u32::try_from(self.shard_urls.len()).unwrap_or(u32::MAX)
    }

    /// Checks the layout and URLs without touching any database.
    ///
    /// # Errors
    /// A configuration variant of [`RouterError`] describing the first problem.
    pub fn validate(&self) -> Result<(), RouterError> {
        self.spread()?;
        self.dialect()?;
        if self.max_connections == 0 {
            return Err(RouterError::NoConnections);
        }
        if self.read_timeout_ms == 0 {
            return Err(RouterError::NoReadTimeout);
        }
        Ok(())
    }

    /// The validated layout.
    ///
    /// # Errors
    /// As [`Spread::new`].
    pub fn spread(&self) -> Result<Spread, RouterError> {
        Spread::new(self.db_count(), self.tb_count)
    }

    /// The single dialect shared by every URL.
    ///
    /// # Errors
    /// [`RouterError::UnsupportedUrl`] or [`RouterError::MixedDialects`].
    pub fn dialect(&self) -> Result<Dialect, RouterError> {
        let dialect = Dialect::from_url(&self.global_url)?;
        for url in &self.shard_urls {
            if Dialect::from_url(url)? != dialect {
                return Err(RouterError::MixedDialects {
                    first: redact_url(&self.global_url),
                    other: redact_url(url),
                });
            }
        }
        Ok(dialect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(n: u32, tb: u32) -> RouterConfig {
        let shards = (1..=n).map(|i| format!("sqlite://d{i}.db")).collect();
        RouterConfig::new("sqlite://g.db", shards, tb)
    }

    #[test]
    fn accepts_valid_layouts() {
        for (db, tb) in [(1, 1), (2, 4), (4, 8), (1, 16), (16, 1)] {
            sqlite(db, tb).validate().unwrap();
        }
        assert_eq!(sqlite(2, 4).dialect().unwrap(), Dialect::Sqlite);
    }

    #[test]
    fn rejects_invalid_layouts() {
        let err = sqlite(3, 4).validate().unwrap_err();
        assert!(matches!(
            err,
            RouterError::NotPowerOfTwo {
                db_count: 3,
                tb_count: 4
            }
        ));
        assert_eq!(
            err.to_string(),
            "invalid router config: db_count * tb_count must be a power of two, got 3 * 4"
        );
        assert!(matches!(
            sqlite(0, 4).validate(),
            Err(RouterError::NoShards)
        ));
        assert!(matches!(
            sqlite(2, 0).validate(),
            Err(RouterError::NoTables)
        ));
        let mut cfg = sqlite(2, 4);
        cfg.max_connections = 0;
        assert!(matches!(cfg.validate(), Err(RouterError::NoConnections)));
    }

    #[test]
    fn rejects_bad_urls() {
        let mut cfg = sqlite(2, 4);
        cfg.shard_urls[1] = "mysql://u:pw@h/db".into();
        let err = cfg.validate().unwrap_err();
        assert!(matches!(err, RouterError::MixedDialects { .. }), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");

        let mut cfg = sqlite(2, 4);
        cfg.global_url = "postgres://h/db".into();
        assert!(matches!(
            cfg.validate(),
            Err(RouterError::UnsupportedUrl { .. })
        ));

        let cfg = RouterConfig::new(
            "mariadb://h/g",
            vec!["mysql://h/a".into(), "mariadb://h/b".into()],
            2,
        );
        assert_eq!(cfg.dialect().unwrap(), Dialect::MySql);
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        let cfg: RouterConfig = serde_json::from_str(
            r#"{"global_url":"sqlite:g.db","shard_urls":["sqlite:a.db"],"tb_count":2}"#,
        )
        .unwrap();
        assert_eq!(
            cfg,
            RouterConfig::new("sqlite:g.db", vec!["sqlite:a.db".into()], 2)
        );
        let bad = serde_json::from_str::<RouterConfig>(
            r#"{"global_url":"sqlite:g.db","shard_urls":[],"tb_count":2,"db_count":2}"#,
        );
        assert!(bad.is_err());
    }
}
