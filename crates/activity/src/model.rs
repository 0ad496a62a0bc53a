use chrono::{DateTime, Utc};
use lottery_domain::{ActivityId, StrategyId};
use serde::{Deserialize, Serialize};

use crate::state::{Action, ActivityState, TransitionError};

/// The editable fields of an activity, as an admin submits them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivitySpec {
    pub name: String,
    pub description: String,
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// How many takes the activity grants in all.
    pub stock: u32,
    /// How many times one user may take part.
    pub take_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    #[error("name must be 1 to {max} characters")]
    BadName { max: usize },
    #[error("description must be at most {max} characters")]
    DescriptionTooLong { max: usize },
    #[error("end time {end} must be after begin time {begin}")]
    EndNotAfterBegin {
        begin: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    #[error("stock must be at least 1")]
    NoStock,
    #[error("take limit must be at least 1")]
    NoTakes,
    #[error("creator must be 1 to 64 characters")]
    BadCreator,
    #[error("the activity can only be changed while editing; it is {state}")]
    NotEditable { state: ActivityState },
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// Why a user may not take part right now. Each is a distinct answer to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParticipationError {
    #[error("the activity is not open for draws (it is {state})")]
    NotOpen { state: ActivityState },
    #[error("the activity has not started; it begins at {begins_at}")]
    NotStarted { begins_at: DateTime<Utc> },
    #[error("the activity ended at {ended_at}")]
    Ended { ended_at: DateTime<Utc> },
    #[error("the activity is sold out")]
    SoldOut,
    #[error("you have used all {limit} of your takes")]
    QuotaExhausted { limit: u32 },
}

/// The activity aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    id: ActivityId,
    spec: ActivitySpec,
    strategy_id: StrategyId,
    state: ActivityState,
    creator: String,
}

impl ActivitySpec {
    pub const MAX_NAME: usize = 128;
    pub const MAX_DESCRIPTION: usize = 4096;

    pub fn validate(&self) -> Result<(), ActivityError> {
        let name_len = self.name.chars().count();
        if self.name.trim().is_empty() || name_len > Self::MAX_NAME {
            return Err(ActivityError::BadName {
                max: Self::MAX_NAME,
            });
        }
        if self.description.chars().count() > Self::MAX_DESCRIPTION {
            return Err(ActivityError::DescriptionTooLong {
                max: Self::MAX_DESCRIPTION,
            });
        }
        if self.end <= self.begin {
            return Err(ActivityError::EndNotAfterBegin {
                begin: self.begin,
                end: self.end,
            });
        }
        if self.stock == 0 {
            return Err(ActivityError::NoStock);
        }
        if self.take_limit == 0 {
            return Err(ActivityError::NoTakes);
        }
        Ok(())
    }
}

impl Activity {
    /// A new activity, in `editing`.
    pub fn new(
        id: ActivityId,
        spec: ActivitySpec,
        strategy_id: StrategyId,
        creator: impl Into<String>,
    ) -> Result<Self, ActivityError> {
        Self::restore(id, spec, strategy_id, ActivityState::Editing, creator)
    }

    /// Rebuilds a stored activity (adapters), re-checking its invariants.
    pub fn restore(
        id: ActivityId,
        spec: ActivitySpec,
        strategy_id: StrategyId,
        state: ActivityState,
        creator: impl Into<String>,
    ) -> Result<Self, ActivityError> {
        spec.validate()?;
        let creator = creator.into();
        if creator.is_empty() || creator.chars().count() > 64 {
            return Err(ActivityError::BadCreator);
        }
        Ok(Self {
            id,
            spec,
            strategy_id,
            state,
            creator,
        })
    }

    pub fn id(&self) -> ActivityId {
        self.id
    }
    pub fn spec(&self) -> &ActivitySpec {
        &self.spec
    }
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn begin(&self) -> DateTime<Utc> {
        self.spec.begin
    }
    pub fn end(&self) -> DateTime<Utc> {
        self.spec.end
    }
    pub fn stock(&self) -> u32 {
        self.spec.stock
    }
    pub fn take_limit(&self) -> u32 {
        self.spec.take_limit
    }
    pub fn strategy_id(&self) -> StrategyId {
        self.strategy_id
    }
    pub fn state(&self) -> ActivityState {
        self.state
    }
    pub fn creator(&self) -> &str {
        &self.creator
    }

    /// Applies a state action in memory; the repository stores it as a compare-and-set from
    /// the previous state.
    pub fn apply(&mut self, action: Action) -> Result<ActivityState, ActivityError> {
        let next = self.state.apply(action)?;
        self.state = next;
        Ok(next)
    }

    /// Replaces the editable fields; only while editing (reviewed content must not change).
    pub fn revise(&mut self, spec: ActivitySpec) -> Result<(), ActivityError> {
        if self.state != ActivityState::Editing {
            return Err(ActivityError::NotEditable { state: self.state });
        }
        spec.validate()?;
        self.spec = spec;
        Ok(())
    }

    /// Whether the scheduler should move this activity on at `now`: approved ones start at
    /// their begin time, doing ones close after their end time.
    pub fn due_action(&self, now: DateTime<Utc>) -> Option<Action> {
        match self.state {
            ActivityState::Approved if now >= self.spec.begin && now <= self.spec.end => {
                Some(Action::Start)
            }
            ActivityState::Approved | ActivityState::Doing if now > self.spec.end => {
                Some(Action::Close)
            }
            _ => None,
        }
    }

    /// The participation rules: doing, within [begin, end], stock left, takes left.
    pub fn check_participation(
        &self,
        now: DateTime<Utc>,
        stock_left: u64,
        takes_used: u32,
    ) -> Result<(), ParticipationError> {
        if self.state != ActivityState::Doing {
            return Err(ParticipationError::NotOpen { state: self.state });
        }
        if now < self.spec.begin {
            return Err(ParticipationError::NotStarted {
                begins_at: self.spec.begin,
            });
        }
        if now > self.spec.end {
            return Err(ParticipationError::Ended {
                ended_at: self.spec.end,
            });
        }
        if stock_left == 0 {
            return Err(ParticipationError::SoldOut);
        }
        if takes_used >= self.spec.take_limit {
            return Err(ParticipationError::QuotaExhausted {
                limit: self.spec.take_limit,
            });
        }
        Ok(())
    }
}
