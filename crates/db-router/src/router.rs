//! Connection pools for the global database and every shard.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures::future::{join_all, try_join_all};
use futures::{StreamExt, TryStreamExt, stream};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use tracing::{debug, info};

use crate::config::RouterConfig;
use crate::dialect::{Dialect, redact_url};
use crate::error::RouterError;
use crate::spread::{Route, Spread};

/// Applied to every new SQLite connection. WAL lets readers run alongside
/// the single writer; FULL sync makes every commit reach the disk before it
/// returns (NORMAL under WAL can lose the last commits to an operating-system
/// crash, and an answered draw must be stored); the busy timeout makes a
/// second writer wait instead of failing at once; foreign keys are off by
/// default in SQLite.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
];

/// Pools for one global database and `db_count` shard databases, plus the
/// routing rule that picks a shard and table for a key.
///
/// Cloning is cheap and shares the pools.
#[derive(Debug, Clone)]
pub struct Router {
    spread: Spread,
    dialect: Dialect,
    global: AnyPool,
    shards: Vec<AnyPool>,
    max_connections: u32,
    read_timeout: Duration,
}

impl Router {
    /// Validates `config` and opens one pool per database, failing if any
    /// database cannot be reached.
    ///
    /// SQLite files (and their directories) are created if missing.
    ///
    /// # Errors
    /// A configuration variant of [`RouterError`], [`RouterError::SqliteDir`]
    /// or [`RouterError::Connect`].
    pub async fn connect(config: &RouterConfig) -> Result<Self, RouterError> {
        config.validate()?;
        let spread = config.spread()?;
        let dialect = config.dialect()?;
        // Idempotent; needed before the first `AnyPool` is opened.
        sqlx::any::install_default_drivers();

        let global = open_pool(config, dialect, &config.global_url).await?;
        let shards = try_join_all(
            config
                .shard_urls
                .iter()
                .map(|url| open_pool(config, dialect, url)),
        )
        .await?;
        info!(
            %dialect,
            db_count = spread.db_count(),
            tb_count = spread.tb_count(),
            "database router connected"
        );
        Ok(Self {
            spread,
            dialect,
            global,
            shards,
            max_connections: config.max_connections,
            read_timeout: Duration::from_millis(config.read_timeout_ms),
        })
    }

    /// How long one operation may wait for the database's answer
    /// ([`RouterConfig::read_timeout_ms`]).
    #[must_use]
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Pool of the unsharded database.
    #[must_use]
    pub fn global(&self) -> &AnyPool {
        &self.global
    }

    /// Dialect of every database behind this router.
    #[must_use]
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The `db_count x tb_count` layout.
    #[must_use]
    pub fn spread(&self) -> Spread {
        self.spread
    }

    /// Database and table for `key`.
    #[must_use]
    pub fn route(&self, key: &str) -> Route {
        self.spread.route(key)
    }

    /// Every (database, table) pair, database-major.
    pub fn routes(&self) -> impl Iterator<Item = Route> + use<> {
        self.spread.routes()
    }

    /// Pool of the shard database holding `route`.
    ///
    /// # Errors
    /// [`RouterError::RouteOutOfRange`] for a route outside this router's
    /// layout (for example one computed with another `Spread`).
    pub fn pool(&self, route: &Route) -> Result<&AnyPool, RouterError> {
        self.shards
            .get(route.db_index())
            .filter(|_| self.spread.contains(route))
            .ok_or(RouterError::RouteOutOfRange {
                db: route.db,
                table: route.table,
                db_count: self.spread.db_count(),
                tb_count: self.spread.tb_count(),
            })
    }

    /// Starts a transaction on the shard database holding `route`.
    ///
    /// A transaction never spans shards: everything written in it must route
    /// to the same database.
    ///
    /// # Errors
    /// As [`Router::pool`], or [`RouterError::Database`] if no connection
    /// could be had or `BEGIN` failed.
    pub async fn begin(&self, route: &Route) -> Result<Transaction<'static, Any>, RouterError> {
        Ok(self.pool(route)?.begin().await?)
    }

    /// Runs `f` for every (database, table) and collects the results in
    /// [`Router::routes`] order, or returns the first error.
    ///
    /// All databases are worked on at the same time; within one database at
    /// most `max_connections` tables are in flight, so a large layout cannot
    /// starve the pool into acquire timeouts. The pool is passed by value
    /// (it is a cheap handle) so the closure can return an `async move` block.
    ///
    /// # Errors
    /// The first error returned by `f`; the remaining calls are dropped.
    pub async fn fan_out<T, E, F, Fut>(&self, f: F) -> Result<Vec<(Route, T)>, E>
    where
        F: Fn(Route, AnyPool) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let limit = usize::try_from(self.max_connections)
            .unwrap_or(usize::MAX)
            .max(1);
        let f = &f;
        let per_db = (1..=self.spread.db_count())
            .zip(&self.shards)
            .map(|(db, pool)| {
                let routes = (0..self.spread.tb_count()).map(move |table| Route { db, table });
                stream::iter(routes)
                    .map(move |route| {
                        let call = f(route, pool.clone());
                        async move { call.await.map(|value| (route, value)) }
                    })
                    .buffered(limit)
                    .try_collect::<Vec<_>>()
            });
        let per_db = try_join_all(per_db).await?;
        debug!(tables = self.spread.size(), "fan-out finished");
        Ok(per_db.into_iter().flatten().collect())
    }

    /// Closes every pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        join_all(self.shards.iter().chain([&self.global]).map(AnyPool::close)).await;
        info!("database router closed");
    }
}

async fn open_pool(
    config: &RouterConfig,
    dialect: Dialect,
    url: &str,
) -> Result<AnyPool, RouterError> {
    let mut options = AnyPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .idle_timeout(Duration::from_secs(config.idle_timeout_secs));
    let connect_url = match dialect {
        Dialect::MySql => {
            let settings = std::sync::Arc::new(config.mysql_session_settings());
            options = options.after_connect(move |conn, _meta| {
                let settings = settings.clone();
                Box::pin(async move {
                    for statement in settings.iter() {
                        if let Err(e) = conn.execute(statement.as_str()).await {
                            tracing::debug!(%statement, error = %e, "session setting not supported");
                        }
                    }
                    Ok(())
                })
            });
            // sqlx pings every connection it takes back, without a bound: on a half-open
            // connection that ping never ends and the pool's slot is gone for good. Pinging
            // here first, bounded, closes such a connection instead (an error makes the pool
            // drop it without a goodbye, which could block as well).
            let bound = Duration::from_millis(config.read_timeout_ms.min(1_000));
            options = options.after_release(move |conn, _meta| {
                Box::pin(async move {
                    match tokio::time::timeout(bound, conn.ping()).await {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(e)) => Err(e),
                        Err(_elapsed) => Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connection did not answer a ping; closed",
                        ))),
                    }
                })
            });
            url.to_owned()
        }
        Dialect::Sqlite => {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    for pragma in SQLITE_PRAGMAS {
                        conn.execute(*pragma).await?;
                    }
                    Ok(())
                })
            });
            prepare_sqlite(url)?
        }
    };
    let pool = match options.connect(&connect_url).await {
        Ok(pool) => pool,
        Err(sqlx::Error::PoolTimedOut) => {
            // The pool retries refused connections until its deadline and then
            // reports only a timeout; one direct attempt recovers the reason.
            let source = match tokio::time::timeout(
                Duration::from_millis(config.acquire_timeout_ms),
                AnyConnection::connect(&connect_url),
            )
            .await
            {
                Ok(Err(reason)) => reason,
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    sqlx::Error::PoolTimedOut
                }
                Err(_elapsed) => sqlx::Error::PoolTimedOut,
            };
            return Err(RouterError::Connect {
                url: redact_url(url),
                source,
            });
        }
        Err(source) => {
            return Err(RouterError::Connect {
                url: redact_url(url),
                source,
            });
        }
    };
    debug!(url = %redact_url(url), "database pool opened");
    Ok(pool)
}

/// Makes sure a file-backed SQLite database can be created: creates its
/// directory and adds `mode=rwc` unless the URL already picks a mode or is
/// in memory.
/// Returns the URL to connect with.
fn prepare_sqlite(url: &str) -> Result<String, RouterError> {
    let rest = strip_prefix_ignore_case(url, "sqlite://")
        .or_else(|| strip_prefix_ignore_case(url, "sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    let in_memory = path.is_empty()
        || path == ":memory:"
        || query.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));

    if !in_memory
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| RouterError::SqliteDir {
            url: url.to_owned(),
            source,
        })?;
    }
    Ok(match (has_mode || in_memory, query) {
        (true, _) => url.to_owned(),
        (false, Some(_)) => format!("{url}&mode=rwc"),
        (false, None) => format!("{url}?mode=rwc"),
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/deeper/a.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(prepare_sqlite(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(file.parent().unwrap().is_dir(), "directory must be created");
        assert!(!file.exists(), "the file itself is left to SQLite");

        let with_query = format!("{url}?cache=private");
        assert_eq!(
            prepare_sqlite(&with_query).unwrap(),
            format!("{with_query}&mode=rwc")
        );
        let read_only = format!("{url}?mode=ro");
        assert_eq!(prepare_sqlite(&read_only).unwrap(), read_only);
        assert_eq!(
            prepare_sqlite("sqlite::memory:").unwrap(),
            "sqlite::memory:"
        );
        assert_eq!(
            prepare_sqlite("sqlite://?mode=memory").unwrap(),
            "sqlite://?mode=memory"
        );
        assert_eq!(
            prepare_sqlite("sqlite:a.db").unwrap(),
            "sqlite:a.db?mode=rwc"
        );
    }
}
