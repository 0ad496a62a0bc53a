//! Id generators.
//!
//! - [`Snowflake`]: 64-bit time-ordered ids (41 bits of milliseconds since 2024-01-01 UTC,
//!   10 bits of worker id, 12 bits of sequence) for takes, orders, awards and trees.
//! - [`ShortCode`]: `YYMMDD` plus six random digits, for activity ids.
//! - [`RandomNumber11`]: random 11-digit numbers, for strategy ids.
//!
//! [`IdSource`] is the port the application uses; [`Generators`] wires the three together.
//! [`WorkerLeases`] is the port through which instances lease unique worker ids.

mod error;
mod lease;
mod random;
mod snowflake;
mod source;

pub use error::IdGenError;
pub use lease::{AcquiredWorker, WorkerLeases};
pub use random::{RandomNumber11, ShortCode};
pub use snowflake::{
    EPOCH_MILLIS, MAX_SEQUENCE, MAX_TIMESTAMP, MAX_WORKER_ID, SEQUENCE_BITS, Snowflake,
    SnowflakeParts, TIMESTAMP_BITS, Validity, WORKER_BITS, epoch,
};
pub use source::{Generators, IdSource};
