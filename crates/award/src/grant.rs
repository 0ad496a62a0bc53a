use std::fmt;
use std::str::FromStr;

use lottery_domain::{OrderId, UserId};
use serde::{Deserialize, Serialize};

use crate::Award;

/// Where a won award stands in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Won, not yet delivered.
    Init,
    /// Delivered.
    Complete,
    /// Delivery failed for good (after its retries); needs an operator.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantStateError {
    #[error("grant state cannot go from {from} to {to}")]
    Illegal { from: GrantState, to: GrantState },
    #[error("unknown grant state {0:?}")]
    Unknown(String),
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    /// Grants only move forward out of `init`; a finished grant never changes again, which is
    /// what makes redelivered messages harmless.
    pub fn move_to(self, to: GrantState) -> Result<GrantState, GrantStateError> {
        match (self, to) {
            (Self::Init, Self::Complete | Self::Failed) => Ok(to),
            (from, to) => Err(GrantStateError::Illegal { from, to }),
        }
    }
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantState {
    type Err = GrantStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "init" => Ok(Self::Init),
            "complete" => Ok(Self::Complete),
            "failed" => Ok(Self::Failed),
            other => Err(GrantStateError::Unknown(other.to_owned())),
        }
    }
}

/// Where physical goods go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub recipient: String,
    pub phone: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    pub country: String,
}

/// A prize owed to a winner: the input of a distributor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub award: Award,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<ShippingAddress>,
}

/// What a distributor handed out, kept on the order for the user and for support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub detail: String,
}

/// Why a distribution did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistributeError {
    /// Trying again cannot help (bad data, missing address): the grant becomes `failed`.
    #[error("cannot deliver: {0}")]
    Permanent(String),
    /// A downstream system is unavailable: the message is retried later.
    #[error("delivery temporarily failed: {0}")]
    Retryable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_states_only_move_forward() {
        assert_eq!(
            GrantState::Init.move_to(GrantState::Complete),
            Ok(GrantState::Complete)
        );
        assert_eq!(
            GrantState::Init.move_to(GrantState::Failed),
            Ok(GrantState::Failed)
        );
        for from in [GrantState::Complete, GrantState::Failed] {
            for to in [GrantState::Init, GrantState::Complete, GrantState::Failed] {
                assert!(from.move_to(to).is_err(), "{from} -> {to}");
            }
        }
        assert!(GrantState::Init.move_to(GrantState::Init).is_err());
        for s in [GrantState::Init, GrantState::Complete, GrantState::Failed] {
            assert_eq!(s.as_str().parse::<GrantState>(), Ok(s));
        }
    }
}
