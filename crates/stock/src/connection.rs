//! The connection to Redis that the stock ledger and the draw rate limit share: one server
//! through one multiplexed connection taken from a pool, or a Redis Cluster through the
//! cluster client (one multiplexed connection per node, commands routed by their keys' slot).
//! Every wait is bounded, and every failure or timeout is [`StockError::Unavailable`] with its
//! cause.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster::ClusterClientBuilder;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use deadpool_redis::redis::{self, AsyncConnectionConfig, Cmd, RedisFuture, Value};
use deadpool_redis::{Manager, Pool, Runtime, Timeouts};
use lottery_activity::StockError;
use tracing::debug;

/// Where Redis is: one server, or the seed nodes of a cluster (any one that answers is
/// enough; the client learns the rest of the cluster from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Server(String),
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// Every URL: the server's, or the seeds in order.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        match self {
            Self::Server(url) => vec![url.clone()],
            Self::Cluster(seeds) => seeds.clone(),
        }
    }
}

/// Which client carries the commands.
#[derive(Clone)]
enum Backend {
    Server(Shared),
    Cluster(ClusterConnection),
}

/// One server: every operation goes over one multiplexed connection, so concurrent commands
/// share its socket and are written and read in batches, as the cluster client does per
/// node. The pool only supplies a healthy connection: taking one from it costs a round trip
/// (its health check), which an operation must not pay each time. A connection that fails
/// is taken out of the pool and closed (its lost replies would answer later commands), and
/// the next operation takes a checked one from the pool.
#[derive(Clone)]
struct Shared {
    pool: Pool,
    /// Held out of the pool while it serves.
    current: Arc<Mutex<Option<deadpool_redis::Connection>>>,
}

impl Shared {
    fn new(pool: Pool) -> Self {
        Self {
            pool,
            current: Arc::new(Mutex::new(None)),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<deadpool_redis::Connection>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forget(&self) {
        let failed = self.slot().take();
        // Out of the pool for good: dropped, it closes once the handles still out are done.
        drop(failed.map(deadpool_redis::Connection::take));
    }
}

/// A shared, cheaply cloned handle on the platform's Redis.
#[derive(Clone)]
pub struct RedisConnection {
    backend: Backend,
    timeout: Duration,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Server(_) => "server",
            Backend::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisConnection")
            .field("kind", &kind)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StockError {
    let cause = e.to_string();
    // Callers report it (rate-limited); a line per failed call would drown the log.
    debug!(%cause, "Redis unavailable");
    StockError::Unavailable(cause)
}

/// The default bound on every wait.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisConnection {
    /// Connects and checks with a PING that Redis answers, so a wrong URL or a down Redis
    /// shows at start-up rather than at the first draw. On a single server every operation
    /// shares one multiplexed connection; `pool_size` bounds the connections open while a
    /// failed one is replaced. A cluster connection is multiplexed (one connection per node)
    /// and needs no pool.
    pub async fn connect(
        target: &RedisTarget,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StockError> {
        let connection = match target {
            RedisTarget::Server(url) => Self::from_pool(server_pool(url, pool_size, timeout)?),
            RedisTarget::Cluster(seeds) => Self::cluster(seeds, timeout).await?,
        }
        .with_timeout(timeout);
        let pong: String = connection.query(&redis::cmd("PING")).await?;
        debug!(%pong, ?target, "Redis connected");
        Ok(connection)
    }

    async fn cluster(seeds: &[String], timeout: Duration) -> Result<Self, StockError> {
        // The client's own connect and response bounds follow the setting too, and its
        // retries (redirections after a failover, a node reconnecting) are quick and few:
        // the whole operation stays within the same bound.
        let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(4)
            .min_retry_wait(20)
            .max_retry_wait(400)
            .build()
            .map_err(unavailable)?;
        let connection = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| {
                StockError::Unavailable(format!(
                    "no Redis Cluster seed answered within {timeout:?}"
                ))
            })?
            .map_err(unavailable)?;
        Ok(Self {
            backend: Backend::Cluster(connection),
            timeout,
        })
    }

    /// Uses a pool built elsewhere (its timeouts are the caller's); each operation is still
    /// bounded, by 2 s unless [`with_timeout`](Self::with_timeout).
    #[must_use]
    pub fn from_pool(pool: Pool) -> Self {
        Self {
            backend: Backend::Server(Shared::new(pool)),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds getting a connection, and then each operation, by `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether this is a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    pub(crate) async fn conn(&self) -> Result<Conn, StockError> {
        let shared = match &self.backend {
            Backend::Server(shared) => shared,
            Backend::Cluster(c) => return Ok(Conn::Cluster(c.clone())),
        };
        if let Some(c) = shared.slot().as_ref() {
            return Ok(Conn::Server((**c).clone()));
        }
        // Bounded here too: a pool from `from_pool` may have no wait timeout. Operations
        // arriving together may each take one; one is kept, the others go back to the pool.
        let pooled = self.within(shared.pool.get()).await?.map_err(unavailable)?;
        let c = (*pooled).clone();
        let mut slot = shared.slot();
        if slot.is_none() {
            *slot = Some(pooled);
        }
        Ok(Conn::Server(c))
    }

    /// Runs one operation on a connection, bounded; a connection that failed or went
    /// silent is not used again.
    async fn on_conn<T, F>(&self, op: F) -> Result<T, StockError>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let mut conn = self.conn().await?;
        let result = self.within(op(&mut conn)).await;
        let broken = match &result {
            Err(_) => true,
            Ok(Err(e)) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error()
            }
            Ok(Ok(_)) => false,
        };
        if broken && let Backend::Server(shared) = &self.backend {
            shared.forget();
        }
        result?.map_err(unavailable)
    }

    pub(crate) async fn within<T>(
        &self,
        f: impl std::future::Future<Output = T>,
    ) -> Result<T, StockError> {
        tokio::time::timeout(self.timeout, f).await.map_err(|_| {
            StockError::Unavailable(format!("no answer from Redis within {:?}", self.timeout))
        })
    }

    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, StockError> {
        self.on_conn(async |conn| inv.invoke_async(conn).await)
            .await
    }

    pub(crate) async fn pipe<T: redis::FromRedisValue>(
        &self,
        p: &redis::Pipeline,
    ) -> Result<T, StockError> {
        self.on_conn(async |conn| p.query_async(conn).await).await
    }

    /// One command, bounded like every other operation.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StockError> {
        self.on_conn(async |conn| cmd.query_async(conn).await).await
    }

    /// A keyless command's reply from every master (one server: its one reply). Settings
    /// are per node, and a cluster's commands without keys go to one node at random.
    pub(crate) async fn on_every_master(&self, cmd: &Cmd) -> Result<Vec<Value>, StockError> {
        let mut cluster = match &self.backend {
            Backend::Server(_) => return Ok(vec![self.query::<Value>(cmd).await?]),
            Backend::Cluster(c) => c.clone(),
        };
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let reply = self
            .within(cluster.route_command(cmd.clone(), routing))
            .await?
            .map_err(unavailable)?;
        // Without a response policy the client answers a map of node address to reply.
        match reply {
            Value::Map(entries) => Ok(entries.into_iter().map(|(_, v)| v).collect()),
            other => Ok(vec![other]),
        }
    }
}

fn server_pool(url: &str, pool_size: usize, timeout: Duration) -> Result<Pool, StockError> {
    // The client's own connect and response timeouts follow the setting too (its defaults
    // are 1 s and 0.5 s), so one setting bounds every wait.
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let manager = Manager::new_with_config(url, connection).map_err(unavailable)?;
    Pool::builder(manager)
        .max_size(pool_size.max(1))
        .timeouts(Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        })
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(unavailable)
}

/// One operation's handle on the shared multiplexed connection (one server) or on the
/// cluster connection.
pub(crate) enum Conn {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A plain (non-cluster) connection to one node, for what must be done node by node:
/// subscribing to the change feed.
pub(crate) async fn node_connection(
    url: &str,
    timeout: Duration,
) -> Result<MultiplexedConnection, StockError> {
    let client = redis::Client::open(url).map_err(unavailable)?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| StockError::Unavailable(format!("no answer from {url} within {timeout:?}")))?
    .map_err(unavailable)
}
