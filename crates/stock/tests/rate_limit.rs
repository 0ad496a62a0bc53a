//! One contract for the per-user draw rate limit, in memory, in Redis and on a Redis Cluster
//! (the `DrawRateLimit` port in `crates/activity/src/port.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::redis::cmd;
use lottery_activity::{DrawRate, DrawRateLimit, RateDecision, RateLimitError};
use lottery_domain::UserId;
use lottery_stock::{
    MemoryDrawRateLimit, RedisConnection, RedisDrawRateLimit, RedisLedger, RedisLedgerOptions,
    RedisTarget,
};
use lottery_testkit::{PrivateRedisCluster, Service, TcpProxy, unique_name};

/// Ten a second, five at once.
const RATE: DrawRate = DrawRate {
    per_second: 10,
    burst: 5,
};

struct Subject {
    limit: Arc<dyn DrawRateLimit>,
    /// Redis: the connection and the key prefix, to look at the keys.
    redis: Option<(RedisConnection, String)>,
    _cluster: Option<PrivateRedisCluster>,
}

impl Subject {
    fn memory() -> Self {
        Self {
            limit: Arc::new(MemoryDrawRateLimit::new(RATE)),
            redis: None,
            _cluster: None,
        }
    }

    async fn on(target: RedisTarget, cluster: Option<PrivateRedisCluster>) -> Self {
        let redis = RedisConnection::connect(&target, 8, Duration::from_secs(2))
            .await
            .expect("redis");
        let prefix = unique_name("rate");
        Self {
            limit: Arc::new(RedisDrawRateLimit::new(redis.clone(), &prefix, RATE)),
            redis: Some((redis, prefix)),
            _cluster: cluster,
        }
    }

    async fn redis() -> Self {
        let url = Service::Redis.require().await;
        Self::on(RedisTarget::Server(url), None).await
    }

    async fn cluster() -> Self {
        let cluster = PrivateRedisCluster::start(3, 0)
            .await
            .expect("a private Redis Cluster (redis-server and redis-cli)");
        Self::on(RedisTarget::Cluster(vec![cluster.url()]), Some(cluster)).await
    }

    async fn admit(&self, user: &str) -> RateDecision {
        self.limit
            .admit(&UserId::new(user).expect("user"))
            .await
            .expect("the limit answers")
    }

    /// The remaining time to live of a user's key (Redis only).
    async fn ttl_ms(&self, user: &str) -> Option<i64> {
        let (redis, prefix) = self.redis.as_ref()?;
        let key = format!("{prefix}:{{u:{user}}}:draws");
        Some(redis.query(cmd("PTTL").arg(key)).await.expect("pttl"))
    }
}

fn limited(d: RateDecision) -> Option<Duration> {
    match d {
        RateDecision::Allowed => None,
        RateDecision::Limited { retry_after } => Some(retry_after),
    }
}

macro_rules! rate_limit_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Subject::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs Redis at 127.0.0.1:6379 (LOTTERY_TEST_REDIS_URL)"]
                async fn $name() {
                    super::$name(&super::Subject::redis().await).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs redis-server and redis-cli (a private Redis Cluster)"]
                async fn $name() {
                    super::$name(&super::Subject::cluster().await).await;
                }
            )*
        }
    };
}

rate_limit_tests!(
    a_burst_passes_then_the_rate_holds,
    limited_draws_count_nothing,
    users_are_independent,
    a_long_run_is_held_to_the_rate,
    a_users_state_expires_once_the_allowance_is_whole,
);

async fn a_burst_passes_then_the_rate_holds(s: &Subject) {
    for i in 0..RATE.burst {
        assert_eq!(s.admit("u").await, RateDecision::Allowed, "draw {i}");
    }
    let wait = limited(s.admit("u").await).expect("the draw after the burst is limited");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "at most one interval: {wait:?}"
    );
    tokio::time::sleep(wait + Duration::from_millis(5)).await;
    assert_eq!(
        s.admit("u").await,
        RateDecision::Allowed,
        "after retry_after"
    );
    assert!(limited(s.admit("u").await).is_some(), "and not twice");
}

async fn limited_draws_count_nothing(s: &Subject) {
    for _ in 0..RATE.burst {
        s.admit("knocker").await;
    }
    for _ in 0..50 {
        assert!(limited(s.admit("knocker").await).is_some());
    }
    // Knocking did not push the allowance out: one interval later, one draw passes.
    tokio::time::sleep(Duration::from_millis(110)).await;
    assert_eq!(s.admit("knocker").await, RateDecision::Allowed);
}

async fn users_are_independent(s: &Subject) {
    for _ in 0..RATE.burst {
        s.admit("a").await;
    }
    assert!(limited(s.admit("a").await).is_some());
    for i in 0..RATE.burst {
        assert_eq!(s.admit("b").await, RateDecision::Allowed, "b's draw {i}");
    }
}

async fn a_long_run_is_held_to_the_rate(s: &Subject) {
    // Eight callers as fast as they can for 1.5 s: burst + rate x time, within one draw.
    let run = Duration::from_millis(1_500);
    let started = Instant::now();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let limit = s.limit.clone();
            tokio::spawn(async move {
                let user = UserId::new("hasty").expect("user");
                let mut allowed = 0u32;
                while started.elapsed() < run {
                    if limit.admit(&user).await == Ok(RateDecision::Allowed) {
                        allowed += 1;
                    }
                    tokio::task::yield_now().await;
                }
                allowed
            })
        })
        .collect();
    let mut allowed = 0;
    for c in callers {
        allowed += c.await.expect("caller");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let most = f64::from(RATE.burst) + f64::from(RATE.per_second) * elapsed + 1.0;
    let least = f64::from(RATE.burst) + f64::from(RATE.per_second) * 1.5 * 0.8;
    eprintln!("allowed {allowed} in {elapsed:.2} s (bounds {least:.1}..={most:.1})");
    assert!(f64::from(allowed) <= most, "{allowed} > {most}");
    assert!(f64::from(allowed) >= least, "{allowed} < {least}");
}

async fn a_users_state_expires_once_the_allowance_is_whole(s: &Subject) {
    for _ in 0..3 {
        s.admit("brief").await;
    }
    if let Some(ttl) = s.ttl_ms("brief").await {
        // Three intervals ahead of now, at most.
        assert!(ttl > 0 && ttl <= 301, "{ttl}");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(s.ttl_ms("brief").await, Some(-2), "the key is gone");
    }
    // Whole again: a full burst passes.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for i in 0..RATE.burst {
        assert_eq!(s.admit("brief").await, RateDecision::Allowed, "draw {i}");
    }
}

#[tokio::test]
async fn the_memory_limit_forgets_users_whose_allowance_is_whole() {
    let limit = MemoryDrawRateLimit::new(RATE);
    for i in 0..4_096 {
        let user = UserId::new(format!("u{i}")).expect("user");
        limit.admit(&user).await.expect("admit");
    }
    assert_eq!(limit.tracked_users(), 4_096);
    // One interval later every allowance is whole; the next sweep (every 4,096 draws) drops
    // them all.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let late = UserId::new("late").expect("user");
    limit.admit(&late).await.expect("admit");
    assert_eq!(limit.tracked_users(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at 127.0.0.1:6379 (LOTTERY_TEST_REDIS_URL)"]
async fn an_unreachable_store_is_unavailable_fast() {
    let direct = Service::Redis.require().await;
    let proxy = TcpProxy::for_service(Service::Redis).await.expect("proxy");
    let via = proxy.proxied_url(&direct).expect("proxied url");
    let options = RedisLedgerOptions {
        timeout: Duration::from_millis(500),
        ..RedisLedgerOptions::default()
    };
    // The limit shares the stock ledger's connection, as the server wires them.
    let ledger = RedisLedger::connect(&via, options).await.expect("ledger");
    let limit = RedisDrawRateLimit::new(ledger.connection().clone(), unique_name("rate"), RATE);
    let user = UserId::new("u").expect("user");
    assert_eq!(limit.admit(&user).await, Ok(RateDecision::Allowed));
    proxy.cut().await;
    let started = Instant::now();
    let r = limit.admit(&user).await;
    assert!(matches!(r, Err(RateLimitError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
