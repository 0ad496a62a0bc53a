use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use lottery_domain::{Cause, RepoError, RepoResult};

/// Errors of setting storage up (connecting, migrating). Repository calls report
/// [`RepoError`] instead, so the domain never sees a driver type.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Router(#[from] db_router::RouterError),
    #[error("migration {version} ({scope}) failed on {database}: {source}")]
    Migration {
        database: String,
        scope: String,
        version: i64,
        source: sqlx::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{database} does not answer: {source}")]
    Unreachable {
        database: String,
        source: sqlx::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Turns a driver error into the domain's repository error.
pub(crate) fn repo(e: sqlx::Error) -> RepoError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // The driver's wording differs by backend and names tables and keys: it is for
            // the log, the caller gets the same words from either backend.
            tracing::debug!(error = %db.message(), "unique key violated");
            RepoError::Conflict("a record with the same key is already stored".into())
        }
        sqlx::Error::RowNotFound => RepoError::NotFound("the record".into()),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => RepoError::Corrupt(Cause::new(e)),
        _ => RepoError::Unavailable(Cause::new(e)),
    }
}

pub(crate) fn router(e: db_router::RouterError) -> RepoError {
    RepoError::Unavailable(Cause::new(e))
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> RepoError {
    RepoError::corrupt(what.to_string())
}

/// Whether the database gave up on a transaction because of lock contention (deadlock, lock
/// wait timeout, SQLite busy): the whole transaction can safely run again.
pub(crate) fn is_contention(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    let message = db.message();
    code == "40001"
        || code == "5"
        || code == "517"
        || message.contains("Deadlock found")
        || message.contains("Lock wait timeout")
        || message.contains("database is locked")
}

/// The error of an operation that got no answer within the router's read timeout.
fn no_answer() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the database did not answer in time",
    ))
}

type Flatten<T> =
    fn(Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>) -> Result<T, sqlx::Error>;

/// Bounds a database operation by the router's read timeout. A bounded-out operation is
/// dropped mid-flight; its connection then fails the pool's bounded check on release and is
/// closed, so neither the caller nor the pool waits on a dead connection.
pub(crate) trait Within<T>: Future<Output = Result<T, sqlx::Error>> + Sized {
    fn within(
        self,
        limit: Duration,
    ) -> futures::future::Map<tokio::time::Timeout<Self>, Flatten<T>> {
        let flatten: Flatten<T> = |r| r.unwrap_or_else(|_elapsed| Err(no_answer()));
        tokio::time::timeout(limit, self).map(flatten)
    }
}

impl<T, F: Future<Output = Result<T, sqlx::Error>>> Within<T> for F {}

/// Runs a transaction body again when it lost to lock contention, with a short jittered
/// backoff. Any other error, or running out of attempts, is reported. Each attempt is
/// bounded by `limit` (see [`Within`]).
pub(crate) async fn retrying<T, F, Fut>(limit: Duration, mut attempt: F) -> RepoResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    const ATTEMPTS: u32 = 30;
    let mut tries = 0;
    loop {
        match attempt().within(limit).await {
            Err(e) if is_contention(&e) && tries + 1 < ATTEMPTS => {
                tries += 1;
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let jitter = u64::from(nanos % 1000);
                let backoff = u64::from(tries.min(10)) * 2_000 + jitter * 3;
                tracing::debug!(tries, error = %e, "transaction lost to contention, retrying");
                tokio::time::sleep(std::time::Duration::from_micros(backoff)).await;
            }
            other => return other.map_err(repo),
        }
    }
}
