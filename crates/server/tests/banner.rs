//! The start banner names the token command that works for the mode: in cluster mode tokens
//! are signed with the configuration's secret, so the command must name the configuration.

mod common;

use std::time::{Duration, Instant};

use common::{App, LogLines, Mode};
use reqwest::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ"]
async fn the_banner_names_a_token_command_that_works() {
    let first = App::spawn(Mode::Cluster).await;
    let log = LogLines::default();
    let peer = first.spawn_peer_logging(&[], Some(log.clone())).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let command = loop {
        let line = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find_map(|l| {
                l.split_once("admin token: ")
                    .map(|(_, c)| c.trim().to_owned())
            });
        if let Some(line) = line {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no admin token line in the banner"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"lottery"), "{command}");
    assert!(
        words.contains(&"--config"),
        "cluster tokens need the configuration: {command}"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lottery"))
        .args(&words[1..])
        .output()
        .await
        .expect("run the banner's command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf-8");
    let (status, body) = peer
        .call(
            Method::GET,
            "/api/v1/admin/activities",
            Some(token.trim()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
