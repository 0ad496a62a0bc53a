//! Stock ledgers: the activity's stock, each user's takes and each award's stock, checked and
//! taken in one atomic step per draw. [`RedisLedger`] serves cluster mode (one Lua script, one
//! round trip per claim); [`MemoryLedger`] serves embedded mode with the same semantics. Both
//! pass the same test suite (`tests/ledger.rs`).

mod change_feed;
mod memory;
mod redis_ledger;

pub use change_feed::RedisChangeFeed;
pub use memory::MemoryLedger;
pub use redis_ledger::{RedisLedger, RedisLedgerOptions};
