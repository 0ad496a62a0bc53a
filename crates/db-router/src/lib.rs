//! Sharded database router over sqlx.
//!
//! A string key (such as a user id) is hashed with Java's `String.hashCode()`
//! and mapped to one of `db_count` shard databases and one of `tb_count`
//! tables inside it; see [`Spread::route`] for the formula. [`Router`] holds
//! one [`sqlx::AnyPool`] per shard plus one for a global (unsharded)
//! database, and works with MariaDB/MySQL or SQLite.
//!
//! The crate knows nothing about what is stored: callers build table names
//! with [`Route::table`] and write their own SQL, using [`Dialect`] for the few
//! places where MariaDB and SQLite differ.

pub mod cli;
mod config;
mod dialect;
mod error;
mod router;
mod settings;
mod spread;

pub use config::RouterConfig;
pub use dialect::{Dialect, redact_url};
pub use error::RouterError;
pub use router::Router;
pub use settings::DatabaseConfig;
pub use spread::{Route, Spread, java_string_hash};
