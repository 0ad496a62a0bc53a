//! Starts the real `lottery` binary on a random port, embedded or cluster, and talks to it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use lottery_testkit::{FreshMysql, Service, unique_name};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Cluster,
}

pub struct App {
    pub base: String,
    pub child: Child,
    pub admin: String,
    pub client: Client,
    pub data_dir: PathBuf,
    pub config: Option<PathBuf>,
    /// Cluster mode: the test's own exchange and queues, deleted when the app is dropped.
    amqp: Option<lottery_mq::MqConfig>,
    /// Cluster mode: the stock store's key prefix.
    pub redis_prefix: Option<String>,
    _dir: tempfile::TempDir,
    _mysql: Option<FreshMysql>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mq) = self.amqp.take() {
            delete_broker_topology(mq);
        }
    }
}

/// Deletes a deployment's exchanges and queues, so the shared broker does not collect one set
/// per test run. On a small runtime of its own: callers are `Drop`s, which cannot await.
pub fn delete_broker_topology(mq: lottery_mq::MqConfig) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(admin) = lottery_mq::MqAdmin::connect(&mq).await {
                let _ = admin.delete_topology().await;
                admin.close().await;
            }
        });
    })
    .join();
}

/// Runs each named `async fn(Mode)` as two tests: embedded, and cluster (needs the services).
#[allow(unused_macros)]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Mode::Embedded).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs MariaDB, Redis and RabbitMQ on 127.0.0.1"]
                async fn $name() {
                    super::$name(super::Mode::Cluster).await;
                }
            )*
        }
    };
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lottery")
}

impl App {
    pub async fn spawn(mode: Mode) -> App {
        Self::spawn_with(mode, &[]).await
    }

    /// `env` adds environment overrides (e.g. tighter limits) for this server.
    pub async fn spawn_with(mode: Mode, env: &[(&str, &str)]) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let mut amqp_config = None;
        let mut redis_prefix = None;
        let (config, mysql) = match mode {
            Mode::Embedded => (None, None),
            Mode::Cluster => {
                Service::MariaDb.require().await;
                let redis = Service::Redis.require().await;
                let amqp = Service::RabbitMq.require().await;
                let fresh = FreshMysql::create("e2e", 3).await.expect("fresh databases");
                let name = unique_name("e2e");
                redis_prefix = Some(name.clone());
                let mut mq = lottery_mq::MqConfig::new(amqp.clone());
                mq.exchange = format!("{name}.events");
                mq.queue_prefix = name.clone();
                amqp_config = Some(mq);
                let toml = format!(
                    "[database]\nglobal_url = {g:?}\nshard_urls = [{s1:?}, {s2:?}]\ntables = 4\n\
                     [redis]\nurl = {redis:?}\nprefix = {name:?}\n\
                     [amqp]\nurl = {amqp:?}\nexchange = \"{name}.events\"\nqueue_prefix = {name:?}\n\
                     [auth]\njwt_secret = \"an-end-to-end-test-secret-of-enough-length\"\n",
                    g = fresh.url(0),
                    s1 = fresh.url(1),
                    s2 = fresh.url(2),
                );
                let path = dir.path().join("cluster.toml");
                std::fs::write(&path, toml).expect("config file");
                let status = Command::new(bin())
                    .args(["migrate", "--config"])
                    .arg(&path)
                    .env("LOTTERY_LOG__LEVEL", "warn")
                    .status()
                    .await
                    .expect("run migrate");
                assert!(status.success(), "lottery migrate failed");
                (Some(path), Some(fresh))
            }
        };
        let (base, child) = launch(config.as_deref(), &data_dir, env, None).await;
        let mut app = App {
            base,
            child,
            admin: String::new(),
            client: Client::new(),
            data_dir,
            config,
            amqp: amqp_config,
            redis_prefix,
            _dir: dir,
            _mysql: mysql,
        };
        app.admin = app.token(&["--admin"]).await;
        app
    }

    /// Another instance started from the same configuration file (cluster mode): same
    /// databases, stock store and broker, its own data directory. The databases and the
    /// broker's topology stay owned by `self`.
    pub async fn spawn_peer(&self, env: &[(&str, &str)]) -> App {
        self.spawn_peer_logging(env, None).await
    }

    /// As [`spawn_peer`](Self::spawn_peer), collecting the instance's log (what it writes to
    /// standard output after its banner) into `log`.
    pub async fn spawn_peer_logging(&self, env: &[(&str, &str)], log: Option<LogLines>) -> App {
        let config = self
            .config
            .clone()
            .expect("a peer shares a cluster configuration");
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let (base, child) = launch(Some(&config), &data_dir, env, log).await;
        App {
            base,
            child,
            admin: self.admin.clone(),
            client: Client::new(),
            data_dir,
            config: Some(config),
            amqp: None,
            redis_prefix: self.redis_prefix.clone(),
            _dir: dir,
            _mysql: None,
        }
    }

    /// An instance started from a configuration file of the test's own (the databases must
    /// exist and be migrated). `mq`, when given, is the topology deleted when dropped.
    pub async fn spawn_from_config(
        config: PathBuf,
        env: &[(&str, &str)],
        mq: Option<lottery_mq::MqConfig>,
    ) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let (base, child) = launch(Some(&config), &data_dir, env, None).await;
        let mut app = App {
            base,
            child,
            admin: String::new(),
            client: Client::new(),
            data_dir,
            config: Some(config),
            amqp: mq,
            redis_prefix: None,
            _dir: dir,
            _mysql: None,
        };
        app.admin = app.token(&["--admin"]).await;
        app
    }

    /// Sends SIGTERM and waits (at most `bound`) for the process to exit: its exit status and
    /// how long it took.
    pub async fn terminate(&mut self, bound: Duration) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let started = std::time::Instant::now();
        let exit = tokio::time::timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the process exits within {bound:?} of SIGTERM"))
            .expect("wait");
        (exit, started.elapsed())
    }

    /// The database URLs (cluster mode): global first, then the shards.
    pub fn database_urls(&self) -> Vec<String> {
        self._mysql
            .as_ref()
            .map(|m| m.urls().to_vec())
            .unwrap_or_default()
    }

    /// Mints a token with the CLI, exactly as an operator would.
    pub async fn token(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(bin());
        cmd.arg("token")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        let out = cmd.output().await.expect("run lottery token");
        assert!(
            out.status.success(),
            "token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    pub async fn user(&self, id: &str) -> String {
        self.token(&["--user", id]).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let resp = self.raw(method, path, token, body, &[]).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    /// Deploys, submits, approves and starts an activity; returns its id and award ids.
    pub async fn running_activity(&self, body: Value) -> (String, Vec<String>) {
        let (status, deployed) = self
            .call(
                Method::POST,
                "/api/v1/admin/activities",
                Some(&self.admin),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{deployed}");
        let id = deployed["activity_id"].as_str().expect("id").to_owned();
        for action in ["submit", "approve", "start"] {
            let (s, v) = self
                .call(
                    Method::POST,
                    &format!("/api/v1/admin/activities/{id}/actions/{action}"),
                    Some(&self.admin),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{action}: {v}");
        }
        let awards = deployed["award_ids"]
            .as_array()
            .expect("awards")
            .iter()
            .map(|a| a.as_str().expect("id").to_owned())
            .collect();
        (id, awards)
    }
}

impl App {
    /// An activity's live takes and its orders, straight from the shard databases (cluster
    /// mode, four tables per shard).
    pub async fn stored_records(&self, activity: &str) -> (Vec<i64>, Vec<i64>) {
        let id = activity.parse::<i64>().expect("id");
        let (mut takes, mut orders) = (Vec::new(), Vec::new());
        for url in &self.database_urls()[1..] {
            let pool = sqlx::MySqlPool::connect(url).await.expect("shard");
            for table in 0..4 {
                let t: Vec<i64> = sqlx::query_scalar(&format!(
                    "SELECT take_id FROM user_take_{table:03} WHERE activity_id = ? AND state <> 'void'"
                ))
                .bind(id)
                .fetch_all(&pool)
                .await
                .expect("takes");
                takes.extend(t);
                let o: Vec<i64> = sqlx::query_scalar(&format!(
                    "SELECT order_id FROM win_order_{table:03} WHERE activity_id = ?"
                ))
                .bind(id)
                .fetch_all(&pool)
                .await
                .expect("orders");
                orders.extend(o);
            }
            pool.close().await;
        }
        (takes, orders)
    }
}

/// Each user draws the activity once (user `i` on `apps[i % 2]`, key `k`), `concurrency`
/// draws at a time: the answers.
pub async fn draw_on_both(
    apps: [&App; 2],
    tokens: &[String],
    activity: &str,
    concurrency: usize,
) -> Vec<(StatusCode, Value)> {
    use futures::StreamExt;
    let path = format!("/api/v1/activities/{activity}/draw");
    futures::stream::iter(0..tokens.len())
        .map(|i| {
            let (app, token, path) = (apps[i % 2], &tokens[i], &path);
            async move {
                let resp = app
                    .raw(
                        Method::POST,
                        path,
                        Some(token),
                        None,
                        &[("Idempotency-Key", "k")],
                    )
                    .await;
                let status = resp.status();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Fails on any 5xx answer, showing how many and the first.
pub fn assert_no_server_errors(answers: &[(StatusCode, Value)]) {
    let server_errors: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| s.is_server_error())
        .map(|(_, v)| v)
        .collect();
    assert!(
        server_errors.is_empty(),
        "{} 5xx, e.g. {:?}",
        server_errors.len(),
        server_errors.first()
    );
}

/// Log lines collected from an instance.
pub type LogLines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `lottery serve` on a free port and waits for its address.
async fn launch(
    config: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    log: Option<LogLines>,
) -> (String, Child) {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    // Tests share two cores with the services and with each other: give requests (and so
    // draws) time; the tests about timeouts set their own.
    cmd.env("LOTTERY_LOG__LEVEL", "warn")
        .env("LOTTERY_HTTP__REQUEST_TIMEOUT_MS", "30000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start lottery serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(at) = line.find("http://") {
                return line[at..].trim().to_owned();
            }
        }
        panic!("lottery serve exited before printing its address");
    })
    .await
    .expect("server started within 60 s");
    // Keep draining stdout (the log, after the banner) so the child never blocks on a full
    // pipe; collect it when asked to.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(log) = &log {
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        }
    });
    (base, child)
}

pub fn activity_body(stock: u32, take_limit: u32, begin: &str, end: &str) -> Value {
    json!({
        "name": "E2E campaign",
        "description": "end to end",
        "begin_time": begin,
        "end_time": end,
        "stock": stock,
        "take_limit": take_limit,
        "strategy": {"mode": "single", "awards": [
            {"type": "coupon", "name": "10% off", "content": "TEN", "count": stock, "rate": "0.5"},
            {"type": "description", "name": "Thanks", "content": "Thanks!", "count": stock, "rate": "0.5"}
        ]}
    })
}

pub fn open_window() -> (String, String) {
    let now = chrono::Utc::now();
    (
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::days(1)).to_rfc3339(),
    )
}
