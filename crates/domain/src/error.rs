/// What a repository adapter reports. Adapters fill these in from their driver's errors, so
/// the domain and the application never see a driver type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// A unique key or compare-and-set said no: someone else got there first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend could not be reached or failed; retrying later may help.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The stored data could not be turned back into domain values.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

pub type RepoResult<T> = Result<T, RepoError>;
