//! The Redis ledger of cluster mode. Each operation is one Lua script (one round trip, atomic
//! on the server). Every key of an activity carries the hash tag `{a:<id>}`, so a script's
//! keys share one Redis Cluster slot. Every key expires (the claim's or snapshot's
//! `expires_at`), so nothing lives forever.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, AsyncConnectionConfig, Script};
use deadpool_redis::{Manager, Pool, Runtime, Timeouts};
use lottery_activity::{ClaimOutcome, Missing, StockClaim, StockError, StockLedger, StockSnapshot};
use lottery_domain::{ActivityId, AwardId, UserId};
use tracing::{debug, warn};

/// KEYS: stock, user used, award, fallback, claim.
/// ARGV: take (0/1), take limit, has award, has fallback, expiry (ms), award id, fallback id.
/// Returns the stored outcome `G|take|award|fallback|exhausted` (a retried claim gets the
/// first outcome), or `NL_A` / `NL_U` (not loaded), `SOLD_OUT`, `QUOTA`.
const CLAIM: &str = r"
local prior = redis.call('GET', KEYS[5])
if prior then
  if string.sub(prior, 1, 2) == 'R|' then return string.sub(prior, 3) end
  return prior
end
local take = ARGV[1] == '1'
if take then
  local stock = redis.call('GET', KEYS[1])
  if not stock then return 'NL_A' end
  local used = redis.call('GET', KEYS[2])
  if not used then return 'NL_U' end
  if tonumber(stock) <= 0 then return 'SOLD_OUT' end
  if tonumber(used) >= tonumber(ARGV[2]) then return 'QUOTA' end
end
local award = ''
local fallback = '0'
local exhausted = '0'
if ARGV[3] == '1' then
  local left = redis.call('GET', KEYS[3])
  if not left then return 'NL_A' end
  if tonumber(left) > 0 then
    award = ARGV[6]
  else
    exhausted = '1'
    if ARGV[4] == '1' then
      local fl = redis.call('GET', KEYS[4])
      if not fl then return 'NL_A' end
      if tonumber(fl) > 0 then
        award = ARGV[7]
        fallback = '1'
      end
    end
  end
end
if take then
  redis.call('DECR', KEYS[1])
  redis.call('INCR', KEYS[2])
end
if award ~= '' then
  if fallback == '1' then redis.call('DECR', KEYS[4]) else redis.call('DECR', KEYS[3]) end
end
local outcome = 'G|' .. ARGV[1] .. '|' .. award .. '|' .. fallback .. '|' .. exhausted
redis.call('SET', KEYS[5], outcome, 'PXAT', ARGV[5])
return outcome
";

/// Same KEYS as the claim. Gives back what a held claim took, once.
const RELEASE: &str = r"
local claim = redis.call('GET', KEYS[5])
if not claim or string.sub(claim, 1, 2) ~= 'G|' then return 0 end
local took, award, fallback = string.match(claim, '^G|(%d)|([^|]*)|(%d)|')
if took == '1' then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCR', KEYS[1]) end
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
end
if award ~= '' then
  local key = KEYS[3]
  if fallback == '1' then key = KEYS[4] end
  if redis.call('EXISTS', key) == 1 then redis.call('INCR', key) end
end
redis.call('SET', KEYS[5], 'R|' .. claim, 'KEEPTTL')
return 1
";

/// KEYS: stock, then one per award. ARGV: expiry (ms), stock left, then one per award.
/// Sets only what is absent: live values are never overwritten by a database snapshot.
const LOAD: &str = r"
redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PXAT', ARGV[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'NX', 'PXAT', ARGV[1])
end
return 1
";

/// How [`RedisLedger::connect`] sets up its pool.
#[derive(Debug, Clone)]
pub struct RedisLedgerOptions {
    /// Prefix of every key, so several deployments (or tests) can share one Redis.
    pub prefix: String,
    pub pool_size: usize,
    /// Upper bound on getting, opening and checking a pooled connection and on each
    /// operation: a Redis that is down or hung fails draws fast with `Unavailable` instead of
    /// piling them up.
    pub timeout: Duration,
}

impl Default for RedisLedgerOptions {
    fn default() -> Self {
        Self {
            prefix: "lottery".into(),
            pool_size: 32,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster-mode [`StockLedger`]: one Lua script per operation over a deadpool of
/// multiplexed Redis connections.
pub struct RedisLedger {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    claim: Script,
    release: Script,
    load: Script,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StockError {
    let cause = e.to_string();
    warn!(%cause, "Redis stock ledger unavailable");
    StockError::Unavailable(cause)
}

impl RedisLedger {
    /// Builds the pool and checks with a PING that Redis answers, so a wrong URL or a down
    /// Redis shows at start-up rather than at the first draw.
    pub async fn connect(url: &str, options: RedisLedgerOptions) -> Result<Self, StockError> {
        // The client's own connect and response timeouts follow the option too (its
        // defaults are 1 s and 0.5 s), so one setting bounds every wait.
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout));
        let manager = Manager::new_with_config(url, connection).map_err(unavailable)?;
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .timeouts(Timeouts {
                wait: Some(options.timeout),
                create: Some(options.timeout),
                recycle: Some(options.timeout),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        let ledger = Self::from_pool(pool, options.prefix).with_timeout(options.timeout);
        let mut conn = ledger.conn().await?;
        let pong: String = ledger
            .within(redis::cmd("PING").query_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        debug!(%pong, prefix = %ledger.prefix, "Redis stock ledger connected");
        Ok(ledger)
    }

    /// Uses a pool built elsewhere (its timeouts are the caller's); each operation is still
    /// bounded by the ledger's own timeout, 2 s unless [`with_timeout`](Self::with_timeout).
    pub fn from_pool(pool: Pool, prefix: impl Into<String>) -> Self {
        Self {
            pool,
            prefix: prefix.into(),
            timeout: DEFAULT_TIMEOUT,
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            load: Script::new(LOAD),
        }
    }

    /// Bounds getting a connection, and then each operation, by `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, StockError> {
        // Bounded here too: a pool from `from_pool` may have no wait timeout.
        self.within(self.pool.get()).await?.map_err(unavailable)
    }

    async fn within<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T, StockError> {
        tokio::time::timeout(self.timeout, f).await.map_err(|_| {
            StockError::Unavailable(format!("no answer from Redis within {:?}", self.timeout))
        })
    }

    fn base(&self, activity: ActivityId) -> String {
        format!("{}:{{a:{activity}}}", self.prefix)
    }

    fn stock_key(&self, activity: ActivityId) -> String {
        format!("{}:stock", self.base(activity))
    }

    fn award_key(&self, activity: ActivityId, award: AwardId) -> String {
        format!("{}:award:{award}", self.base(activity))
    }

    fn user_key(&self, activity: ActivityId, user: &UserId) -> String {
        format!("{}:used:{user}", self.base(activity))
    }

    fn claim_keys(&self, c: &StockClaim) -> [String; 5] {
        let award = c.award.map_or_else(
            || format!("{}:award:-", self.base(c.activity_id)),
            |a| self.award_key(c.activity_id, a),
        );
        let fallback = c.fallback.map_or_else(
            || format!("{}:award:-", self.base(c.activity_id)),
            |a| self.award_key(c.activity_id, a),
        );
        [
            self.stock_key(c.activity_id),
            self.user_key(c.activity_id, &c.user_id),
            award,
            fallback,
            format!("{}:claim:{}", self.base(c.activity_id), c.claim_id),
        ]
    }
}

fn parse_outcome(c: &StockClaim, raw: &str) -> Result<ClaimOutcome, StockError> {
    match raw {
        "NL_A" => Err(StockError::NotLoaded(Missing::Activity(c.activity_id))),
        "NL_U" => Err(StockError::NotLoaded(Missing::User(
            c.activity_id,
            c.user_id.clone(),
        ))),
        "SOLD_OUT" => Ok(ClaimOutcome::SoldOut),
        "QUOTA" => Ok(ClaimOutcome::QuotaExhausted),
        granted => {
            let parts: Vec<&str> = granted.split('|').collect();
            let [_, _, award, fallback, exhausted] = parts[..] else {
                return Err(StockError::Unavailable(format!(
                    "unexpected claim answer {granted:?}"
                )));
            };
            let award = if award.is_empty() {
                None
            } else {
                Some(
                    award
                        .parse::<AwardId>()
                        .map_err(|e| StockError::Unavailable(format!("claim answer: {e}")))?,
                )
            };
            Ok(ClaimOutcome::Granted {
                award,
                fallback: fallback == "1",
                award_exhausted: exhausted == "1",
            })
        }
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[async_trait::async_trait]
impl StockLedger for RedisLedger {
    async fn claim(&self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        let keys = self.claim_keys(c);
        let mut inv = self.claim.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        inv.arg(u8::from(c.take))
            .arg(c.take_limit)
            .arg(u8::from(c.award.is_some()))
            .arg(u8::from(c.fallback.is_some()))
            .arg(millis(crate::claim_record_expiry(c.expires_at)))
            .arg(c.award.map(|a| a.get()).unwrap_or(0))
            .arg(c.fallback.map(|a| a.get()).unwrap_or(0));
        let mut conn = self.conn().await?;
        let raw: String = self
            .within(inv.invoke_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        parse_outcome(c, &raw)
    }

    async fn release(&self, c: &StockClaim) -> Result<(), StockError> {
        let keys = self.claim_keys(c);
        let mut inv = self.release.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        let mut conn = self.conn().await?;
        let _: i64 = self
            .within(inv.invoke_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        Ok(())
    }

    async fn load_activity(&self, s: &StockSnapshot) -> Result<(), StockError> {
        let mut inv = self.load.prepare_invoke();
        inv.key(self.stock_key(s.activity_id));
        inv.arg(millis(s.expires_at)).arg(s.stock_left);
        for (award, left) in &s.awards_left {
            inv.key(self.award_key(s.activity_id, *award));
            inv.arg(*left);
        }
        let mut conn = self.conn().await?;
        let _: i64 = self
            .within(inv.invoke_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        Ok(())
    }

    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError> {
        let mut conn = self.conn().await?;
        let cmd = redis::cmd("SET")
            .arg(self.user_key(activity, user))
            .arg(used)
            .arg("NX")
            .arg("PXAT")
            .arg(millis(expires_at))
            .to_owned();
        let _: Option<String> = self
            .within(cmd.query_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        Ok(())
    }

    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        let mut conn = self.conn().await?;
        let cmd = redis::cmd("GET").arg(self.stock_key(activity)).to_owned();
        let v: Option<i64> = self
            .within(cmd.query_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        Ok(v.map(|n| n.max(0) as u64))
    }

    async fn awards_left(
        &self,
        activity: ActivityId,
        awards: &[AwardId],
    ) -> Result<Vec<Option<u64>>, StockError> {
        if awards.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("MGET");
        for a in awards {
            cmd.arg(self.award_key(activity, *a));
        }
        let v: Vec<Option<i64>> = self
            .within(cmd.query_async(&mut conn))
            .await?
            .map_err(unavailable)?;
        Ok(v.into_iter().map(|n| n.map(|n| n.max(0) as u64)).collect())
    }
}
