use std::fmt;
use std::str::FromStr;

use lottery_domain::{OrderId, UserId};
use serde::{Deserialize, Serialize};

use crate::Award;

/// Where a won award stands in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// Won, but the prize can only be delivered to a shipping address the winner has not
    /// given yet: nothing is delivered until they do.
    AwaitingAddress,
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
    #[error("unknown grant state {0:?}; expected awaiting_address, init, complete or failed")]
    Unknown(String),
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingAddress => "awaiting_address",
            Self::Init => "init",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    /// Every state, in the order a grant passes through them.
    pub const ALL: [GrantState; 4] = [
        Self::AwaitingAddress,
        Self::Init,
        Self::Complete,
        Self::Failed,
    ];

    /// Grants only move forward: `awaiting_address` to `init` once the address is given, and
    /// `init` to `complete` or `failed`. A finished grant never changes again, which is what
    /// makes redelivered messages harmless.
    pub fn move_to(self, to: GrantState) -> Result<GrantState, GrantStateError> {
        match (self, to) {
            (Self::AwaitingAddress, Self::Init) | (Self::Init, Self::Complete | Self::Failed) => {
                Ok(to)
            }
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
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| GrantStateError::Unknown(s.to_owned()))
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

/// A field of a [`ShippingAddress`], named as clients send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressField {
    Recipient,
    Phone,
    Line1,
    Line2,
    City,
    Region,
    PostalCode,
    Country,
}

impl AddressField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recipient => "recipient",
            Self::Phone => "phone",
            Self::Line1 => "line1",
            Self::Line2 => "line2",
            Self::City => "city",
            Self::Region => "region",
            Self::PostalCode => "postal_code",
            Self::Country => "country",
        }
    }

    /// The longest accepted value, in characters. Together these keep a delivery message
    /// (the award plus the address) well inside the outbox's payload column and the
    /// shipment's delivery detail inside the order's.
    pub fn max_chars(self) -> usize {
        match self {
            Self::Recipient | Self::City | Self::Region => 128,
            Self::Phone | Self::PostalCode => 32,
            Self::Line1 | Self::Line2 => 256,
            Self::Country => 56,
        }
    }
}

impl fmt::Display for AddressField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a shipping address field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressProblem {
    /// A required field is empty or only whitespace.
    Blank,
    TooShort {
        min: usize,
    },
    TooLong {
        max: usize,
    },
    /// Line breaks, tabs and other control characters have no place on a label.
    ControlCharacter,
}

/// Why a shipping address was refused: the first bad field and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shipping address {field} {problem}")]
pub struct AddressError {
    pub field: AddressField,
    pub problem: AddressProblem,
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blank => f.write_str("is required and must not be blank"),
            Self::TooShort { min } => write!(f, "must be at least {min} characters"),
            Self::TooLong { max } => write!(f, "must be at most {max} characters"),
            Self::ControlCharacter => f.write_str("must not contain control characters"),
        }
    }
}

impl ShippingAddress {
    /// Checks every field, in the order clients send them, and reports the first bad one:
    /// recipient, phone, line1, city and country are required and not blank, country has at
    /// least 2 characters, no field exceeds [`AddressField::max_chars`] or holds control
    /// characters.
    pub fn validate(&self) -> Result<(), AddressError> {
        use AddressField as F;
        let fields = [
            (F::Recipient, Some(&self.recipient), true),
            (F::Phone, Some(&self.phone), true),
            (F::Line1, Some(&self.line1), true),
            (F::Line2, self.line2.as_ref(), false),
            (F::City, Some(&self.city), true),
            (F::Region, self.region.as_ref(), false),
            (F::PostalCode, self.postal_code.as_ref(), false),
            (F::Country, Some(&self.country), true),
        ];
        for (field, value, required) in fields {
            let Some(value) = value else { continue };
            let fail = |problem| Err(AddressError { field, problem });
            if required && value.trim().is_empty() {
                return fail(AddressProblem::Blank);
            }
            if value.chars().any(char::is_control) {
                return fail(AddressProblem::ControlCharacter);
            }
            let max = field.max_chars();
            if value.chars().count() > max {
                return fail(AddressProblem::TooLong { max });
            }
            // Country names or codes: ISO 3166 alpha-2 is the shortest form.
            if field == F::Country && value.trim().chars().count() < 2 {
                return fail(AddressProblem::TooShort { min: 2 });
            }
        }
        Ok(())
    }
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
        use GrantState::*;
        let legal = [(AwaitingAddress, Init), (Init, Complete), (Init, Failed)];
        for from in GrantState::ALL {
            for to in GrantState::ALL {
                if legal.contains(&(from, to)) {
                    assert_eq!(from.move_to(to), Ok(to), "{from} -> {to}");
                } else {
                    assert_eq!(
                        from.move_to(to),
                        Err(GrantStateError::Illegal { from, to }),
                        "{from} -> {to}"
                    );
                }
            }
        }
        // An order awaiting its address is never delivered (or failed) before it has one.
        assert!(AwaitingAddress.move_to(Complete).is_err());
        assert!(AwaitingAddress.move_to(Failed).is_err());
        for s in GrantState::ALL {
            assert_eq!(s.as_str().parse::<GrantState>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
        assert_eq!(AwaitingAddress.as_str(), "awaiting_address");
        assert!(matches!(
            "shipped".parse::<GrantState>(),
            Err(GrantStateError::Unknown(_))
        ));
    }

    fn address() -> ShippingAddress {
        ShippingAddress {
            recipient: "Alice Liddell".into(),
            phone: "+44 20 7946 0000".into(),
            line1: "1 Rabbit Hole".into(),
            line2: None,
            city: "Oxford".into(),
            region: None,
            postal_code: Some("OX1 1AA".into()),
            country: "GB".into(),
        }
    }

    fn refused(a: &ShippingAddress) -> Option<(AddressField, AddressProblem)> {
        a.validate().err().map(|e| (e.field, e.problem))
    }

    #[test]
    fn addresses_name_their_first_bad_field() {
        use AddressField as F;
        use AddressProblem as P;
        assert_eq!(address().validate(), Ok(()));

        let blank = |set: fn(&mut ShippingAddress)| {
            let mut a = address();
            set(&mut a);
            refused(&a)
        };
        assert_eq!(
            blank(|a| a.recipient = " ".into()),
            Some((F::Recipient, P::Blank))
        );
        assert_eq!(
            blank(|a| a.phone = String::new()),
            Some((F::Phone, P::Blank))
        );
        assert_eq!(blank(|a| a.line1 = "\t".into()), Some((F::Line1, P::Blank)));
        assert_eq!(blank(|a| a.city = "  ".into()), Some((F::City, P::Blank)));
        assert_eq!(
            blank(|a| a.country = String::new()),
            Some((F::Country, P::Blank))
        );
        // Optional fields may be left out or empty.
        assert_eq!(blank(|a| a.line2 = Some(String::new())), None);

        assert_eq!(
            blank(|a| a.country = "X".into()),
            Some((F::Country, P::TooShort { min: 2 }))
        );
        assert_eq!(
            blank(|a| a.country = "Y".repeat(57)),
            Some((F::Country, P::TooLong { max: 56 }))
        );
        assert_eq!(
            blank(|a| a.phone = "1".repeat(33)),
            Some((F::Phone, P::TooLong { max: 32 }))
        );
        assert_eq!(
            blank(|a| a.line2 = Some("x".repeat(257))),
            Some((F::Line2, P::TooLong { max: 256 }))
        );
        // Characters, not bytes: 128 CJK characters fit.
        assert_eq!(blank(|a| a.recipient = "傅".repeat(128)), None);
        assert_eq!(
            blank(|a| a.recipient = "傅".repeat(129)),
            Some((F::Recipient, P::TooLong { max: 128 }))
        );
        assert_eq!(
            blank(|a| a.city = "Ox\nford".into()),
            Some((F::City, P::ControlCharacter))
        );
        assert_eq!(
            blank(|a| a.postal_code = Some("OX1\u{0}".into())),
            Some((F::PostalCode, P::ControlCharacter))
        );

        // Several bad fields: the first in the order clients send them is named.
        let mut a = address();
        a.city = String::new();
        a.recipient = String::new();
        let e = a.validate().expect_err("two blank fields");
        assert_eq!(e.field, F::Recipient);
        assert_eq!(
            e.to_string(),
            "shipping address recipient is required and must not be blank"
        );
    }
}
