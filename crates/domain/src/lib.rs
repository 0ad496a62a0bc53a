//! Value types shared by every domain crate (ids, user ids, the repository error and its
//! cause) and the clock port.
//!
//! Nothing here performs I/O: adapters in the infrastructure crates implement the ports.

mod clock;
mod error;
mod id;
mod user;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Cause, Chain, RepoError, RepoResult};
pub use id::{ActivityId, AwardId, IdError, OrderId, StrategyId, TakeId, TreeId};
pub use user::{UserId, UserIdError};
