//! The Redis ledger of cluster mode. Each operation is one Lua script (one round trip, atomic
//! on the server). Every key of an activity carries the hash tag `{a:<id>}`, so a script's
//! keys share one Redis Cluster slot. Every key expires (the claim's or snapshot's
//! `expires_at`), so nothing lives forever.
//!
//! Replication is asynchronous: a replica promoted after its master died may lack the last
//! claims the master granted, and their draws may be recorded in the databases already. Such
//! a store holds more stock than the records leave, and drawing from it could oversell. So
//! the stock is tied to the node it was loaded on: the load stores the node's replication
//! id, and a claim on a node with another id (a promoted replica, a restarted server, a slot
//! moved elsewhere) finds the stock "not loaded" and makes the platform reload it from the
//! records under a new generation, whose fences refuse any record of the lost claims that
//! arrives later (see docs/draw-pipeline.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::Pool;
use deadpool_redis::redis::{self, Script, Value};
use lottery_activity::{
    ClaimOutcome, Missing, PendingClaim, StockClaim, StockError, StockLedger, StockSnapshot,
};
use lottery_domain::{ActivityId, AwardId, TakeId, UserId};
use tracing::debug;

use crate::connection::{DEFAULT_TIMEOUT, RedisConnection, RedisTarget};

/// The replication id of the node running the script (Lua prefix of the scripts below).
const REPLID: &str = r"
local function replid()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end
";

/// KEYS: stock, user (hash of generation `g` and used count `n`), award, fallback, claim,
/// generation, pending claims (sorted set by claim time), origin (the replication id of the
/// node the stock was loaded on).
/// ARGV: take (0/1), take limit, has award, has fallback, claim record expiry (ms), award id,
/// fallback id, user id, key expiry (ms), claim id.
/// Returns the stored outcome `G|take|award|fallback|exhausted|generation|user` (a retried
/// claim gets the first outcome), `WITHDRAWN` for a claim released before or after it was
/// made, `NL_A|generation` (activity stock missing; generation held, 0 for none),
/// `NL_U|generation` (user not loaded for this
/// generation), `SOLD_OUT` or `QUOTA`. Stock loaded on another node (see the module's
/// documentation) is reported as missing.
const CLAIM: &str = r"
local prior = redis.call('GET', KEYS[5])
if prior then
  if string.sub(prior, 1, 2) == 'G|' then return prior end
  return 'WITHDRAWN'
end
local gen = redis.call('GET', KEYS[6])
if not gen then return 'NL_A|0' end
if redis.call('GET', KEYS[8]) ~= replid() then return 'NL_A|' .. gen end
local take = ARGV[1] == '1'
if take then
  local stock = redis.call('GET', KEYS[1])
  if not stock then return 'NL_A|' .. gen end
  if tonumber(stock) <= 0 then return 'SOLD_OUT' end
  local user = redis.call('HMGET', KEYS[2], 'g', 'n')
  if user[1] ~= gen or not user[2] then return 'NL_U|' .. gen end
  if tonumber(user[2]) >= tonumber(ARGV[2]) then return 'QUOTA' end
end
local award = ''
local fallback = '0'
local exhausted = '0'
if ARGV[3] == '1' then
  local left = redis.call('GET', KEYS[3])
  if not left then return 'NL_A|' .. gen end
  if tonumber(left) > 0 then
    award = ARGV[6]
  else
    exhausted = '1'
    if ARGV[4] == '1' then
      local fl = redis.call('GET', KEYS[4])
      if not fl then return 'NL_A|' .. gen end
      if tonumber(fl) > 0 then
        award = ARGV[7]
        fallback = '1'
      end
    end
  end
end
if take then
  redis.call('DECR', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'n', 1)
end
if award ~= '' then
  if fallback == '1' then redis.call('DECR', KEYS[4]) else redis.call('DECR', KEYS[3]) end
end
local outcome = 'G|' .. ARGV[1] .. '|' .. award .. '|' .. fallback .. '|' .. exhausted .. '|' .. gen .. '|' .. ARGV[8]
redis.call('SET', KEYS[5], outcome, 'PXAT', ARGV[5])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[7], t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)), ARGV[10])
redis.call('PEXPIREAT', KEYS[7], ARGV[9])
return outcome
";

/// Same KEYS as the claim. ARGV: claim record expiry (ms), claim id.
/// Gives back what a held claim took, once, and only into the generation it was taken from.
/// With no claim yet, leaves a marker that makes the late claim take nothing.
const RELEASE: &str = r"
local claim = redis.call('GET', KEYS[5])
if not claim then
  redis.call('SET', KEYS[5], 'X', 'PXAT', ARGV[1])
  return 0
end
if string.sub(claim, 1, 2) ~= 'G|' then return 0 end
local took, award, fallback, cgen = string.match(claim, '^G|(%d)|([^|]*)|(%d)|%d|(%d+)|')
if redis.call('GET', KEYS[6]) == cgen then
  if took == '1' then
    if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCR', KEYS[1]) end
    if redis.call('HGET', KEYS[2], 'g') == cgen then redis.call('HINCRBY', KEYS[2], 'n', -1) end
  end
  if award ~= '' then
    local key = KEYS[3]
    if fallback == '1' then key = KEYS[4] end
    if redis.call('EXISTS', key) == 1 then redis.call('INCR', key) end
  end
end
redis.call('SET', KEYS[5], 'R|' .. claim, 'KEEPTTL')
redis.call('ZREM', KEYS[7], ARGV[2])
return 1
";

/// KEYS: stock, generation, complete marker, origin, then one per award. ARGV: expiry (ms),
/// stock left, generation, nobody drew (1/0), then one per award. Replaces the stock only
/// with a newer generation, and records this node as its origin. The marker says every
/// claimant has a user entry: set when nobody has drawn, kept across loads while the
/// generation key survives on the same node (the user entries did too), and cleared when the
/// stock is loaded afresh mid-campaign or on another node (entries may be gone or behind).
const LOAD: &str = r"
local current = redis.call('GET', KEYS[2])
if current and tonumber(current) >= tonumber(ARGV[3]) then return 0 end
local here = replid()
local moved = redis.call('GET', KEYS[4]) ~= here
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[1])
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i], 'PXAT', ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[3], 'PXAT', ARGV[1])
redis.call('SET', KEYS[4], here, 'PXAT', ARGV[1])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], '1', 'PXAT', ARGV[1])
elseif not current or moved then
  redis.call('DEL', KEYS[3])
end
return 1
";

/// KEYS: user. ARGV: used, generation, expiry (ms). Loads the count unless the store has it
/// for this generation or a newer one.
const LOAD_USER: &str = r"
local g = redis.call('HGET', KEYS[1], 'g')
if g and tonumber(g) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[2], 'n', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
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

/// The cluster-mode [`StockLedger`]: one Lua script per operation, on one Redis server
/// (through a pool of multiplexed connections) or on a Redis Cluster.
pub struct RedisLedger {
    redis: RedisConnection,
    prefix: String,
    claim: Script,
    release: Script,
    load: Script,
    load_user: Script,
}

impl std::fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLedger")
            .field("prefix", &self.prefix)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl RedisLedger {
    /// Connects to one Redis server (see [`connect_to`](Self::connect_to)).
    pub async fn connect(url: &str, options: RedisLedgerOptions) -> Result<Self, StockError> {
        Self::connect_to(&RedisTarget::Server(url.to_owned()), options).await
    }

    /// Connects to a server or a cluster and checks that it answers, so a wrong URL or a
    /// down Redis shows at start-up rather than at the first draw.
    pub async fn connect_to(
        target: &RedisTarget,
        options: RedisLedgerOptions,
    ) -> Result<Self, StockError> {
        let redis = RedisConnection::connect(target, options.pool_size, options.timeout).await?;
        debug!(prefix = %options.prefix, "Redis stock ledger connected");
        Ok(Self::new(redis, options.prefix))
    }

    /// A ledger over a connection that others (the draw rate limit) may share.
    pub fn new(redis: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            claim: Script::new(&format!("{REPLID}{CLAIM}")),
            release: Script::new(RELEASE),
            load: Script::new(&format!("{REPLID}{LOAD}")),
            load_user: Script::new(LOAD_USER),
        }
    }

    /// Uses a pool built elsewhere (its timeouts are the caller's); each operation is still
    /// bounded by the ledger's own timeout, 2 s unless [`with_timeout`](Self::with_timeout).
    pub fn from_pool(pool: Pool, prefix: impl Into<String>) -> Self {
        Self::new(
            RedisConnection::from_pool(pool).with_timeout(DEFAULT_TIMEOUT),
            prefix,
        )
    }

    /// Bounds getting a connection, and then each operation, by `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.redis = self.redis.with_timeout(timeout);
        self
    }

    /// The connection, to share with other Redis adapters.
    pub fn connection(&self) -> &RedisConnection {
        &self.redis
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
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

    fn generation_key(&self, activity: ActivityId) -> String {
        format!("{}:gen", self.base(activity))
    }

    fn complete_key(&self, activity: ActivityId) -> String {
        format!("{}:complete", self.base(activity))
    }

    fn pending_key(&self, activity: ActivityId) -> String {
        format!("{}:pending", self.base(activity))
    }

    fn origin_key(&self, activity: ActivityId) -> String {
        format!("{}:origin", self.base(activity))
    }

    fn claim_key(&self, activity: ActivityId, claim: TakeId) -> String {
        format!("{}:claim:{claim}", self.base(activity))
    }

    fn claim_keys(&self, c: &StockClaim) -> [String; 8] {
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
            self.claim_key(c.activity_id, c.claim_id),
            self.generation_key(c.activity_id),
            self.pending_key(c.activity_id),
            self.origin_key(c.activity_id),
        ]
    }
}

fn bad_answer(e: impl std::fmt::Display) -> StockError {
    StockError::Unavailable(format!("unexpected answer from the stock store: {e}"))
}

/// A stored claim, `G|take|award|fallback|exhausted|generation|user`.
struct StoredClaim {
    took: bool,
    award: Option<AwardId>,
    fallback: bool,
    exhausted: bool,
    generation: u64,
    user: String,
}

fn parse_stored(raw: &str) -> Result<StoredClaim, StockError> {
    // The user id is last and may itself hold a '|'.
    let parts: Vec<&str> = raw.splitn(7, '|').collect();
    let ["G", took, award, fallback, exhausted, generation, user] = parts[..] else {
        return Err(bad_answer(raw));
    };
    let award = if award.is_empty() {
        None
    } else {
        Some(award.parse::<AwardId>().map_err(bad_answer)?)
    };
    Ok(StoredClaim {
        took: took == "1",
        award,
        fallback: fallback == "1",
        exhausted: exhausted == "1",
        generation: generation.parse().map_err(bad_answer)?,
        user: user.to_owned(),
    })
}

fn parse_outcome(c: &StockClaim, raw: &str) -> Result<ClaimOutcome, StockError> {
    match raw {
        "SOLD_OUT" => Ok(ClaimOutcome::SoldOut),
        "QUOTA" => Ok(ClaimOutcome::QuotaExhausted),
        "WITHDRAWN" => Ok(ClaimOutcome::Withdrawn),
        other => {
            if let Some(generation) = other.strip_prefix("NL_A|") {
                return Err(StockError::NotLoaded(Missing::Activity(
                    c.activity_id,
                    generation.parse().map_err(bad_answer)?,
                )));
            }
            if let Some(generation) = other.strip_prefix("NL_U|") {
                return Err(StockError::NotLoaded(Missing::User {
                    activity: c.activity_id,
                    user: c.user_id.clone(),
                    generation: generation.parse().map_err(bad_answer)?,
                }));
            }
            let stored = parse_stored(other)?;
            Ok(ClaimOutcome::Granted {
                award: stored.award,
                fallback: stored.fallback,
                award_exhausted: stored.exhausted,
                generation: stored.generation,
            })
        }
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// What [`RedisLedger::check_settings`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `maxmemory-policy`; `None` when the server does not allow `CONFIG GET`.
    pub eviction_policy: Option<String>,
    /// Whether the server keeps its data on disk (AOF or RDB snapshots); `None` when unknown.
    pub persistent: Option<bool>,
}

impl RedisSettings {
    /// Only `noeviction` keeps every claim record until it is settled; under any other
    /// policy a full Redis silently drops keys, and a dropped pending claim leaks its stock.
    pub fn evicts(&self) -> bool {
        self.eviction_policy
            .as_deref()
            .is_some_and(|p| p != "noeviction")
    }
}

impl RedisLedger {
    /// Reads the server settings the ledger relies on, from every master of a cluster: the
    /// worst node decides.
    pub async fn check_settings(&self) -> Result<RedisSettings, StockError> {
        let policies = self.config_get("maxmemory-policy").await;
        let aof = self.config_get("appendonly").await;
        let save = self.config_get("save").await;
        let eviction_policy = match policies.iter().flatten().find(|p| *p != "noeviction") {
            Some(evicting) => Some(evicting.clone()),
            None if policies.iter().all(Option::is_some) => Some("noeviction".to_owned()),
            None => None,
        };
        let persistent: Vec<Option<bool>> = aof
            .iter()
            .zip(&save)
            .map(|(aof, save)| match (aof.as_deref(), save.as_deref()) {
                (Some("yes"), _) => Some(true),
                (Some(_), Some(save)) => Some(!save.trim().is_empty()),
                _ => None,
            })
            .collect();
        let persistent = if persistent.contains(&Some(false)) {
            Some(false)
        } else if persistent.iter().all(|p| *p == Some(true)) {
            Some(true)
        } else {
            None
        };
        Ok(RedisSettings {
            eviction_policy,
            persistent,
        })
    }

    /// One setting from every master; `None` where `CONFIG GET` is refused (managed services
    /// often refuse it: "unknown" rather than a failure).
    async fn config_get(&self, name: &str) -> Vec<Option<String>> {
        let cmd = redis::cmd("CONFIG").arg("GET").arg(name).to_owned();
        let Ok(replies) = self.redis.on_every_master(&cmd).await else {
            return vec![None];
        };
        replies
            .into_iter()
            .map(|reply| match reply {
                Value::ServerError(_) => None,
                other => redis::from_redis_value::<Vec<String>>(other)
                    .ok()
                    .and_then(|v| v.get(1).cloned()),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl StockLedger for RedisLedger {
    async fn claim(&self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        let mut inv = self.claim.prepare_invoke();
        for k in &self.claim_keys(c) {
            inv.key(k);
        }
        inv.arg(u8::from(c.take))
            .arg(c.take_limit)
            .arg(u8::from(c.award.is_some()))
            .arg(u8::from(c.fallback.is_some()))
            .arg(millis(crate::claim_record_expiry(c.expires_at)))
            .arg(c.award.map(|a| a.get()).unwrap_or(0))
            .arg(c.fallback.map(|a| a.get()).unwrap_or(0))
            .arg(c.user_id.as_str())
            .arg(millis(c.expires_at))
            .arg(c.claim_id.get());
        let raw: String = self.redis.run(inv).await?;
        parse_outcome(c, &raw)
    }

    async fn release(&self, c: &StockClaim) -> Result<(), StockError> {
        let mut inv = self.release.prepare_invoke();
        for k in &self.claim_keys(c) {
            inv.key(k);
        }
        inv.arg(millis(crate::claim_record_expiry(c.expires_at)))
            .arg(c.claim_id.get());
        let _: i64 = self.redis.run(inv).await?;
        Ok(())
    }

    async fn load_activity(&self, s: &StockSnapshot) -> Result<(), StockError> {
        let mut inv = self.load.prepare_invoke();
        inv.key(self.stock_key(s.activity_id))
            .key(self.generation_key(s.activity_id))
            .key(self.complete_key(s.activity_id))
            .key(self.origin_key(s.activity_id));
        inv.arg(millis(s.expires_at))
            .arg(s.stock_left)
            .arg(s.generation)
            .arg(u8::from(s.nobody_drew));
        for (award, left) in &s.awards_left {
            inv.key(self.award_key(s.activity_id, *award));
            inv.arg(*left);
        }
        let _: i64 = self.redis.run(inv).await?;
        Ok(())
    }

    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        generation: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError> {
        let mut inv = self.load_user.prepare_invoke();
        inv.key(self.user_key(activity, user))
            .arg(used)
            .arg(generation)
            .arg(millis(expires_at));
        let _: i64 = self.redis.run(inv).await?;
        Ok(())
    }

    async fn generation(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        self.redis
            .query(
                &redis::cmd("GET")
                    .arg(self.generation_key(activity))
                    .to_owned(),
            )
            .await
    }

    async fn user_takes(
        &self,
        activity: ActivityId,
        user: &UserId,
    ) -> Result<Option<u32>, StockError> {
        // One slot (the activity's hash tag), so one round trip even on a cluster.
        let (used, complete): (Option<i64>, i64) = self
            .redis
            .pipe(
                redis::pipe()
                    .cmd("HGET")
                    .arg(self.user_key(activity, user))
                    .arg("n")
                    .cmd("EXISTS")
                    .arg(self.complete_key(activity)),
            )
            .await?;
        Ok(match used {
            Some(n) => Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
            None => (complete == 1).then_some(0),
        })
    }

    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        let v: Option<i64> = self
            .redis
            .query(&redis::cmd("GET").arg(self.stock_key(activity)).to_owned())
            .await?;
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
        let mut cmd = redis::cmd("MGET");
        for a in awards {
            cmd.arg(self.award_key(activity, *a));
        }
        let v: Vec<Option<i64>> = self.redis.query(&cmd).await?;
        Ok(v.into_iter().map(|n| n.map(|n| n.max(0) as u64)).collect())
    }

    async fn pending_claims(
        &self,
        activity: ActivityId,
        claimed_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingClaim>, StockError> {
        let found: Vec<(i64, f64)> = self
            .redis
            .query(
                &redis::cmd("ZRANGEBYSCORE")
                    .arg(self.pending_key(activity))
                    .arg("-inf")
                    .arg(claimed_before_ms)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit.max(1))
                    .to_owned(),
            )
            .await?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for (id, _) in &found {
            mget.arg(format!("{}:claim:{id}", self.base(activity)));
        }
        let values: Vec<Option<String>> = self.redis.query(&mget).await?;
        let mut pending = Vec::with_capacity(found.len());
        let mut gone = Vec::new();
        for ((id, at), value) in found.into_iter().zip(values) {
            let claim_id = TakeId::new(id).map_err(bad_answer)?;
            // A record that expired or was released holds nothing; only drop it from the set.
            let Some(stored) = value.filter(|v| v.starts_with("G|")) else {
                gone.push(claim_id);
                continue;
            };
            let stored = parse_stored(&stored)?;
            pending.push(PendingClaim {
                claim_id,
                user_id: UserId::new(&stored.user).map_err(bad_answer)?,
                generation: stored.generation,
                claimed_at_ms: at as i64,
                took: stored.took,
                award: stored.award,
            });
        }
        if !gone.is_empty() {
            self.settle(activity, &gone).await?;
        }
        Ok(pending)
    }

    async fn settle(&self, activity: ActivityId, claims: &[TakeId]) -> Result<(), StockError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.pending_key(activity));
        for c in claims {
            cmd.arg(c.get());
        }
        let _: i64 = self.redis.query(&cmd).await?;
        Ok(())
    }

    async fn now_ms(&self) -> Result<i64, StockError> {
        let (secs, micros): (i64, i64) = self.redis.query(&redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }
}
