use lottery_domain::AwardId;
use serde::{Deserialize, Serialize};

use crate::AwardKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwardError {
    #[error("award name must be 1 to {max} characters")]
    BadName { max: usize },
    #[error("award content must be at most {max} characters")]
    ContentTooLong { max: usize },
    #[error("award type {0} has no distributor registered")]
    UnknownKind(AwardKind),
    #[error("invalid content for a {kind} award: {reason}")]
    BadContent { kind: AwardKind, reason: String },
}

/// A prize definition: what the winner gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    pub id: AwardId,
    pub kind: AwardKind,
    pub name: String,
    /// Kind-specific content: the text, the code batch, the coupon template, the goods' SKU...
    pub content: String,
}

impl Award {
    pub const MAX_NAME: usize = 128;
    pub const MAX_CONTENT: usize = 1024;

    /// Checks the fields every kind shares; kind-specific checks live in the distributor
    /// (see [`crate::AwardRegistry::validate`]).
    pub fn new(
        id: AwardId,
        kind: AwardKind,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Result<Self, AwardError> {
        let name = name.into();
        let content = content.into();
        let name_len = name.trim().chars().count();
        if name_len == 0 || name.chars().count() > Self::MAX_NAME {
            return Err(AwardError::BadName {
                max: Self::MAX_NAME,
            });
        }
        if content.chars().count() > Self::MAX_CONTENT {
            return Err(AwardError::ContentTooLong {
                max: Self::MAX_CONTENT,
            });
        }
        Ok(Self {
            id,
            kind,
            name,
            content,
        })
    }
}
