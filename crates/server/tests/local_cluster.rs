//! `deploy/local-cluster.sh` end to end, on a private state directory and ports: `up` starts
//! four API instances, a worker, a second MariaDB server, HAProxy and Prometheus; draws go
//! round robin through the balancer; an API instance killed with SIGKILL is taken out by
//! HAProxy while requests keep succeeding, and `restart` brings it back; `down` leaves none of
//! the processes it started. The local Redis stands in for Redis Cluster
//! (`LOTTERY_CLUSTER_REDIS=single`). Takes about half a minute on an idle two-core machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{activity_body, open_window};
use lottery_testkit::{Service, unique_name};
use reqwest::{Client, StatusCode};
use serde_json::Value;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local-cluster.sh")
}

/// A cluster of the test's own: `down --purge` when dropped, whatever happened.
struct Cluster {
    dir: tempfile::TempDir,
    port_base: u16,
    name: String,
    mysql: String,
    redis: String,
    amqp: String,
}

impl Cluster {
    /// `deploy/local-cluster.sh ARGS` with this cluster's settings and none of the caller's
    /// other LOTTERY_* variables.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("LOTTERY_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LOTTERY_CLUSTER_DIR", self.state())
            .env("LOTTERY_CLUSTER_PORT_BASE", self.port_base.to_string())
            .env("LOTTERY_CLUSTER_NAME", &self.name)
            .env("LOTTERY_CLUSTER_REDIS", "single")
            .env("LOTTERY_CLUSTER_REDIS_URL", &self.redis)
            .env("LOTTERY_CLUSTER_MYSQL_URL", &self.mysql)
            .env("LOTTERY_CLUSTER_AMQP_URL", &self.amqp)
            .env("LOTTERY_BIN", env!("CARGO_BIN_EXE_lottery"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run local-cluster.sh")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    fn pid(&self, name: &str) -> u32 {
        let text = std::fs::read_to_string(self.state().join(format!("run/{name}.pid")))
            .unwrap_or_else(|e| panic!("pid file of {name}: {e}"));
        text.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("pid file of {name}: {text}"))
    }

    fn stats_url(&self) -> String {
        format!("http://127.0.0.1:{}/stats;csv", self.port_base + 1)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = self.run(&["down", "--purge"]);
        if !out.status.success() {
            eprintln!("down --purge: {}", text(&out));
        }
        // The script deletes the deployment's queues; its exchanges need the client library.
        let mut mq = lottery_mq::MqConfig::new(self.amqp.clone());
        mq.exchange = format!("{}.events", self.name);
        mq.queue_prefix = self.name.clone();
        common::delete_broker_topology(mq);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn alive(pid: u32) -> bool {
    // A zombie (state Z) has exited: only its parent has not collected it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// The API instances' states in HAProxy's stats: (name, status) of api-1..4.
async fn balancer_states(client: &Client, url: &str) -> Vec<(String, String)> {
    let Ok(resp) = client.get(url).send().await else {
        return Vec::new();
    };
    let csv = resp.text().await.unwrap_or_default();
    csv.lines()
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > 17 && f[0] == "api" && f[1].starts_with("api-"))
        .map(|f| (f[1].to_owned(), f[17].to_owned()))
        .collect()
}

async fn wait_until<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < bound, "{what} within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn token(config: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lottery"));
    for (key, _) in std::env::vars() {
        if key.starts_with("LOTTERY_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["token", "--config", config])
        .args(args)
        .output()
        .expect("lottery token");
    assert!(out.status.success(), "token: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and RabbitMQ on 127.0.0.1; installs haproxy and prometheus when absent"]
async fn the_local_cluster_balances_survives_a_killed_instance_and_stops_cleanly() {
    let cluster = Cluster {
        dir: tempfile::tempdir().expect("temp dir"),
        // Ports base..base+307 (Redis Cluster is not started: single mode), below the
        // ephemeral range (32768 on) that other tests' servers get; a base per test process
        // so parallel runs keep apart.
        port_base: 20_000 + (std::process::id() % 12) as u16 * 1_000,
        name: unique_name("lc"),
        mysql: Service::MariaDb.require().await,
        redis: Service::Redis.require().await,
        amqp: Service::RabbitMq.require().await,
    };

    let up = cluster.run(&["up"]);
    assert!(up.status.success(), "up: {}", text(&up));
    let env = String::from_utf8_lossy(&cluster.run(&["env"]).stdout).into_owned();
    let value = |key: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} in {env}"))
            .to_owned()
    };
    let (url, config) = (value("LOTTERY_URL"), value("LOTTERY_CONFIG"));
    assert_eq!(url, format!("http://127.0.0.1:{}", cluster.port_base));

    // `up` again starts nothing new.
    let before: Vec<u32> = ["api-1", "worker-1", "db-2", "haproxy"]
        .iter()
        .map(|n| cluster.pid(n))
        .collect();
    let again = cluster.run(&["up"]);
    assert!(again.status.success(), "up again: {}", text(&again));
    let after: Vec<u32> = ["api-1", "worker-1", "db-2", "haproxy"]
        .iter()
        .map(|n| cluster.pid(n))
        .collect();
    assert_eq!(before, after, "up twice starts no duplicates");

    let client = Client::new();
    let ready = client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);

    // An activity deployed and drawn from through the balancer.
    let admin = token(&config, &["--admin"]);
    let (begin, end) = open_window();
    let deployed: Value = client
        .post(format!("{url}/api/v1/admin/activities"))
        .bearer_auth(&admin)
        .json(&activity_body(100, 5, &begin, &end))
        .send()
        .await
        .expect("deploy")
        .json()
        .await
        .expect("json");
    let id = deployed["activity_id"]
        .as_str()
        .expect("activity id")
        .to_owned();
    for action in ["submit", "approve", "start"] {
        let r = client
            .post(format!(
                "{url}/api/v1/admin/activities/{id}/actions/{action}"
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("action");
        assert_eq!(r.status(), StatusCode::OK, "{action}");
    }
    for n in 0..12 {
        let user = token(&config, &["--user", &format!("lc-user-{n}")]);
        let r = client
            .post(format!("{url}/api/v1/activities/{id}/draw"))
            .bearer_auth(&user)
            .header("Idempotency-Key", format!("lc-{n}"))
            .send()
            .await
            .expect("draw");
        assert_eq!(r.status(), StatusCode::OK, "draw {n}");
    }
    // Round robin: every API instance answered draws.
    for n in 1..=4u16 {
        let metrics = client
            .get(format!(
                "http://127.0.0.1:{}/metrics",
                cluster.port_base + 10 + n
            ))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("lottery_draws_total{")),
            "api-{n} drew nothing:\n{metrics}"
        );
    }

    // SIGKILL api-2: HAProxy takes it out within seconds; requests keep succeeding.
    let victim = cluster.pid("api-2");
    assert!(
        Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let stats = cluster.stats_url();
    wait_until(
        "haproxy marks api-2 DOWN",
        Duration::from_secs(10),
        || async {
            balancer_states(&client, &stats)
                .await
                .iter()
                .any(|(name, state)| name == "api-2" && state.starts_with("DOWN"))
        },
    )
    .await;
    for _ in 0..8 {
        let r = client
            .get(format!("{url}/api/v1/admin/activities/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("read through the balancer");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let status = cluster.run(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));

    let restart = cluster.run(&["restart", "api-2"]);
    assert!(restart.status.success(), "restart: {}", text(&restart));
    wait_until(
        "haproxy has all four UP",
        Duration::from_secs(10),
        || async {
            let states = balancer_states(&client, &stats).await;
            states.len() == 4 && states.iter().all(|(_, s)| s == "UP")
        },
    )
    .await;
    let status = cluster.run(&["status"]);
    assert!(status.status.success(), "status: {}", text(&status));

    // down stops every process it started.
    let pids: Vec<u32> = [
        "db-2",
        "worker-1",
        "api-1",
        "api-2",
        "api-3",
        "api-4",
        "haproxy",
        "prometheus",
    ]
    .iter()
    .map(|n| cluster.pid(n))
    .collect();
    let down = cluster.run(&["down"]);
    assert!(down.status.success(), "down: {}", text(&down));
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
    assert_eq!(cluster.run(&["status"]).status.code(), Some(3));
}
