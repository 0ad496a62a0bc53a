use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a user id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("user id must not be empty")]
    Empty,
    #[error("user id is longer than {max} characters")]
    TooLong { max: usize },
    #[error("user id must not contain control characters or surrounding spaces")]
    BadCharacters,
}

/// The end user's id as the campaign owner knows it (an opaque string, also the shard key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub const MAX_CHARS: usize = 64;

    pub fn new(raw: impl Into<String>) -> Result<Self, UserIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(UserIdError::Empty);
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(UserIdError::TooLong {
                max: Self::MAX_CHARS,
            });
        }
        if raw.chars().any(char::is_control) || raw.trim() != raw {
            return Err(UserIdError::BadCharacters);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::new(raw).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&str> for UserId {
    type Error = UserIdError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_validated() {
        assert_eq!(UserId::new(""), Err(UserIdError::Empty));
        assert_eq!(UserId::new(" bob"), Err(UserIdError::BadCharacters));
        assert_eq!(UserId::new("a\nb"), Err(UserIdError::BadCharacters));
        assert!(matches!(
            UserId::new("x".repeat(65)),
            Err(UserIdError::TooLong { .. })
        ));
        assert_eq!(
            UserId::new("小傅哥").map(|u| u.to_string()),
            Ok("小傅哥".to_owned())
        );
    }
}
