//! Stock ledgers: the activity's stock, each user's takes and each award's stock, checked and
//! taken in one atomic step per draw. [`RedisLedger`] serves cluster mode (one Lua script, one
//! round trip per claim, on one Redis server or a Redis Cluster); [`MemoryLedger`] serves
//! embedded mode with the same semantics. Both pass the same test suite (`tests/ledger.rs`).
//! The per-user draw rate limit has the same two forms ([`RedisDrawRateLimit`],
//! [`MemoryDrawRateLimit`]; `tests/rate_limit.rs`).

mod change_feed;
mod config;
mod connection;
mod expiring;
mod memory;
mod rate_limit;
mod redis_ledger;

pub use change_feed::RedisChangeFeed;
pub use config::{RedisConfig, RedisConfigError};
pub use connection::{RedisConnection, RedisTarget};
pub use memory::MemoryLedger;
pub use rate_limit::{MemoryDrawRateLimit, RedisDrawRateLimit};
pub use redis_ledger::{RedisLedger, RedisLedgerOptions, RedisSettings};

/// How long a claim record is kept for recognising a retried claim. Retries happen within a
/// request, so an hour is ample; keeping every draw's record until the activity ends would
/// cost memory in proportion to all draws ever made.
pub const CLAIM_RECORD_TTL: chrono::Duration = chrono::Duration::hours(1);

/// When a claim record made now expires.
pub(crate) fn claim_record_expiry(
    activity_expiry: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    activity_expiry.min(chrono::Utc::now() + CLAIM_RECORD_TTL)
}
