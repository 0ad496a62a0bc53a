use lottery_activity::{ParticipationError, StockError, TransitionError};
use lottery_award::AddressError;
use lottery_domain::{Cause, RepoError};

/// What a use case reports. The server maps each variant to one HTTP status in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The input is invalid; the message names the problem.
    #[error("{0}")]
    Invalid(String),
    /// A shipping address the platform cannot ship to; names the field.
    #[error(transparent)]
    BadAddress(#[from] AddressError),
    #[error("{0} not found")]
    NotFound(String),
    /// The user may not draw now (not open, not started, ended, sold out, quota used up).
    #[error(transparent)]
    Participation(#[from] ParticipationError),
    /// The activity's state does not allow the action.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Someone else changed the same thing first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A backing service is down; nothing was changed. Retrying later may help. The cause
    /// (the backend's own error, for the logs) is the source.
    #[error("service unavailable")]
    Unavailable(#[source] Cause),
    /// A claim was fenced off by a stock reload; the draw is tried again with a new claim.
    /// Never leaves the draw use case.
    #[error("the activity's stock was reloaded meanwhile; draw again")]
    Stale,
    /// The draw's outcome is not known yet (it goes on, and ends recorded or given back):
    /// replay it with the same idempotency key to learn it.
    #[error("the draw's outcome is not known yet; replay it with the same Idempotency-Key")]
    OutcomeUnknown,
    /// Stored data is inconsistent, or the platform broke one of its own rules; needs an
    /// operator. What went wrong is the source.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl AppError {
    /// Unavailable, for a failure known only by its description.
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable(Cause::described(what))
    }

    /// Internal, for a failure known only by its description.
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(Cause::described(what))
    }
}

impl From<RepoError> for AppError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict(m) => Self::Conflict(m),
            RepoError::NotFound(m) => Self::NotFound(m),
            e @ RepoError::Unavailable(_) => Self::Unavailable(Cause::new(e)),
            e @ RepoError::Corrupt(_) => Self::Internal(Cause::new(e)),
        }
    }
}

impl From<StockError> for AppError {
    fn from(e: StockError) -> Self {
        Self::Unavailable(Cause::new(e))
    }
}

impl From<lottery_ids::IdGenError> for AppError {
    fn from(e: lottery_ids::IdGenError) -> Self {
        Self::Unavailable(Cause::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_domain::Chain;

    #[test]
    fn a_storage_failure_keeps_its_cause_for_the_logs_only() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        let e = AppError::from(RepoError::Unavailable(Cause::new(io)));
        assert_eq!(
            e.to_string(),
            "service unavailable",
            "no backend text in the message"
        );
        assert_eq!(
            Chain(&e).to_string(),
            "service unavailable: storage unavailable: connection reset"
        );
    }
}
