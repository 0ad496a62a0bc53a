//! `lottery-bench`: throughput of the draw algorithms and of the whole draw pipeline.
//!
//! ```text
//! cargo run --release -p lottery-bench -- strategy           # O(1) draws per second
//! cargo run --release -p lottery-bench -- embedded [users]   # draws/s: SQLite + in-memory stock
//! cargo run --release -p lottery-bench -- cluster [users]    # draws/s: MariaDB + Redis (local services)
//! ```
//! Each scenario runs five times and reports the median, with the machine's core count, so
//! numbers are comparable only on the same machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_router::RouterConfig;
use lottery_activity::{Action, StockLedger};
use lottery_app::{AwardSpec, DeployCommand, DrawRequest, Lottery, StrategySpec};
use lottery_award::AwardKind;
use lottery_domain::{AwardId, StrategyId, UserId};
use lottery_server::config::Config;
use lottery_stock::{MemoryLedger, RedisLedger, RedisLedgerOptions};
use lottery_storage::Storage;
use lottery_strategy::{DrawMode, Drawer, OutOfStock, Rate, Strategy, StrategyAward};
use lottery_testkit::{FreshMysql, FreshSqlite, Service, unique_name};
use rand::SeedableRng;

const RUNS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn strategy_bench() {
    for mode in [DrawMode::Single, DrawMode::Entirety] {
        let awards = (1..=10)
            .filter_map(|i| {
                Some(StrategyAward {
                    award_id: AwardId::new(i).ok()?,
                    rate: Rate::from_units(5_000_000 + i as u64 * 1_000).ok()?,
                    count: 100,
                })
            })
            .collect();
        let Ok(id) = StrategyId::new(1) else { return };
        let Ok(strategy) = Strategy::new(id, mode, awards, None) else {
            return;
        };
        let drawer = Drawer::new(strategy);
        let mut out = OutOfStock::NONE;
        out.insert(3);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let n = 10_000_000u64;
        let rates: Vec<f64> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let mut wins = 0u64;
                for _ in 0..n {
                    if matches!(drawer.draw(&mut rng, out), lottery_strategy::Draw::Award(_)) {
                        wins += 1;
                    }
                }
                std::hint::black_box(wins);
                n as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "strategy {mode}: {:.1} M draws/s (median of {RUNS}, one core of {})",
            median(rates) / 1e6,
            cores()
        );
    }
}

fn command(stock: u32) -> DeployCommand {
    let now = chrono::Utc::now();
    let award = |kind: AwardKind, name: &str, count: u32, rate: &str| AwardSpec {
        award_id: None,
        kind,
        name: name.into(),
        content: name.into(),
        count,
        rate: rate.parse().unwrap_or_default(),
    };
    DeployCommand {
        activity_id: None,
        strategy_id: None,
        name: "bench".into(),
        description: String::new(),
        begin_time: now - chrono::Duration::hours(1),
        end_time: now + chrono::Duration::days(1),
        stock,
        take_limit: 1_000_000,
        strategy: StrategySpec {
            mode: DrawMode::Single,
            fallback_award_id: None,
            awards: vec![
                award(AwardKind::COUPON, "coupon", stock, "0.2"),
                award(AwardKind::DESCRIPTION, "thanks", stock, "0.3"),
            ],
        },
    }
}

/// `users` concurrent users drawing as fast as they can for a fixed time; returns draws/s.
async fn pipeline(lottery: &Lottery, users: usize, seconds: u64) -> f64 {
    let Ok(d) = lottery
        .administration()
        .deploy(command(u32::MAX / 2), "bench")
        .await
    else {
        return 0.0;
    };
    for a in [Action::Submit, Action::Approve, Action::Start] {
        if lottery
            .administration()
            .act(d.activity_id, a)
            .await
            .is_err()
        {
            return 0.0;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let lottery = lottery.clone();
            tokio::spawn(async move {
                let Ok(user) = UserId::new(format!("bench-{u}")) else {
                    return 0u64;
                };
                let mut done = 0;
                while Instant::now() < deadline {
                    let req = DrawRequest {
                        user: user.clone(),
                        activity: d.activity_id,
                        idempotency_key: None,
                        shipping: None,
                    };
                    if lottery.drawing().draw(req).await.is_ok() {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn run_pipeline(storage: &Storage, stock: Arc<dyn StockLedger>, label: &str, users: usize) {
    let Ok(identity) = lottery_server::compose::identity(&Config::default(), storage).await else {
        eprintln!("no worker id lease for {label}");
        return;
    };
    // Runs last longer than a lease: keep it renewed until the runs are done.
    let (_keep, renewing) = tokio::sync::watch::channel(false);
    tokio::spawn(identity.clone().run(renewing));
    let svc =
        lottery_server::compose::services(storage, &Default::default(), stock, identity.ids());
    let lottery = Lottery::new(svc);
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        rates.push(pipeline(&lottery, users, 5).await);
    }
    println!(
        "pipeline {label}: {:.0} draws/s with {users} concurrent users (median of {RUNS} runs of 5 s, {} cores)",
        median(rates),
        cores()
    );
}

async fn embedded(users: usize) {
    let Ok(files) = FreshSqlite::create("bench", 3) else {
        return;
    };
    let urls = files.urls().to_vec();
    let mut rc = RouterConfig::new(urls[0].clone(), urls[1..].to_vec(), 4);
    rc.max_connections = 8;
    let Ok(storage) = Storage::connect(&rc).await else {
        return;
    };
    if storage.migrate().await.is_err() {
        return;
    }
    run_pipeline(
        &storage,
        Arc::new(MemoryLedger::new()),
        "embedded (SQLite, in-memory stock)",
        users,
    )
    .await;
}

async fn cluster(users: usize) {
    Service::MariaDb.require().await;
    let redis = Service::Redis.require().await;
    let Ok(db) = FreshMysql::create("bench", 3).await else {
        return;
    };
    let urls = db.urls().to_vec();
    let mut rc = RouterConfig::new(urls[0].clone(), urls[1..].to_vec(), 4);
    rc.max_connections = 32;
    let Ok(storage) = Storage::connect(&rc).await else {
        return;
    };
    if storage.migrate().await.is_err() {
        return;
    }
    let options = RedisLedgerOptions {
        prefix: unique_name("bench"),
        ..RedisLedgerOptions::default()
    };
    let Ok(ledger) = RedisLedger::connect(&redis, options).await else {
        return;
    };
    run_pipeline(
        &storage,
        Arc::new(ledger),
        "cluster (MariaDB 2x4, Redis)",
        users,
    )
    .await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let users = args.get(1).and_then(|u| u.parse().ok()).unwrap_or(64);
    match args.first().map(String::as_str) {
        Some("strategy") => strategy_bench(),
        Some("embedded") => embedded(users).await,
        Some("cluster") => cluster(users).await,
        _ => eprintln!("usage: lottery-bench strategy | embedded [users] | cluster [users]"),
    }
}
