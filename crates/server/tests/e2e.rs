//! End-to-end: the real `lottery` binary on a random port, embedded and cluster mode, every
//! endpoint, every error code, and the auth rules.

#[macro_use]
mod common;

use common::{App, Mode, activity_body, open_window};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_modes!(every_endpoint_in_a_campaign, auth_rules, error_codes);

async fn every_endpoint_in_a_campaign(mode: Mode) {
    let app = App::spawn(mode).await;
    let admin = Some(app.admin.as_str());
    let alice = app.user("alice").await;
    let (begin, end) = open_window();

    // Deploy, list, read, revise while editing.
    let (s, deployed) = app
        .call(
            Method::POST,
            "/api/v1/admin/activities",
            admin,
            Some(activity_body(50, 2, &begin, &end)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{deployed}");
    assert_eq!(deployed["state"], "editing");
    let id = deployed["activity_id"].as_str().expect("id").to_owned();
    assert!(
        deployed["strategy_id"].is_string(),
        "64-bit ids are strings"
    );
    let mut revised = activity_body(60, 2, &begin, &end);
    revised["name"] = json!("E2E campaign, revised");
    let (s, v) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/activities/{id}"),
            admin,
            Some(revised),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, list) = app
        .call(
            Method::GET,
            "/api/v1/admin/activities?name=revised&state=editing&limit=10",
            admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    for action in ["submit", "approve", "start"] {
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/admin/activities/{id}/actions/{action}"),
                admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, detail) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/activities/{id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (detail["state"].as_str(), detail["stock"].as_u64()),
        (Some("doing"), Some(60))
    );
    assert_eq!(
        detail["strategy"]["awards"].as_array().map(Vec::len),
        Some(2)
    );

    // Users: public view, draws (with an idempotent replay), orders, own standing.
    let (s, public) = app
        .call(
            Method::GET,
            &format!("/api/v1/activities/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(public["stock_left"], 60);
    let first = app
        .raw(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&alice),
            None,
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("json");
    let replay = app
        .raw(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&alice),
            None,
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(
        (replay["take_id"].clone(), replay["replayed"].clone()),
        (first["take_id"].clone(), json!(true))
    );
    let (s, second) = app
        .call(Method::POST, &format!("/api/v1/activities/{id}/draw"), Some(&alice), Some(json!({"shipping_address": {
            "recipient": "Alice", "phone": "1", "line1": "1 Main St", "city": "Springfield", "country": "US"}})))
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let (s, mine) = app
        .call(
            Method::GET,
            &format!("/api/v1/me/activities/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (mine["takes_used"].as_u64(), mine["takes_left"].as_u64()),
        (Some(2), Some(0))
    );
    let wins = [&first, &second]
        .iter()
        .filter(|d| d["result"] == "win")
        .count();
    let (s, orders) = app
        .call(Method::GET, "/api/v1/me/orders", Some(&alice), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(orders["items"].as_array().map(Vec::len), Some(wins));
    // The admin view counts the activity's orders across every shard, by delivery state.
    let (s, detail) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/activities/{id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let counted: u64 = ["granted", "pending", "awaiting_address", "failed"]
        .iter()
        .filter_map(|k| detail["orders"][k].as_u64())
        .sum();
    assert_eq!(counted, wins as u64, "{detail}");

    // Rule trees and drawing by rules.
    let tree = json!({"name": "by gender", "root": 1,
        "nodes": [{"id": 1, "kind": "stem", "rule_key": "gender"}, {"id": 2, "kind": "fruit", "value": id},
                  {"id": 3, "kind": "fruit", "value": "1"}],
        "lines": [{"from": 1, "to": 2, "op": "enum", "value": "woman, man"}, {"from": 1, "to": 3, "op": "eq", "value": "other"}]});
    let (s, created) = app
        .call(Method::POST, "/api/v1/admin/rule-trees", admin, Some(tree))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let tree_id = created["tree_id"].as_str().expect("tree id").to_owned();
    let (s, got) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/rule-trees/{tree_id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(
        (s, got["nodes"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );
    let (s, trees) = app
        .call(Method::GET, "/api/v1/admin/rule-trees", admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{trees}");
    assert_eq!(
        (
            trees["items"][0]["tree_id"].as_str(),
            trees["items"][0]["nodes"].as_u64()
        ),
        (Some(tree_id.as_str()), Some(3)),
        "{trees}"
    );
    let bob = app.user("bob").await;
    let (s, by_rules) = app
        .call(
            Method::POST,
            "/api/v1/draw",
            Some(&bob),
            Some(json!({"tree_id": tree_id, "facts": {"gender": "man", "age": 30}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{by_rules}");
    assert_eq!(by_rules["activity_id"].as_str(), Some(id.as_str()));
    let (s, e) = app
        .call(
            Method::POST,
            "/api/v1/draw",
            Some(&bob),
            Some(json!({"tree_id": tree_id, "facts": {"age": 30}})),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "missing fact: {e}"
    );

    // Simulation, inline and of the deployed activity.
    let (s, sim) = app
        .call(
            Method::POST,
            "/api/v1/admin/strategies/simulate",
            admin,
            Some(json!({"mode": "single", "awards": [{"rate": "0.25"}], "draws": 100000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sim}");
    let observed = sim["awards"][0]["observed"].as_f64().expect("observed");
    assert!((observed - 0.25).abs() < 0.01, "{sim}");
    let (s, sim) = app
        .call(
            Method::POST,
            "/api/v1/admin/strategies/simulate",
            admin,
            Some(json!({"activity_id": id, "draws": 1000})),
        )
        .await;
    assert_eq!((s, sim["draws"].as_u64()), (StatusCode::OK, Some(1000)));

    // Operations.
    let (s, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK, "{ready}");
    let metrics = app
        .raw(Method::GET, "/metrics", None, None, &[])
        .await
        .text()
        .await
        .expect("metrics");
    let draws: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("lottery_draws_total{result=\"win\"}")
                || l.starts_with("lottery_draws_total{result=\"lose\"}")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(draws, 4, "three draws and one replay counted:\n{metrics}");
    assert!(
        metrics.contains(&format!("lottery_stock_left{{activity=\"{id}\"}} 57")),
        "{metrics}"
    );
    let (s, spec) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/v1/admin/activities",
        "/api/v1/activities/{id}/draw",
        "/api/v1/draw",
        "/api/v1/me/orders",
        "/api/v1/admin/rule-trees",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let docs = app.raw(Method::GET, "/docs/", None, None, &[]).await;
    assert_eq!(docs.status(), StatusCode::OK);
}

async fn auth_rules(mode: Mode) {
    let app = App::spawn(mode).await;
    let (begin, end) = open_window();
    let (id, _) = app
        .running_activity(activity_body(10, 1, &begin, &end))
        .await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let draw = format!("/api/v1/activities/{id}/draw");

    let (s, e) = app.call(Method::POST, &draw, None, None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _) = app
        .call(Method::POST, &draw, Some("not-a-token"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let (s, _) = app.call(Method::POST, &draw, Some(&forged), None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a tampered signature is refused"
    );
    let (s, e) = app
        .call(Method::GET, "/api/v1/admin/activities", Some(&alice), None)
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, _) = app.call(Method::POST, &draw, Some(&app.admin), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins do not draw as users");
    let (s, _) = app
        .call(Method::GET, "/api/v1/admin/activities", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // A user sees only their own orders and takes.
    let (s, _) = app.call(Method::POST, &draw, Some(&alice), None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, alice_mine) = app
        .call(
            Method::GET,
            &format!("/api/v1/me/activities/{id}"),
            Some(&alice),
            None,
        )
        .await;
    let (_, bob_mine) = app
        .call(
            Method::GET,
            &format!("/api/v1/me/activities/{id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (
            alice_mine["takes_used"].as_u64(),
            bob_mine["takes_used"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let (_, bob_orders) = app
        .call(Method::GET, "/api/v1/me/orders", Some(&bob), None)
        .await;
    assert_eq!(bob_orders["items"].as_array().map(Vec::len), Some(0));
}

async fn error_codes(mode: Mode) {
    let app = App::spawn_with(mode, &[("LOTTERY_WORKERS__STATE_INTERVAL_MS", "3600000")]).await;
    let admin = Some(app.admin.as_str());
    let user = app.user("errors").await;
    let now = chrono::Utc::now();
    let iso = |d: chrono::Duration| (now + d).to_rfc3339();
    let code = |v: &Value| v["code"].as_str().map(str::to_owned);

    // Bad input: field-level messages.
    let mut bad = activity_body(
        10,
        1,
        &iso(chrono::Duration::hours(-1)),
        &iso(chrono::Duration::days(1)),
    );
    bad["strategy"]["awards"][1]["rate"] = json!("0.9");
    let (s, e) = app
        .call(Method::POST, "/api/v1/admin/activities", admin, Some(bad))
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("above 1"),
        "{e}"
    );
    let mut bad = activity_body(
        10,
        1,
        &iso(chrono::Duration::hours(-1)),
        &iso(chrono::Duration::days(1)),
    );
    bad["strategy"]["awards"][0]["rate"] = json!("lots");
    let (_, e) = app
        .call(Method::POST, "/api/v1/admin/activities", admin, Some(bad))
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("strategy.awards[0].rate"),
        "{e}"
    );
    let resp = app
        .client
        .post(format!("{}/api/v1/admin/activities", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Its own client: the server answers before reading the whole body and closes the
    // connection, which must not be reused for the next request.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/activities", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(vec![b' '; 200_000])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let e: Value = resp.json().await.expect("json error body");
    assert_eq!(code(&e).as_deref(), Some("payload_too_large"));
    let (s, e) = app
        .call(Method::GET, "/api/v1/admin/activities/abc", admin, None)
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, e) = app
        .call(Method::GET, "/api/v1/admin/activities/123", admin, None)
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, e) = app.call(Method::GET, "/api/v1/nowhere", None, None).await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Not open (editing), then an illegal action and an unknown one.
    let (s, d) = app
        .call(
            Method::POST,
            "/api/v1/admin/activities",
            admin,
            Some(activity_body(
                1,
                1,
                &iso(chrono::Duration::hours(-1)),
                &iso(chrono::Duration::days(1)),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = d["activity_id"].as_str().expect("id").to_owned();
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::CONFLICT, Some("not_open"))
    );
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/activities/{id}/actions/open"),
            admin,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::CONFLICT, Some("illegal_state_action"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("editing"),
        "{e}"
    );
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/activities/{id}/actions/explode"),
            admin,
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Sold out and quota used up.
    for action in ["submit", "approve", "start"] {
        app.call(
            Method::POST,
            &format!("/api/v1/admin/activities/{id}/actions/{action}"),
            admin,
            None,
        )
        .await;
    }
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        matches!(code(&e).as_deref(), Some("quota_exhausted" | "sold_out")),
        "{e}"
    );
    let other = app.user("other").await;
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::CONFLICT, Some("sold_out"))
    );
    let (s, e) = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/activities/{id}"),
            admin,
            Some(activity_body(
                1,
                1,
                &iso(chrono::Duration::hours(-1)),
                &iso(chrono::Duration::days(1)),
            )),
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::CONFLICT, Some("conflict")),
        "revise while doing"
    );

    let (quota_id, _) = app
        .running_activity(activity_body(
            10,
            1,
            &iso(chrono::Duration::hours(-1)),
            &iso(chrono::Duration::days(1)),
        ))
        .await;
    app.call(
        Method::POST,
        &format!("/api/v1/activities/{quota_id}/draw"),
        Some(&user),
        None,
    )
    .await;
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{quota_id}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::CONFLICT, Some("quota_exhausted"))
    );

    // Not started and ended (started by hand; the scheduler is slowed down for this server).
    let (future, _) = app
        .running_activity(activity_body(
            5,
            1,
            &iso(chrono::Duration::days(1)),
            &iso(chrono::Duration::days(2)),
        ))
        .await;
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{future}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e).as_deref()),
        (StatusCode::CONFLICT, Some("not_started"))
    );
    let (past, _) = app
        .running_activity(activity_body(
            5,
            1,
            &iso(chrono::Duration::days(-2)),
            &iso(chrono::Duration::days(-1)),
        ))
        .await;
    let (s, e) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{past}/draw"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!((s, code(&e).as_deref()), (StatusCode::GONE, Some("ended")));

    // Rate limit: a burst far above the per-user allowance.
    let (busy, _) = app
        .running_activity(activity_body(
            1_000,
            1_000,
            &iso(chrono::Duration::hours(-1)),
            &iso(chrono::Duration::days(1)),
        ))
        .await;
    let hasty = app.user("hasty").await;
    let mut limited = 0;
    for _ in 0..60 {
        let (s, e) = app
            .call(
                Method::POST,
                &format!("/api/v1/activities/{busy}/draw"),
                Some(&hasty),
                None,
            )
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&e).as_deref(), Some("rate_limited"));
            limited += 1;
        }
    }
    assert!(limited > 0, "60 draws at once must hit the per-user limit");
}

/// 503 `unavailable` (and a failing `/readyz`) while Redis is unreachable; back to normal
/// when it returns. Redis is reached through a proxy so the shared server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB, Redis and RabbitMQ on 127.0.0.1"]
async fn cluster_unavailable_while_redis_is_down() {
    let redis = lottery_testkit::Service::Redis.require().await;
    let proxy = lottery_testkit::TcpProxy::for_service(lottery_testkit::Service::Redis)
        .await
        .expect("proxy");
    let via = proxy.proxied_url(&redis).expect("proxied url");
    let app = App::spawn_with(Mode::Cluster, &[("LOTTERY_REDIS__URL", via.as_str())]).await;
    let (begin, end) = open_window();
    let (id, _) = app
        .running_activity(activity_body(10, 5, &begin, &end))
        .await;
    let user = app.user("patient").await;
    let draw = format!("/api/v1/activities/{id}/draw");
    let (s, _) = app.call(Method::POST, &draw, Some(&user), None).await;
    assert_eq!(s, StatusCode::OK);

    proxy.cut().await;
    let (s, e) = app.call(Method::POST, &draw, Some(&user), None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
        "{e}"
    );
    let (s, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    let (s, e) = app
        .call(
            Method::DELETE,
            "/api/v1/admin/activities",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    proxy.restore().await.expect("restore");
    let mut recovered = false;
    for _ in 0..30 {
        let (s, _) = app.call(Method::POST, &draw, Some(&user), None).await;
        if s == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "draws work again once Redis is back");
    let (_, mine) = app
        .call(
            Method::GET,
            &format!("/api/v1/me/activities/{id}"),
            Some(&user),
            None,
        )
        .await;
    assert_eq!(
        mine["takes_used"].as_u64(),
        Some(2),
        "the failed draw took nothing: {mine}"
    );
}
