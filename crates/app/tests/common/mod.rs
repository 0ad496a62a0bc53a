//! Real services for the use-case tests: SQLite + in-memory stock (embedded) or MariaDB +
//! Redis (cluster), on fresh databases and a fresh key prefix.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, Utc};
use db_router::RouterConfig;
use lottery_activity::{
    Action, ClaimFate, ClaimRef, DrawRecord, DrawRepository, PastDraw, RecordOutcome, StockLedger,
};
use lottery_app::{AwardSpec, DeployCommand, Deployed, Lottery, Services, StrategySpec};
use lottery_award::{AwardKind, AwardRegistry};
use lottery_domain::{ActivityId, RepoError, RepoResult, SystemClock, UserId};
use lottery_ids::Generators;
use lottery_stock::{MemoryLedger, RedisLedger, RedisLedgerOptions};
use lottery_storage::Storage;
use lottery_strategy::DrawMode;
use lottery_testkit::{FreshMysql, FreshSqlite, Service, unique_name};

/// Runs each named `async fn name(mode: Mode)` of the calling test file in both modes; the
/// cluster ones need the local services. (`#[macro_use] mod common;` to use it.)
#[allow(unused_macros)]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Mode::Embedded).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs MariaDB at 127.0.0.1:3306 and Redis at 127.0.0.1:6379"]
                async fn $name() {
                    super::$name(super::Mode::Cluster).await;
                }
            )*
        }
    };
}

/// How [`FaultyDraws`] fails a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawFault {
    /// Refused before anything is written, as a database that is down would.
    Refuse,
    /// Written for real, then reported lost, as when the acknowledgement of a `COMMIT` that
    /// reached the database never comes back.
    LoseAck,
}

/// Delegates to the real draw store, failing the first `times` records with `fault`.
pub struct FaultyDraws {
    inner: Arc<dyn DrawRepository>,
    fault: DrawFault,
    times: AtomicU32,
}

impl FaultyDraws {
    pub fn wrap(inner: Arc<dyn DrawRepository>, fault: DrawFault, times: u32) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fault,
            times: AtomicU32::new(times),
        })
    }

    fn take_one(&self) -> bool {
        self.times
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait::async_trait]
impl DrawRepository for FaultyDraws {
    async fn record_draw(&self, record: DrawRecord) -> RepoResult<RecordOutcome> {
        let fail = || RepoError::unavailable(format!("injected: {:?}", self.fault));
        if self.fault == DrawFault::Refuse && self.take_one() {
            return Err(fail());
        }
        let outcome = self.inner.record_draw(record).await?;
        if self.fault == DrawFault::LoseAck && self.take_one() {
            return Err(fail());
        }
        Ok(outcome)
    }

    async fn find_by_key(&self, user: &UserId, key: &str) -> RepoResult<Option<PastDraw>> {
        self.inner.find_by_key(user, key).await
    }

    async fn settle_claim(&self, claim: &ClaimRef) -> RepoResult<ClaimFate> {
        self.inner.settle_claim(claim).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Cluster,
}

pub enum Guard {
    Sqlite(FreshSqlite),
    MariaDb(FreshMysql),
}

pub struct World {
    pub lottery: Lottery,
    pub storage: Storage,
    pub stock: Arc<dyn StockLedger>,
    pub redis_prefix: Option<String>,
    _guard: Guard,
}

/// Services for `mode`; `wrap` may decorate them (fault injection, counting).
pub async fn world_with(mode: Mode, wrap: impl FnOnce(Services) -> Services) -> World {
    world_full(mode, None, wrap).await
}

/// As [`world_with`], with the stock store reached at `redis_url` (e.g. through a proxy).
pub async fn world_full(
    mode: Mode,
    redis_url: Option<String>,
    wrap: impl FnOnce(Services) -> Services,
) -> World {
    world_opts(
        mode,
        Options {
            redis_url,
            ..Options::default()
        },
        wrap,
    )
    .await
}

/// Where a world's services are reached.
#[derive(Default)]
pub struct Options<'a> {
    /// The stock store (cluster mode), instead of the shared Redis.
    pub redis_url: Option<String>,
    /// Shard databases (cluster mode) are reached through this proxy to the shared MariaDB.
    pub shards_via: Option<&'a lottery_testkit::TcpProxy>,
}

pub async fn world_opts(
    mode: Mode,
    options: Options<'_>,
    wrap: impl FnOnce(Services) -> Services,
) -> World {
    let redis_url = options.redis_url;
    let (urls, guard) = match mode {
        Mode::Embedded => {
            let fresh = FreshSqlite::create("app", 3).expect("SQLite files");
            (fresh.urls().to_vec(), Guard::Sqlite(fresh))
        }
        Mode::Cluster => {
            Service::MariaDb.require().await;
            let fresh = FreshMysql::create("app", 3)
                .await
                .expect("MariaDB databases");
            (fresh.urls().to_vec(), Guard::MariaDb(fresh))
        }
    };
    let shards = urls[1..]
        .iter()
        .map(|u| match options.shards_via {
            Some(proxy) => proxy.proxied_url(u).expect("proxied shard url"),
            None => u.clone(),
        })
        .collect();
    let mut config = RouterConfig::new(urls[0].clone(), shards, 4);
    config.max_connections = 12;
    // Tests run side by side on a small machine: wait for a connection rather than fail.
    config.acquire_timeout_ms = 30_000;
    let storage = Storage::connect(&config).await.expect("storage");
    storage.migrate().await.expect("migrate");
    let (stock, redis_prefix): (Arc<dyn StockLedger>, _) = match mode {
        Mode::Embedded => (Arc::new(MemoryLedger::new()), None),
        Mode::Cluster => {
            let direct = Service::Redis.require().await;
            let url = redis_url.unwrap_or(direct);
            let prefix = unique_name("app");
            let options = RedisLedgerOptions {
                prefix: prefix.clone(),
                ..RedisLedgerOptions::default()
            };
            (
                Arc::new(RedisLedger::connect(&url, options).await.expect("redis")),
                Some(prefix),
            )
        }
    };
    // Tests share two cores with the services and with each other: a draw may take long,
    // and only the tests about deadlines want a short one (they set their own).
    let lottery = Lottery::new(wrap(services(&storage, stock.clone())))
        .with_draw_deadline(std::time::Duration::from_secs(60));
    World {
        lottery,
        storage,
        stock,
        redis_prefix,
        _guard: guard,
    }
}

pub async fn world(mode: Mode) -> World {
    world_with(mode, |s| s).await
}

pub fn services(storage: &Storage, stock: Arc<dyn StockLedger>) -> Services {
    Services::new(
        storage.repositories(),
        stock,
        Arc::new(SystemClock),
        Arc::new(Generators::new(1, Arc::new(SystemClock)).expect("ids")),
        AwardRegistry::with_builtins(),
    )
}

pub fn award(kind: AwardKind, name: &str, count: u32, rate: &str) -> AwardSpec {
    AwardSpec {
        award_id: None,
        kind,
        name: name.into(),
        content: format!("{name}-content"),
        count,
        rate: rate.parse().expect("rate"),
    }
}

pub fn command(
    stock: u32,
    take_limit: u32,
    mode: DrawMode,
    awards: Vec<AwardSpec>,
) -> DeployCommand {
    let now: DateTime<Utc> = Utc::now();
    DeployCommand {
        activity_id: None,
        strategy_id: None,
        name: "Seed campaign".into(),
        description: "test".into(),
        begin_time: now - Duration::hours(1),
        end_time: now + Duration::days(1),
        stock,
        take_limit,
        strategy: StrategySpec {
            mode,
            fallback_award_id: None,
            awards,
        },
    }
}

/// Deploys and walks the activity to `doing`.
pub async fn running(lottery: &Lottery, cmd: DeployCommand) -> Deployed {
    let deployed = lottery
        .administration()
        .deploy(cmd, "admin")
        .await
        .expect("deploy");
    for action in [Action::Submit, Action::Approve, Action::Start] {
        lottery
            .administration()
            .act(deployed.activity_id, action)
            .await
            .expect("review");
    }
    deployed
}

pub fn id(d: &Deployed) -> ActivityId {
    d.activity_id
}
