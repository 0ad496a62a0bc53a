//! Test helpers shared by the adapter, fault and end-to-end tests.
//!
//! * [`TcpProxy`]: put between a client and a shared service to simulate the
//!   service going down, or a connection dying mid-transaction, without
//!   touching the service other tests use.
//! * [`Service`]: the local MariaDB / Redis / RabbitMQ; `require()` panics
//!   with a clear message when one is missing, so ignored-by-default service
//!   tests fail loudly under `--run-ignored all` instead of passing.
//! * [`FreshMysql`] / [`FreshSqlite`]: throw-away databases per test.
//! * [`PrivateRedis`]: a Redis server of the test's own, for faults that must
//!   not touch the shared one (flushing it, say).
//! * [`PrivateRedisCluster`]: a Redis Cluster of the test's own (three masters or
//!   more, replicas optional), for the cluster-mode stock store and failovers.
//! * [`unique_name`], [`free_port`]: small building blocks.

mod fresh;
mod names;
mod private_mysql;
mod private_redis;
mod private_redis_cluster;
mod proxy;
mod service;
pub mod url;

pub use fresh::{FreshError, FreshMysql, FreshSqlite};
pub use names::{MAX_PREFIX_LEN, free_port, unique_name};
pub use private_mysql::PrivateMariaDb;
pub use private_redis::PrivateRedis;
pub use private_redis_cluster::PrivateRedisCluster;
pub use proxy::TcpProxy;
pub use service::{REQUIRE_TIMEOUT, Service, Unreachable};
