use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwardKindError {
    #[error(
        "award type must be 1 to 32 characters of a-z, 0-9 and '_', starting with a letter; got {0:?}"
    )]
    Invalid(String),
}

/// The kind of an award ("description", "coupon", or one a developer adds, such as "points").
///
/// An open set rather than an enum, so new kinds need no change here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AwardKind(Cow<'static, str>);

impl AwardKind {
    /// A text shown to the winner.
    pub const DESCRIPTION: AwardKind = AwardKind(Cow::Borrowed("description"));
    /// A code the winner redeems elsewhere.
    pub const REDEEM_CODE: AwardKind = AwardKind(Cow::Borrowed("redeem_code"));
    /// A coupon issued to the winner's account.
    pub const COUPON: AwardKind = AwardKind(Cow::Borrowed("coupon"));
    /// Physical goods shipped to an address.
    pub const PHYSICAL: AwardKind = AwardKind(Cow::Borrowed("physical"));

    pub fn new(raw: impl Into<String>) -> Result<Self, AwardKindError> {
        let raw = raw.into();
        let valid = (1..=32).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(Cow::Owned(raw)))
        } else {
            Err(AwardKindError::Invalid(raw))
        }
    }

    /// For kinds known at compile time, e.g. `AwardKind::from_static("points")`.
    ///
    /// Panics on an invalid name, which is a programming error caught by the first test run.
    pub const fn from_static(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() <= 32, "award kind length");
        assert!(
            bytes[0].is_ascii_lowercase(),
            "award kind must start with a-z"
        );
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            assert!(
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_',
                "award kind chars"
            );
            i += 1;
        }
        Self(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AwardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AwardKind {
    type Err = AwardKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for AwardKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_validated() {
        assert_eq!(AwardKind::new("coupon"), Ok(AwardKind::COUPON));
        assert!(AwardKind::new("").is_err());
        assert!(AwardKind::new("Coupon").is_err());
        assert!(AwardKind::new("9lives").is_err());
        assert!(AwardKind::new("a".repeat(33)).is_err());
        assert_eq!(AwardKind::from_static("points").as_str(), "points");
    }
}
