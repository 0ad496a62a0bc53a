//! Readiness by role: a broker outage leaves an API instance ready (draws go on through the
//! outbox) and takes a worker out until the broker is back.

mod common;

use std::time::{Duration, Instant};

use common::{App, Mode, activity_body, open_window};
use lottery_testkit::{Service, TcpProxy};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn readyz(app: &App) -> (StatusCode, Value) {
    app.call(Method::GET, "/readyz", None, None).await
}

/// Polls `/readyz` until `done` holds, for at most 20 s.
async fn until(app: &App, done: impl Fn(StatusCode, &Value) -> bool) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readyz(app).await;
        if done(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn mentions(list: &Value, what: &str) -> bool {
    list.as_array().is_some_and(|l| {
        l.iter()
            .any(|v| v.as_str().is_some_and(|s| s.starts_with(what)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn a_broker_outage_leaves_api_instances_ready_and_takes_workers_out() {
    let amqp = Service::RabbitMq.require().await;
    let proxy = TcpProxy::for_service(Service::RabbitMq)
        .await
        .expect("proxy");
    let via = proxy.proxied_url(&amqp).expect("proxied url");
    let api = App::spawn_with(
        Mode::Cluster,
        &[("LOTTERY_ROLE", "api"), ("LOTTERY_AMQP__URL", &via)],
    )
    .await;
    let worker = api
        .spawn_peer(&[("LOTTERY_ROLE", "worker"), ("LOTTERY_AMQP__URL", &via)])
        .await;
    for app in [&api, &worker] {
        let (status, body) = until(app, |s, _| s == StatusCode::OK).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (begin, end) = open_window();
    let (activity, _) = api
        .running_activity(activity_body(100, 5, &begin, &end))
        .await;
    // A worker serves health, readiness and metrics, and no API.
    let (status, body) = worker
        .call(
            Method::GET,
            &format!("/api/v1/activities/{activity}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = worker.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);

    proxy.cut().await;
    let (status, body) = until(&worker, |s, _| s == StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(mentions(&body["failing"], "broker"), "{body}");
    let (status, body) = until(&api, |_, b| mentions(&b["degraded"], "broker")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an API instance stays ready: {body}"
    );
    assert!(mentions(&body["degraded"], "broker"), "{body}");
    // And it takes draws.
    let user = api.user("during-outage").await;
    let (status, drawn) = api
        .call(
            Method::POST,
            &format!("/api/v1/activities/{activity}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{drawn}");

    proxy.restore().await.expect("restore");
    let (status, body) = until(&worker, |s, _| s == StatusCode::OK).await;
    assert_eq!(status, StatusCode::OK, "the worker is ready again: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn a_twenty_second_broker_cut_under_load_writes_few_log_lines() {
    let amqp = Service::RabbitMq.require().await;
    let proxy = TcpProxy::for_service(Service::RabbitMq)
        .await
        .expect("proxy");
    let via = proxy.proxied_url(&amqp).expect("proxied url");
    // The first instance only serves; the second relays and consumes through the proxy,
    // with its log collected.
    let api = App::spawn_with(Mode::Cluster, &[("LOTTERY_ROLE", "api")]).await;
    let log: common::LogLines = std::sync::Arc::default();
    let relay = api
        .spawn_peer_logging(&[("LOTTERY_AMQP__URL", &via)], Some(log.clone()))
        .await;
    let (begin, end) = open_window();
    let (activity, _) = api
        .running_activity(activity_body(100_000, 1_000, &begin, &end))
        .await;
    let users: Vec<String> = futures::future::join_all((0..8).map(|i| {
        let relay = &relay;
        async move { relay.user(&format!("loud-{i}")).await }
    }))
    .await;

    let path = format!("/api/v1/activities/{activity}/draw");
    proxy.cut().await;
    let started = Instant::now();
    let mut draws = 0;
    while started.elapsed() < Duration::from_secs(20) {
        let round = futures::future::join_all(
            users
                .iter()
                .map(|u| relay.call(Method::POST, &path, Some(u), None)),
        )
        .await;
        draws += round.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.restore().await.expect("restore");
    let lines = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    eprintln!(
        "{draws} draws during a 20 s broker cut; {} log lines",
        lines.len()
    );
    assert!(draws > 100, "draws went on during the cut: {draws}");
    assert!(
        lines.len() < 100,
        "{} log lines, e.g. {:?}",
        lines.len(),
        lines.iter().take(5).collect::<Vec<_>>()
    );
}
