//! SIGTERM during a load of draws: every answered draw is stored, and the process exits
//! promptly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{App, Mode, activity_body, open_window};
use lottery_activity::{Page, TakeRepository};
use lottery_domain::UserId;
use lottery_server::config::Config;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_keeps_every_answered_draw() {
    let mut app = App::spawn(Mode::Embedded).await;
    let (begin, end) = open_window();
    let (id, _) = app
        .running_activity(activity_body(100_000, 1_000, &begin, &end))
        .await;
    let base = Arc::new(app.base.clone());
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(app.user(&format!("load-{i}")).await);
    }
    // Eight users drawing in a loop until the server goes away.
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let base = base.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut answered = Vec::new();
                loop {
                    let resp = client
                        .post(format!("{base}/api/v1/activities/{id}/draw"))
                        .bearer_auth(&token)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let v: Value = r.json().await.expect("draw body");
                            answered.push(v["take_id"].as_str().expect("take id").to_owned());
                        }
                        // Rate limited: keep going.
                        Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(_) | Err(_) => return (format!("load-{i}"), answered),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let (exit, took) = app.terminate(Duration::from_secs(10)).await;
    eprintln!("exited with {exit} after {took:?}");
    assert!(exit.success(), "graceful exit: {exit}");

    let mut answered_total = 0;
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("load task"));
    }
    // Read the data directory the server wrote, as the next start would.
    let config = Config {
        data_dir: app.data_dir.clone(),
        ..Config::default()
    };
    let storage = lottery_storage::Storage::connect(
        &lottery_server::compose::embedded_router(&config).expect("router"),
    )
    .await
    .expect("storage");
    let takes = storage.takes();
    for (user, answered) in results {
        answered_total += answered.len();
        let stored: Vec<String> = takes
            .takes(
                &UserId::new(user.clone()).expect("user"),
                None,
                Page::new(0, 200),
            )
            .await
            .expect("takes")
            .iter()
            .map(|t| t.take_id.to_string())
            .collect();
        for take in answered {
            assert!(
                stored.contains(&take),
                "{user}: answered take {take} is not stored"
            );
        }
    }
    assert!(answered_total > 0, "the load got answers before the signal");
    eprintln!("{answered_total} answered draws, all stored");
    storage.close().await;
}
