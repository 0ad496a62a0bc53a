//! Handlers and jobs call use cases, never ports: the server reaches the ports only in its
//! composition root, and the application hands no port (nor the bag of them, nor the cache)
//! out through its public API.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The port traits: every `pub trait` of the domain crates' `port.rs` files and the other
/// traits the adapters implement.
fn ports() -> Vec<String> {
    let mut names = vec![
        "EventPublisher".to_owned(),
        "MessageHandler".to_owned(),
        "WorkerLeases".to_owned(),
        "IdSource".to_owned(),
    ];
    for krate in ["activity", "award", "rule", "strategy"] {
        let path = workspace().join(format!("crates/{krate}/src/port.rs"));
        let text = fs::read_to_string(&path).expect("port file");
        for line in text.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub trait ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != "AwardDistributor" {
                    names.push(name);
                }
            }
        }
    }
    assert!(names.len() > 10, "ports found: {names:?}");
    names
}

/// Where `text` names a port or the application's port bag outside comments.
fn port_mentions(text: &str, ports: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if ports.iter().any(|p| p == word) || word == "Services" || word == "services" {
                found.push(format!("line {}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_server_reaches_ports_only_in_its_composition_root() {
    let ports = ports();
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/server/src"), &mut files);
    let mut offences = Vec::new();
    for file in files {
        // The composition root wires adapters to ports; the process entry point only runs it.
        if file.ends_with("compose.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("source");
        for hit in port_mentions(&text, &ports) {
            offences.push(format!("{}: {hit}", file.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "server code outside the composition root reaches ports; call a use case instead:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_application_hands_out_no_port() {
    let ports = ports();
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/app/src"), &mut files);
    let mut offences = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("source");
        // Public functions' signatures up to their body: none may return a port, the bag of
        // ports or the cache itself.
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if !(trimmed.starts_with("pub fn ") || trimmed.starts_with("pub async fn ")) {
                continue;
            }
            let Some((_, returns)) = trimmed.split_once("->") else {
                continue;
            };
            let returns = returns.split('{').next().unwrap_or_default();
            let hands_out =
                !port_mentions(returns, &ports).is_empty() || returns.contains("ConfigCache");
            if hands_out {
                offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "public accessors hand ports out of the application:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_checks_recognise_a_port() {
    let ports = ports();
    assert!(!port_mentions("let s = lottery.services().stock;", &ports).is_empty());
    assert!(!port_mentions("fn f(x: Arc<dyn StockLedger>) {}", &ports).is_empty());
    assert!(port_mentions("// StockLedger in a comment", &ports).is_empty());
    assert!(port_mentions("state.lottery.draw(request)", &ports).is_empty());
}

/// Functions longer than `limit` lines in rustfmt-formatted `text`: (name, first line, length).
fn long_functions(text: &str, limit: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let head = &trimmed[..at];
        let is_fn = head
            .split_whitespace()
            .all(|w| w == "pub" || w.starts_with("pub(") || w == "async" || w == "const");
        if !is_fn {
            continue;
        }
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body opens at the end of the signature and closes at the same indentation.
        let Some(open) = (start..lines.len()).find(|&i| {
            let l = lines[i].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if !lines[open].trim_end().ends_with('{') {
            continue;
        }
        let close = (open + 1..lines.len())
            .find(|&i| lines[i].trim_end() == format!("{}}}", " ".repeat(indent)))
            .unwrap_or(lines.len());
        let length = close - start + 1;
        if length > limit {
            found.push((name, start + 1, length));
        }
    }
    found
}

#[test]
fn application_and_server_functions_stay_short() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/app/src"), &mut files);
    rust_files(&workspace().join("crates/server/src"), &mut files);
    let mut offences = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("source");
        for (name, line, length) in long_functions(&text, 60) {
            offences.push(format!(
                "{}:{line}: {name} has {length} lines",
                file.display()
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "split these into named steps:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_length_check_measures_functions() {
    let body = "    x();\n".repeat(70);
    let text = format!("fn short() {{\n}}\n\npub async fn long() {{\n{body}}}\n");
    assert_eq!(long_functions(&text, 60), vec![("long".to_owned(), 4, 72)]);
}

/// The fields of every struct in `text`: (struct name, field line).
fn struct_fields(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(name) = current.as_ref() {
            if trimmed == "}" {
                current = None;
            } else if !trimmed.starts_with("//") {
                out.push((name.clone(), trimmed.to_owned()));
            }
            continue;
        }
        let head = trimmed
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        if let Some(rest) = head.strip_prefix("struct ")
            && trimmed.ends_with('{')
        {
            current = Some(rest.chars().take_while(|c| c.is_alphanumeric()).collect());
        }
    }
    out
}

#[test]
fn each_service_holds_its_own_ports_not_the_bag_or_another_room() {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/app/src"), &mut files);
    let mut offences = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("source");
        for (name, field) in struct_fields(&text) {
            let ty = field.split_once(':').map(|(_, t)| t).unwrap_or_default();
            let holds_bag = ty
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "Services" || w == "Lottery");
            // `Lottery` is the one assembly of the rooms; nothing else may hold it or the bag.
            if holds_bag && name != "Lottery" {
                offences.push(format!("{}: {name} holds {}", file.display(), field));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "a service holds the whole set of ports (or another service's entry point); give it \
         only the ports it uses:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_field_check_sees_a_held_bag() {
    let text = "pub struct Sync {\n    pub(crate) lottery: Lottery,\n}\nstruct Ok {\n    stock: Arc<dyn StockLedger>,\n}\n";
    let fields = struct_fields(text);
    assert_eq!(fields.len(), 2);
    assert_eq!(
        fields[0],
        ("Sync".into(), "pub(crate) lottery: Lottery,".into())
    );
}

#[test]
fn player_handlers_reach_no_admin_use_case() {
    let path = workspace().join("crates/server/src/api/user.rs");
    let text = fs::read_to_string(&path).expect("user handlers");
    let hits: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.split("//")
                .next()
                .unwrap_or_default()
                .contains("administration()")
        })
        .map(|(n, l)| format!("line {}: {}", n + 1, l.trim()))
        .collect();
    assert!(
        hits.is_empty(),
        "a player's request reaches an admin use case:\n{}",
        hits.join("\n")
    );
}
