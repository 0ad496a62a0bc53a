//! The dependency rule: domain crates never depend, directly or through anything they pull
//! in, on the database, web, cache, broker or async-runtime crates. Ports live in the domain;
//! adapters implement them elsewhere.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// The pure domain crates.
const DOMAIN: &[&str] = &[
    "lottery-domain",
    "lottery-ids",
    "lottery-strategy",
    "lottery-award",
    "lottery-activity",
    "lottery-rule",
];

/// Crate names (or prefixes followed by '-') that only adapters may use.
const INFRASTRUCTURE: &[&str] = &[
    "sqlx",
    "axum",
    "redis",
    "deadpool",
    "lapin",
    "tokio",
    "hyper",
    "reqwest",
    "mio",
    "tower",
    "amq-protocol",
];

fn is_infrastructure(name: &str) -> bool {
    INFRASTRUCTURE
        .iter()
        .any(|bad| name == *bad || name.starts_with(&format!("{bad}-")))
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Package id -> (name, ids of its normal, non-dev, non-build dependencies).
fn normal_graph(meta: &Value) -> HashMap<String, (String, Vec<String>)> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve graph")
        .iter()
        .filter_map(|node| {
            let id = node["id"].as_str()?;
            let deps = node["deps"]
                .as_array()?
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                })
                .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                .collect();
            Some((id.to_owned(), ((*names.get(id)?).to_owned(), deps)))
        })
        .collect()
}

#[test]
fn domain_crates_do_not_reach_infrastructure() {
    let meta = metadata();
    let graph = normal_graph(&meta);
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut checked = BTreeSet::new();
    let mut violations = Vec::new();
    for member in &members {
        let Some((name, _)) = graph.get(*member) else {
            continue;
        };
        if !DOMAIN.contains(&name.as_str()) {
            continue;
        }
        checked.insert(name.clone());
        // Walk every normal dependency reachable from this crate, keeping the path for the report.
        let mut stack = vec![(member.to_string(), vec![name.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((id, path)) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some((_, deps)) = graph.get(&id) else {
                continue;
            };
            for dep in deps {
                let dep_name = graph.get(dep).map_or(dep.as_str(), |(n, _)| n.as_str());
                let mut next = path.clone();
                next.push(dep_name.to_owned());
                if is_infrastructure(dep_name) {
                    violations.push(next.join(" -> "));
                } else {
                    stack.push((dep.clone(), next));
                }
            }
        }
    }
    let expected: BTreeSet<String> = DOMAIN.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        checked, expected,
        "every domain crate must be a workspace member and be checked"
    );
    assert!(
        violations.is_empty(),
        "domain crates reach infrastructure:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_rule_recognises_infrastructure_names() {
    assert!(is_infrastructure("tokio"));
    assert!(is_infrastructure("sqlx-core"));
    assert!(is_infrastructure("deadpool-redis"));
    assert!(!is_infrastructure("serde"));
    assert!(!is_infrastructure("tokio_like"));
}
