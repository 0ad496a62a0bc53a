//! The audit passes on what a real server recorded under load, and fails, naming the check,
//! once the records are tampered with: an order nobody won, takes beyond the stock, a prize
//! given twice (and, in cluster mode, a stock store that holds more than it should).

use std::collections::BTreeSet;
use std::time::Duration;

use db_router::Router;
use lottery_load::audit::{AuditReport, AuditRequest, audit};
use lottery_load::scenarios::{
    ActivityOptions, ClosedLoad, RunOptions, RunResult, Scenario, SustainedOptions, Target,
    UserOptions, run,
};
use lottery_server::config::{AmqpConfig, Config, DatabaseConfig, HttpConfig, RedisConfig, Secret};
use lottery_server::{Role, Running};
use lottery_testkit::{FreshMysql, Service, unique_name};
use sqlx::AnyPool;

const STOCK: u32 = 300;
const TAMPERER: &str = "tamperer";

/// A server in this process on a free port; draws are not rate limited (the load is the
/// point), and the stock sync never repairs what the tests tamper with.
async fn start(mut config: Config) -> (Config, Running, Target) {
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.http = HttpConfig {
        draws_per_second: 100_000,
        draw_burst: 100_000,
        request_timeout_ms: 30_000,
        ..HttpConfig::default()
    };
    config.workers.sync_interval_ms = 3_600_000;
    let running = lottery_server::start(&config, Role::All, std::future::pending())
        .await
        .expect("the server starts");
    let url = format!("http://{}", running.addr);
    let target = Target::new(config.clone(), Some(&url), Duration::from_secs(30)).expect("target");
    (config, running, target)
}

/// A short closed-model load of returning users against a stock they exhaust.
async fn small_load(target: &Target) -> RunResult {
    let scenario = Scenario::Sustained(SustainedOptions {
        load: ClosedLoad {
            connections: 8,
            duration: 3.0,
        },
        users: UserOptions {
            users: 40,
            new_users: false,
        },
    });
    let options = RunOptions {
        activity: ActivityOptions {
            activity: None,
            stock: Some(STOCK),
            take_limit: Some(1_000),
            award_count: Some(40),
            award_rate: "0.5".into(),
        },
        no_audit: false,
        drain_timeout: 30.0,
        json: None,
        wins: None,
    };
    let result = run(target, &scenario, &options).await.expect("the run");
    let report = &result.report;
    println!("{report}");
    assert!(report.requests > 0, "{report}");
    assert!(!result.answered.wins.is_empty(), "some draws won: {report}");
    let audit = report.audit.as_ref().expect("audited");
    assert!(audit.passed(), "an untampered run passes:\n{report}");
    result
}

async fn audit_again(target: &Target, result: &RunResult) -> AuditReport {
    let request = AuditRequest {
        activity_id: result.report.activity_id.clone(),
        drain_timeout: Duration::from_secs(2),
        answered: Some(result.answered.clone()),
        admin: Some(target.admin_access().expect("admin")),
    };
    audit(&target.config, &request)
        .await
        .expect("the audit runs")
}

fn failed(report: &AuditReport) -> BTreeSet<&'static str> {
    report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect()
}

fn assert_fails(report: &AuditReport, checks: &[&str]) {
    println!("{report}");
    assert!(!report.passed(), "a tampered store fails:\n{report}");
    let failed = failed(report);
    for name in checks {
        assert!(failed.contains(name), "{name} fails:\n{report}");
    }
}

/// The records as the server's own router sees them.
struct Db {
    router: Router,
    activity: i64,
    strategy: i64,
    award: i64,
}

impl Db {
    async fn open(config: &Config, result: &RunResult) -> Db {
        let rc = lottery_server::compose::router_config(config).expect("router config");
        let router = Router::connect(&rc).await.expect("databases");
        let activity: i64 = result.report.activity_id.parse().expect("id");
        let strategy: i64 =
            sqlx::query_scalar("SELECT strategy_id FROM activity WHERE activity_id = ?")
                .bind(activity)
                .fetch_one(router.global())
                .await
                .expect("activity");
        let award: i64 = result.answered.wins[0].award_id.parse().expect("award id");
        Db {
            router,
            activity,
            strategy,
            award,
        }
    }

    fn table_of(&self, user: &str) -> (AnyPool, db_router::Route) {
        let route = self.router.route(user);
        (self.router.pool(&route).expect("pool").clone(), route)
    }

    async fn exec(&self, user: &str, sql: &str, binds: &[i64]) {
        let (pool, route) = self.table_of(user);
        let sql = sql
            .replace("{takes}", &route.table("user_take"))
            .replace("{orders}", &route.table("win_order"));
        let mut q = sqlx::query(&sql).bind(user.to_owned());
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&pool).await.expect("tamper");
    }

    /// An order of `user` for `take`, as if won and granted.
    async fn insert_order(&self, user: &str, order: i64, take: i64) {
        let sql = "INSERT INTO {orders} (user_id, order_id, take_id, activity_id, strategy_id, \
                   mode, award_id, award_kind, award_name, award_content, fallback, \
                   grant_state, delivery, created_at, granted_at) VALUES (?, ?, ?, ?, ?, \
                   'single', ?, 'coupon', 'Load coupon', 'LOAD', 0, 'complete', NULL, 0, 0)";
        self.exec(
            user,
            sql,
            &[order, take, self.activity, self.strategy, self.award],
        )
        .await;
    }

    async fn insert_takes(&self, user: &str, n: i64) {
        for i in 1..=n {
            let sql = "INSERT INTO {takes} (user_id, take_id, activity_id, strategy_id, \
                       take_number, taken_at, state, idempotency_key) \
                       VALUES (?, ?, ?, ?, ?, 0, 'used', NULL)";
            self.exec(
                user,
                sql,
                &[8_000_000_000 + i, self.activity, self.strategy, i],
            )
            .await;
        }
    }

    async fn delete_tampering(&self) {
        let takes = "DELETE FROM {takes} WHERE user_id = ?";
        self.exec(TAMPERER, takes, &[]).await;
        self.exec(TAMPERER, "DELETE FROM {orders} WHERE user_id = ?", &[])
            .await;
    }
}

/// The audit of `result`'s activity fails on each kind of tampering, and passes again once
/// it is undone.
async fn tamper_and_audit(config: &Config, target: &Target, result: &RunResult) {
    let db = Db::open(config, result).await;

    db.insert_order(TAMPERER, 9_000_000_001, 9_000_000_002)
        .await;
    let report = audit_again(target, result).await;
    assert_fails(&report, &["orders_have_their_take", "orders_were_answered"]);
    db.delete_tampering().await;
    let report = audit_again(target, result).await;
    assert!(report.passed(), "undone, the audit passes again:\n{report}");

    db.insert_takes(TAMPERER, i64::from(STOCK) + 1).await;
    let report = audit_again(target, result).await;
    assert_fails(&report, &["takes_within_stock", "stock_store_agrees"]);
    db.delete_tampering().await;
    db.router.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_audit_passes_then_fails_on_tampered_records() {
    let dir = tempfile::tempdir().expect("dir");
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let (config, running, target) = start(config).await;
    let result = small_load(&target).await;
    tamper_and_audit(&config, &target, &result).await;

    // A prize given twice: a second order for an answered win's take (SQLite lets the unique
    // index go; the audit must not rely on it).
    let db = Db::open(&config, &result).await;
    let win = &result.answered.wins[0];
    let (pool, route) = db.table_of(&win.user_id);
    sqlx::query(&format!(
        "DROP INDEX uk_win_order_take{}",
        route.table_suffix()
    ))
    .execute(&pool)
    .await
    .expect("drop the unique index");
    let take: i64 = win.take_id.parse().expect("take id");
    db.insert_order(&win.user_id, 9_000_000_003, take).await;
    let report = audit_again(&target, &result).await;
    assert_fails(
        &report,
        &["one_order_per_take", "answered_wins_have_one_order"],
    );
    db.router.close().await;
    running.stop().await;
}

/// A cluster configuration on fresh databases, a private key prefix and broker names.
async fn cluster_config(mysql: &FreshMysql, name: &str) -> Config {
    let config = Config {
        database: Some(DatabaseConfig {
            global_url: mysql.url(0).to_owned(),
            shard_urls: vec![mysql.url(1).to_owned(), mysql.url(2).to_owned()],
            tables: 4,
            max_connections: 24,
            acquire_timeout_ms: None,
            statement_timeout_ms: None,
            read_timeout_ms: None,
            idle_transaction_timeout_secs: None,
        }),
        redis: Some(RedisConfig {
            prefix: Some(name.to_owned()),
            pool_size: 8,
            ..RedisConfig::new(Service::Redis.url())
        }),
        amqp: Some(AmqpConfig {
            url: Service::RabbitMq.url(),
            prefetch: 16,
            exchange: Some(format!("{name}.events")),
            queue_prefix: Some(name.to_owned()),
            connect_timeout_ms: None,
            confirm_timeout_ms: None,
        }),
        ..Config::default()
    };
    let mut config = config;
    config.auth.jwt_secret = Some(Secret::new("a-load-tool-test-secret-of-enough-length"));
    let rc = lottery_server::compose::router_config(&config).expect("router config");
    let storage = lottery_storage::Storage::connect(&rc)
        .await
        .expect("databases");
    storage.migrate().await.expect("migrate");
    storage.close().await;
    config
}

async fn redis_command(args: &[&str]) -> i64 {
    use deadpool_redis::redis;
    let client = redis::Client::open(Service::Redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.expect("redis command")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn cluster_audit_passes_then_fails_on_tampered_records_and_stock() {
    for service in Service::ALL {
        service.require().await;
    }
    let mysql = FreshMysql::create("load", 3)
        .await
        .expect("fresh databases");
    let name = unique_name("load");
    let config = cluster_config(&mysql, &name).await;
    let (config, running, target) = start(config).await;
    let result = small_load(&target).await;
    let audit = result.report.audit.as_ref().expect("audited");
    assert_eq!(audit.stock_source, "redis");
    tamper_and_audit(&config, &target, &result).await;

    // The store holds more than the records allow.
    let key = format!("{name}:{{a:{}}}:stock", result.report.activity_id);
    redis_command(&["INCRBY", &key, "5"]).await;
    let report = audit_again(&target, &result).await;
    assert_fails(&report, &["stock_store_agrees"]);
    assert_eq!(failed(&report).len(), 1, "{report}");

    running.stop().await;
    let mq = config
        .amqp
        .as_ref()
        .expect("amqp")
        .mq_config(&config.deployment_name());
    if let Ok(admin) = lottery_mq::MqAdmin::connect(&mq).await {
        let _ = admin.delete_topology().await;
        admin.close().await;
    }
    let pattern = format!("{name}:*");
    let keys: Vec<String> = {
        use deadpool_redis::redis;
        let client = redis::Client::open(Service::Redis.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .expect("keys")
    };
    for key in keys {
        redis_command(&["DEL", &key]).await;
    }
}
