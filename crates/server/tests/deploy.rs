//! Deployments never touch other activities, and generated ids never collide, across
//! instances and within a busy day.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{App, Mode, activity_body, open_window};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn deploy(app: &App, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/admin/activities",
        Some(&app.admin),
        Some(body),
    )
    .await
}

async fn first_award(app: &App, activity: &str) -> Value {
    let (status, detail) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/activities/{activity}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    detail["strategy"]["awards"][0].clone()
}

async fn a_deployment_cannot_take_a_running_activitys_ids(mode: Mode) {
    let app = App::spawn(mode).await;
    let (begin, end) = open_window();
    let (running, awards) = app
        .running_activity(activity_body(100, 1, &begin, &end))
        .await;
    let before = first_award(&app, &running).await;
    let (_, deployed) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/activities/{running}"),
            Some(&app.admin),
            None,
        )
        .await;
    let strategy = deployed["strategy"]["strategy_id"].clone();

    // The running activity's prize id, renamed to something worthless.
    let mut thief = activity_body(10, 1, &begin, &end);
    thief["strategy"]["awards"][0]["award_id"] = json!(awards[0]);
    thief["strategy"]["awards"][0]["name"] = json!("WORTHLESS");
    let (status, body) = deploy(&app, thief).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "conflict");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains(awards[0].as_str()), "{message}");
    assert!(
        !message.contains("Duplicate") && !message.contains("UNIQUE"),
        "no database text: {message}"
    );
    // Its strategy id and its activity id are refused alike.
    let mut same_strategy = activity_body(10, 1, &begin, &end);
    same_strategy["strategy_id"] = strategy;
    let (status, body) = deploy(&app, same_strategy).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let mut same_activity = activity_body(10, 1, &begin, &end);
    same_activity["activity_id"] = json!(running);
    let (status, body) = deploy(&app, same_activity).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The running activity is unchanged, read afresh.
    assert_eq!(first_award(&app, &running).await, before);
    let user = app.user("winner").await;
    let (status, drawn) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{running}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{drawn}");
    if drawn["result"] == "win" {
        assert_ne!(drawn["award"]["name"], "WORTHLESS", "{drawn}");
    }
}

#[tokio::test]
async fn a_deployment_cannot_take_a_running_activitys_ids_embedded() {
    a_deployment_cannot_take_a_running_activitys_ids(Mode::Embedded).await;
}

#[tokio::test]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn a_deployment_cannot_take_a_running_activitys_ids_cluster() {
    a_deployment_cannot_take_a_running_activitys_ids(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn ten_thousand_deployments_in_a_day_across_two_instances_all_succeed() {
    let first = App::spawn(Mode::Cluster).await;
    let second = first.spawn_peer(&[]).await;
    let (begin, end) = open_window();
    let created = Arc::new(AtomicUsize::new(0));
    let failures: Vec<String> = futures::stream::iter(0..10_000usize)
        .map(|i| {
            let app = if i % 2 == 0 { &first } else { &second };
            let body = activity_body(10, 1, &begin, &end);
            let created = created.clone();
            async move {
                let (status, body) = deploy(app, body).await;
                if status == StatusCode::CREATED {
                    created.fetch_add(1, Ordering::Relaxed);
                    None
                } else {
                    Some(format!("{status}: {body}"))
                }
            }
        })
        .buffer_unordered(16)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of 10,000 deployments failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(created.load(Ordering::Relaxed), 10_000);
}
