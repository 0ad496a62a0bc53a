//! The composition root: builds the adapters for the configured mode and wires them into the
//! use cases. Embedded and cluster mode differ only here.

use std::sync::Arc;
use std::time::Duration;

use db_router::RouterConfig;
use lottery_activity::{
    DrawRate, DrawRateLimit, EventPublisher, MessageHandler, RateDecision, StockLedger, Topic,
};
use lottery_app::{
    AwardDelivery, Failure, InProcessBus, LogGate, Lottery, OutboxRelay, RelayOptions,
    SchedulerOptions, Services, WorkerIdentity,
};
use lottery_award::AwardRegistry;
use lottery_domain::{ActivityId, SystemClock, UserId};
use lottery_ids::IdSource;
use lottery_mq::{AmqpConsumer, AmqpPublisher, MqAdmin, MqConfig};
use lottery_stock::{
    MemoryDrawRateLimit, MemoryLedger, RedisConnection, RedisDrawRateLimit, RedisLedger,
};
use lottery_storage::Storage;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::auth::Keys;
use crate::config::{Config, Mode, Secret, StockStrategy, Topology};
use crate::state::{AppState, Dependency, Probe};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Storage(#[from] lottery_storage::StorageError),
    #[error("stock store")]
    Stock(#[from] lottery_activity::StockError),
    /// The stock store runs with settings the platform cannot rely on.
    #[error("stock store: {0}")]
    StockSettings(String),
    #[error("broker")]
    Broker(#[from] lottery_mq::MqError),
    #[error(transparent)]
    Keys(#[from] crate::auth::KeyError),
    #[error("worker id lease")]
    Ids(#[source] lottery_app::AppError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// HTTP API only.
    Api,
    /// Background jobs and the award consumer only.
    Worker,
    /// Both.
    All,
}

/// A built process, ready to serve and to run workers.
pub struct Built {
    pub state: AppState,
    pub storage: Storage,
    workers: Vec<JoinHandle<()>>,
    /// Background listeners with no work to finish: aborted at shutdown.
    listeners: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Built {
    /// Stops the workers (finishing what they are doing), flushes and closes connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for l in &self.listeners {
            l.abort();
        }
        // Every wait below is bounded, so a dead backend cannot hold the process: jobs end
        // their round (each database operation is bounded by the read timeout) and give
        // their leases up, or are left behind.
        let workers = futures::future::join_all(self.workers);
        if tokio::time::timeout(WORKERS_STOP, workers).await.is_err() {
            warn!(bound = ?WORKERS_STOP, "workers did not stop in time; stopping without them");
        }
        if tokio::time::timeout(POOLS_CLOSE, self.storage.close())
            .await
            .is_err()
        {
            warn!(bound = ?POOLS_CLOSE, "database connections did not close in time");
        }
    }
}

/// How long a stop waits for the workers (jobs, relay, consumer, lease renewal).
pub const WORKERS_STOP: Duration = Duration::from_secs(6);
/// How long a stop waits for the database pools to close.
pub const POOLS_CLOSE: Duration = Duration::from_secs(3);

/// The router configuration of the embedded SQLite files under `data_dir`.
pub fn embedded_router(config: &Config) -> Result<RouterConfig, StartError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| StartError::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.join(name).display());
    let shards = (1..=config.embedded.shards.max(1))
        .map(|i| url(&format!("shard_{i:02}.db")))
        .collect();
    let mut rc = RouterConfig::new(url("global.db"), shards, config.embedded.tables.max(1));
    rc.max_connections = 8;
    Ok(rc)
}

pub fn router_config(config: &Config) -> Result<RouterConfig, StartError> {
    match &config.database {
        Some(db) => Ok(db.router_config()),
        None => embedded_router(config),
    }
}

pub fn keys(config: &Config) -> Result<Keys, StartError> {
    Ok(Keys::load(
        config.auth.jwt_secret.as_ref().map(Secret::expose),
        &config.data_dir,
        config.auth.token_ttl_secs,
    )?)
}

struct Backends {
    stock: Arc<dyn StockLedger>,
    draw_limit: DrawLimiter,
    /// Cluster only: the broker.
    amqp: Option<(Arc<AmqpPublisher>, MqConfig)>,
}

/// The per-user draw rate limit as the handlers apply it. In cluster mode it lives in Redis,
/// shared by every instance, so a user's rate is the same behind one instance or many. When
/// Redis cannot answer, each instance falls back to a limit of its own process: failing
/// open keeps draws going (the limit guards fairness, not stock: the claim checks stock and
/// quotas atomically, and fails by itself while Redis is down), and the local limit still
/// bounds a user to the rate times the number of instances meanwhile.
#[derive(Clone)]
pub struct DrawLimiter {
    limit: Arc<dyn DrawRateLimit>,
    /// Cluster mode: where a draw is counted while Redis cannot answer.
    fallback: Option<Arc<MemoryDrawRateLimit>>,
}

impl std::fmt::Debug for DrawLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrawLimiter")
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

impl DrawLimiter {
    fn in_process(rate: DrawRate) -> Self {
        Self {
            limit: Arc::new(MemoryDrawRateLimit::new(rate)),
            fallback: None,
        }
    }

    /// `Ok` when `user` may draw now; else how long until they may.
    pub async fn check(&self, user: &UserId) -> Result<(), Duration> {
        // Draws fail alike while Redis is down: one line when it starts, one every 30 s.
        static UNAVAILABLE: LogGate = LogGate::new(Duration::from_secs(30));
        let decision = match self.limit.admit(user).await {
            Ok(decision) => {
                if UNAVAILABLE.succeeded() {
                    info!("draw rate limit: shared again across instances");
                }
                decision
            }
            Err(e) => {
                if matches!(UNAVAILABLE.failed(), Failure::Started) {
                    warn!(error = %e, "draw rate limit: Redis unavailable; limiting per instance");
                }
                match &self.fallback {
                    Some(local) => local.admit(user).await.unwrap_or(RateDecision::Allowed),
                    None => RateDecision::Allowed,
                }
            }
        };
        match decision {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => Err(retry_after),
        }
    }
}

fn draw_rate(config: &Config) -> DrawRate {
    DrawRate {
        per_second: config.http.draws_per_second,
        burst: config.http.draw_burst,
    }
}

async fn backends(config: &Config, storage: &Storage) -> Result<Backends, StartError> {
    let (redis, amqp) = match config.topology()? {
        Topology::Embedded(_) => {
            return Ok(Backends {
                stock: Arc::new(MemoryLedger::new()),
                draw_limit: DrawLimiter::in_process(draw_rate(config)),
                amqp: None,
            });
        }
        Topology::Cluster { redis, amqp, .. } => (redis, amqp),
    };
    // One connection (a pool, or the cluster client) for the stock and the rate limit.
    let options = redis.ledger_options(&config.deployment_name());
    let connection =
        RedisConnection::connect(&redis.target(), options.pool_size, options.timeout).await?;
    let stock: Arc<dyn StockLedger> = match config.stock.strategy {
        StockStrategy::Redis => {
            let ledger = RedisLedger::new(connection.clone(), options.prefix.clone());
            check_redis(&ledger).await?;
            Arc::new(ledger)
        }
        // Redis then holds only rate limits and announcements, which an eviction or a
        // restart costs nothing lasting: its settings need no check.
        StockStrategy::Database => {
            info!("stock strategy: database (one row-locking transaction per claim)");
            Arc::new(storage.stock_ledger())
        }
    };
    let draw_limit = DrawLimiter {
        limit: Arc::new(RedisDrawRateLimit::new(
            connection,
            options.prefix,
            draw_rate(config),
        )),
        fallback: Some(Arc::new(MemoryDrawRateLimit::new(draw_rate(config)))),
    };
    let mq = amqp.mq_config(&config.deployment_name());
    // Declare the queues before anything is published, so no message is unroutable.
    let admin = MqAdmin::connect(&mq).await?;
    admin.declare_topology().await?;
    admin.close().await;
    let publisher = Arc::new(AmqpPublisher::new(mq.clone())?);
    Ok(Backends {
        stock,
        draw_limit,
        amqp: Some((publisher, mq)),
    })
}

/// Refuses a Redis that may evict keys; warns about one that keeps nothing on disk.
async fn check_redis(stock: &RedisLedger) -> Result<(), StartError> {
    let settings = stock.check_settings().await?;
    if settings.evicts() {
        return Err(StartError::StockSettings(format!(
            "Redis maxmemory-policy is {:?}: it may evict pending stock claims, which would \
             leak stock; set maxmemory-policy noeviction (see docs/operations.md)",
            settings.eviction_policy.unwrap_or_default()
        )));
    }
    if settings.eviction_policy.is_none() {
        warn!(
            "cannot read the Redis settings (CONFIG GET refused); make sure maxmemory-policy is noeviction"
        );
    }
    if settings.persistent == Some(false) {
        warn!(
            "Redis keeps nothing on disk: after a restart every activity's stock is reloaded \
             from the databases (safe, draws pause briefly); enable AOF for faster recovery"
        );
    }
    Ok(())
}

/// The use cases' ports over `storage` (draws written as `writes` says), `stock` and the id
/// source.
pub fn services(
    storage: &Storage,
    writes: &lottery_storage::WriteConfig,
    stock: Arc<dyn StockLedger>,
    ids: Arc<dyn IdSource>,
) -> Services {
    Services::new(
        storage.repositories_with(writes),
        stock,
        Arc::new(SystemClock),
        ids,
        AwardRegistry::with_builtins(),
    )
}

/// Leases this process's snowflake worker id (see [`WorkerIdentity`]).
pub async fn identity(
    config: &Config,
    storage: &Storage,
) -> Result<Arc<WorkerIdentity>, StartError> {
    let holder = format!(
        "{}-{}-{:08x}",
        hostname(),
        std::process::id(),
        rand::random::<u32>()
    );
    WorkerIdentity::acquire(
        Arc::new(storage.leases()),
        Arc::new(SystemClock),
        holder,
        Duration::from_millis(config.worker_lease_ttl_ms),
    )
    .await
    .map_err(StartError::Ids)
}

struct ServiceProbe {
    storage: Storage,
    identity: Arc<WorkerIdentity>,
    role: Role,
    stock: Arc<dyn StockLedger>,
    amqp: Option<(Arc<AmqpPublisher>, MqConfig)>,
}

/// How long one readiness check may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn bounded(check: impl std::future::Future<Output = Option<String>>) -> Option<String> {
    tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Some(format!("no answer within {PROBE_TIMEOUT:?}")))
}

#[async_trait::async_trait]
impl Probe for ServiceProbe {
    async fn check(&self) -> Vec<Dependency> {
        let database = bounded(async { self.storage.ping().await.err().map(|e| e.to_string()) });
        // Any read reaches the store; an unknown activity is a fine probe.
        let stock = bounded(async {
            match ActivityId::new(1) {
                Ok(id) => self.stock.stock_left(id).await.err().map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            }
        });
        let (database, stock) = tokio::join!(database, stock);
        let mut out = vec![
            Dependency {
                name: "database",
                problem: database,
                required: true,
            },
            Dependency {
                name: "stock",
                problem: stock,
                required: true,
            },
            Dependency {
                name: "ids",
                problem: (!self.identity.holds()).then(|| {
                    "this instance holds no worker id lease; it cannot issue ids".to_owned()
                }),
                required: true,
            },
        ];
        if let Some((publisher, _)) = &self.amqp {
            let broker = bounded(async {
                publisher
                    .ensure_connected()
                    .await
                    .err()
                    .map(|e| e.to_string())
            })
            .await;
            out.push(Dependency {
                name: "broker",
                problem: broker,
                // Draws reach the broker through the outbox: only the relay and the consumer,
                // the worker's work, need it now.
                required: self.role != Role::Api,
            });
        }
        out
    }

    async fn consumer_lag(&self) -> u64 {
        match &self.amqp {
            Some((_, mq)) => match MqAdmin::connect(mq).await {
                Ok(admin) => {
                    let depth = admin.queue_depth(Topic::AwardInvoice).await.unwrap_or(0);
                    admin.close().await;
                    u64::from(depth)
                }
                Err(_) => 0,
            },
            // Embedded: delivery is the relay itself; what waits is the pending outbox.
            None => self
                .storage
                .outbox()
                .count(lottery_storage::OutboxState::Pending)
                .await
                .unwrap_or(0),
        }
    }
}

/// The use cases over `svc`, with the configured draw deadline and cache lifetime.
fn lottery(config: &Config, svc: Services) -> Lottery {
    // Callers are answered before the request times out; the draw itself runs to its end.
    let deadline = Duration::from_millis(config.http.request_timeout_ms.saturating_mul(4) / 5);
    Lottery::new(svc)
        .with_draw_deadline(deadline)
        .with_cache_ttl(Duration::from_millis(config.cache.ttl_ms))
}

/// Builds everything for `role` and starts its workers.
pub async fn build(config: &Config, role: Role) -> Result<Built, StartError> {
    let storage = Storage::connect(&router_config(config)?).await?;
    if config.mode() == Mode::Embedded {
        // Embedded mode owns its files: keep the schema current on every start.
        storage.migrate().await?;
    }
    let backends = backends(config, &storage).await?;
    let identity = identity(config, &storage).await?;
    let svc = services(
        &storage,
        &config.writes,
        backends.stock.clone(),
        identity.ids(),
    );
    let mut lottery = lottery(config, svc.clone());
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let mut listeners = Vec::new();
    if let Some((feed, listener)) = change_feed(config, &lottery)? {
        listeners.push(listener);
        lottery = lottery.with_change_feed(feed);
    }
    let (delivery, publisher) = delivery(config, &svc, &backends);
    let (stop, stopped) = watch::channel(false);
    // Every role issues ids (draws, deployments, grants): the lease is renewed for all.
    let mut workers = vec![tokio::spawn(identity.clone().run(stopped.clone()))];
    if matches!(role, Role::Worker | Role::All) {
        let jobs = Jobs {
            lottery: &lottery,
            relay: relay(&svc, publisher),
            delivery: delivery.clone(),
            metrics: metrics.clone(),
        };
        workers.extend(jobs.start(config, &backends, &stopped)?);
        info!(?role, "workers started");
    }
    let keys = Arc::new(keys(config)?);
    let probe = Arc::new(ServiceProbe {
        storage: storage.clone(),
        identity,
        role,
        stock: backends.stock.clone(),
        amqp: backends.amqp.clone(),
    });
    let state = AppState::new(
        lottery,
        metrics,
        keys,
        probe,
        config.mode(),
        backends.draw_limit.clone(),
    );
    Ok(Built {
        state,
        storage,
        workers,
        listeners,
        stop,
    })
}

/// The outbox relay, publishing to `publisher`.
fn relay(svc: &Services, publisher: Arc<dyn EventPublisher>) -> OutboxRelay {
    OutboxRelay::new(
        svc.outbox.clone(),
        svc.clock.clone(),
        publisher,
        RelayOptions::default(),
    )
}

/// The award consumer, and where the relay publishes: the broker, or (embedded) straight to
/// that consumer in process.
fn delivery(
    config: &Config,
    svc: &Services,
    backends: &Backends,
) -> (Arc<dyn MessageHandler>, Arc<dyn EventPublisher>) {
    let delivery: Arc<dyn MessageHandler> = Arc::new(AwardDelivery::new(
        svc.grants.clone(),
        svc.registry.clone(),
        svc.clock.clone(),
        config.workers.grant_attempts,
    ));
    let publisher: Arc<dyn EventPublisher> = match &backends.amqp {
        Some((p, _)) => p.clone(),
        None => Arc::new(InProcessBus::new(
            delivery.clone(),
            config.workers.consumer_concurrency,
        )),
    };
    (delivery, publisher)
}

/// Cluster mode: instances share configuration changes, so every cache drops a changed
/// activity at once. The feed to announce on, and the task listening to the others.
#[allow(clippy::type_complexity)]
fn change_feed(
    config: &Config,
    lottery: &Lottery,
) -> Result<
    Option<(
        Arc<dyn lottery_activity::ChangeFeed>,
        tokio::task::JoinHandle<()>,
    )>,
    StartError,
> {
    let Topology::Cluster { redis, .. } = config.topology()? else {
        return Ok(None);
    };
    let feed = lottery_stock::RedisChangeFeed::for_target(&redis.target(), &config.redis_prefix())?
        .with_timeout(redis.ledger_options(&config.deployment_name()).timeout);
    let (one, all) = (lottery.cache_invalidation(), lottery.cache_invalidation());
    let listener = feed.listen(move |id| one.invalidate(id), move || all.clear());
    Ok(Some((Arc::new(feed), listener)))
}

/// What a worker runs: the scheduled jobs and, in cluster mode, the broker's consumer.
struct Jobs<'a> {
    lottery: &'a Lottery,
    relay: OutboxRelay,
    delivery: Arc<dyn MessageHandler>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Jobs<'_> {
    fn start(
        self,
        config: &Config,
        backends: &Backends,
        stopped: &watch::Receiver<bool>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, StartError> {
        let options = SchedulerOptions {
            holder: format!("{}-{}", hostname(), std::process::id()),
            state_interval: Duration::from_millis(config.workers.state_interval_ms),
            relay_interval: Duration::from_millis(config.workers.relay_interval_ms),
            sync_interval: Duration::from_millis(config.workers.sync_interval_ms),
            reconcile_interval: Duration::from_millis(config.workers.reconcile_interval_ms),
            reconcile_grace: Duration::from_millis(config.workers.reconcile_grace_ms),
        };
        let counted = self.metrics.clone();
        let scheduler = Arc::new(
            self.lottery
                .scheduler(Some(self.relay), options)
                .on_report(Arc::new(move |report| counted.record_job(report))),
        );
        let mut workers = vec![tokio::spawn(scheduler.run(stopped.clone()))];
        if let Some((_, mq)) = &backends.amqp {
            let consumer = AmqpConsumer::new(mq.clone())?;
            let handler = self.delivery.clone();
            let mut stop_rx = stopped.clone();
            workers.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                consumer.run(handler, Topic::AwardInvoice, shutdown).await;
            }));
        }
        Ok(workers)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}
