//! The tool's errors: what stopped a run or an audit from starting or finishing (a failed
//! audit check is a result, not an error).

/// Why a run or an audit could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The lottery configuration could not be loaded or is incomplete.
    #[error("configuration: {0}")]
    Config(String),
    /// The token secret could not be read.
    #[error("tokens: {0}")]
    Tokens(String),
    /// The server URL is not `http://host:port`.
    #[error("server URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// The server could not be reached or did not answer in time.
    #[error("{what}: {source}")]
    Transport {
        what: String,
        source: crate::client::TransportError,
    },
    /// The server answered an admin call with something else than success.
    #[error("{what}: the server answered {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    /// An answer was not the JSON expected.
    #[error("{what}: unexpected answer: {detail}")]
    Answer { what: String, detail: String },
    /// A database the audit reads failed.
    #[error("database: {0}")]
    Database(String),
    /// The stock store (Redis) the audit reads failed.
    #[error("stock store: {0}")]
    Stock(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    /// A file held something else than expected.
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
    /// The options do not make a run.
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for LoadError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<db_router::RouterError> for LoadError {
    fn from(e: db_router::RouterError) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<deadpool_redis::redis::RedisError> for LoadError {
    fn from(e: deadpool_redis::redis::RedisError) -> Self {
        Self::Stock(e.to_string())
    }
}
