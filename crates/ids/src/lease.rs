//! The port through which an instance leases its snowflake worker id, so that no two live
//! instances ever hold the same one.

use lottery_domain::RepoResult;

/// A worker id taken by [`WorkerLeases::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredWorker {
    pub worker_id: u32,
    /// The highest millisecond (Unix) at which earlier holders may have issued ids: the new
    /// holder's ids must lie above it (see [`crate::Snowflake::leased`]).
    pub high_water_unix_ms: i64,
}

/// Leases on worker ids `0..=MAX_WORKER_ID`, shared by every instance of a deployment.
///
/// Errors: `Unavailable` when the lease store cannot be reached; then the caller knows
/// nothing new and keeps what it held until its validity runs out.
#[async_trait::async_trait]
pub trait WorkerLeases: Send + Sync {
    /// Takes a worker id that no live holder has (never taken, released, or expired at
    /// `now_unix_ms`) for `holder` until `until_unix_ms`; two callers never get the same
    /// one. `None` when every id is held.
    async fn acquire(
        &self,
        holder: &str,
        now_unix_ms: i64,
        until_unix_ms: i64,
    ) -> RepoResult<Option<AcquiredWorker>>;
    /// Extends `holder`'s lease and raises the id's high water. `Ok(false)` when `holder`
    /// no longer holds it (it expired and another instance took it).
    async fn renew(
        &self,
        worker_id: u32,
        holder: &str,
        until_unix_ms: i64,
        high_water_unix_ms: i64,
    ) -> RepoResult<bool>;
    /// Gives the id up (on a clean stop), recording its high water.
    async fn release(
        &self,
        worker_id: u32,
        holder: &str,
        high_water_unix_ms: i64,
    ) -> RepoResult<()>;
}
