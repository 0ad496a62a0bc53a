//! Configuration changes announced over Redis pub/sub, so every instance's cache drops a
//! changed activity at once.
//!
//! On a Redis Cluster a `PUBLISH` to any node reaches the subscribers of every node (the
//! cluster bus broadcasts it), so both sides use a plain connection to one node: the
//! announcer the first seed that answers, the listener one node at a time. The listener
//! pings its node and moves on to another (the seeds, then every node the cluster lists)
//! when the node dies, hangs or leaves, resyncing after each move since announcements made
//! meanwhile are lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands, Value};
use futures::StreamExt;
use lottery_activity::{ChangeFeed, StockError};
use lottery_domain::ActivityId;
use tracing::{debug, warn};

use crate::connection::{DEFAULT_TIMEOUT, RedisTarget, node_connection, unavailable};

/// How often the listener checks that its node still answers: a node that hangs (or a
/// network path that drops every byte) ends no connection by itself.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Publishes and listens on one channel.
#[derive(Clone)]
pub struct RedisChangeFeed {
    /// The server, or the cluster's seed nodes.
    seeds: Vec<String>,
    cluster: bool,
    channel: String,
    timeout: Duration,
    /// The seed that answered the last announcement, tried first next time.
    preferred: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RedisChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChangeFeed")
            .field("channel", &self.channel)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl RedisChangeFeed {
    /// The feed on one Redis server.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StockError> {
        Self::for_target(&RedisTarget::Server(url.to_owned()), prefix)
    }

    /// The feed on a server or a cluster; the URLs are checked, nothing is connected yet.
    pub fn for_target(target: &RedisTarget, prefix: &str) -> Result<Self, StockError> {
        let seeds = target.urls();
        for url in &seeds {
            redis::Client::open(url.as_str()).map_err(unavailable)?;
        }
        if seeds.is_empty() {
            return Err(StockError::Unavailable(
                "no Redis node to connect to".into(),
            ));
        }
        Ok(Self {
            seeds,
            cluster: matches!(target, RedisTarget::Cluster(_)),
            channel: format!("{prefix}:config-changes"),
            timeout: DEFAULT_TIMEOUT,
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Bounds connecting, subscribing, each heartbeat and each announcement (2 s unless set).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Listens until the task is dropped: `changed(id)` for each announcement, and `resync()`
    /// after every (re)subscription, since announcements made while disconnected are lost.
    pub fn listen(
        &self,
        changed: impl Fn(ActivityId) + Send + Sync + 'static,
        resync: impl Fn() + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let feed = self.clone();
        let handlers = Handlers {
            changed: Box::new(changed),
            resync: Box::new(resync),
        };
        tokio::spawn(async move { feed.listen_forever(&handlers).await })
    }

    async fn listen_forever(&self, handlers: &Handlers) {
        let mut nodes = self.seeds.clone();
        let mut next = 0usize;
        let mut failed_in_a_row = 0usize;
        let mut delay = Duration::from_millis(200);
        loop {
            let url = nodes[next % nodes.len()].clone();
            match self.session(&url, handlers, &mut nodes).await {
                Ok(()) => {
                    warn!(node = %redact(&url), "config change feed: lost its Redis node; subscribing again");
                    failed_in_a_row = 0;
                    delay = Duration::from_millis(200);
                }
                Err(e) => {
                    debug!(node = %redact(&url), error = %e, "config change feed: cannot subscribe");
                    failed_in_a_row += 1;
                }
            }
            // The next node; after a whole round of failures, back off.
            next = (next + 1) % nodes.len();
            if failed_in_a_row >= nodes.len() {
                warn!(
                    nodes = nodes.len(),
                    "config change feed: no Redis node answers"
                );
                failed_in_a_row = 0;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One subscription on the node at `url`, until it ends. `Ok` once it was subscribed
    /// (and later lost); the error when it never was. On a cluster, adds the nodes the
    /// cluster lists to `nodes`, so the listener can move on when the seeds are gone.
    async fn session(
        &self,
        url: &str,
        handlers: &Handlers,
        nodes: &mut Vec<String>,
    ) -> Result<(), StockError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let pubsub = self
            .bounded(client.get_async_pubsub())
            .await?
            .map_err(unavailable)?;
        let (mut sink, mut messages) = pubsub.split();
        self.bounded(sink.subscribe(&self.channel))
            .await?
            .map_err(unavailable)?;
        if self.cluster {
            self.learn_nodes(url, nodes).await;
        }
        (handlers.resync)();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => handlers.deliver(&message),
                    None => return Ok(()),
                },
                _ = heartbeat.tick() => {
                    if !matches!(self.bounded(sink.ping::<Value>()).await, Ok(Ok(_))) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Adds the cluster's live nodes (as `CLUSTER NODES` on `url` lists them) to `nodes`.
    async fn learn_nodes(&self, url: &str, nodes: &mut Vec<String>) {
        let Ok(mut conn) = node_connection(url, self.timeout).await else {
            return;
        };
        let listed = self
            .bounded(
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async::<String>(&mut conn),
            )
            .await;
        let Ok(Ok(listed)) = listed else { return };
        for address in live_node_addresses(&listed) {
            let node = with_address(url, &address);
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
    }

    async fn bounded<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T, StockError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| StockError::Unavailable("Redis did not answer".into()))
    }

    async fn publish(&self, url: &str, activity: ActivityId) -> Result<(), StockError> {
        let mut conn = node_connection(url, self.timeout).await?;
        let _: i64 = self
            .bounded(conn.publish(&self.channel, activity.to_string()))
            .await?
            .map_err(unavailable)?;
        Ok(())
    }
}

/// What the listener calls.
struct Handlers {
    changed: Box<dyn Fn(ActivityId) + Send + Sync>,
    resync: Box<dyn Fn() + Send + Sync>,
}

impl Handlers {
    fn deliver(&self, message: &redis::Msg) {
        let payload: String = message.get_payload().unwrap_or_default();
        match payload.parse::<ActivityId>() {
            Ok(id) => {
                debug!(activity = %id, "configuration changed elsewhere");
                (self.changed)(id);
            }
            Err(_) => warn!(payload, "config change feed: ignoring a malformed message"),
        }
    }
}

#[async_trait::async_trait]
impl ChangeFeed for RedisChangeFeed {
    /// Publishes on the seed that answered last, else on the others in turn: any node
    /// of a cluster broadcasts it to all.
    async fn announce(&self, activity: ActivityId) -> Result<(), StockError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..self.seeds.len() {
            let at = (first + i) % self.seeds.len();
            match self.publish(&self.seeds[at], activity).await {
                Ok(()) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| StockError::Unavailable("no Redis node".into())))
    }
}

/// `host:port` of every node that `CLUSTER NODES` lists as reachable.
fn live_node_addresses(listed: &str) -> Vec<String> {
    listed
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            if ["fail", "noaddr", "handshake"]
                .iter()
                .any(|bad| flags.split(',').any(|f| f.starts_with(bad)))
            {
                return None;
            }
            // `ip:port@cport[,hostname]`; a node that knows no address of its own lists none.
            let address = address.split(['@', ',']).next()?;
            let (host, _) = address.rsplit_once(':')?;
            (!host.is_empty()).then(|| address.to_owned())
        })
        .collect()
}

/// `url` pointing at `address` (`host:port`), keeping its scheme, credentials and options.
fn with_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let credentials = authority
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    let address = match address.rsplit_once(':') {
        Some((host, port)) if host.contains(':') => format!("[{host}]:{port}"),
        _ => address.to_owned(),
    };
    format!("{scheme}://{credentials}{address}{path}")
}

/// A URL for the log: without its credentials.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_learns_the_live_nodes() {
        let listed = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,redis-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 connected
d4 :0@0 slave,noaddr a1 0 0 1 disconnected
f6 :7006@17006 myself,slave a1 0 0 1 connected
e5 ::1:7005@17005 slave b2 0 0 2 connected
";
        assert_eq!(
            live_node_addresses(listed),
            vec!["127.0.0.1:7001", "127.0.0.1:7002", "::1:7005"]
        );
    }

    #[test]
    fn a_learnt_node_keeps_the_seeds_credentials() {
        assert_eq!(
            with_address(
                "redis://:pw@10.0.0.1:7000/0?protocol=resp2",
                "10.0.0.2:7001"
            ),
            "redis://:pw@10.0.0.2:7001/0?protocol=resp2"
        );
        assert_eq!(
            with_address("rediss://10.0.0.1:7000", "::1:7001"),
            "rediss://[::1]:7001"
        );
        assert_eq!(redact("redis://u:pw@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }
}
