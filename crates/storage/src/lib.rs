//! SQL storage for the lottery: one implementation of every repository port, running on
//! MariaDB/MySQL (production) or SQLite (embedded) through the sharded [`db_router::Router`].
//!
//! Global configuration (activities, strategies, awards, rule trees) lives in the global
//! database. User data (takes, per-user counters, win orders) lives in the table the user id
//! routes to; each shard database also holds an outbox and a processed-message table.
//! Dialect differences are confined to [`db_router::Dialect`] and the `migrations/` files.

mod bulk;
mod config_store;
mod draw_store;
mod error;
mod lease_store;
mod migrate;
mod order_store;
mod outbox;
mod rows;
mod rule_store;
mod stock_ledger;
mod take_store;
mod tally;

use db_router::{Router, RouterConfig};

pub use config_store::ConfigStore;
pub use draw_store::{BatchOptions, DrawStore, WriteStats};
pub use error::StorageError;
pub use lease_store::LeaseStore;
pub use migrate::{MIGRATIONS, create_databases};
pub use order_store::OrderStore;
pub use outbox::{OutboxRow, OutboxState, OutboxStore};
pub use rule_store::RuleTreeStore;
pub use stock_ledger::SqlLedger;
pub use take_store::TakeStore;

/// The storage of one deployment: a router plus the stores built on it.
#[derive(Debug, Clone)]
pub struct Storage {
    router: Router,
}

impl Storage {
    pub async fn connect(config: &RouterConfig) -> Result<Self, StorageError> {
        Ok(Self {
            router: Router::connect(config).await?,
        })
    }

    pub fn from_router(router: Router) -> Self {
        Self { router }
    }

    /// Applies pending migrations to the global database and to every shard and table.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        migrate::run(&self.router).await
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Every repository the application needs, draws written in batches (group commit): the
    /// one place they are built, for the composition root and the tests alike.
    pub fn repositories(&self) -> lottery_activity::Repositories {
        self.repositories_with(&WriteConfig::default())
    }

    /// As [`Storage::repositories`], draws written as `writes` says.
    pub fn repositories_with(&self, writes: &WriteConfig) -> lottery_activity::Repositories {
        let draws = if writes.batched {
            self.batched_draws(BatchOptions {
                max_rows: writes.max_rows,
                ..BatchOptions::default()
            })
        } else {
            self.draws()
        };
        let config = std::sync::Arc::new(self.config());
        let orders = std::sync::Arc::new(self.orders());
        lottery_activity::Repositories {
            activities: config.clone(),
            strategies: config.clone(),
            awards: config,
            takes: std::sync::Arc::new(self.takes()),
            orders: orders.clone(),
            draws: std::sync::Arc::new(draws),
            rule_trees: std::sync::Arc::new(self.rule_trees()),
            outbox: std::sync::Arc::new(self.outbox()),
            grants: orders,
            leases: std::sync::Arc::new(self.leases()),
        }
    }

    /// Whether every database answers (each within the read timeout), for readiness.
    ///
    /// # Errors
    /// [`StorageError::Unreachable`] naming the first database that does not.
    pub async fn ping(&self) -> Result<(), StorageError> {
        use crate::error::Within;
        let router = &self.router;
        let ping = |pool: &sqlx::AnyPool, database: String| {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .within(router.read_timeout())
                    .await
                    .map(|_| ())
                    .map_err(|source| StorageError::Unreachable { database, source })
            }
        };
        ping(router.global(), "global database".into()).await?;
        for db in router.routes().filter(|r| r.table == 0) {
            ping(router.pool(&db)?, format!("shard {}", db.db_label())).await?;
        }
        Ok(())
    }

    pub fn config(&self) -> ConfigStore {
        ConfigStore::new(self.router.clone())
    }

    pub fn takes(&self) -> TakeStore {
        TakeStore::new(self.router.clone())
    }

    pub fn orders(&self) -> OrderStore {
        OrderStore::new(self.router.clone())
    }

    /// Draw records, one transaction per draw.
    pub fn draws(&self) -> DrawStore {
        DrawStore::new(self.router.clone())
    }

    /// Draw records with group commit per shard database (needs a Tokio runtime).
    pub fn batched_draws(&self, options: BatchOptions) -> DrawStore {
        DrawStore::batched(self.router.clone(), options)
    }

    pub fn outbox(&self) -> OutboxStore {
        OutboxStore::new(self.router.clone())
    }

    pub fn leases(&self) -> LeaseStore {
        LeaseStore::new(self.router.clone())
    }

    /// The stock ledger on rows of the global database (`[stock] strategy = "database"`).
    pub fn stock_ledger(&self) -> SqlLedger {
        SqlLedger::new(self.router.clone())
    }

    pub fn rule_trees(&self) -> RuleTreeStore {
        RuleTreeStore::new(self.router.clone())
    }

    pub async fn close(&self) {
        self.router.close().await;
    }
}

/// How draws are written, as `[writes]` in the platform's configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteConfig {
    /// Group commit: one writer per shard database commits the draws queued meanwhile in one
    /// transaction. Off, every draw is its own transaction (for comparison; slower).
    pub batched: bool,
    /// At most this many draws per transaction.
    pub max_rows: usize,
}

impl Default for WriteConfig {
    fn default() -> Self {
        Self {
            batched: true,
            max_rows: BatchOptions::default().max_rows,
        }
    }
}

impl WriteConfig {
    /// # Errors
    /// [`StorageError::Invalid`] naming the problem.
    pub fn validate(&self) -> Result<(), StorageError> {
        if !(1..=1_024).contains(&self.max_rows) {
            return Err(StorageError::Invalid(
                "writes.max_rows must be 1 to 1024".into(),
            ));
        }
        Ok(())
    }
}
