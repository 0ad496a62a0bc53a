//! The per-user draw rate limit holds across instances: in cluster mode it lives in Redis, so
//! one user drawing as fast as possible through two instances gets the configured rate in
//! total, not once per instance.

mod common;

use std::time::{Duration, Instant};

use common::{App, Mode, activity_body, open_window};
use reqwest::{Method, StatusCode};

const PER_SECOND: u32 = 5;
const BURST: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ on 127.0.0.1"]
async fn one_user_drawing_through_two_instances_is_held_to_the_rate_in_total() {
    let (per_second, burst) = (PER_SECOND.to_string(), BURST.to_string());
    let env = [
        ("LOTTERY_HTTP__DRAWS_PER_SECOND", per_second.as_str()),
        ("LOTTERY_HTTP__DRAW_BURST", burst.as_str()),
    ];
    let first = App::spawn_with(Mode::Cluster, &env).await;
    let second = first.spawn_peer(&env).await;
    let (begin, end) = open_window();
    let (activity, _) = first
        .running_activity(activity_body(10_000, 10_000, &begin, &end))
        .await;
    let user = first.user("hasty").await;
    let path = format!("/api/v1/activities/{activity}/draw");
    // Eight callers, each alternating between the instances, for three seconds.
    let run = Duration::from_secs(3);
    let started = Instant::now();
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let apps = [&first, &second];
            let (user, path) = (&user, &path);
            async move {
                let mut answers = Vec::new();
                let mut n = caller;
                while started.elapsed() < run {
                    let instance = n % 2;
                    n += 1;
                    let (status, body) = apps[instance]
                        .call(Method::POST, path, Some(user), None)
                        .await;
                    answers.push((instance, status, body));
                }
                answers
            }
        })
        .collect();
    let answers: Vec<_> = futures::future::join_all(callers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let allowed: Vec<_> = answers
        .iter()
        .filter(|(_, s, _)| *s != StatusCode::TOO_MANY_REQUESTS)
        .collect();
    let unexpected: Vec<_> = allowed
        .iter()
        .filter(|(_, s, _)| *s != StatusCode::OK)
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let most = f64::from(BURST) + f64::from(PER_SECOND) * elapsed + 1.0;
    eprintln!(
        "{} draws tried in {elapsed:.2} s, {} allowed (at most {most:.1})",
        answers.len(),
        allowed.len()
    );
    assert!(
        answers.len() > 100,
        "the callers drew as fast as they could"
    );
    assert!(
        allowed.len() as f64 <= most,
        "{} draws allowed across two instances, more than {most:.1}",
        allowed.len()
    );
    // Not held below the rate either, and both instances served some.
    assert!(allowed.len() as f64 >= f64::from(BURST) + f64::from(PER_SECOND) * elapsed * 0.7);
    for instance in 0..2 {
        assert!(
            allowed.iter().any(|(i, _, _)| *i == instance),
            "instance {instance} allowed none"
        );
    }
}
