//! Awards (prize definitions), grants (a prize owed to a winner) and distribution.
//!
//! Every award has a kind. Each kind is served by one [`AwardDistributor`], looked up in an
//! [`AwardRegistry`]. Adding a prize kind means implementing that one trait and registering
//! it at the composition root; no other crate changes (see `docs/extending-awards.md`).

mod builtin;
mod grant;
mod kind;
mod model;
mod port;
mod registry;

pub use builtin::{
    CouponDistributor, DescriptionDistributor, PhysicalDistributor, RedeemCodeDistributor,
};
pub use grant::{
    AddressError, AddressField, AddressProblem, Delivery, DistributeError, Grant, GrantState,
    GrantStateError, ShippingAddress,
};
pub use kind::{AwardKind, AwardKindError};
pub use model::{Award, AwardError};
pub use port::{AwardDistributor, AwardRepository};
pub use registry::{AwardRegistry, RegistryError};

// Compile and run the examples of the extension guide as doctests, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/extending-awards.md")]
pub struct ExtendingAwardsGuide;
