use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a textual id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be a positive 64-bit integer, got {value:?}")]
    Invalid { kind: &'static str, value: String },
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        ///
        /// Ids are positive `i64`s so that every SQL backend stores them natively; they are
        /// serialised as JSON strings because JavaScript clients lose precision above 2^53.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a raw value; rejects zero and negative values.
            pub fn new(raw: i64) -> Result<Self, IdError> {
                if raw > 0 {
                    Ok(Self(raw))
                } else {
                    Err(IdError::Invalid { kind: $kind, value: raw.to_string() })
                }
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim()
                    .parse::<i64>()
                    .ok()
                    .and_then(|raw| Self::new(raw).ok())
                    .ok_or_else(|| IdError::Invalid { kind: $kind, value: s.to_owned() })
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdError;

            fn try_from(raw: i64) -> Result<Self, Self::Error> {
                Self::new(raw)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Accept both "123" and 123: strings are canonical, numbers are convenient
                // for hand-written requests below 2^53.
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw<'a> {
                    Num(i64),
                    Str(std::borrow::Cow<'a, str>),
                }
                match Raw::deserialize(d)? {
                    Raw::Num(n) => Self::new(n).map_err(serde::de::Error::custom),
                    Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
                }
            }
        }
    };
}

define_id!(
    /// Identifies an activity (a prize-draw campaign).
    ActivityId,
    "activity id"
);
define_id!(
    /// Identifies a draw strategy.
    StrategyId,
    "strategy id"
);
define_id!(
    /// Identifies an award (a prize definition).
    AwardId,
    "award id"
);
define_id!(
    /// Identifies one take (one participation of a user in an activity).
    TakeId,
    "take id"
);
define_id!(
    /// Identifies a win order.
    OrderId,
    "order id"
);
define_id!(
    /// Identifies a rule tree.
    TreeId,
    "tree id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_non_positive_values() {
        assert!(ActivityId::new(0).is_err());
        assert!(ActivityId::new(-5).is_err());
        assert_eq!(ActivityId::new(7).map(ActivityId::get), Ok(7));
    }

    #[test]
    fn ids_serialise_as_strings_and_accept_numbers() {
        let id = OrderId::new(9_007_199_254_740_993).expect("positive");
        let json = serde_json_like(&id);
        assert_eq!(json, "\"9007199254740993\"");
        let back: OrderId = serde_json::from_str("\"9007199254740993\"").expect("string id");
        assert_eq!(back, id);
        let small: OrderId = serde_json::from_str("42").expect("numeric id");
        assert_eq!(small.get(), 42);
        assert!(serde_json::from_str::<OrderId>("\"abc\"").is_err());
        assert!(serde_json::from_str::<OrderId>("-1").is_err());
    }

    fn serde_json_like<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("serialise")
    }
}
