//! Configuration changes reach every listening instance.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lottery_activity::ChangeFeed;
use lottery_domain::ActivityId;
use lottery_stock::{RedisChangeFeed, RedisTarget};
use lottery_testkit::{PrivateRedisCluster, Service, unique_name};

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

/// What one listener saw.
#[derive(Default)]
struct Seen {
    changed: Mutex<Vec<ActivityId>>,
    resyncs: Mutex<u32>,
}

impl Seen {
    fn listen(self: &Arc<Self>, feed: &RedisChangeFeed) -> tokio::task::JoinHandle<()> {
        let (one, all) = (self.clone(), self.clone());
        feed.listen(
            move |id| one.changed.lock().expect("lock").push(id),
            move || *all.resyncs.lock().expect("lock") += 1,
        )
    }

    fn resyncs(&self) -> u32 {
        *self.resyncs.lock().expect("lock")
    }

    fn has(&self, id: ActivityId) -> bool {
        self.changed.lock().expect("lock").contains(&id)
    }

    async fn wait_for(&self, what: &str, bound: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + bound;
        while !done(self) {
            assert!(Instant::now() < deadline, "waited {bound:?} for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn cluster_feed(seeds: &[String], prefix: &str) -> RedisChangeFeed {
    RedisChangeFeed::for_target(&RedisTarget::Cluster(seeds.to_vec()), prefix)
        .expect("feed")
        .with_timeout(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (a private Redis Cluster)"]
async fn on_a_cluster_announcements_reach_listeners_on_every_node() {
    let cluster = PrivateRedisCluster::start(3, 0)
        .await
        .expect("a private Redis Cluster (redis-server and redis-cli)");
    let seeds = cluster.seeds();
    let prefix = unique_name("feed");
    // Each listener on a node of its own; the announcement goes through the third.
    let seen: Vec<Arc<Seen>> = (0..2).map(|_| Arc::default()).collect();
    let listeners: Vec<_> = seen
        .iter()
        .zip(&seeds)
        .map(|(s, node)| s.listen(&cluster_feed(std::slice::from_ref(node), &prefix)))
        .collect();
    for s in &seen {
        s.wait_for("a subscription", Duration::from_secs(5), |s| {
            s.resyncs() > 0
        })
        .await;
    }
    let id = ActivityId::new(271).expect("id");
    cluster_feed(&seeds[2..], &prefix)
        .announce(id)
        .await
        .expect("announce");
    for s in &seen {
        s.wait_for("the announcement", Duration::from_secs(5), |s| s.has(id))
            .await;
    }
    for l in listeners {
        l.abort();
    }
}

/// The listener's node dies (killed), then another hangs (DEBUG SLEEP): each time the
/// listener moves to a node it learnt from the cluster, resyncs, and hears what is announced
/// from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (a private Redis Cluster)"]
async fn on_a_cluster_the_listener_moves_on_when_its_node_dies_or_hangs() {
    let mut cluster = PrivateRedisCluster::start(3, 1)
        .await
        .expect("a private Redis Cluster (redis-server and redis-cli)");
    let prefix = unique_name("feed");
    // Seeded with one replica only: the others are learnt from the cluster.
    let master = cluster.master_of("any").await.expect("master");
    let replica = cluster.replica_of(master).await.expect("replica");
    let seen = Arc::new(Seen::default());
    let listener = seen.listen(&cluster_feed(
        &[format!("redis://127.0.0.1:{replica}")],
        &prefix,
    ));
    seen.wait_for("a subscription", Duration::from_secs(5), |s| {
        s.resyncs() == 1
    })
    .await;
    let announcer = cluster_feed(&[format!("redis://127.0.0.1:{master}")], &prefix);

    cluster.kill(replica);
    seen.wait_for("a new subscription", Duration::from_secs(10), |s| {
        s.resyncs() == 2
    })
    .await;
    let first = ActivityId::new(1).expect("id");
    announcer.announce(first).await.expect("announce");
    seen.wait_for("the announcement", Duration::from_secs(5), |s| s.has(first))
        .await;

    // Whichever node it is on now stops answering clients for 3 s (the cluster bus goes on,
    // so nothing fails over): no connection ends, the heartbeat notices.
    let started = Instant::now();
    for port in cluster.ports().into_iter().filter(|p| *p != replica) {
        cluster
            .command(port, &["CLIENT", "PAUSE", "3000", "ALL"])
            .await
            .expect("pause");
    }
    seen.wait_for(
        "a subscription after the pause",
        Duration::from_secs(10),
        |s| s.resyncs() >= 3,
    )
    .await;
    eprintln!(
        "subscribed again {:?} after the pause began",
        started.elapsed()
    );
    let second = ActivityId::new(2).expect("id");
    announcer.announce(second).await.expect("announce");
    seen.wait_for("the announcement", Duration::from_secs(5), |s| {
        s.has(second)
    })
    .await;
    listener.abort();
}
