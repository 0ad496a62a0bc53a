use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// What failed underneath an error, kept whole (with its own sources) for the logs. Shared,
/// so the errors that carry it stay cheap to clone; two causes are equal when they read the
/// same.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync>);

/// A cause known only by its description.
#[derive(Debug)]
struct Described(String);

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Described {}

impl Cause {
    /// Keeps `error` and its chain of sources.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// A cause with no error value behind it, only words.
    pub fn described(what: impl Into<String>) -> Self {
        Self(Arc::new(Described(what.into())))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

/// Shows an error with every source under it, `outer: inner: innermost`, for logs.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(e) = source {
            let more = e.to_string();
            // Transparent wrappers repeat their source's words.
            if !text.ends_with(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = e.source();
        }
        f.write_str(&text)
    }
}

/// What a repository adapter reports. Adapters fill these in from their driver's errors, so
/// the domain and the application never see a driver type; the driver's error travels as
/// the [`Cause`] for the logs, while the messages of `Conflict` and `NotFound` are written
/// for clients and read the same whichever backend is behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// A unique key or compare-and-set said no: someone else got there first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend could not be reached or failed; retrying later may help.
    #[error("storage unavailable")]
    Unavailable(#[source] Cause),
    /// The stored data could not be turned back into domain values.
    #[error("corrupt stored data")]
    Corrupt(#[source] Cause),
}

impl RepoError {
    /// Unavailable, for a failure known only by its description.
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable(Cause::described(what))
    }

    /// Corrupt, for a failure known only by its description.
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt(Cause::described(what))
    }
}

pub type RepoResult<T> = Result<T, RepoError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_shows_every_cause_and_the_message_none() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out");
        let e = RepoError::Unavailable(Cause::new(io));
        assert_eq!(e.to_string(), "storage unavailable");
        assert_eq!(Chain(&e).to_string(), "storage unavailable: read timed out");
        assert_eq!(e.clone(), e, "clones compare equal");
        assert_eq!(
            Chain(&RepoError::corrupt("bad row")).to_string(),
            "corrupt stored data: bad row"
        );
    }
}
