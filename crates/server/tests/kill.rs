//! kill -9 of an API instance under load: the claims its dying draws held are given back by
//! the reconciler of another instance, and nothing is lost or counted twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{App, Mode, open_window};
use futures::StreamExt;
use lottery_activity::StockLedger;
use lottery_domain::ActivityId;
use lottery_stock::{RedisLedger, RedisLedgerOptions};
use lottery_testkit::Service;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const STOCK: u64 = 1_000;
const LIMIT: u64 = 2;
const USERS: usize = 300;

/// Each (user, key) sent, with the draw's answer when it came.
type Outcomes = HashMap<(usize, String), Option<Value>>;

/// Stored takes (tombstones excluded), per user and key, straight from the shard databases.
async fn stored_takes(app: &App, activity: &str) -> Vec<(String, Option<String>, i64)> {
    let mut out = Vec::new();
    for url in &app.database_urls()[1..] {
        let pool = sqlx::MySqlPool::connect(url).await.expect("shard");
        for table in 0..4 {
            let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(&format!(
                "SELECT CAST(user_id AS CHAR), CAST(idempotency_key AS CHAR), take_id FROM user_take_{table:03} \
                 WHERE activity_id = ? AND state <> 'void'"
            ))
            .bind(activity.parse::<i64>().expect("id"))
            .fetch_all(&pool)
            .await
            .expect("takes");
            out.extend(rows);
        }
        pool.close().await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn kill_9_under_load_leaks_nothing_once_reconciled() {
    let a = App::spawn(Mode::Cluster).await;
    let (begin, end) = open_window();
    let body = json!({
        "name": "Killed mid-campaign", "begin_time": begin, "end_time": end,
        "stock": STOCK, "take_limit": LIMIT,
        "strategy": {"mode": "single", "awards": [
            {"type": "coupon", "name": "Coupon", "content": "C", "count": STOCK, "rate": "0.5"}]}
    });
    let (activity, _) = a.running_activity(body).await;
    let tokens: Vec<String> = futures::stream::iter(0..USERS)
        .map(|i| {
            let a = &a;
            async move { a.user(&format!("k{i}")).await }
        })
        .buffered(16)
        .collect()
        .await;

    // Two draws per user, 48 at a time; the instance dies while they run.
    let answered = Arc::new(AtomicUsize::new(0));
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let jobs: Vec<(usize, String)> = (0..USERS)
        .flat_map(|u| ["first", "second"].map(|k| (u, k.to_owned())))
        .collect();
    let queue = Arc::new(Mutex::new(jobs));
    let client = reqwest::Client::new();
    let workers: Vec<_> = (0..48)
        .map(|_| {
            let (queue, outcomes, answered) = (queue.clone(), outcomes.clone(), answered.clone());
            let (client, tokens, base, activity) = (
                client.clone(),
                tokens.clone(),
                a.base.clone(),
                activity.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Some((user, key)) = queue.lock().await.pop() else {
                        return;
                    };
                    let sent = client
                        .post(format!("{base}/api/v1/activities/{activity}/draw"))
                        .bearer_auth(&tokens[user])
                        .header("Idempotency-Key", &key)
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(r) if r.status() == StatusCode::OK => r.json::<Value>().await.ok(),
                        _ => None,
                    };
                    if answer.is_some() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    outcomes.lock().await.insert((user, key), answer);
                }
            })
        })
        .collect();
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < 200 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut a = a;
    a.child.start_kill().expect("kill -9");
    a.child.wait().await.expect("killed");
    for w in workers {
        w.await.expect("worker");
    }
    let outcomes = outcomes.lock().await.clone();
    let unanswered: HashSet<usize> = outcomes
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|((u, _), _)| *u)
        .collect();
    eprintln!(
        "killed after {} answered draws; {} users had a draw unanswered",
        answered.load(Ordering::Relaxed),
        unanswered.len()
    );

    // Another instance from the same configuration takes over the jobs.
    let b = a.spawn_peer(&[]).await;
    let redis = Service::Redis.require().await;
    let ledger = RedisLedger::connect(
        &redis,
        RedisLedgerOptions {
            prefix: b.redis_prefix.clone().expect("prefix"),
            ..RedisLedgerOptions::default()
        },
    )
    .await
    .expect("ledger");
    let id = ActivityId::new(activity.parse().expect("id")).expect("id");
    // After the reconciler's grace period, stock left plus stored takes is the stock.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (left, stored) = loop {
        let stored = stored_takes(&a, &activity).await;
        let left = ledger.stock_left(id).await.expect("stock").unwrap_or(0);
        if left + stored.len() as u64 == STOCK || Instant::now() > deadline {
            break (left, stored);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        left + stored.len() as u64,
        STOCK,
        "stock left {left} + stored takes {} must be the stock once reconciled",
        stored.len()
    );

    // Every draw that was answered, and every one that was stored unanswered, replays its
    // stored outcome.
    let by_key: HashMap<(String, String), i64> = stored
        .iter()
        .filter_map(|(u, k, t)| Some(((u.clone(), k.clone()?), *t)))
        .collect();
    for ((user, key), answer) in &outcomes {
        let stored_take = by_key.get(&(format!("k{user}"), key.clone()));
        if answer.is_none() && stored_take.is_none() {
            continue;
        }
        let (status, replay) = draw(&b, &activity, &tokens[*user], key).await;
        assert_eq!(status, StatusCode::OK, "{replay}");
        assert_eq!(replay["replayed"], true, "{replay}");
        if let Some(first) = answer {
            assert_eq!(replay["take_id"], first["take_id"]);
        }
        let take = stored_take.expect("an answered draw is stored");
        assert_eq!(replay["take_id"], take.to_string());
    }

    // Every user whose draw died has exactly the quota their stored takes leave.
    let per_user: HashMap<String, u64> = stored.iter().fold(HashMap::new(), |mut m, (u, _, _)| {
        *m.entry(u.clone()).or_default() += 1;
        m
    });
    for user in &unanswered {
        let used = per_user.get(&format!("k{user}")).copied().unwrap_or(0);
        let mut more = 0;
        for attempt in 0..=LIMIT {
            let (status, v) =
                draw(&b, &activity, &tokens[*user], &format!("after-{attempt}")).await;
            match status {
                StatusCode::OK => more += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(v["code"], "quota_exhausted", "{v}");
                    break;
                }
                other => panic!("unexpected {other}: {v}"),
            }
        }
        assert_eq!(
            used + more,
            LIMIT,
            "user k{user}: {used} stored takes, {more} more allowed"
        );
    }
    drop(b);
}

async fn draw(app: &App, activity: &str, token: &str, key: &str) -> (StatusCode, Value) {
    let resp = app
        .raw(
            Method::POST,
            &format!("/api/v1/activities/{activity}/draw"),
            Some(token),
            None,
            &[("Idempotency-Key", key)],
        )
        .await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}
