//! One typed configuration: defaults, then an optional TOML file, then `LOTTERY_...`
//! environment variables (nested keys with `__`, e.g. `LOTTERY_REDIS__URL`).
//!
//! With no database configured the server runs embedded (SQLite under `data_dir`, stock and
//! delivery in process). Configuring `database` selects cluster mode, which then also needs
//! `redis` and `amqp`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use db_router::DatabaseConfig;
pub use lottery_mq::AmqpConfig;
pub use lottery_stock::RedisConfig;
pub use lottery_storage::WriteConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// This deployment's name: the default of the broker's exchange and queue names and of
    /// the Redis key prefix, so two deployments sharing a broker vhost or a Redis never take
    /// each other's messages or keys. Defaults to the global database's name in cluster mode.
    pub deployment: Option<String>,
    /// No longer set here: every instance leases a unique worker id at start. Kept only to
    /// tell configurations that still set it what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<u32>,
    /// How long an instance's worker id lease lasts without renewal (renewed every third of
    /// it): after a crash, the id is free again this long after the last renewal.
    pub worker_lease_ttl_ms: u64,
    pub embedded: EmbeddedConfig,
    pub database: Option<DatabaseConfig>,
    pub redis: Option<RedisConfig>,
    pub amqp: Option<AmqpConfig>,
    /// Where cluster mode keeps the stock.
    pub stock: StockConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub workers: WorkerConfig,
    pub writes: WriteConfig,
    pub cache: CacheConfig,
}

/// The configuration cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an activity's configuration is served from memory: the bound on how long
    /// another instance's change can go unseen if its announcement is lost. 0 turns the
    /// cache off (every draw reads the configuration from the database; for comparison).
    pub ttl_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ttl_ms: 30_000 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Shard databases (SQLite files) and tables per shard.
    pub shards: u32,
    pub tables: u32,
}

/// `[stock]`: which ledger holds the stock in cluster mode (embedded mode keeps it in
/// process). The change feed and the draw rate limit use Redis either way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StockConfig {
    pub strategy: StockStrategy,
}

/// Where the stock is claimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StockStrategy {
    /// One Lua script per claim in Redis (`RedisLedger`): the fast path.
    #[default]
    Redis,
    /// One row-locking transaction per claim in the global database (`SqlLedger`): no
    /// stock state in Redis, at the cost of claims of one activity waiting for each other.
    Database,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockConfigError {
    #[error(
        "strategy = \"database\" applies to cluster mode; embedded mode keeps the stock in process"
    )]
    NotCluster,
}

impl StockConfig {
    /// The strategy must fit the mode: embedded mode has no choice to make.
    pub fn validate(&self, mode: Mode) -> Result<(), StockConfigError> {
        match (self.strategy, mode) {
            (StockStrategy::Database, Mode::Embedded) => Err(StockConfigError::NotCluster),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret. Embedded mode generates one under `data_dir` when absent; cluster mode
    /// requires it (every instance must share it).
    pub jwt_secret: Option<Secret>,
    pub token_ttl_secs: u64,
}

/// A secret from the configuration. It never prints: `Debug` and serialisation show
/// `[redacted]`, so a logged or dumped configuration does not leak it; [`Secret::expose`]
/// is the one way to the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    /// Allowed browser origins; empty means none (same-origin only).
    pub cors_origins: Vec<String>,
    /// Draws per second each user may make, with a burst allowance.
    pub draws_per_second: u32,
    pub draw_burst: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub json: bool,
    /// A tracing filter, e.g. `info` or `lottery=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    pub relay_interval_ms: u64,
    pub state_interval_ms: u64,
    pub sync_interval_ms: u64,
    /// How often the reconciler looks for stock claims no draw settled.
    pub reconcile_interval_ms: u64,
    /// How old a pending claim must be before the reconciler examines it: longer than any
    /// draw normally takes.
    pub reconcile_grace_ms: u64,
    /// Consumer prefetch / concurrency.
    pub consumer_concurrency: usize,
    /// Delivery attempts before a grant is marked failed.
    pub grant_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            deployment: None,
            worker_id: None,
            worker_lease_ttl_ms: 10_000,
            embedded: EmbeddedConfig::default(),
            database: None,
            redis: None,
            amqp: None,
            stock: StockConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            workers: WorkerConfig::default(),
            writes: WriteConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            shards: 2,
            tables: 4,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            token_ttl_secs: 30 * 24 * 3600,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            cors_origins: Vec::new(),
            draws_per_second: 10,
            draw_burst: 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            json: false,
            level: "info".into(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            relay_interval_ms: 200,
            state_interval_ms: 1_000,
            sync_interval_ms: 5_000,
            reconcile_interval_ms: 1_000,
            reconcile_grace_ms: 10_000,
            consumer_concurrency: 32,
            grant_attempts: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
    /// An adapter's section, refused by the adapter's own validation.
    #[error("configuration [{section}]")]
    Section {
        section: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn section<E: std::error::Error + Send + Sync + 'static>(
    section: &'static str,
) -> impl FnOnce(E) -> ConfigError {
    move |e| ConfigError::Section {
        section,
        source: Box::new(e),
    }
}

/// Which adapters run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Cluster,
}

/// The adapters' settings for the mode, complete: cluster mode cannot be had without its
/// database, Redis and broker settings ([`Config::topology`]).
#[derive(Debug, Clone, Copy)]
pub enum Topology<'a> {
    Embedded(&'a EmbeddedConfig),
    Cluster {
        database: &'a DatabaseConfig,
        redis: &'a RedisConfig,
        amqp: &'a AmqpConfig,
    },
}

impl Config {
    /// The deployment's name: `deployment`, else (cluster mode) the global database's name,
    /// else `lottery`; reduced to letters, digits, `_` and `-`.
    pub fn deployment_name(&self) -> String {
        let from_db = || {
            let url = &self.database.as_ref()?.global_url;
            let path = url.split('?').next()?.rsplit('/').next()?;
            (!path.is_empty()).then(|| path.to_owned())
        };
        let raw = self
            .deployment
            .clone()
            .or_else(from_db)
            .unwrap_or_else(|| "lottery".into());
        let clean: String = raw
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .collect();
        if clean.is_empty() {
            "lottery".into()
        } else {
            clean
        }
    }

    /// The Redis key prefix: configured, else the deployment's name.
    pub fn redis_prefix(&self) -> String {
        let deployment = self.deployment_name();
        match &self.redis {
            Some(redis) => redis.key_prefix(&deployment),
            None => deployment,
        }
    }

    /// Defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(
                Env::prefixed("LOTTERY_")
                    // The command line's own variables, and the deployment tools' (the local
                    // cluster script's settings, the load tool's target), are not settings.
                    .ignore(&["config", "role", "bin", "url"])
                    .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("cluster_"))
                    .split("__"),
            )
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn mode(&self) -> Mode {
        if self.database.is_some() {
            Mode::Cluster
        } else {
            Mode::Embedded
        }
    }

    /// The mode with every setting it needs; an incomplete cluster configuration is an error.
    pub fn topology(&self) -> Result<Topology<'_>, ConfigError> {
        match (&self.database, &self.redis, &self.amqp) {
            (None, _, _) => Ok(Topology::Embedded(&self.embedded)),
            (Some(database), Some(redis), Some(amqp)) => Ok(Topology::Cluster {
                database,
                redis,
                amqp,
            }),
            (Some(_), _, _) => Err(ConfigError::Invalid(
                "cluster mode (database set) also needs [redis] and [amqp]".into(),
            )),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Topology::Cluster {
            database,
            redis,
            amqp,
        } = self.topology()?
        {
            database.validate().map_err(section("database"))?;
            redis.validate().map_err(section("redis"))?;
            amqp.validate(&self.deployment_name())
                .map_err(section("amqp"))?;
        }
        self.stock.validate(self.mode()).map_err(section("stock"))?;
        let short_secret = self
            .auth
            .jwt_secret
            .as_ref()
            .is_none_or(|s| s.expose().len() < 32);
        if matches!(self.topology()?, Topology::Cluster { .. }) && short_secret {
            return Err(ConfigError::Invalid(
                "cluster mode needs auth.jwt_secret of at least 32 characters, shared by every instance".into(),
            ));
        }
        self.writes.validate().map_err(section("writes"))?;
        if self.worker_id.is_some() {
            return Err(ConfigError::Invalid(
                "worker_id is no longer configured: every instance leases a unique one at start \
                 (see docs/operations.md); remove it from the configuration"
                    .into(),
            ));
        }
        if self.worker_lease_ttl_ms < 3_000 {
            return Err(ConfigError::Invalid(
                "worker_lease_ttl_ms must be at least 3000".into(),
            ));
        }
        if self.http.draws_per_second == 0 || self.http.draw_burst == 0 {
            return Err(ConfigError::Invalid(
                "http.draws_per_second and http.draw_burst must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_and_redis_names_come_from_the_deployment() {
        let mut c = Config {
            database: Some(DatabaseConfig::new(
                "mysql://u:p@db:3306/shop_lottery?ssl-mode=disabled",
                vec!["mysql://u:p@db/s1".into()],
                4,
            )),
            ..Config::default()
        };
        assert_eq!(c.deployment_name(), "shop_lottery");
        assert_eq!(c.redis_prefix(), "shop_lottery");
        c.deployment = Some("spring campaign!".into());
        assert_eq!(c.deployment_name(), "springcampaign");
        assert_eq!(Config::default().deployment_name(), "lottery");
    }

    #[test]
    fn a_configured_worker_id_is_refused_with_what_to_do() {
        let c = Config {
            worker_id: Some(1),
            ..Config::default()
        };
        let e = c.validate().expect_err("worker ids are leased");
        assert!(e.to_string().contains("leases a unique one"), "{e}");
    }

    #[test]
    fn the_stock_strategy_is_redis_unless_cluster_mode_asks_for_the_database() {
        let mut c = Config::default();
        assert_eq!(c.stock.strategy, StockStrategy::Redis);
        c.stock.strategy = StockStrategy::Database;
        let e = c
            .validate()
            .expect_err("embedded mode has no stock strategy");
        assert!(
            matches!(
                e,
                ConfigError::Section {
                    section: "stock",
                    ..
                }
            ),
            "{e}"
        );
        c.database = Some(DatabaseConfig::new(
            "mysql://root@127.0.0.1/g",
            vec!["mysql://root@127.0.0.1/s1".into()],
            4,
        ));
        c.redis = Some(RedisConfig::new("redis://127.0.0.1"));
        c.amqp = Some(AmqpConfig::new("amqp://127.0.0.1"));
        c.auth.jwt_secret = Some(Secret::new("x".repeat(32)));
        c.validate().expect("the database strategy in cluster mode");
        let parsed: StockConfig =
            serde_json::from_str(r#"{"strategy": "database"}"#).expect("parses");
        assert_eq!(parsed.strategy, StockStrategy::Database);
        assert!(serde_json::from_str::<StockConfig>(r#"{"strategy": "disk"}"#).is_err());
    }

    #[test]
    // The closure's error type is figment's own, as `Jail` requires.
    #[allow(clippy::result_large_err)]
    fn the_tools_variables_are_not_taken_for_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LOTTERY_BIN", "/usr/local/bin/lottery");
            jail.set_env("LOTTERY_URL", "http://127.0.0.1:18000");
            jail.set_env("LOTTERY_CLUSTER_REDIS", "single");
            jail.set_env("LOTTERY_HTTP__DRAW_BURST", "7");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.http.draw_burst, 7,
                "settings still come from the environment"
            );
            jail.set_env("LOTTERY_HTTP__DRAW_BRUST", "7");
            assert!(
                Config::load(None).is_err(),
                "a misspelt setting is still refused"
            );
            Ok(())
        });
    }

    #[test]
    fn no_configuration_means_embedded() {
        let c = Config::default();
        assert_eq!(c.mode(), Mode::Embedded);
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn cluster_needs_redis_amqp_and_a_secret() {
        let mut c = Config {
            database: Some(DatabaseConfig::new(
                "mysql://root@127.0.0.1/g",
                vec!["mysql://root@127.0.0.1/s1".into()],
                4,
            )),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        c.redis = Some(RedisConfig::new("redis://127.0.0.1"));
        c.amqp = Some(AmqpConfig::new("amqp://127.0.0.1"));
        assert!(c.validate().is_err(), "no secret");
        c.auth.jwt_secret = Some(Secret::new("x".repeat(32)));
        c.validate().expect("complete cluster config");
        if let Some(redis) = c.redis.as_mut() {
            redis.pool_size = 0;
        }
        let e = c.validate().expect_err("the adapter's validation runs");
        assert!(
            matches!(
                e,
                ConfigError::Section {
                    section: "redis",
                    ..
                }
            ),
            "{e}"
        );
        c.redis = Some(RedisConfig::new("redis://127.0.0.1"));
        let shown = format!("{c:?} {}", serde_json::to_string(&c).expect("json"));
        assert!(!shown.contains(&"x".repeat(32)), "the secret never prints");
    }
}
