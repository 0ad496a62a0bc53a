//! Configuration changes reach every listening instance.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lottery_activity::ChangeFeed;
use lottery_domain::ActivityId;
use lottery_stock::RedisChangeFeed;
use lottery_testkit::{Service, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at 127.0.0.1:6379 (LOTTERY_TEST_REDIS_URL)"]
async fn announcements_reach_every_listener() {
    let url = Service::Redis.require().await;
    let prefix = unique_name("feed");
    let feed = RedisChangeFeed::new(&url, &prefix).expect("feed");
    let seen: Vec<Arc<Mutex<Vec<ActivityId>>>> =
        (0..2).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let resyncs = Arc::new(Mutex::new(0));
    let listeners: Vec<_> = seen
        .iter()
        .map(|s| {
            let s = s.clone();
            let r = resyncs.clone();
            RedisChangeFeed::new(&url, &prefix).expect("feed").listen(
                move |id| s.lock().expect("lock").push(id),
                move || *r.lock().expect("lock") += 1,
            )
        })
        .collect();
    // Both listeners subscribed (each resyncs once on connecting).
    let deadline = Instant::now() + Duration::from_secs(5);
    while *resyncs.lock().expect("lock") < 2 {
        assert!(Instant::now() < deadline, "listeners did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = ActivityId::new(314).expect("id");
    feed.announce(id).await.expect("announce");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.iter().any(|s| s.lock().expect("lock").is_empty()) {
        assert!(
            Instant::now() < deadline,
            "an instance missed the announcement"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in &seen {
        assert_eq!(*s.lock().expect("lock"), vec![id]);
    }
    for l in listeners {
        l.abort();
    }
}
