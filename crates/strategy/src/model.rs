use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use lottery_domain::{AwardId, StrategyId};
use serde::{Deserialize, Serialize};

use crate::rate::{RATE_UNITS, Rate};

/// How a strategy treats the rates of awards that are out of stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawMode {
    /// Per-item probability: an out-of-stock award still takes its share, as a miss.
    Single,
    /// Renormalised: out-of-stock awards drop out and the rest are rescaled to sum to 1.
    Entirety,
}

impl DrawMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Entirety => "entirety",
        }
    }
}

impl fmt::Display for DrawMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DrawMode {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single" => Ok(Self::Single),
            "entirety" => Ok(Self::Entirety),
            other => Err(StrategyError::UnknownMode(other.to_owned())),
        }
    }
}

/// One award of a strategy: its probability and how many prizes there are in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyAward {
    pub award_id: AwardId,
    pub rate: Rate,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    #[error("a strategy needs at least one award")]
    Empty,
    #[error("a strategy holds at most {max} awards, got {got}")]
    TooManyAwards { max: usize, got: usize },
    #[error("award {0} appears more than once in the strategy")]
    DuplicateAward(AwardId),
    #[error("the rates sum to {sum}, above 1")]
    RateSumAboveOne { sum: rust_decimal::Decimal },
    #[error("every rate is 0: nothing could ever be drawn")]
    AllRatesZero,
    #[error("fallback award {0} is not one of the strategy's awards")]
    UnknownFallback(AwardId),
    #[error("unknown draw mode {0:?} (expected \"single\" or \"entirety\")")]
    UnknownMode(String),
}

/// A validated draw strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Strategy {
    id: StrategyId,
    mode: DrawMode,
    awards: Vec<StrategyAward>,
    fallback: Option<AwardId>,
}

impl Strategy {
    /// Awards per strategy are capped so an availability set fits one machine word pair;
    /// prize draws in practice list a handful of prizes.
    pub const MAX_AWARDS: usize = 128;

    /// Validates and builds a strategy. `fallback`, if any, must be one of `awards`; it is the
    /// prize given when a won award turns out to be out of stock (it may have rate 0).
    pub fn new(
        id: StrategyId,
        mode: DrawMode,
        awards: Vec<StrategyAward>,
        fallback: Option<AwardId>,
    ) -> Result<Self, StrategyError> {
        if awards.is_empty() {
            return Err(StrategyError::Empty);
        }
        if awards.len() > Self::MAX_AWARDS {
            return Err(StrategyError::TooManyAwards {
                max: Self::MAX_AWARDS,
                got: awards.len(),
            });
        }
        let mut seen = HashSet::with_capacity(awards.len());
        for a in &awards {
            if !seen.insert(a.award_id) {
                return Err(StrategyError::DuplicateAward(a.award_id));
            }
        }
        let sum: u64 = awards.iter().map(|a| a.rate.units()).sum();
        if sum > RATE_UNITS {
            return Err(StrategyError::RateSumAboveOne {
                sum: rust_decimal::Decimal::new(sum as i64, crate::RATE_SCALE).normalize(),
            });
        }
        if sum == 0 {
            return Err(StrategyError::AllRatesZero);
        }
        if let Some(f) = fallback
            && !seen.contains(&f)
        {
            return Err(StrategyError::UnknownFallback(f));
        }
        Ok(Self {
            id,
            mode,
            awards,
            fallback,
        })
    }

    pub fn id(&self) -> StrategyId {
        self.id
    }

    pub fn mode(&self) -> DrawMode {
        self.mode
    }

    pub fn awards(&self) -> &[StrategyAward] {
        &self.awards
    }

    pub fn fallback(&self) -> Option<AwardId> {
        self.fallback
    }

    pub fn award(&self, id: AwardId) -> Option<&StrategyAward> {
        self.awards.iter().find(|a| a.award_id == id)
    }

    /// Position of an award in [`Self::awards`], used for availability sets.
    pub fn position(&self, id: AwardId) -> Option<usize> {
        self.awards.iter().position(|a| a.award_id == id)
    }

    /// The chance of winning nothing in single mode when every award is in stock.
    pub fn no_prize_rate(&self) -> Rate {
        let sum: u64 = self.awards.iter().map(|a| a.rate.units()).sum();
        Rate::from_units(RATE_UNITS - sum).unwrap_or(Rate::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn award(id: i64, rate: &str) -> StrategyAward {
        StrategyAward {
            award_id: AwardId::new(id).expect("id"),
            rate: rate.parse().expect("rate"),
            count: 10,
        }
    }

    fn sid() -> StrategyId {
        StrategyId::new(1).expect("id")
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(
            Strategy::new(sid(), DrawMode::Single, vec![], None),
            Err(StrategyError::Empty)
        );
        assert_eq!(
            Strategy::new(
                sid(),
                DrawMode::Single,
                vec![award(1, "0.1"), award(1, "0.2")],
                None
            ),
            Err(StrategyError::DuplicateAward(AwardId::new(1).expect("id")))
        );
        assert!(matches!(
            Strategy::new(
                sid(),
                DrawMode::Single,
                vec![award(1, "0.6"), award(2, "0.4001")],
                None
            ),
            Err(StrategyError::RateSumAboveOne { .. })
        ));
        assert_eq!(
            Strategy::new(sid(), DrawMode::Entirety, vec![award(1, "0")], None),
            Err(StrategyError::AllRatesZero)
        );
        assert_eq!(
            Strategy::new(
                sid(),
                DrawMode::Single,
                vec![award(1, "0.5")],
                AwardId::new(9).ok()
            ),
            Err(StrategyError::UnknownFallback(AwardId::new(9).expect("id")))
        );
        let many = (1..=129).map(|i| award(i, "0.001")).collect();
        assert!(matches!(
            Strategy::new(sid(), DrawMode::Single, many, None),
            Err(StrategyError::TooManyAwards { .. })
        ));
        assert_eq!(
            "lottery".parse::<DrawMode>(),
            Err(StrategyError::UnknownMode("lottery".into()))
        );
    }

    #[test]
    fn a_full_strategy_is_valid() {
        let s = Strategy::new(
            sid(),
            DrawMode::Single,
            vec![award(1, "0.0005"), award(2, "0.9995"), award(3, "0")],
            AwardId::new(3).ok(),
        )
        .expect("valid");
        assert_eq!(s.no_prize_rate(), Rate::ZERO);
        assert_eq!(s.position(AwardId::new(2).expect("id")), Some(1));
    }
}
