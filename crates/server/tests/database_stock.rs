//! Cluster mode with `[stock] strategy = "database"`: the stock is claimed in the global
//! database by row-locking transactions, and two instances drawing side by side still sell
//! exactly the stock.

mod common;

use std::collections::HashSet;

use common::{App, Mode, assert_no_server_errors, draw_on_both, open_window};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

const STOCK: usize = 100;
/// More users than stock, so the draws run the stock out and go on past it.
const USERS: usize = 300;
const DATABASE_STOCK: [(&str, &str); 1] = [("LOTTERY_STOCK__STRATEGY", "database")];

/// The ledger's own rows in the global database: stock left and the claims it holds.
async fn ledger_rows(app: &App, activity: &str) -> (i64, i64) {
    let id = activity.parse::<i64>().expect("id");
    let pool = sqlx::MySqlPool::connect(&app.database_urls()[0])
        .await
        .expect("global");
    let left: i64 = sqlx::query_scalar("SELECT stock_left FROM stock_ledger WHERE activity_id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("the stock row");
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM stock_ledger_claim WHERE activity_id = ? AND state = 'held'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("claims");
    pool.close().await;
    (left, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn two_instances_on_database_stock_sell_exactly_the_stock() {
    let first = App::spawn_with(Mode::Cluster, &DATABASE_STOCK).await;
    let second = first.spawn_peer(&DATABASE_STOCK).await;
    let (begin, end) = open_window();
    let body = json!({
        "name": "Database stock", "begin_time": begin, "end_time": end,
        "stock": STOCK, "take_limit": 1,
        "strategy": {"mode": "single", "awards": [
            {"type": "coupon", "name": "Coupon", "content": "C", "count": STOCK, "rate": "0.5"}]}
    });
    let (activity, _) = first.running_activity(body).await;
    let tokens: Vec<String> = futures::stream::iter(0..USERS)
        .map(|i| {
            let first = &first;
            async move { first.user(&format!("d{i}")).await }
        })
        .buffered(16)
        .collect()
        .await;
    let answers = draw_on_both([&first, &second], &tokens, &activity, 32).await;
    assert_no_server_errors(&answers);
    let drawn = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(drawn, STOCK, "draws answered: exactly the stock");
    let sold_out = answers
        .iter()
        .filter(|(s, v)| *s == StatusCode::CONFLICT && v["code"] == "sold_out")
        .count();
    assert_eq!(
        sold_out,
        USERS - STOCK,
        "every other user is told it is sold out"
    );
    let (takes, _) = first.stored_records(&activity).await;
    assert_eq!(takes.len(), STOCK, "takes stored: exactly the stock");
    assert_eq!(
        takes.iter().collect::<HashSet<_>>().len(),
        STOCK,
        "no take twice"
    );
    let (left, held) = ledger_rows(&first, &activity).await;
    assert_eq!((left, held), (0, STOCK as i64), "the ledger's rows agree");
}
