use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The review life cycle of an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    Editing,
    PendingReview,
    Approved,
    Refused,
    Doing,
    Closed,
    /// Re-opened after being closed; `start` makes it `doing` again.
    Open,
}

/// What an admin (or the scheduler) asks of an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Submit,
    Approve,
    Refuse,
    Revoke,
    Start,
    Close,
    Open,
}

/// An action the current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an activity that is {state}")]
pub struct TransitionError {
    pub state: ActivityState,
    pub action: Action,
}

impl ActivityState {
    pub const ALL: [ActivityState; 7] = [
        Self::Editing,
        Self::PendingReview,
        Self::Approved,
        Self::Refused,
        Self::Doing,
        Self::Closed,
        Self::Open,
    ];

    /// The state `action` leads to, exactly per the reference table; anything else is refused.
    pub fn apply(self, action: Action) -> Result<ActivityState, TransitionError> {
        use Action as A;
        use ActivityState as S;
        let next = match (self, action) {
            (S::Editing, A::Submit) => S::PendingReview,
            (S::Editing, A::Close) => S::Closed,
            (S::PendingReview, A::Approve) => S::Approved,
            (S::PendingReview, A::Refuse) => S::Refused,
            (S::PendingReview, A::Revoke) => S::Editing,
            (S::Approved, A::Refuse) => S::Refused,
            (S::Approved, A::Close) => S::Closed,
            (S::Approved, A::Start) => S::Doing,
            (S::Refused, A::Revoke) => S::Editing,
            (S::Refused, A::Close) => S::Closed,
            (S::Doing, A::Close) => S::Closed,
            (S::Closed, A::Open) => S::Open,
            (S::Open, A::Close) => S::Closed,
            (S::Open, A::Start) => S::Doing,
            (state, action) => return Err(TransitionError { state, action }),
        };
        Ok(next)
    }

    /// The actions this state allows, in [`Action::ALL`] order: what a console may offer.
    pub fn actions(self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| self.apply(*a).is_ok())
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Editing => "editing",
            Self::PendingReview => "pending_review",
            Self::Approved => "approved",
            Self::Refused => "refused",
            Self::Doing => "doing",
            Self::Closed => "closed",
            Self::Open => "open",
        }
    }
}

impl Action {
    pub const ALL: [Action; 7] = [
        Self::Submit,
        Self::Approve,
        Self::Refuse,
        Self::Revoke,
        Self::Start,
        Self::Close,
        Self::Open,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Approve => "approve",
            Self::Refuse => "refuse",
            Self::Revoke => "revoke",
            Self::Start => "start",
            Self::Close => "close",
            Self::Open => "open",
        }
    }
}

impl fmt::Display for ActivityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unrecognised state or action name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
}

impl FromStr for ActivityState {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "activity state",
                value: s.to_owned(),
            })
    }
}

impl FromStr for Action {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "action",
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ActivityState::ALL {
            assert_eq!(s.as_str().parse::<ActivityState>(), Ok(s));
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
        assert!("arraignment".parse::<ActivityState>().is_err());
        assert!("explode".parse::<Action>().is_err());
    }

    #[test]
    fn actions_are_exactly_those_apply_accepts() {
        assert_eq!(
            ActivityState::Editing.actions(),
            vec![Action::Submit, Action::Close]
        );
        assert_eq!(
            ActivityState::Approved.actions(),
            vec![Action::Refuse, Action::Start, Action::Close]
        );
        for s in ActivityState::ALL {
            for a in Action::ALL {
                assert_eq!(s.actions().contains(&a), s.apply(a).is_ok(), "{s} {a}");
            }
        }
    }
}
