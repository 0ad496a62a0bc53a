//! Instances started from one configuration file each lease a worker id of their own, so
//! the ids they generate never meet and the stock claims keyed by them never mix.

mod common;

use std::collections::HashSet;

use common::{App, Mode, assert_no_server_errors, draw_on_both, open_window};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const USERS: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn two_instances_from_one_configuration_never_oversell() {
    let first = App::spawn(Mode::Cluster).await;
    let log: common::LogLines = std::sync::Arc::default();
    let second = first.spawn_peer_logging(&[], Some(log.clone())).await;
    let (begin, end) = open_window();
    // Every draw aims at the one award: 100 of them, for 3,000 users.
    let body = json!({
        "name": "Two instances", "begin_time": begin, "end_time": end,
        "stock": USERS, "take_limit": 1,
        "strategy": {"mode": "single", "awards": [
            {"type": "coupon", "name": "Coupon", "content": "C", "count": 100, "rate": "1"}]}
    });
    let (activity, _) = first.running_activity(body).await;
    let tokens: Vec<String> = futures::stream::iter(0..USERS)
        .map(|i| {
            let first = &first;
            async move { first.user(&format!("p{i}")).await }
        })
        .buffered(16)
        .collect()
        .await;
    let answers = draw_on_both([&first, &second], &tokens, &activity, 64).await;
    assert_no_server_errors(&answers);
    let wins: Vec<&Value> = answers
        .iter()
        .filter(|(s, v)| *s == StatusCode::OK && v["result"] == "win")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(wins.len(), 100, "wins answered");
    let (takes, orders) = first.stored_records(&activity).await;
    assert_eq!(orders.len(), 100, "orders stored");
    assert_eq!(takes.len(), USERS, "one take per user");
    assert_eq!(
        takes.iter().collect::<HashSet<_>>().len(),
        takes.len(),
        "no take id twice"
    );
    assert_eq!(
        orders.iter().collect::<HashSet<_>>().len(),
        orders.len(),
        "no order id twice"
    );
    // Every answered win is the stored order of that take.
    let stored_orders: HashSet<String> = orders.iter().map(i64::to_string).collect();
    for w in wins {
        let order = w["order_id"].as_str().expect("order id");
        assert!(
            stored_orders.contains(order),
            "answered order {order} is stored"
        );
    }
}
