//! The console (`/console`) and the play page (`/play/{activity_id}`), served by the real
//! `lottery` binary: how they are served, whether the committed build matches `web/`, and a
//! real browser (Debian's chromium driven by playwright-core, `web/e2e/run.mjs`) walking an
//! admin and a player through a campaign.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{App, Mode, open_window};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// Where screenshots go: `target/browser-artifacts/` (git ignores `target/`).
fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-artifacts")
}

fn chromium() -> PathBuf {
    std::env::var_os("LOTTERY_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails loudly, never skips, when what the browser test needs is missing: the suite's
/// script installs it (scripts/services.sh).
fn require_browser_tooling() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: the browser test needs Node.js 20 or later"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir()
            && web_dir().join("node_modules/@axe-core/playwright").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (scripts/services.sh does)"
    );
    assert!(
        chromium().is_file(),
        "{} is missing: `apt-get install -y chromium` (scripts/services.sh does), or set LOTTERY_CHROMIUM",
        chromium().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_served_from_the_binary_with_their_headers() {
    let app = App::spawn(Mode::Embedded).await;
    for path in [
        "/console",
        "/console/",
        "/console/activities/123",
        "/play/261123702933",
    ] {
        let r = app.raw(Method::GET, path, None, None, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        assert_eq!(
            h[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let html = r.text().await.expect("body");
        assert!(html.contains("<div id=\"app\">"), "{path}: {html}");
    }

    // The page's script and style: content types, long caching, revalidation by ETag.
    let html = app
        .raw(Method::GET, "/play/1", None, None, &[])
        .await
        .text()
        .await
        .expect("body");
    let mut seen = 0;
    for part in html.split("\"/assets/").skip(1) {
        let name = part.split('"').next().expect("a file name");
        let path = format!("/assets/{name}");
        let r = app.raw(Method::GET, &path, None, None, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let expected = if name.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(r.headers()[header::CONTENT_TYPE], expected, "{path}");
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let etag = r.headers()[header::ETAG]
            .to_str()
            .expect("ascii")
            .to_owned();
        let again = app
            .raw(Method::GET, &path, None, None, &[("if-none-match", &etag)])
            .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        seen += 1;
    }
    assert!(
        seen >= 2,
        "the play page loads a script and a style: {html}"
    );

    // Unknown assets and pages are JSON 404s like the API's.
    let (s, v) = app.call(Method::GET, "/assets/nope.js", None, None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, _) = app.call(Method::GET, "/play", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_gives_the_pages_what_they_show() {
    let app = App::spawn(Mode::Embedded).await;
    let admin = Some(app.admin.as_str());
    let player = app.user("odds-reader").await;
    let (begin, end) = open_window();
    let (id, awards) = app
        .running_activity(json!({
            "name": "Odds on show", "begin_time": begin, "end_time": end, "stock": 10, "take_limit": 2,
            "strategy": {"mode": "single", "awards": [
                {"type": "coupon", "name": "Coupon", "content": "C", "count": 4, "rate": "0.25"},
                {"type": "description", "name": "Note", "content": "Hi", "count": 10, "rate": "0.75"}]}
        }))
        .await;

    // Players see each prize's odds and count (promotional draws must disclose odds).
    let (s, public) = app
        .call(
            Method::GET,
            &format!("/api/v1/activities/{id}"),
            Some(&player),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{public}");
    assert_eq!(public["mode"], "single");
    assert_eq!(public["awards"][0]["rate"], "0.25");
    assert_eq!(public["awards"][0]["count"], 4);
    assert_eq!(public["awards"][0]["left"], 4);
    assert_eq!(public["awards"][1]["rate"], "0.75");

    for n in 0..2 {
        let r = app
            .raw(
                Method::POST,
                &format!("/api/v1/activities/{id}/draw"),
                Some(&player),
                None,
                &[("idempotency-key", &format!("odds-{n}"))],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    // The console's statistics: draws, wins per award, orders by delivery state, actions.
    let detail = wait_for(&app, &id, |d| d["orders"]["pending"] == 0).await;
    assert_eq!(detail["draws"], 2);
    assert_eq!(detail["wins"], 2, "every draw wins: the rates sum to 1");
    let won: u64 = detail["strategy"]["awards"]
        .as_array()
        .expect("awards")
        .iter()
        .map(|a| {
            assert_eq!(
                a["won"].as_u64().expect("won") + a["left"].as_u64().expect("left"),
                a["count"].as_u64().expect("count")
            );
            a["won"].as_u64().expect("won")
        })
        .sum();
    assert_eq!(won, 2);
    assert_eq!(detail["orders"]["granted"], 2, "{detail}");
    assert_eq!(detail["orders"]["awaiting_address"], 0);
    assert_eq!(detail["orders"]["failed"], 0);
    assert_eq!(detail["actions"], json!(["close"]));
    assert_eq!(
        detail["strategy"]["awards"][0]["award_id"],
        awards[0].as_str()
    );

    // The listing offers each activity's allowed actions too.
    let (_, list) = app
        .call(
            Method::GET,
            "/api/v1/admin/activities?state=doing",
            admin,
            None,
        )
        .await;
    assert_eq!(list["items"][0]["actions"], json!(["close"]), "{list}");

    // Rule trees are listed, newest first.
    for name in ["first tree", "second tree"] {
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/admin/rule-trees",
                admin,
                Some(json!({"name": name, "root": 1,
                    "nodes": [{"id": 1, "kind": "stem", "rule_key": "age"},
                              {"id": 2, "kind": "fruit", "value": id}],
                    "lines": [{"from": 1, "to": 2, "op": "ge", "value": "18"}]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, trees) = app
        .call(
            Method::GET,
            "/api/v1/admin/rule-trees?limit=10",
            admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{trees}");
    assert_eq!(trees["items"][0]["name"], "second tree", "{trees}");
    assert_eq!(trees["items"][1]["name"], "first tree");
    assert_eq!(
        (
            trees["items"][0]["nodes"].as_u64(),
            trees["items"][0]["lines"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let (s, _) = app
        .call(Method::GET, "/api/v1/admin/rule-trees", Some(&player), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "players cannot list rule trees");

    // A physical prize won without an address is counted as awaiting one.
    let (phone, _) = app
        .running_activity(json!({
            "name": "A phone", "begin_time": begin, "end_time": end, "stock": 5, "take_limit": 1,
            "strategy": {"mode": "single", "awards": [
                {"type": "physical", "name": "Phone", "content": "SKU-1", "count": 1, "rate": "1"}]}
        }))
        .await;
    let winner = app.user("phone-winner").await;
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{phone}/draw"),
            Some(&winner),
            None,
        )
        .await;
    assert_eq!(
        (s, v["grant_state"].as_str()),
        (StatusCode::OK, Some("awaiting_address")),
        "{v}"
    );
    let detail = wait_for(&app, &phone, |d| d["orders"]["awaiting_address"] == 1).await;
    assert_eq!(
        (
            detail["orders"]["pending"].as_u64(),
            detail["orders"]["granted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{detail}"
    );
}

/// The admin detail of `id` once `ready` holds (deliveries run in the background).
async fn wait_for(app: &App, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/admin/activities/{id}");
    let mut last = Value::Null;
    for _ in 0..300 {
        let (s, v) = app.call(Method::GET, &path, Some(&app.admin), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if ready(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the activity did not settle: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and the npm packages in web/"]
async fn an_admin_and_a_player_in_a_real_browser() {
    require_browser_tooling();
    // The admin moves the activity through its states by hand; the scheduler, which would
    // start an approved activity whose time has come, must not win that race (the start
    // button would then meet a 409), so its state round runs only once, at start.
    let app = App::spawn_with(
        Mode::Embedded,
        &[("LOTTERY_WORKERS__STATE_INTERVAL_MS", "3600000")],
    )
    .await;
    let player = app.user("browser-player").await;

    // An approved activity that opens tomorrow, for the play page's "not started" message.
    let now = chrono::Utc::now();
    let (s, upcoming) = app
        .call(
            Method::POST,
            "/api/v1/admin/activities",
            Some(&app.admin),
            Some(json!({
                "name": "Tomorrow's draw",
                "begin_time": (now + chrono::Duration::days(1)).to_rfc3339(),
                "end_time": (now + chrono::Duration::days(8)).to_rfc3339(),
                "stock": 10, "take_limit": 1,
                "strategy": {"mode": "single", "awards": [
                    {"type": "coupon", "name": "Coupon", "content": "C", "count": 5, "rate": "0.5"}]}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{upcoming}");
    let upcoming = upcoming["activity_id"].as_str().expect("id").to_owned();
    for action in ["submit", "approve"] {
        let (s, v) = app
            .call(
                Method::POST,
                &format!("/api/v1/admin/activities/{upcoming}/actions/{action}"),
                Some(&app.admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    // A running activity whose only draw someone else took, and one that ended yesterday.
    let body = |name: &str,
                begin: chrono::DateTime<chrono::Utc>,
                end: chrono::DateTime<chrono::Utc>| {
        json!({
            "name": name, "begin_time": begin.to_rfc3339(), "end_time": end.to_rfc3339(),
            "stock": 1, "take_limit": 1,
            "strategy": {"mode": "single", "awards": [
                {"type": "coupon", "name": "Coupon", "content": "C", "count": 1, "rate": "0.5"}]}
        })
    };
    let (sold_out, _) = app
        .running_activity(body(
            "Popular draw",
            now - chrono::Duration::hours(1),
            now + chrono::Duration::days(1),
        ))
        .await;
    let someone = app.user("someone-else").await;
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/api/v1/activities/{sold_out}/draw"),
            Some(&someone),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (ended, _) = app
        .running_activity(body(
            "Yesterday's draw",
            now - chrono::Duration::days(2),
            now - chrono::Duration::days(1),
        ))
        .await;

    let artifacts = artifacts_dir();
    let base = app.base.clone();
    let admin = app.admin.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("e2e/run.mjs")
            .current_dir(web_dir())
            .env("LOTTERY_URL", base)
            .env("LOTTERY_ADMIN_TOKEN", admin)
            .env("LOTTERY_USER_TOKEN", player)
            .env("LOTTERY_UPCOMING_ID", upcoming)
            .env("LOTTERY_SOLD_OUT_ID", sold_out)
            .env("LOTTERY_ENDED_ID", ended)
            .env("LOTTERY_ARTIFACTS", &artifacts)
            .env("LOTTERY_CHROMIUM", chromium())
            .output()
    })
    .await
    .expect("join")
    .expect("run node e2e/run.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for shot in [
        "console-activities-desktop",
        "console-activities-phone",
        "console-new-activity-desktop",
        "console-activity-desktop",
        "console-activity-phone",
        "play-phone",
        "play-after-draws-phone",
        "play-desktop",
    ] {
        let path = artifacts_dir().join(format!("{shot}.png"));
        assert!(
            path.is_file(),
            "screenshot {} was not saved",
            path.display()
        );
    }
}

/// The committed build in `crates/server/assets/` is what `web/` builds to now (the build
/// is deterministic: file names carry content hashes).
#[test]
#[ignore = "needs the npm packages in web/"]
fn the_committed_pages_are_built_from_the_current_source() {
    require_browser_tooling();
    let out = tempfile::tempdir().expect("temp dir");
    let tsc = Command::new("node")
        .args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."])
        .current_dir(web_dir())
        .output()
        .expect("run tsc");
    assert!(
        tsc.status.success(),
        "the pages do not type-check:\n{}{}",
        String::from_utf8_lossy(&tsc.stdout),
        String::from_utf8_lossy(&tsc.stderr)
    );
    let build = Command::new("node")
        .args([
            "node_modules/vite/bin/vite.js",
            "build",
            "--emptyOutDir",
            "--logLevel",
            "warn",
            "--outDir",
        ])
        .arg(out.path())
        .current_dir(web_dir())
        .output()
        .expect("run vite build");
    assert!(
        build.status.success(),
        "vite build failed:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let built = files(out.path());
    let committed = files(&assets_dir());
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "crates/server/assets/ is out of date: run `npm run build` in web/ and commit the result"
    );
    for (name, bytes) in &built {
        assert!(
            committed.get(name) == Some(bytes),
            "crates/server/assets/{name} is out of date: run `npm run build` in web/ and commit the result"
        );
    }
}

fn files(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(name, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}
