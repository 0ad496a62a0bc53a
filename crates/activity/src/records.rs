use chrono::{DateTime, Utc};
use lottery_award::{Award, GrantState};
use lottery_domain::{ActivityId, OrderId, StrategyId, TakeId, UserId};
use lottery_strategy::DrawMode;
use serde::{Deserialize, Serialize};

/// Whether a take has been drawn yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TakeState {
    /// Granted, not yet drawn: the user's next draw reuses it.
    Open,
    /// Drawn (won or lost).
    Used,
}

impl TakeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Used => "used",
        }
    }
}

/// One participation of a user in an activity (the right to one draw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTake {
    pub take_id: TakeId,
    pub user_id: UserId,
    pub activity_id: ActivityId,
    pub strategy_id: StrategyId,
    /// 1 for the user's first take of this activity, 2 for the second, ... Unique per user and
    /// activity, which makes a retried take harmless.
    pub take_number: u32,
    pub taken_at: DateTime<Utc>,
    pub state: TakeState,
}

/// A won prize, at most one per take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WinOrder {
    pub order_id: OrderId,
    pub take_id: TakeId,
    pub user_id: UserId,
    pub activity_id: ActivityId,
    pub strategy_id: StrategyId,
    pub mode: DrawMode,
    pub award: Award,
    /// The drawn award was out of stock and the strategy's fallback was given instead.
    pub fallback: bool,
    pub grant_state: GrantState,
    /// What the distributor delivered, once it has.
    pub delivery: Option<String>,
    pub created_at: DateTime<Utc>,
    pub granted_at: Option<DateTime<Utc>>,
}
