//! A Redis Cluster of a test's own: `masters` masters (and `replicas` replicas of each) started
//! with `redis-server --cluster-enabled yes` on free loopback ports in a temporary directory,
//! joined with `redis-cli --cluster create`, stopped when dropped. For the cluster-mode stock
//! store, and for failovers that must not touch anything shared.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long a node may be silent before the others fail it over. Short, so a killed master
/// is replaced within seconds; not shorter, so a node starved of CPU on a busy two-core
/// machine is not failed over by mistake.
const NODE_TIMEOUT_MS: u32 = 2_000;

#[derive(Debug)]
struct Node {
    port: u16,
    child: Option<Child>,
}

/// A running private Redis Cluster.
#[derive(Debug)]
pub struct PrivateRedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

fn tool_error(tool: &str, e: &io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot run {tool} (Debian: apt-get install redis-server redis-tools): {e}"),
    )
}

impl PrivateRedisCluster {
    /// Starts `masters` masters (at least 3, as Redis Cluster requires) with `replicas`
    /// replicas each and waits until every slot is served and every replica is in sync.
    ///
    /// # Errors
    /// When `redis-server` or `redis-cli` is missing, or the cluster is not up within 30 s.
    pub async fn start(masters: usize, replicas: usize) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut cluster = Self {
            nodes: Vec::new(),
            _dir: dir,
        };
        // Every port (client and bus) chosen before any node starts, all distinct: a node
        // binds its ports a moment after it starts, so one chosen later could meet them.
        let count = masters * (1 + replicas);
        let mut ports = Vec::with_capacity(2 * count);
        while ports.len() < 2 * count {
            let port = free_port()?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        for pair in ports.chunks(2) {
            let node = start_node(cluster._dir.path(), pair[0], pair[1])?;
            cluster.nodes.push(node);
        }
        for port in cluster.ports() {
            wait_for(&format!("node {port} answers"), move || async move {
                Ok(cli(port, &["PING"]).await?.trim() == "PONG")
            })
            .await?;
        }
        cluster.create(replicas).await?;
        cluster.wait_until_healthy().await?;
        Ok(cluster)
    }

    async fn create(&self, replicas: usize) -> io::Result<()> {
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(self.ports().iter().map(|p| format!("127.0.0.1:{p}")));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let out = blocking(move || Command::new("redis-cli").args(&args).output())
            .await
            .map_err(|e| tool_error("redis-cli", &e))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        Ok(())
    }

    /// Every node's port, masters and replicas alike, dead ones included.
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The URL of the first node: the `url` of a cluster configuration.
    #[must_use]
    pub fn url(&self) -> String {
        self.seeds()[0].clone()
    }

    /// Every node's URL, to seed a client with.
    #[must_use]
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// Runs `redis-cli -p <port> <args>` and returns what it prints.
    ///
    /// # Errors
    /// When `redis-cli` cannot run.
    pub async fn command(&self, port: u16, args: &[&str]) -> io::Result<String> {
        cli(port, args).await
    }

    /// The port of the master serving `key`'s slot now.
    ///
    /// # Errors
    /// When no live node answers or none serves the slot.
    pub async fn master_of(&self, key: &str) -> io::Result<u16> {
        let port = self.any_live_port()?;
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .await?
            .trim()
            .parse()
            .map_err(io::Error::other)?;
        let nodes = cli(port, &["CLUSTER", "NODES"]).await?;
        nodes
            .lines()
            .map(NodeLine::parse)
            .find(|n| n.is_live_master() && n.serves(slot))
            .map(|n| n.port)
            .ok_or_else(|| io::Error::other(format!("no master serves slot {slot}")))
    }

    /// The port of a live replica of the master at `master`, waiting (up to 30 s) for one
    /// to attach, as a demoted master does a moment after a failover.
    ///
    /// # Errors
    /// When the master has no live replica by then.
    pub async fn replica_of(&self, master: u16) -> io::Result<u16> {
        let started = Instant::now();
        loop {
            match self.replica_now(master).await {
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    tracing::debug!(error = %e, "waiting for a replica");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn replica_now(&self, master: u16) -> io::Result<u16> {
        let nodes = cli(master, &["CLUSTER", "NODES"]).await?;
        let lines: Vec<NodeLine> = nodes.lines().map(NodeLine::parse).collect();
        let id = lines
            .iter()
            .find(|n| n.port == master)
            .map(|n| n.id.clone())
            .ok_or_else(|| io::Error::other(format!("node {master} is not listed")))?;
        lines
            .iter()
            .find(|n| n.master_id == id && n.flags.contains("slave") && !n.flags.contains("fail"))
            .map(|n| n.port)
            .ok_or_else(|| io::Error::other(format!("master {master} has no live replica")))
    }

    /// Promotes the replica at `replica`: `mode` `None` is a coordinated failover (the master
    /// stops, the replica catches up, nothing acknowledged is lost); `Some("TAKEOVER")`
    /// promotes it at once, without the master's consent, as after a partition: writes the
    /// master acknowledged that had not reached the replica are lost. Waits until the
    /// replica serves as master and the cluster is healthy again.
    ///
    /// # Errors
    /// When the failover is refused or does not complete within 30 s.
    pub async fn failover(&self, replica: u16, mode: Option<&str>) -> io::Result<()> {
        let mut args = vec!["CLUSTER", "FAILOVER"];
        args.extend(mode);
        let answer = cli(replica, &args).await?;
        if !answer.trim().eq_ignore_ascii_case("OK") {
            return Err(io::Error::other(format!("CLUSTER FAILOVER: {answer}")));
        }
        wait_for("the replica to become master", move || async move {
            Ok(cli(replica, &["ROLE"]).await?.starts_with("master"))
        })
        .await?;
        self.wait_until_healthy().await
    }

    /// Kills the node at `port` (SIGKILL: no goodbye to the others).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port)
            && let Some(mut child) = node.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every live node sees every slot served and every live replica is in
    /// sync with its master.
    ///
    /// # Errors
    /// When that does not happen within 30 s.
    pub async fn wait_until_healthy(&self) -> io::Result<()> {
        for port in self.live_ports() {
            wait_for(
                &format!("node {port} to see the cluster healthy"),
                move || async move {
                    let info = cli(port, &["CLUSTER", "INFO"]).await?;
                    Ok(
                        info.contains("cluster_state:ok")
                            && info.contains("cluster_slots_ok:16384"),
                    )
                },
            )
            .await?;
            wait_for(&format!("node {port} to be in sync"), move || async move {
                let info = cli(port, &["INFO", "replication"]).await?;
                Ok(info.contains("role:master") || info.contains("master_link_status:up"))
            })
            .await?;
        }
        Ok(())
    }

    fn any_live_port(&self) -> io::Result<u16> {
        self.live_ports()
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("every node is dead"))
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    master_id: String,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn parse(line: &str) -> Self {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or_default();
        let address = field(1).split(['@', ',']).next().unwrap_or_default();
        let port = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0);
        let slots = fields
            .iter()
            .skip(8)
            .filter_map(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                Some((from.parse().ok()?, to.parse().ok()?))
            })
            .collect();
        Self {
            id: field(0).to_owned(),
            port,
            flags: field(2).to_owned(),
            master_id: field(3).to_owned(),
            slots,
        }
    }

    fn is_live_master(&self) -> bool {
        self.flags.contains("master") && !self.flags.contains("fail")
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&slot))
    }
}

fn start_node(dir: &Path, port: u16, bus: u16) -> io::Result<Node> {
    let data = dir.join(port.to_string());
    std::fs::create_dir_all(&data)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus.to_string(),
        ])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| tool_error("redis-server", &e))?;
    Ok(Node {
        port,
        child: Some(child),
    })
}

/// `redis-cli -p <port> <args>`'s output (raw, one reply per line).
async fn cli(port: u16, args: &[&str]) -> io::Result<String> {
    let mut command = Command::new("redis-cli");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let out = blocking(move || command.output())
        .await
        .map_err(|e| tool_error("redis-cli", &e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Polls `check` every 100 ms for up to 30 s.
async fn wait_for<F, Fut>(what: &str, check: F) -> io::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<bool>>,
{
    let started = Instant::now();
    loop {
        let last = check().await;
        if matches!(last, Ok(true)) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("waited 30 s for {what}: {last:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
