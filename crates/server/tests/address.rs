//! Physical prizes wait for their address: against the real binary, embedded and cluster.
//! A win without a shipping address is stored `awaiting_address` and nothing delivers (or
//! fails) it; the winner gives the address later, once, and only then is it shipped.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{App, Mode, open_window};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_modes!(physical_prizes_wait_for_their_address);

/// An activity whose only prize is `kind`, won by every draw.
fn certain_win(kind: &str, stock: u32) -> Value {
    let (begin, end) = open_window();
    json!({
        "name": format!("Certain {kind}"),
        "begin_time": begin,
        "end_time": end,
        "stock": stock,
        "take_limit": 3,
        "strategy": {"mode": "single", "awards": [
            {"type": kind, "name": "Phone", "content": "SKU-PHONE", "count": stock, "rate": "1"}
        ]}
    })
}

fn address() -> Value {
    json!({"recipient": "Alice Liddell", "phone": "+1 555 0100", "line1": "1 Rabbit Hole",
           "city": "Springfield", "postal_code": "12345", "country": "US"})
}

fn code(v: &Value) -> Option<&str> {
    v["code"].as_str()
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or_default()
}

/// The user's order `id` as `GET /api/v1/me/orders` shows it.
async fn my_order(app: &App, token: &str, id: &str) -> Value {
    let (s, orders) = app
        .call(Method::GET, "/api/v1/me/orders", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{orders}");
    orders["items"]
        .as_array()
        .and_then(|items| items.iter().find(|o| o["order_id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("order {id} not listed: {orders}"))
}

/// Waits until the order's grant state is `state`; returns the order.
async fn order_reaches(app: &App, token: &str, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let order = my_order(app, token, id).await;
        if order["grant_state"] == state {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} did not become {state}: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows in every shard database matching `sql` (one `?`, bound to `id`).
async fn shard_rows(app: &App, mode: Mode, sql: &str, id: &str) -> i64 {
    let mut total = 0;
    match mode {
        Mode::Cluster => {
            for url in &app.database_urls()[1..] {
                let pool = sqlx::MySqlPool::connect(url).await.expect("shard");
                let n: i64 = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                total += n;
            }
        }
        Mode::Embedded => {
            let files = std::fs::read_dir(&app.data_dir).expect("data dir");
            for file in files {
                let path = file.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if !(name.starts_with("shard_") && name.ends_with(".db")) {
                    continue;
                }
                let url = format!("sqlite://{}?mode=ro", path.display());
                let pool = sqlx::SqlitePool::connect(&url).await.expect("shard");
                let n: i64 = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                total += n;
            }
        }
    }
    total
}

async fn physical_prizes_wait_for_their_address(mode: Mode) {
    let app = App::spawn(mode).await;
    let admin = Some(app.admin.as_str());
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (phones, _) = app.running_activity(certain_win("physical", 10)).await;
    let draw = format!("/api/v1/activities/{phones}/draw");

    // A win without an address waits for it; a replay says the same.
    let first = app
        .raw(
            Method::POST,
            &draw,
            Some(&alice),
            None,
            &[("Idempotency-Key", "phone-1")],
        )
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("json");
    assert_eq!(
        (first["result"].as_str(), first["grant_state"].as_str()),
        (Some("win"), Some("awaiting_address")),
        "{first}"
    );
    let order_id = first["order_id"].as_str().expect("order id").to_owned();
    let replay: Value = app
        .raw(
            Method::POST,
            &draw,
            Some(&alice),
            None,
            &[("Idempotency-Key", "phone-1")],
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            replay["order_id"].as_str(),
            replay["grant_state"].as_str(),
            replay["replayed"].as_bool()
        ),
        (
            Some(order_id.as_str()),
            Some("awaiting_address"),
            Some(true)
        ),
        "{replay}"
    );
    assert_eq!(
        my_order(&app, &alice, &order_id).await["grant_state"],
        "awaiting_address"
    );

    // The admin listing shows it, with whose it is; bad queries name the parameter.
    let awaiting = format!("/api/v1/admin/orders?state=awaiting_address&activity_id={phones}");
    let (s, listed) = app.call(Method::GET, &awaiting, admin, None).await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(
        (items[0]["order_id"].as_str(), items[0]["user_id"].as_str()),
        (Some(order_id.as_str()), Some("alice"))
    );
    for (query, parameter) in [
        ("state=shipped", "state"),
        ("", "state"),
        ("state=awaiting_address&limit=0", "limit"),
        ("state=awaiting_address&limit=201", "limit"),
        ("state=awaiting_address&limit=many", "limit"),
        ("state=awaiting_address&after=x", "after"),
        ("state=awaiting_address&activity_id=-1", "activity_id"),
    ] {
        let (s, e) = app
            .call(
                Method::GET,
                &format!("/api/v1/admin/orders?{query}"),
                admin,
                None,
            )
            .await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{query}: {e}"
        );
        assert!(message(&e).contains(parameter), "{query}: {e}");
    }
    let (s, _) = app.call(Method::GET, &awaiting, Some(&alice), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Nothing delivers or fails it: a win drawn after it (a coupon) is delivered, and the
    // phone still waits, with no delivery message written for it.
    let (coupons, _) = app.running_activity(certain_win("coupon", 10)).await;
    let (s, sentinel) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{coupons}/draw"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sentinel}");
    let sentinel_id = sentinel["order_id"].as_str().expect("order id").to_owned();
    assert_eq!(sentinel["grant_state"], "init", "{sentinel}");
    order_reaches(&app, &bob, &sentinel_id, "complete").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = my_order(&app, &alice, &order_id).await;
    assert_eq!(
        (waiting["grant_state"].as_str(), &waiting["delivery"]),
        (Some("awaiting_address"), &Value::Null),
        "{waiting}"
    );
    let outbox = "SELECT COUNT(*) FROM outbox WHERE message_id = ?";
    assert_eq!(shard_rows(&app, mode, outbox, &order_id).await, 0);

    // A bad address with a draw is refused before anything is drawn.
    let carol = app.user("carol").await;
    let mut blank_city = address();
    blank_city["city"] = json!("  ");
    let (s, e) = app
        .call(
            Method::POST,
            &draw,
            Some(&carol),
            Some(json!({"shipping_address": blank_city})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
        "{e}"
    );
    assert!(message(&e).contains("city"), "{e}");
    let (_, standing) = app
        .call(
            Method::GET,
            &format!("/api/v1/me/activities/{phones}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(standing["takes_used"], 0, "nothing was taken: {standing}");
    let (_, public) = app
        .call(
            Method::GET,
            &format!("/api/v1/activities/{phones}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(
        public["stock_left"], 9,
        "only alice's draw took stock: {public}"
    );

    // Bad addresses for the order: refused naming the field; the order still waits.
    let shipping = format!("/api/v1/me/orders/{order_id}/shipping");
    let mut missing_country = address();
    missing_country
        .as_object_mut()
        .expect("object")
        .remove("country");
    let mut unknown_field = address();
    unknown_field["planet"] = json!("Earth");
    let mut long_phone = address();
    long_phone["phone"] = json!("5".repeat(33));
    let mut two_lines = address();
    two_lines["line1"] = json!("1 Rabbit Hole\nDown Below");
    let mut mistyped = address();
    mistyped["recipient"] = json!(42);
    let mut blank_city = address();
    blank_city["city"] = json!("");
    for (body, field) in [
        (blank_city, "city"),
        (missing_country, "country"),
        (unknown_field, "planet"),
        (long_phone, "phone"),
        (two_lines, "line1"),
        (mistyped, "recipient"),
    ] {
        let (s, e) = app
            .call(Method::PUT, &shipping, Some(&alice), Some(body.clone()))
            .await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")),
            "{body}: {e}"
        );
        assert!(message(&e).contains(field), "{field}: {e}");
    }
    let resp = app
        .client
        .put(format!("{}{shipping}", app.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        my_order(&app, &alice, &order_id).await["grant_state"],
        "awaiting_address"
    );

    // Someone else's order, or none: not found.
    let (s, e) = app
        .call(Method::PUT, &shipping, Some(&bob), Some(address()))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{e}"
    );
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/me/orders/123/shipping",
            Some(&alice),
            Some(address()),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Eight at once: one gives the address, the others are told it is given already.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, token) = (
                app.client.clone(),
                format!("{}{shipping}", app.base),
                alice.clone(),
            );
            tokio::spawn(async move {
                let resp = client
                    .put(url)
                    .bearer_auth(token)
                    .json(&address())
                    .send()
                    .await
                    .expect("request");
                let status = resp.status();
                (status, resp.json::<Value>().await.expect("json"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for r in racers {
        answers.push(r.await.expect("task"));
    }
    let given: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(given.len(), 1, "{answers:?}");
    assert_eq!(given[0].1["order_id"], order_id.as_str());
    assert_eq!(given[0].1["grant_state"], "init", "{answers:?}");
    for (s, e) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*s, code(e)),
            (StatusCode::CONFLICT, Some("conflict")),
            "{e}"
        );
        assert!(
            message(e).contains(&format!("order {order_id} is not awaiting an address")),
            "{e}"
        );
    }

    // Shipped once, to that address.
    let shipped = order_reaches(&app, &alice, &order_id, "complete").await;
    let detail = shipped["delivery"].as_str().expect("delivery detail");
    assert!(
        detail.contains("Alice Liddell")
            && detail.contains("1 Rabbit Hole")
            && detail.contains("Springfield"),
        "{shipped}"
    );
    assert_eq!(
        shard_rows(&app, mode, outbox, &order_id).await,
        1,
        "one delivery message"
    );
    let processed = "SELECT COUNT(*) FROM processed_message WHERE message_id = ?";
    assert_eq!(
        shard_rows(&app, mode, processed, &order_id).await,
        1,
        "granted once"
    );
    let (s, e) = app
        .call(Method::PUT, &shipping, Some(&alice), Some(address()))
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, Some("conflict")),
        "{e}"
    );
    assert!(message(&e).contains("(it is complete)"), "{e}");
    assert_eq!(
        my_order(&app, &alice, &order_id).await,
        shipped,
        "nothing changed"
    );

    // No longer listed as awaiting; listed as complete.
    let (s, listed) = app.call(Method::GET, &awaiting, admin, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    let (_, complete) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/orders?state=complete&activity_id={phones}"),
            admin,
            None,
        )
        .await;
    assert_eq!(
        complete["items"][0]["order_id"],
        order_id.as_str(),
        "{complete}"
    );

    // A draw that carries a valid address is delivered at once.
    let dave = app.user("dave").await;
    let (s, direct) = app
        .call(
            Method::POST,
            &draw,
            Some(&dave),
            Some(json!({"shipping_address": address()})),
        )
        .await;
    assert_eq!(
        (s, direct["grant_state"].as_str()),
        (StatusCode::OK, Some("init")),
        "{direct}"
    );
    let direct_id = direct["order_id"].as_str().expect("order id");
    order_reaches(&app, &dave, direct_id, "complete").await;

    // Documented, with the answers a client must handle.
    let (_, spec) = app.call(Method::GET, "/openapi.json", None, None).await;
    let put = &spec["paths"]["/api/v1/me/orders/{order_id}/shipping"]["put"]["responses"];
    for status in ["200", "404", "409", "422"] {
        assert!(put.get(status).is_some(), "PUT shipping {status}: {put}");
    }
    let list = &spec["paths"]["/api/v1/admin/orders"]["get"]["responses"];
    assert!(list.get("400").is_some(), "{list}");
    let draw = &spec["paths"]["/api/v1/activities/{id}/draw"]["post"]["responses"];
    assert!(draw.get("422").is_some(), "{draw}");
}
