use lottery_activity::{ParticipationError, StockError, TransitionError};
use lottery_award::AddressError;
use lottery_domain::RepoError;

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
    /// A backing service is down; nothing was changed. Retrying later may help.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A claim was fenced off by a stock reload; the draw is tried again with a new claim.
    /// Never leaves the draw use case.
    #[error("the activity's stock was reloaded meanwhile; draw again")]
    Stale,
    /// The draw's outcome is not known yet (it goes on, and ends recorded or given back):
    /// replay it with the same idempotency key to learn it.
    #[error("the draw's outcome is not known yet; replay it with the same Idempotency-Key")]
    OutcomeUnknown,
    /// Stored data is inconsistent; needs an operator.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<RepoError> for AppError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict(m) => Self::Conflict(m),
            RepoError::NotFound(m) => Self::NotFound(m),
            RepoError::Unavailable(m) => Self::Unavailable(m),
            RepoError::Corrupt(m) => Self::Internal(m),
        }
    }
}

impl From<StockError> for AppError {
    fn from(e: StockError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<lottery_ids::IdGenError> for AppError {
    fn from(e: lottery_ids::IdGenError) -> Self {
        Self::Unavailable(format!("id generation: {e}"))
    }
}
