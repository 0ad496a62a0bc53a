//! The deployment files under `deploy/` and the root `Dockerfile`: the compose files validate,
//! the Grafana dashboard queries only metrics a real server exports, the balancer, Prometheus
//! and compose name the same instances, and `deploy/local-cluster.sh` is well-formed shell.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{App, Mode, activity_body, open_window};
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn run(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .ok()
}

fn succeeded(out: &Output) -> bool {
    out.status.success()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The compose client: Debian's `docker-compose`, else the `docker compose` plugin. Neither
/// needs a container engine to validate a file.
fn compose_tool() -> Option<Vec<&'static str>> {
    if run("docker-compose", &["version"]).is_some_and(|o| succeeded(&o)) {
        return Some(vec!["docker-compose"]);
    }
    if run("docker", &["compose", "version"]).is_some_and(|o| succeeded(&o)) {
        return Some(vec!["docker", "compose"]);
    }
    None
}

#[test]
#[ignore = "needs docker-compose"]
fn the_compose_files_validate() {
    let Some(tool) = compose_tool() else {
        panic!(
            "neither docker-compose nor the docker compose plugin is installed{}: \
             `apt-get install -y docker-compose` (scripts/services.sh does)",
            if in_ci() { " in CI" } else { "" }
        );
    };
    let compose = |args: &[&str]| {
        let mut all: Vec<&str> = tool[1..].to_vec();
        all.extend_from_slice(args);
        let out = run(tool[0], &all).expect("run the compose client");
        assert!(
            succeeded(&out),
            "{} {}: {}",
            tool.join(" "),
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    compose(&["-f", "deploy/docker-compose.yml", "config", "-q"]);
    compose(&[
        "-f",
        "deploy/docker-compose.yml",
        "-f",
        "deploy/docker-compose.redis-cluster.yml",
        "config",
        "-q",
    ]);
    let services: BTreeSet<String> =
        compose(&["-f", "deploy/docker-compose.yml", "config", "--services"])
            .lines()
            .map(str::to_owned)
            .collect();
    for service in [
        "db-1",
        "db-2",
        "redis",
        "rabbitmq",
        "migrate",
        "api-1",
        "api-2",
        "api-3",
        "api-4",
        "worker-1",
        "haproxy",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains(service), "{service} in {services:?}");
    }
    let merged = compose(&[
        "-f",
        "deploy/docker-compose.yml",
        "-f",
        "deploy/docker-compose.redis-cluster.yml",
        "config",
    ]);
    assert!(
        merged.contains("LOTTERY_REDIS__CLUSTER: 'true'")
            || merged.contains("LOTTERY_REDIS__CLUSTER: \"true\""),
        "{merged}"
    );
}

/// Four API instances and a worker, named alike by the balancer, Prometheus, compose and the
/// local cluster script.
#[test]
fn the_balancer_prometheus_and_compose_name_the_same_instances() {
    let haproxy = read("deploy/haproxy/haproxy.cfg");
    let compose = read("deploy/docker-compose.yml");
    let script = read("deploy/local-cluster.sh");
    assert!(
        script.contains("API_COUNT=4"),
        "the script runs four API instances"
    );
    for n in 1..=4 {
        assert!(
            haproxy.contains(&format!("server api-{n} \"${{LOTTERY_API_{n}}}\" check")),
            "haproxy.cfg checks api-{n}"
        );
        assert!(
            compose.contains(&format!("LOTTERY_API_{n}: api-{n}:8080")),
            "compose gives haproxy api-{n}"
        );
        assert!(
            compose.contains(&format!("\n  api-{n}:\n")),
            "compose runs api-{n}"
        );
    }
    assert!(haproxy.contains("http-check send meth GET uri /readyz"));
    let targets: Value =
        serde_json::from_str(&read("deploy/prometheus/targets/lottery-compose.json"))
            .expect("targets json");
    let instances: BTreeSet<&str> = targets
        .as_array()
        .expect("a list of target groups")
        .iter()
        .filter_map(|group| group["labels"]["instance"].as_str())
        .collect();
    assert_eq!(
        instances,
        BTreeSet::from(["api-1", "api-2", "api-3", "api-4", "worker-1"])
    );
    let dockerfile = read("Dockerfile");
    for needed in [
        "cargo build --release -p lottery-server --locked",
        "FROM debian:",
        "USER lottery",
        "HEALTHCHECK",
        "/readyz",
    ] {
        assert!(dockerfile.contains(needed), "the Dockerfile has {needed}");
    }
}

/// The HAProxy configuration, checked by HAProxy itself with the addresses the local cluster
/// gives it, when HAProxy is installed (`deploy/local-cluster.sh up` installs it).
#[test]
fn haproxy_accepts_its_configuration() {
    if run("haproxy", &["-v"]).is_none() {
        eprintln!("haproxy is not installed: configuration not checked");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("admin.sock");
    let out = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(repo().join("deploy/haproxy/haproxy.cfg"))
        // -c binds nothing: any ports do.
        .env("LOTTERY_LB_BIND", "127.0.0.1:18000")
        .env("LOTTERY_LB_STATS_BIND", "127.0.0.1:18001")
        .env("LOTTERY_LB_SOCKET", &socket)
        .env("LOTTERY_API_1", "127.0.0.1:1")
        .env("LOTTERY_API_2", "127.0.0.1:2")
        .env("LOTTERY_API_3", "127.0.0.1:3")
        .env("LOTTERY_API_4", "127.0.0.1:4")
        .output()
        .expect("run haproxy -c");
    assert!(succeeded(&out), "haproxy -c: {}", text(&out));
}

/// The Prometheus configuration, checked by promtool when it is installed.
#[test]
fn prometheus_accepts_its_configuration() {
    if run("promtool", &["--version"]).is_none() {
        eprintln!("promtool is not installed: configuration not checked");
        return;
    }
    let out = run(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    )
    .expect("run promtool");
    assert!(succeeded(&out), "promtool: {}", text(&out));
}

#[test]
fn the_local_cluster_script_is_well_formed() {
    let script = "deploy/local-cluster.sh";
    let out = run("bash", &["-n", script]).expect("bash");
    assert!(succeeded(&out), "bash -n: {}", text(&out));
    match run("shellcheck", &["--version"]) {
        Some(_) => {
            let out = run("shellcheck", &[script]).expect("shellcheck");
            assert!(succeeded(&out), "shellcheck: {}", text(&out));
        }
        None => eprintln!("shellcheck is not installed: {script} not linted"),
    }
    let help = run("bash", &[script, "--help"]).expect("bash");
    assert!(succeeded(&help), "{}", text(&help));
    for command in ["up", "down [--purge]", "status", "env", "restart NAME"] {
        assert!(text(&help).contains(command), "--help tells of {command}");
    }
    let wrong = run("bash", &[script, "frobnicate"]).expect("bash");
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "an unknown command is a usage error"
    );

    // With no cluster in the state directory, nothing is started or created.
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("cluster");
    let with_state = |args: &[&str]| {
        Command::new("bash")
            .arg(repo().join(script))
            .args(args)
            .env("LOTTERY_CLUSTER_DIR", &state)
            .output()
            .expect("bash")
    };
    let status = with_state(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(
        text(&status).contains("no local cluster"),
        "{}",
        text(&status)
    );
    assert!(!succeeded(&with_state(&["env"])), "env needs a cluster");
    assert!(
        succeeded(&with_state(&["down"])),
        "down with nothing up is fine"
    );
    assert!(!state.exists(), "status, env and down create nothing");
}

/// Every metric a dashboard query names is on a real server's `/metrics` (embedded mode: same
/// metrics as cluster mode), after a draw so that the draw counters have samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let app = App::spawn(Mode::Embedded).await;
    let (begin, end) = open_window();
    let (id, _) = app
        .running_activity(activity_body(10, 3, &begin, &end))
        .await;
    let alice = app.user("alice").await;
    let draw = app
        .raw(
            Method::POST,
            &format!("/api/v1/activities/{id}/draw"),
            Some(&alice),
            None,
            &[("Idempotency-Key", "dashboard-1")],
        )
        .await;
    assert_eq!(draw.status(), StatusCode::OK);
    let metrics = app
        .raw(Method::GET, "/metrics", None, None, &[])
        .await
        .text()
        .await
        .expect("metrics");
    let exported = exported_names(&metrics);
    assert!(
        exported.contains("lottery_draw_duration_seconds_bucket"),
        "{metrics}"
    );

    let dashboards = std::fs::read_dir(repo().join("deploy/grafana/dashboards")).expect("dir");
    let mut used = BTreeSet::new();
    for entry in dashboards {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut queries = Vec::new();
        collect_queries(&dashboard, &mut queries);
        assert!(!queries.is_empty(), "{} queries nothing", path.display());
        for query in &queries {
            for name in metric_names(query) {
                assert!(
                    exported.contains(&name) || PROMETHEUS_SERIES.contains(&name.as_str()),
                    "{}: `{query}` uses {name}, which /metrics does not export",
                    path.display()
                );
                used.insert(name);
            }
        }
    }
    // The panels the deployment documentation promises.
    for family in [
        "lottery_draws_total",
        "lottery_draw_duration_seconds_bucket",
        "lottery_stock_left",
        "lottery_outbox_backlog",
        "lottery_consumer_lag",
        "lottery_reconciled_claims_total",
        "lottery_stock_drift_repairs_total",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
}

/// Series Prometheus makes itself for every target (not on any `/metrics`).
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

/// Sample and family names on a Prometheus text page.
fn exported_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                names.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Every PromQL query of a dashboard: panel targets' `expr` and query variables' queries
/// (`label_values(SELECTOR, label)` reduced to its selector).
fn collect_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            if map.get("type").and_then(Value::as_str) == Some("query")
                && let Some(query) = map.get("definition").and_then(Value::as_str)
            {
                let selector = query
                    .strip_prefix("label_values(")
                    .and_then(|rest| rest.rsplit_once(','))
                    .map_or(query, |(selector, _label)| selector);
                out.push(selector.to_owned());
            }
            for v in map.values() {
                collect_queries(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers that are not functions, aggregation
/// operators, keywords, label names (inside `{}` and `by (...)`), ranges or numbers.
fn metric_names(expr: &str) -> Vec<String> {
    const NOT_METRICS: [&str; 18] = [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| {
        let mut j = from;
        while j < chars.len() && chars[j] != close {
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_to(i, '}'),
            '[' => i = skip_to(i, ']'),
            '"' | '\'' | '`' => i = skip_to(i + 1, c),
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let call = next < chars.len() && chars[next] == '(';
                if LABEL_LISTS.contains(&word.as_str()) {
                    if call {
                        i = skip_to(next, ')');
                    }
                } else if !call && !NOT_METRICS.contains(&word.to_lowercase().as_str()) {
                    names.push(word);
                }
            }
            '$' => {
                // A Grafana variable outside braces and ranges: `$instance`, `${var}`.
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '{' | '}'))
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.95, sum by (le) (rate(lottery_draw_duration_seconds_bucket{instance=~\"$instance\"}[$__rate_interval])))"
        ),
        ["lottery_draw_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            "sum by (fate) (increase(lottery_reconciled_claims_total[5m])) + on (x) group_left (y) up"
        ),
        ["lottery_reconciled_claims_total", "up"]
    );
    assert_eq!(
        metric_names("max(lottery_consumer_lag) > bool 1e3"),
        ["lottery_consumer_lag"]
    );
}
