//! The per-user draw rate limit (GCRA): each user has a *theoretical arrival time* (TAT), the
//! moment their allowance would be whole again. A draw at `now` is allowed when
//! `TAT - now <= tolerance` (`burst - 1` intervals) and moves the TAT one interval on; a
//! limited draw changes nothing. A TAT in the past is the same as none, so a user's state
//! lives only until it passes.
//!
//! [`RedisDrawRateLimit`] keeps the TATs in Redis (one key per user, one Lua script per draw,
//! Redis's clock), so every instance sharing the Redis counts the same draws;
//! [`MemoryDrawRateLimit`] keeps them in process for embedded mode.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_redis::redis::Script;
use lottery_activity::{DrawRate, DrawRateLimit, RateDecision, RateLimitError, StockError};
use lottery_domain::UserId;

use crate::connection::RedisConnection;

/// KEYS: the user's TAT (microseconds, Redis's clock). ARGV: interval (µs), tolerance (µs).
/// Returns 0 when the draw is allowed (and counted), else the microseconds to wait.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tonumber(ARGV[2])
if wait > 0 then return wait end
local next = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1)
return 0
";

fn decision(wait_micros: u64) -> RateDecision {
    if wait_micros == 0 {
        RateDecision::Allowed
    } else {
        RateDecision::Limited {
            retry_after: Duration::from_micros(wait_micros),
        }
    }
}

/// The limit in Redis (one server or a cluster): shared by every instance.
pub struct RedisDrawRateLimit {
    redis: RedisConnection,
    prefix: String,
    rate: DrawRate,
    admit: Script,
}

impl std::fmt::Debug for RedisDrawRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDrawRateLimit")
            .field("prefix", &self.prefix)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl RedisDrawRateLimit {
    /// Keys under `prefix` (the deployment's, as the stock ledger's), one per user drawing.
    pub fn new(redis: RedisConnection, prefix: impl Into<String>, rate: DrawRate) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            rate,
            admit: Script::new(ADMIT),
        }
    }

    /// The user's key: a hash tag of its own, so users spread over a cluster's slots.
    fn key(&self, user: &UserId) -> String {
        format!("{}:{{u:{user}}}:draws", self.prefix)
    }
}

#[async_trait::async_trait]
impl DrawRateLimit for RedisDrawRateLimit {
    async fn admit(&self, user: &UserId) -> Result<RateDecision, RateLimitError> {
        let mut inv = self.admit.prepare_invoke();
        inv.key(self.key(user))
            .arg(self.rate.interval_micros())
            .arg(self.rate.tolerance_micros());
        let wait: i64 = self.redis.run(inv).await.map_err(|e| match e {
            StockError::Unavailable(cause) => RateLimitError::Unavailable(cause),
            other => RateLimitError::Unavailable(other.to_string()),
        })?;
        Ok(decision(u64::try_from(wait).unwrap_or(0)))
    }
}

/// How many draws pass between sweeps of the in-process state.
const SWEEP_EVERY: u64 = 4_096;

/// The limit in process (embedded mode, and where Redis cannot answer).
#[derive(Debug)]
pub struct MemoryDrawRateLimit {
    rate: DrawRate,
    started: Instant,
    /// Each user's TAT in microseconds since `started`.
    tats: Mutex<HashMap<UserId, u64>>,
    calls: AtomicU64,
}

impl MemoryDrawRateLimit {
    pub fn new(rate: DrawRate) -> Self {
        Self {
            rate,
            started: Instant::now(),
            tats: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// Users remembered now: those whose allowance was not whole at the last sweep, and
    /// those who drew since.
    pub fn tracked_users(&self) -> usize {
        self.tats().len()
    }

    fn now_micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn tats(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, u64>> {
        // Every update leaves the map consistent, so a panic elsewhere does not poison it.
        self.tats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit_now(&self, user: &UserId) -> RateDecision {
        let now = self.now_micros();
        let mut tats = self.tats();
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            // Users whose allowance is whole again need no state.
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(user).copied().unwrap_or(now).max(now);
        let wait = (tat - now).saturating_sub(self.rate.tolerance_micros());
        if wait > 0 {
            return decision(wait);
        }
        tats.insert(user.clone(), tat + self.rate.interval_micros());
        RateDecision::Allowed
    }
}

#[async_trait::async_trait]
impl DrawRateLimit for MemoryDrawRateLimit {
    async fn admit(&self, user: &UserId) -> Result<RateDecision, RateLimitError> {
        Ok(self.admit_now(user))
    }
}
