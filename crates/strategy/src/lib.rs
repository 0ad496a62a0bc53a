//! Draw strategies.
//!
//! A strategy lists awards, each with an exact [`Rate`] and a prize count. Two modes:
//! - [`DrawMode::Single`]: every award keeps its own probability whatever the others' stock;
//!   the rates' remainder up to 1 means "no prize", and drawing an out-of-stock award is a miss.
//! - [`DrawMode::Entirety`]: out-of-stock awards are removed and the remaining rates are rescaled
//!   to sum to 1; with none left the draw is a miss.
//!
//! [`Drawer`] precomputes alias tables so that each draw is O(1); the random source is passed in.

mod alias;
mod draw;
mod model;
mod port;
mod rate;

pub use alias::AliasTable;
pub use draw::{Draw, Drawer, OutOfStock};
pub use model::{DrawMode, Strategy, StrategyAward, StrategyError};
pub use port::StrategyRepository;
pub use rate::{RATE_SCALE, RATE_UNITS, Rate, RateError};
