//! One contract for every ledger: the in-memory one, the Redis one (on one server and on a
//! Redis Cluster) and the one on database rows (SQLite and MariaDB).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use deadpool_redis::redis::{Client, cmd};
use lottery_activity::{ClaimOutcome, Missing, StockClaim, StockError, StockLedger, StockSnapshot};
use lottery_domain::{ActivityId, AwardId, TakeId, UserId};
use lottery_stock::{MemoryLedger, RedisConnection, RedisLedger, RedisLedgerOptions, RedisTarget};
use lottery_storage::{SqlLedger, Storage};
use lottery_testkit::{
    FreshMysql, FreshSqlite, PrivateRedisCluster, Service, TcpProxy, unique_name,
};

const A: i64 = 7;

fn aid(n: i64) -> AwardId {
    AwardId::new(n).expect("id")
}

fn act() -> ActivityId {
    ActivityId::new(A).expect("id")
}

fn claim(
    id: i64,
    user: &str,
    take: bool,
    limit: u32,
    award: Option<i64>,
    fallback: Option<i64>,
) -> StockClaim {
    StockClaim {
        claim_id: TakeId::new(id).expect("id"),
        activity_id: act(),
        user_id: UserId::new(user).expect("user"),
        take,
        take_limit: limit,
        award: award.map(aid),
        fallback: fallback.map(aid),
        expires_at: Utc::now() + chrono::Duration::hours(1),
    }
}

/// Loads stock in generation 1.
async fn load(l: &dyn StockLedger, stock: u64, awards: &[(i64, u64)]) {
    load_gen(l, 1, stock, awards).await;
}

async fn load_gen(l: &dyn StockLedger, generation: u64, stock: u64, awards: &[(i64, u64)]) {
    load_as(l, act(), generation, stock, awards, false).await;
}

async fn load_as(
    l: &dyn StockLedger,
    activity: ActivityId,
    generation: u64,
    stock: u64,
    awards: &[(i64, u64)],
    nobody_drew: bool,
) {
    l.load_activity(&StockSnapshot {
        activity_id: activity,
        generation,
        stock_left: stock,
        awards_left: awards.iter().map(|(a, n)| (aid(*a), *n)).collect(),
        expires_at: Utc::now() + chrono::Duration::hours(1),
        nobody_drew,
    })
    .await
    .expect("load activity");
}

/// Loads a user's count in generation 1.
async fn load_user(l: &dyn StockLedger, user: &str, used: u32) {
    load_user_gen(l, 1, user, used).await;
}

async fn load_user_gen(l: &dyn StockLedger, generation: u64, user: &str, used: u32) {
    l.load_user(
        act(),
        &UserId::new(user).expect("user"),
        used,
        generation,
        Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .expect("load user");
}

/// A ledger under test, cleaned up afterwards.
struct Subject {
    ledger: Arc<dyn StockLedger>,
    redis: Option<Direct>,
    sql: Option<Rows>,
    /// A private cluster the ledger runs on, stopped with the subject.
    _cluster: Option<PrivateRedisCluster>,
}

/// Redis as the test reads it, past any proxy: every node (for SCAN) and a connection that
/// reaches any key.
struct Direct {
    keys: RedisConnection,
    nodes: Vec<String>,
    prefix: String,
}

fn unique_options() -> RedisLedgerOptions {
    RedisLedgerOptions {
        prefix: unique_name("stock"),
        // 2,000 concurrent claims wait their turn for a pool of 32 connections: on a busy
        // two-core machine (private clusters starting beside) a 1 s bound was once too short.
        timeout: Duration::from_secs(2),
        ..RedisLedgerOptions::default()
    }
}

impl Subject {
    fn name(&self) -> &'static str {
        match (&self.redis, &self.sql) {
            (Some(_), _) => "redis",
            (None, Some(_)) => "sql",
            (None, None) => "memory",
        }
    }

    /// Whether the test can lose the store's state behind the ledger's back, as a flush does.
    fn can_flush(&self) -> bool {
        self.redis.is_some() || self.sql.is_some()
    }

    fn memory() -> Self {
        Self {
            ledger: Arc::new(MemoryLedger::new()),
            redis: None,
            sql: None,
            _cluster: None,
        }
    }

    /// The ledger on rows of a fresh, migrated global database.
    async fn sql(sqlite: bool) -> Self {
        let (urls, guard) = if sqlite {
            let fresh = FreshSqlite::create("stock", 2).expect("temporary SQLite files");
            (fresh.urls().to_vec(), FreshDatabases::Sqlite(fresh))
        } else {
            Service::MariaDb.require().await;
            let fresh = FreshMysql::create("stock", 2)
                .await
                .expect("fresh MariaDB databases");
            (fresh.urls().to_vec(), FreshDatabases::MariaDb(fresh))
        };
        let mut config = db_router::RouterConfig::new(urls[0].clone(), urls[1..].to_vec(), 1);
        config.max_connections = 16;
        // 2,000 concurrent claims queue for 16 pooled connections and take turns on one
        // locked row: the last waits for all the others, far longer than one draw would.
        config.acquire_timeout_ms = 60_000;
        config.read_timeout_ms = 60_000;
        let storage = Storage::connect(&config).await.expect("storage");
        storage.migrate().await.expect("migrations");
        let ledger = Arc::new(storage.stock_ledger());
        Self {
            ledger: ledger.clone(),
            redis: None,
            sql: Some(Rows {
                storage,
                ledger,
                _databases: guard,
            }),
            _cluster: None,
        }
    }

    async fn redis() -> Self {
        let url = Service::Redis.require().await;
        Self::redis_at(&url, &url).await
    }

    async fn redis_at(url: &str, direct: &str) -> Self {
        let options = unique_options();
        let prefix = options.prefix.clone();
        let ledger = RedisLedger::connect(url, options)
            .await
            .expect("redis ledger");
        let target = RedisTarget::Server(direct.to_owned());
        Self {
            ledger: Arc::new(ledger),
            redis: Some(Direct::connect(&target, prefix).await),
            sql: None,
            _cluster: None,
        }
    }

    /// The Redis ledger on a private three-master Redis Cluster.
    async fn cluster() -> Self {
        let cluster = PrivateRedisCluster::start(3, 0)
            .await
            .expect("a private Redis Cluster (redis-server and redis-cli)");
        let target = RedisTarget::Cluster(vec![cluster.url()]);
        let options = unique_options();
        let prefix = options.prefix.clone();
        let ledger = RedisLedger::connect_to(&target, options)
            .await
            .expect("redis cluster ledger");
        Self {
            ledger: Arc::new(ledger),
            redis: Some(Direct::connect(&RedisTarget::Cluster(cluster.seeds()), prefix).await),
            sql: None,
            _cluster: Some(cluster),
        }
    }

    /// Every key under this test's prefix (SCAN on every node, never KEYS: the Redis may be
    /// shared), with its remaining time to live in ms.
    async fn keys_with_ttl(&self) -> Vec<(String, i64)> {
        if let Some(rows) = &self.sql {
            return rows.with_ttl().await;
        }
        let Some(direct) = &self.redis else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        for node in &direct.nodes {
            keys.extend(scan(node, &format!("{}:*", direct.prefix)).await);
        }
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for k in keys {
            let ttl: i64 = direct.keys.query(cmd("PTTL").arg(&k)).await.expect("pttl");
            out.push((k, ttl));
        }
        out
    }

    /// A raw value under this test's prefix, read past any proxy.
    async fn raw(&self, key: &str) -> Option<String> {
        let direct = self.redis.as_ref()?;
        direct
            .keys
            .query(cmd("GET").arg(format!("{}:{key}", direct.prefix)))
            .await
            .expect("get")
    }

    /// A user's used-takes count under this test's prefix, read past any proxy.
    async fn used(&self, user: &str) -> Option<String> {
        let direct = self.redis.as_ref()?;
        direct
            .keys
            .query(
                cmd("HGET")
                    .arg(format!("{}:{{a:{A}}}:used:{user}", direct.prefix))
                    .arg("n"),
            )
            .await
            .expect("hget")
    }

    async fn cleanup(self) {
        self.delete_keys().await;
    }

    /// Deletes every key under this test's prefix.
    async fn delete_keys(&self) {
        if let Some(rows) = &self.sql {
            rows.delete_all().await;
            return;
        }
        let keys = self.keys_with_ttl().await;
        let Some(direct) = &self.redis else {
            return;
        };
        // One key per DEL: a cluster refuses a DEL of keys in different slots.
        for (k, _) in keys {
            let _: i64 = direct.keys.query(cmd("DEL").arg(&k)).await.expect("del");
        }
    }
}

/// The databases of a SQL subject, dropped with it.
enum FreshDatabases {
    Sqlite(#[allow(dead_code)] FreshSqlite),
    MariaDb(#[allow(dead_code)] FreshMysql),
}

/// The ledger's tables as the test reads them.
struct Rows {
    storage: Storage,
    ledger: Arc<SqlLedger>,
    _databases: FreshDatabases,
}

/// Every table of the ledger, with what ends its rows: award rows end with their activity's.
const LEDGER_ROWS: [(&str, &str); 4] = [
    (
        "stock_ledger",
        "SELECT activity_id, expires_at FROM stock_ledger",
    ),
    (
        "stock_ledger_award",
        "SELECT a.award_id, s.expires_at FROM stock_ledger_award a \
         JOIN stock_ledger s ON s.activity_id = a.activity_id",
    ),
    (
        "stock_ledger_user",
        "SELECT 0, expires_at FROM stock_ledger_user",
    ),
    (
        "stock_ledger_claim",
        "SELECT claim_id, expires_at FROM stock_ledger_claim",
    ),
];

impl Rows {
    /// Every row left after a sweep of the expired ones (the SQL form of Redis dropping
    /// expired keys), with its remaining time to live in ms.
    async fn with_ttl(&self) -> Vec<(String, i64)> {
        self.ledger.sweep().await.expect("sweep");
        let now = Utc::now().timestamp_millis();
        let mut out = Vec::new();
        for (table, sql) in LEDGER_ROWS {
            let rows: Vec<(i64, i64)> = sqlx::query_as(sql)
                .fetch_all(self.storage.router().global())
                .await
                .expect("rows");
            out.extend(
                rows.into_iter()
                    .map(|(id, at)| (format!("{table}:{id}"), at - now)),
            );
        }
        out
    }

    async fn delete_all(&self) {
        for (table, _) in LEDGER_ROWS {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(self.storage.router().global())
                .await
                .expect("delete");
        }
    }
}

impl Direct {
    async fn connect(target: &RedisTarget, prefix: String) -> Self {
        let keys = RedisConnection::connect(target, 1, Duration::from_secs(5))
            .await
            .expect("direct connection");
        Self {
            keys,
            nodes: target.urls(),
            prefix,
        }
    }
}

/// Every key of one node matching `pattern`.
async fn scan(node: &str, pattern: &str) -> Vec<String> {
    let client = Client::open(node).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

macro_rules! ledger_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let s = super::Subject::memory();
                    super::$name(&s).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs Redis at 127.0.0.1:6379 (LOTTERY_TEST_REDIS_URL)"]
                async fn $name() {
                    let s = super::Subject::redis().await;
                    super::$name(&s).await;
                    s.cleanup().await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs redis-server and redis-cli (a private Redis Cluster)"]
                async fn $name() {
                    let s = super::Subject::cluster().await;
                    super::$name(&s).await;
                }
            )*
        }
        mod sql_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let s = super::Subject::sql(true).await;
                    super::$name(&s).await;
                }
            )*
        }
        mod sql_mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
                async fn $name() {
                    let s = super::Subject::sql(false).await;
                    super::$name(&s).await;
                }
            )*
        }
    };
}

ledger_tests!(
    loading_is_required_and_never_overwrites,
    sold_out_and_quota_take_nothing,
    awards_fall_back_and_reuse_takes_only_the_award,
    claims_are_idempotent_and_release_once,
    concurrent_claims_never_oversell,
    one_user_concurrently_gets_exactly_the_limit,
    a_claim_needs_only_the_stock_it_takes,
    a_released_claim_is_withdrawn_and_takes_nothing,
    a_release_that_overtakes_its_claim_leaves_nothing_claimed,
    a_reload_replaces_only_older_generations,
    pending_claims_are_listed_until_settled_or_released,
    every_key_expires,
    who_took_part_is_known_without_the_database,
);

async fn who_took_part_is_known_without_the_database(s: &Subject) {
    let l = &*s.ledger;
    let user = |u: &str| UserId::new(u).expect("user");
    // Loaded mid-campaign into an empty store: users drew before, their entries are not here.
    load_as(l, act(), 1, 10, &[], false).await;
    assert_eq!(l.user_takes(act(), &user("new")).await, Ok(None));
    // Nobody has drawn: from now on every claimant has an entry.
    let fresh = ActivityId::new(A + 1).expect("id");
    load_as(l, fresh, 1, 10, &[], true).await;
    assert_eq!(l.user_takes(fresh, &user("new")).await, Ok(Some(0)));
    l.load_user(
        fresh,
        &user("u"),
        0,
        1,
        Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .expect("load user");
    let mut c = claim(1, "u", true, 3, None, None);
    c.activity_id = fresh;
    assert!(matches!(
        l.claim(&c).await,
        Ok(ClaimOutcome::Granted { .. })
    ));
    assert_eq!(l.user_takes(fresh, &user("u")).await, Ok(Some(1)));
    // A later reload over the live store keeps the entries, and so the knowledge.
    load_as(l, fresh, 2, 9, &[], false).await;
    assert_eq!(l.user_takes(fresh, &user("new")).await, Ok(Some(0)));
    assert_eq!(l.user_takes(fresh, &user("u")).await, Ok(Some(1)));
    if s.can_flush() {
        // Entries lost (a flush): a fresh load mid-campaign must not claim to know.
        s.delete_keys().await;
        load_as(l, fresh, 3, 9, &[], false).await;
        assert_eq!(l.user_takes(fresh, &user("new")).await, Ok(None));
        assert_eq!(l.user_takes(fresh, &user("u")).await, Ok(None));
    }
}

fn granted(award: Option<i64>, fallback: bool, exhausted: bool, generation: u64) -> ClaimOutcome {
    ClaimOutcome::Granted {
        award: award.map(aid),
        fallback,
        award_exhausted: exhausted,
        generation,
    }
}

fn missing_user(user: &str, generation: u64) -> StockError {
    StockError::NotLoaded(Missing::User {
        activity: act(),
        user: UserId::new(user).expect("user"),
        generation,
    })
}

async fn loading_is_required_and_never_overwrites(s: &Subject) {
    let l = &*s.ledger;
    // User ids are arbitrary text; the keys carry them as they are.
    let u = "小傅哥 #1";
    let c = claim(1, u, true, 1, None, None);
    assert_eq!(
        l.claim(&c).await,
        Err(StockError::NotLoaded(Missing::Activity(act(), 0)))
    );
    load(l, 10, &[(1, 5)]).await;
    assert_eq!(l.claim(&c).await, Err(missing_user(u, 1)));
    load_user(l, u, 0).await;
    assert!(matches!(
        l.claim(&c).await,
        Ok(ClaimOutcome::Granted { generation: 1, .. })
    ));
    assert_eq!(l.generation(act()).await, Ok(Some(1)));
    // A snapshot of the same generation does not raise live values.
    load(l, 10, &[(1, 5)]).await;
    load_user(l, u, 0).await;
    assert_eq!(l.stock_left(act()).await, Ok(Some(9)));
    assert_eq!(
        l.claim(&claim(2, u, true, 1, None, None)).await,
        Ok(ClaimOutcome::QuotaExhausted)
    );
    assert_eq!(
        l.awards_left(act(), &[aid(1), aid(2)]).await,
        Ok(vec![Some(5), None])
    );
    assert_eq!(
        l.stock_left(ActivityId::new(99).expect("id")).await,
        Ok(None)
    );
}

async fn sold_out_and_quota_take_nothing(s: &Subject) {
    let l = &*s.ledger;
    load(l, 1, &[(1, 1)]).await;
    load_user(l, "a", 0).await;
    load_user(l, "b", 2).await;
    assert_eq!(
        l.claim(&claim(1, "b", true, 2, Some(1), None)).await,
        Ok(ClaimOutcome::QuotaExhausted)
    );
    assert_eq!(l.stock_left(act()).await, Ok(Some(1)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(1)]));
    assert!(matches!(
        l.claim(&claim(2, "a", true, 2, None, None)).await,
        Ok(ClaimOutcome::Granted { award: None, .. })
    ));
    load_user(l, "c", 0).await;
    assert_eq!(
        l.claim(&claim(3, "c", true, 2, Some(1), None)).await,
        Ok(ClaimOutcome::SoldOut)
    );
    assert_eq!(
        l.awards_left(act(), &[aid(1)]).await,
        Ok(vec![Some(1)]),
        "a sold-out claim takes no award"
    );
    // Sold out needs no user entry: a new user is not sent to load one.
    assert_eq!(
        l.claim(&claim(4, "never-loaded", true, 2, None, None))
            .await,
        Ok(ClaimOutcome::SoldOut)
    );
}

async fn awards_fall_back_and_reuse_takes_only_the_award(s: &Subject) {
    let l = &*s.ledger;
    load(l, 10, &[(1, 1), (2, 1)]).await;
    for u in ["a", "b", "c", "d"] {
        load_user(l, u, 0).await;
    }
    assert_eq!(
        l.claim(&claim(1, "a", true, 1, Some(1), Some(2))).await,
        Ok(granted(Some(1), false, false, 1))
    );
    assert_eq!(
        l.claim(&claim(2, "b", true, 1, Some(1), Some(2))).await,
        Ok(granted(Some(2), true, true, 1))
    );
    assert_eq!(
        l.claim(&claim(3, "c", true, 1, Some(1), Some(2))).await,
        Ok(granted(None, false, true, 1))
    );
    assert_eq!(l.stock_left(act()).await, Ok(Some(7)));
    // A claim without a take: only the award's stock is claimed. Award 3 comes with a new
    // generation.
    load_gen(l, 2, 7, &[(1, 0), (2, 0), (3, 2)]).await;
    let reuse = claim(4, "d", false, 1, Some(3), None);
    assert_eq!(l.claim(&reuse).await, Ok(granted(Some(3), false, false, 2)));
    assert_eq!(l.stock_left(act()).await, Ok(Some(7)));
    assert_eq!(l.awards_left(act(), &[aid(3)]).await, Ok(vec![Some(1)]));
}

async fn claims_are_idempotent_and_release_once(s: &Subject) {
    let l = &*s.ledger;
    load(l, 5, &[(1, 3)]).await;
    load_user(l, "u", 0).await;
    let c = claim(1, "u", true, 3, Some(1), None);
    let first = l.claim(&c).await;
    assert_eq!(
        l.claim(&c).await,
        first,
        "a retried claim answers the first outcome"
    );
    assert_eq!(l.stock_left(act()).await, Ok(Some(4)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(2)]));
    l.release(&c).await.expect("release");
    l.release(&c).await.expect("release twice");
    assert_eq!(l.stock_left(act()).await, Ok(Some(5)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(3)]));
    // The user's take was given back too: three more claims fit the limit of three.
    for id in 2..=4 {
        assert!(matches!(
            l.claim(&claim(id, "u", true, 3, None, None)).await,
            Ok(ClaimOutcome::Granted { .. })
        ));
    }
    assert_eq!(
        l.claim(&claim(5, "u", true, 3, None, None)).await,
        Ok(ClaimOutcome::QuotaExhausted)
    );
    l.release(&claim(99, "u", true, 3, None, None))
        .await
        .expect("unknown claim is a no-op");
    assert_eq!(l.stock_left(act()).await, Ok(Some(2)));
    for (key, ttl) in s.keys_with_ttl().await {
        assert!(ttl > 0, "key {key} has no expiry");
    }
}

async fn concurrent_claims_never_oversell(s: &Subject) {
    let l = s.ledger.clone();
    load(&*l, 100, &[(1, 30), (2, 20)]).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..2_000)
        .map(|i| {
            let l = l.clone();
            tokio::spawn(async move {
                let user = format!("user-{i}");
                load_user(&*l, &user, 0).await;
                l.claim(&claim(i + 1, &user, true, 1, Some(1), Some(2)))
                    .await
            })
        })
        .collect();
    let (mut granted, mut sold_out, mut w1, mut w2) = (0, 0, 0, 0);
    for t in tasks {
        match t.await.expect("task").expect("claim") {
            ClaimOutcome::Granted { award, .. } => {
                granted += 1;
                match award.map(AwardId::get) {
                    Some(1) => w1 += 1,
                    Some(2) => w2 += 1,
                    _ => {}
                }
            }
            ClaimOutcome::SoldOut => sold_out += 1,
            other => panic!("every user has a take left and no claim is released: {other:?}"),
        }
    }
    eprintln!(
        "{}: 2,000 users loaded and claiming concurrently in {:?}",
        s.name(),
        started.elapsed()
    );
    assert_eq!((granted, sold_out), (100, 1_900));
    assert_eq!((w1, w2), (30, 20));
    assert_eq!(l.stock_left(act()).await, Ok(Some(0)));
    assert_eq!(
        l.awards_left(act(), &[aid(1), aid(2)]).await,
        Ok(vec![Some(0), Some(0)])
    );
}

async fn one_user_concurrently_gets_exactly_the_limit(s: &Subject) {
    let l = s.ledger.clone();
    load(&*l, 1_000, &[]).await;
    load_user(&*l, "greedy", 0).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let l = l.clone();
            tokio::spawn(async move { l.claim(&claim(i + 1, "greedy", true, 3, None, None)).await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if matches!(
            t.await.expect("task").expect("claim"),
            ClaimOutcome::Granted { .. }
        ) {
            granted += 1;
        }
    }
    assert_eq!(granted, 3);
    assert_eq!(l.stock_left(act()).await, Ok(Some(997)));
}

async fn a_claim_needs_only_the_stock_it_takes(s: &Subject) {
    let l = &*s.ledger;
    // Nothing is claimed before the activity's stock is loaded.
    assert_eq!(
        l.claim(&claim(1, "u", false, 1, None, None)).await,
        Err(StockError::NotLoaded(Missing::Activity(act(), 0)))
    );
    load(l, 0, &[(1, 1)]).await;
    // Without a take, a miss touches no stock and needs no user count.
    assert_eq!(
        l.claim(&claim(2, "u", false, 1, None, None)).await,
        Ok(granted(None, false, false, 1))
    );
    let exhaust = claim(3, "u", false, 1, Some(1), None);
    assert!(matches!(
        l.claim(&exhaust).await,
        Ok(ClaimOutcome::Granted { award: Some(_), .. })
    ));
    // A fallback not in the snapshot is missing stock.
    assert_eq!(
        l.claim(&claim(4, "u", false, 1, Some(1), Some(9))).await,
        Err(StockError::NotLoaded(Missing::Activity(act(), 1)))
    );
    // With no activity stock, a take is sold out whatever the award.
    load_user(l, "u", 0).await;
    assert_eq!(
        l.claim(&claim(5, "u", true, 1, Some(1), None)).await,
        Ok(ClaimOutcome::SoldOut)
    );
}

async fn a_released_claim_is_withdrawn_and_takes_nothing(s: &Subject) {
    let l = &*s.ledger;
    load(l, 2, &[(1, 1)]).await;
    load_user(l, "u", 0).await;
    let c = claim(1, "u", true, 2, Some(1), None);
    let first = l.claim(&c).await.expect("claim");
    assert_eq!(first, granted(Some(1), false, false, 1));
    l.release(&c).await.expect("release");
    // A late retry of the same claim holds nothing and takes nothing again.
    assert_eq!(l.claim(&c).await, Ok(ClaimOutcome::Withdrawn));
    assert_eq!(l.stock_left(act()).await, Ok(Some(2)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(1)]));
    l.release(&c).await.expect("release again");
    assert_eq!(l.stock_left(act()).await, Ok(Some(2)));
    // The same take id under another activity is another claim.
    let other = ActivityId::new(A + 1).expect("id");
    let mut elsewhere = c.clone();
    elsewhere.activity_id = other;
    assert_eq!(
        l.claim(&elsewhere).await,
        Err(StockError::NotLoaded(Missing::Activity(other, 0)))
    );
}

async fn a_release_that_overtakes_its_claim_leaves_nothing_claimed(s: &Subject) {
    let l = &*s.ledger;
    load(l, 5, &[(1, 2)]).await;
    load_user(l, "u", 0).await;
    let c = claim(1, "u", true, 1, Some(1), None);
    // The release of a claim whose answer was lost reaches the store first.
    l.release(&c).await.expect("release");
    assert_eq!(l.claim(&c).await, Ok(ClaimOutcome::Withdrawn));
    assert_eq!(l.stock_left(act()).await, Ok(Some(5)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(2)]));
    assert_eq!(
        l.pending_claims(act(), i64::MAX, 10).await,
        Ok(vec![]),
        "nothing is left claimed"
    );
    // The user's quota is untouched: their one take is still there.
    assert!(matches!(
        l.claim(&claim(2, "u", true, 1, None, None)).await,
        Ok(ClaimOutcome::Granted { .. })
    ));
}

async fn a_reload_replaces_only_older_generations(s: &Subject) {
    let l = &*s.ledger;
    load(l, 10, &[(1, 5)]).await;
    load_user(l, "u", 0).await;
    let old = claim(1, "u", true, 3, Some(1), None);
    assert_eq!(l.claim(&old).await, Ok(granted(Some(1), false, false, 1)));
    // A reload counts afresh under a newer generation and replaces the live values.
    load_gen(l, 3, 8, &[(1, 3)]).await;
    assert_eq!(l.generation(act()).await, Ok(Some(3)));
    assert_eq!(l.stock_left(act()).await, Ok(Some(8)));
    // User counts of the older generation read as not loaded.
    assert_eq!(
        l.claim(&claim(2, "u", true, 3, None, None)).await,
        Err(missing_user("u", 3))
    );
    load_user_gen(l, 3, "u", 1).await;
    // Giving back a claim of the older generation gives nothing back: the reload counted it.
    l.release(&old).await.expect("release");
    assert_eq!(l.stock_left(act()).await, Ok(Some(8)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(3)]));
    // An older generation never replaces a newer one.
    load_gen(l, 2, 100, &[(1, 100)]).await;
    assert_eq!(l.stock_left(act()).await, Ok(Some(8)));
    assert_eq!(l.generation(act()).await, Ok(Some(3)));
    assert_eq!(
        l.claim(&claim(3, "u", true, 2, None, None)).await,
        Ok(granted(None, false, false, 3))
    );
    assert_eq!(
        l.claim(&claim(4, "u", true, 2, None, None)).await,
        Ok(ClaimOutcome::QuotaExhausted)
    );
}

async fn pending_claims_are_listed_until_settled_or_released(s: &Subject) {
    let l = &*s.ledger;
    load(l, 10, &[(1, 5)]).await;
    let before = l.now_ms().await.expect("clock") - 1;
    for (id, user) in [(1, "a"), (2, "b"), (3, "c")] {
        load_user(l, user, 0).await;
        let award = (id == 2).then_some(1);
        l.claim(&claim(id, user, true, 1, award, None))
            .await
            .expect("claim");
    }
    assert_eq!(
        l.pending_claims(act(), before - 60_000, 10).await,
        Ok(vec![]),
        "none was claimed that early"
    );
    let now = l.now_ms().await.expect("clock");
    let pending = l.pending_claims(act(), now, 10).await.expect("pending");
    let ids: Vec<i64> = pending.iter().map(|p| p.claim_id.get()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3]);
    let second = pending
        .iter()
        .find(|p| p.claim_id.get() == 2)
        .expect("claim 2");
    assert_eq!(second.user_id.as_str(), "b");
    assert_eq!((second.generation, second.took), (1, true));
    assert_eq!(second.award, Some(aid(1)));
    assert!(second.claimed_at_ms >= before && second.claimed_at_ms <= now);
    // Settled and released claims leave the list.
    l.settle(act(), &[TakeId::new(1).expect("id")])
        .await
        .expect("settle");
    let expires = Utc::now() + chrono::Duration::hours(1);
    l.release(&second.to_claim(act(), expires))
        .await
        .expect("release");
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(5)]));
    assert_eq!(l.stock_left(act()).await, Ok(Some(8)));
    let left: Vec<i64> = l
        .pending_claims(act(), now, 10)
        .await
        .expect("pending")
        .iter()
        .map(|p| p.claim_id.get())
        .collect();
    assert_eq!(left, vec![3]);
}

async fn every_key_expires(s: &Subject) {
    let l = &*s.ledger;
    // Long enough that a busy machine reads every key (and its time to live) before it goes.
    let soon = Utc::now() + chrono::Duration::milliseconds(3_000);
    l.load_activity(&StockSnapshot {
        activity_id: act(),
        generation: 1,
        stock_left: 5,
        awards_left: vec![(aid(1), 2), (aid(2), 2)],
        expires_at: soon,
        nobody_drew: true,
    })
    .await
    .expect("load");
    l.load_user(act(), &UserId::new("u").expect("user"), 0, 1, soon)
        .await
        .expect("load user");
    let mut c = claim(1, "u", true, 3, Some(1), Some(2));
    c.expires_at = soon;
    l.claim(&c).await.expect("claim");
    let mut released = claim(2, "u", true, 3, Some(1), Some(2));
    released.expires_at = soon;
    l.claim(&released).await.expect("claim");
    l.release(&released).await.expect("release");
    let keys = s.keys_with_ttl().await;
    if s.redis.is_some() {
        // stock, generation, the users marker, the stock's origin, two awards, the user, two
        // claim records, pending claims.
        assert_eq!(keys.len(), 10, "{keys:?}");
    }
    if s.sql.is_some() {
        // The activity, two awards, the user, two claims.
        assert_eq!(keys.len(), 6, "{keys:?}");
    }
    for (key, ttl) in &keys {
        assert!(*ttl > 0, "key {key} has no expiry ({ttl})");
    }
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(l.stock_left(act()).await, Ok(None));
    assert_eq!(
        l.awards_left(act(), &[aid(1), aid(2)]).await,
        Ok(vec![None, None])
    );
    assert_eq!(
        l.claim(&claim(3, "u", true, 3, None, None)).await,
        Err(StockError::NotLoaded(Missing::Activity(act(), 0)))
    );
    assert_eq!(s.keys_with_ttl().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at 127.0.0.1:6379 (LOTTERY_TEST_REDIS_URL)"]
async fn redis_cut_fails_fast_and_changes_nothing() {
    let direct = Service::Redis.require().await;
    let proxy = TcpProxy::for_service(Service::Redis).await.expect("proxy");
    let via = proxy.proxied_url(&direct).expect("proxied url");
    let s = Subject::redis_at(&via, &direct).await;
    let l = &*s.ledger;
    load(l, 10, &[(1, 10)]).await;
    load_user(l, "u", 0).await;
    proxy.cut().await;
    let started = Instant::now();
    let r = l.claim(&claim(1, "u", true, 5, Some(1), None)).await;
    assert!(matches!(r, Err(StockError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // Nothing changed, as read past the proxy.
    let keys = s.keys_with_ttl().await;
    assert!(
        !keys.iter().any(|(k, _)| k.contains(":claim:")),
        "no claim recorded while cut: {keys:?}"
    );
    assert_eq!(
        s.raw(&format!("{{a:{A}}}:stock")).await.as_deref(),
        Some("10")
    );
    assert_eq!(
        s.raw(&format!("{{a:{A}}}:award:1")).await.as_deref(),
        Some("10")
    );
    assert_eq!(s.used("u").await.as_deref(), Some("0"));
    // Reads fail fast too.
    assert!(matches!(
        l.stock_left(act()).await,
        Err(StockError::Unavailable(_))
    ));
    proxy.restore().await.expect("restore");
    let mut ok = None;
    for _ in 0..20 {
        match l.claim(&claim(2, "u", true, 5, Some(1), None)).await {
            Ok(o) => {
                ok = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        matches!(ok, Some(ClaimOutcome::Granted { .. })),
        "claims work again after restore"
    );
    assert_eq!(l.stock_left(act()).await, Ok(Some(9)));
    assert_eq!(l.awards_left(act(), &[aid(1)]).await, Ok(vec![Some(9)]));
    assert_eq!(s.used("u").await.as_deref(), Some("1"));
    s.cleanup().await;
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn redis_settings_the_ledger_relies_on_are_checked() {
    let evicting = lottery_testkit::PrivateRedis::start(&["--maxmemory-policy", "allkeys-lru"])
        .await
        .expect("private redis");
    let ledger = RedisLedger::connect(&evicting.url(), RedisLedgerOptions::default())
        .await
        .expect("connect");
    let settings = ledger.check_settings().await.expect("settings");
    assert_eq!(settings.eviction_policy.as_deref(), Some("allkeys-lru"));
    assert!(settings.evicts());
    assert_eq!(settings.persistent, Some(false));

    let safe = lottery_testkit::PrivateRedis::start(&["--appendonly", "yes"])
        .await
        .expect("private redis");
    let ledger = RedisLedger::connect(&safe.url(), RedisLedgerOptions::default())
        .await
        .expect("connect");
    let settings = ledger.check_settings().await.expect("settings");
    assert_eq!(settings.eviction_policy.as_deref(), Some("noeviction"));
    assert!(!settings.evicts());
    assert_eq!(settings.persistent, Some(true));
}

/// After a replica takes over, the stock it holds may lack claims its master granted (the
/// replication is asynchronous): the first claim there finds the stock "not loaded", so the
/// platform reloads it from the records instead of drawing from a store that may hold too
/// much. A claim retried after the failover still gets its recorded outcome when the record
/// made it across.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server and redis-cli (a private Redis Cluster)"]
async fn after_a_failover_the_stock_is_reloaded_before_anything_is_claimed() {
    let cluster = PrivateRedisCluster::start(3, 1)
        .await
        .expect("a private Redis Cluster (redis-server and redis-cli)");
    let target = RedisTarget::Cluster(cluster.seeds());
    let ledger = Arc::new(
        RedisLedger::connect_to(&target, unique_options())
            .await
            .expect("ledger"),
    );
    let l = &*ledger;
    let prefix = l.prefix().to_owned();
    load(l, 1_000, &[(1, 1_000)]).await;
    load_user(l, "u", 0).await;
    let first = claim(1, "u", true, 1_000, Some(1), None);
    assert_eq!(l.claim(&first).await, Ok(granted(Some(1), false, false, 1)));

    // A coordinated failover loses nothing, and still asks for a reload.
    let master = cluster
        .master_of(&format!("{prefix}:{{a:{A}}}:stock"))
        .await
        .expect("master");
    let replica = cluster.replica_of(master).await.expect("replica");
    cluster.failover(replica, None).await.expect("failover");
    let next = claim(2, "u", true, 1_000, Some(1), None);
    let after = retry_while_unavailable(l, &next).await;
    assert_eq!(
        after,
        Err(StockError::NotLoaded(Missing::Activity(act(), 1))),
        "stock loaded on another node is not drawn from"
    );
    assert_eq!(
        l.claim(&first).await,
        Ok(granted(Some(1), false, false, 1)),
        "a retried claim still finds its record"
    );
    // Stock enough that the claims under load below never sell it out, however fast the
    // machine: they run until the takeover, not until the stock ends.
    load_gen(l, 2, 10_000_000, &[(1, 999)]).await;
    load_user_gen(l, 2, "u", 1).await;
    assert_eq!(l.claim(&next).await, Ok(granted(Some(1), false, false, 2)));

    // A takeover under load (the old master goes on granting until it learns of it): every
    // claim after it on the new master asks for a reload first.
    let old = replica;
    let promoted_replica = cluster.replica_of(old).await.expect("replica");
    let load_runs = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let claims = tokio::spawn(claim_until_stopped(ledger.clone(), load_runs.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster
        .failover(promoted_replica, Some("TAKEOVER"))
        .await
        .expect("takeover");
    tokio::time::sleep(Duration::from_millis(300)).await;
    load_runs.store(false, std::sync::atomic::Ordering::Relaxed);
    let (granted_before, not_loaded) = claims.await.expect("claims");
    eprintln!("takeover: {granted_before} claims granted, {not_loaded} asked for a reload");
    assert!(not_loaded > 0, "claims after the takeover ask for a reload");
}

/// Claims one take after another (ids from 1,000) until told to stop: how many were granted
/// and how many found the stock "not loaded". (The old master may still grant a claim after
/// the new one asked for a reload, until it learns of the takeover: the reload's fences
/// refuse the records of those claims.)
async fn claim_until_stopped(
    ledger: Arc<RedisLedger>,
    runs: Arc<std::sync::atomic::AtomicBool>,
) -> (u32, u32) {
    let (mut granted, mut not_loaded) = (0, 0);
    let mut id = 1_000;
    while runs.load(std::sync::atomic::Ordering::Relaxed) {
        id += 1;
        match ledger
            .claim(&claim(id, "u", true, 1_000_000, None, None))
            .await
        {
            Ok(ClaimOutcome::Granted { .. }) => granted += 1,
            Err(StockError::NotLoaded(Missing::Activity(..))) => not_loaded += 1,
            Err(StockError::Unavailable(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (granted, not_loaded)
}

/// A claim, retried while the cluster is switching over.
async fn retry_while_unavailable(
    l: &dyn StockLedger,
    c: &StockClaim,
) -> Result<ClaimOutcome, StockError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match l.claim(c).await {
            Err(StockError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}
