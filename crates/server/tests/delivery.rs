//! Award delivery against the real MariaDB and RabbitMQ: every win granted exactly once in
//! effect, through broker outages, process kills and competing instances.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use db_router::RouterConfig;
use lottery_activity::{
    AwardInvoice, DrawRecord, DrawRepository, EventPublisher, OutboxMessage, OutboxRepository,
    RecordOutcome, TakeState, Topic, UserTake, WinOrder,
};
use lottery_app::{AwardDelivery, OutboxRelay, RelayOptions, Services};
use lottery_award::{
    Award, AwardDistributor, AwardKind, Delivery, DistributeError, Grant, GrantState,
};
use lottery_domain::{ActivityId, AwardId, OrderId, StrategyId, TakeId, UserId};
use lottery_mq::{AmqpConsumer, AmqpPublisher, MqAdmin, MqConfig};
use lottery_server::config::Config;
use lottery_stock::MemoryLedger;
use lottery_storage::{BatchOptions, OutboxState, Storage};
use lottery_strategy::DrawMode;
use lottery_testkit::{FreshMysql, Service, TcpProxy, unique_name};
use tokio::sync::oneshot;

/// Counts deliveries per order: a plug-in award kind registered through the public API.
#[derive(Default)]
struct Counted {
    seen: Mutex<HashMap<i64, u32>>,
}

impl Counted {
    const KIND: AwardKind = AwardKind::from_static("counted");
}

#[async_trait::async_trait]
impl AwardDistributor for Counted {
    fn kind(&self) -> AwardKind {
        Self::KIND
    }
    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        *self
            .seen
            .lock()
            .expect("lock")
            .entry(grant.order_id.get())
            .or_default() += 1;
        Ok(Delivery {
            detail: "counted".into(),
        })
    }
}

struct World {
    storage: Storage,
    svc: Services,
    counted: Arc<Counted>,
    mq: MqConfig,
    urls: Vec<String>,
    _db: FreshMysql,
    /// Dropping it stops the worker id lease's renewals.
    _lease: tokio::sync::watch::Sender<bool>,
}

impl World {
    async fn new() -> World {
        Service::MariaDb.require().await;
        let amqp = Service::RabbitMq.require().await;
        let db = FreshMysql::create("delivery", 3).await.expect("databases");
        let urls = db.urls().to_vec();
        let mut rc = RouterConfig::new(urls[0].clone(), urls[1..].to_vec(), 4);
        rc.max_connections = 8;
        rc.acquire_timeout_ms = 30_000;
        let storage = Storage::connect(&rc).await.expect("storage");
        storage.migrate().await.expect("migrate");
        let identity = lottery_server::compose::identity(&Config::default(), &storage)
            .await
            .expect("worker id");
        // Keep the lease renewed for as long as the world lives.
        let (keep, renewing) = tokio::sync::watch::channel(false);
        tokio::spawn(identity.clone().run(renewing));
        let mut svc = lottery_server::compose::services(
            &storage,
            &Default::default(),
            Arc::new(MemoryLedger::new()),
            identity.ids(),
        );
        let counted = Arc::new(Counted::default());
        svc.registry
            .register(counted.clone())
            .expect("register counted");
        let name = unique_name("dlv");
        let mut mq = MqConfig::new(amqp);
        mq.exchange = format!("{name}.events");
        mq.queue_prefix = name;
        mq.retry_delay_ms = 100;
        let admin = MqAdmin::connect(&mq).await.expect("broker");
        admin.declare_topology().await.expect("topology");
        admin.close().await;
        World {
            storage,
            svc,
            counted,
            mq,
            urls,
            _db: db,
            _lease: keep,
        }
    }

    async fn cleanup(self) {
        if let Ok(admin) = MqAdmin::connect(&self.mq).await {
            let _ = admin.delete_topology().await;
            admin.close().await;
        }
        self.storage.close().await;
    }

    /// `n` wins recorded as draws would record them (take, order and outbox row).
    async fn wins(&self, n: usize, offset: usize) {
        self.wins_of(n, offset, Counted::KIND).await;
    }

    async fn wins_of(&self, n: usize, offset: usize, kind: AwardKind) {
        let draws = Arc::new(self.storage.batched_draws(BatchOptions::default()));
        let mut tasks = Vec::new();
        for i in offset..offset + n {
            let draws = draws.clone();
            let kind = kind.clone();
            tasks.push(tokio::spawn(async move {
                let record = win_record(i, kind);
                assert_eq!(draws.record_draw(record).await, Ok(RecordOutcome::Recorded));
            }));
            if tasks.len() >= 256 {
                for t in tasks.drain(..) {
                    t.await.expect("win");
                }
            }
        }
        for t in tasks {
            t.await.expect("win");
        }
    }

    async fn count(&self, sql_for_route: impl Fn(&db_router::Route) -> Option<String>) -> u64 {
        let mut total = 0;
        for route in self.storage.router().routes() {
            let Some(sql) = sql_for_route(&route) else {
                continue;
            };
            let pool = self.storage.router().pool(&route).expect("pool");
            let n: i64 = sqlx::query_scalar(&sql)
                .fetch_one(pool)
                .await
                .expect("count");
            total += n as u64;
        }
        total
    }

    async fn complete(&self) -> u64 {
        self.count(|r| {
            Some(format!(
                "SELECT COUNT(*) FROM {} WHERE grant_state = 'complete'",
                r.table("win_order")
            ))
        })
        .await
    }

    async fn processed(&self) -> u64 {
        self.count(|r| (r.table == 0).then(|| "SELECT COUNT(*) FROM processed_message".to_owned()))
            .await
    }

    fn consumer(&self) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let consumer = AmqpConsumer::new(self.mq.clone()).expect("consumer");
        let handler = Arc::new(AwardDelivery::new(
            self.svc.grants.clone(),
            self.svc.registry.clone(),
            self.svc.clock.clone(),
            5,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            consumer
                .run(handler, Topic::AwardInvoice, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, task)
    }

    fn relay(&self, publisher: Arc<dyn EventPublisher>) -> OutboxRelay {
        let options = RelayOptions {
            batch: 1_000,
            backoff: chrono::Duration::milliseconds(50),
            max_backoff: chrono::Duration::milliseconds(500),
            ..RelayOptions::default()
        };
        OutboxRelay::new(
            self.svc.outbox.clone(),
            self.svc.clock.clone(),
            publisher,
            options,
        )
    }

    async fn wait_for(
        &self,
        what: &str,
        expected: u64,
        within: Duration,
        mut tick: impl AsyncFnMut(),
    ) {
        let deadline = Instant::now() + within;
        loop {
            tick().await;
            let done = self.complete().await;
            if done >= expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {done} of {expected} granted in time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn win_record(i: usize, kind: AwardKind) -> DrawRecord {
    let user = UserId::new(format!("winner-{i}")).expect("user");
    let take_id = TakeId::new(1_000_000 + i as i64).expect("id");
    let order_id = OrderId::new(5_000_000 + i as i64).expect("id");
    let activity = ActivityId::new(42).expect("id");
    let award = Award::new(AwardId::new(7).expect("id"), kind, "points", "10").expect("award");
    let now = Utc::now();
    let take = UserTake {
        take_id,
        user_id: user.clone(),
        activity_id: activity,
        strategy_id: StrategyId::new(1).expect("id"),
        take_number: 0,
        taken_at: now,
        state: TakeState::Used,
    };
    let order = WinOrder {
        order_id,
        take_id,
        user_id: user.clone(),
        activity_id: activity,
        strategy_id: StrategyId::new(1).expect("id"),
        mode: DrawMode::Single,
        award: award.clone(),
        fallback: false,
        grant_state: GrantState::Init,
        delivery: None,
        created_at: now,
        granted_at: None,
    };
    let invoice = AwardInvoice {
        version: AwardInvoice::VERSION,
        user_id: user.clone(),
        order_id,
        activity_id: activity,
        award,
        shipping: None,
    };
    let message = OutboxMessage::invoice(&invoice, now).expect("message");
    DrawRecord {
        new_take: Some((take, 1)),
        take_id,
        user_id: user,
        idempotency_key: None,
        win: Some((order, Some(message))),
        generation: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB and RabbitMQ on 127.0.0.1"]
async fn ten_thousand_wins_are_granted_exactly_once() {
    let w = World::new().await;
    w.wins(10_000, 0).await;
    let publisher: Arc<dyn EventPublisher> =
        Arc::new(AmqpPublisher::new(w.mq.clone()).expect("publisher"));
    let relay = w.relay(publisher);
    let (stop, consumer) = w.consumer();
    let started = Instant::now();
    w.wait_for(
        "10,000 wins",
        10_000,
        Duration::from_secs(180),
        async || {
            relay.run_once().await.expect("relay");
        },
    )
    .await;
    eprintln!("10,000 wins relayed and granted in {:?}", started.elapsed());
    assert_eq!(
        w.processed().await,
        10_000,
        "one processed record per message"
    );
    assert_eq!(
        w.storage
            .outbox()
            .count(OutboxState::Sent)
            .await
            .expect("count"),
        10_000
    );
    let seen = w.counted.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 10_000, "every order reached its distributor");
    let _ = stop.send(());
    let _ = consumer.await;
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB and RabbitMQ on 127.0.0.1"]
async fn a_broker_outage_delays_delivery_but_loses_nothing() {
    let w = World::new().await;
    let proxy = TcpProxy::for_service(Service::RabbitMq)
        .await
        .expect("proxy");
    let mut via = w.mq.clone();
    via.url = proxy.proxied_url(&w.mq.url).expect("proxied url");
    via.connect_timeout_ms = 500;
    let publisher = Arc::new(AmqpPublisher::new(via).expect("publisher"));
    let relay = w.relay(publisher);
    let (stop, consumer) = w.consumer();

    proxy.cut().await;
    // Draws still succeed: their wins wait in the outbox.
    w.wins(500, 0).await;
    let report = relay.run_once().await.expect("relay");
    assert_eq!((report.sent, report.retried), (0, 500), "{report:?}");
    assert_eq!(
        w.storage.outbox().backlog().await.expect("backlog").pending,
        500
    );

    proxy.restore().await.expect("restore");
    w.wait_for(
        "after the outage",
        500,
        Duration::from_secs(60),
        async || {
            let _ = relay.run_once().await;
        },
    )
    .await;
    assert_eq!(w.processed().await, 500);
    let seen = w.counted.seen.lock().expect("lock").clone();
    assert!(seen.values().all(|n| *n >= 1) && seen.len() == 500);
    let _ = stop.send(());
    let _ = consumer.await;
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB and RabbitMQ on 127.0.0.1"]
async fn two_relays_and_two_schedulers_side_by_side() {
    let w = World::new().await;
    w.wins(3_000, 0).await;
    let p1: Arc<dyn EventPublisher> =
        Arc::new(AmqpPublisher::new(w.mq.clone()).expect("publisher"));
    let p2: Arc<dyn EventPublisher> =
        Arc::new(AmqpPublisher::new(w.mq.clone()).expect("publisher"));
    let (r1, r2) = (w.relay(p1), w.relay(p2));
    let (stop, consumer) = w.consumer();
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.storage.outbox().backlog().await.expect("backlog").pending > 0 {
        assert!(Instant::now() < deadline, "relays did not drain the outbox");
        let (a, b) = tokio::join!(r1.run_once(), r2.run_once());
        a.expect("relay 1");
        b.expect("relay 2");
    }
    w.wait_for("two relays", 3_000, Duration::from_secs(60), async || {})
        .await;
    assert_eq!(w.processed().await, 3_000);
    let seen = w.counted.seen.lock().expect("lock").clone();
    let twice = seen.values().filter(|n| **n > 1).count();
    assert_eq!((seen.len(), twice), (3_000, 0), "each row published once");
    let _ = stop.send(());
    let _ = consumer.await;

    // Two schedulers: each due activity moves once.
    let lottery = lottery_app::Lottery::new(w.svc.clone());
    let now = Utc::now();
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut cmd = lottery_server::api::demo_command();
        cmd.name = format!("scheduled {i}");
        cmd.begin_time = now - chrono::Duration::minutes(5);
        let d = lottery
            .administration()
            .deploy(cmd, "admin")
            .await
            .expect("deploy");
        lottery
            .administration()
            .act(d.activity_id, lottery_activity::Action::Submit)
            .await
            .expect("submit");
        lottery
            .administration()
            .act(d.activity_id, lottery_activity::Action::Approve)
            .await
            .expect("approve");
        ids.push(d.activity_id);
    }
    let s1 = lottery.scheduler(None, lottery_app::SchedulerOptions::default());
    let s2 = lottery_app::Lottery::new(w.svc.clone())
        .scheduler(None, lottery_app::SchedulerOptions::default());
    let (a, b) = tokio::join!(s1.move_activities(), s2.move_activities());
    assert_eq!(
        a.expect("scheduler 1") + b.expect("scheduler 2"),
        10,
        "each activity moved exactly once"
    );
    for id in ids {
        assert_eq!(
            lottery
                .administration()
                .activity(id)
                .await
                .expect("activity")
                .state(),
            lottery_activity::ActivityState::Doing
        );
    }
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB and RabbitMQ on 127.0.0.1"]
async fn a_malformed_message_is_dead_lettered_and_does_not_block() {
    let w = World::new().await;
    let publisher = Arc::new(AmqpPublisher::new(w.mq.clone()).expect("publisher"));
    let bad = OutboxMessage {
        message_id: "garbage-1".into(),
        topic: Topic::AwardInvoice,
        user_id: UserId::new("nobody").expect("user"),
        payload: "{this is not an invoice".into(),
        created_at: Utc::now(),
    };
    publisher.publish(&bad).await.expect("published");
    w.wins(50, 0).await;
    let relay = w.relay(publisher);
    let (stop, consumer) = w.consumer();
    w.wait_for(
        "after a poison message",
        50,
        Duration::from_secs(60),
        async || {
            let _ = relay.run_once().await;
        },
    )
    .await;
    let admin = MqAdmin::connect(&w.mq).await.expect("admin");
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin
        .dead_letter_depth(Topic::AwardInvoice)
        .await
        .expect("depth")
        < 1
    {
        assert!(
            Instant::now() < deadline,
            "the malformed message did not reach the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin.close().await;
    let _ = stop.send(());
    let _ = consumer.await;
    w.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB, Redis and RabbitMQ on 127.0.0.1"]
async fn killing_the_worker_process_loses_nothing_and_grants_nothing_twice() {
    let w = World::new().await;
    let redis = Service::Redis.require().await;
    // A built-in kind: the worker process has only the built-in distributors.
    w.wins_of(3_000, 0, AwardKind::DESCRIPTION).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nglobal_url = {:?}\nshard_urls = [{:?}, {:?}]\ntables = 4\n[redis]\nurl = {redis:?}\nprefix = {:?}\n\
             [amqp]\nurl = {:?}\nexchange = {:?}\nqueue_prefix = {:?}\nprefetch = 16\n[auth]\njwt_secret = \"a-worker-test-secret-that-is-long-enough\"\n\
             [workers]\nrelay_interval_ms = 50\n",
            w.urls[0], w.urls[1], w.urls[2], unique_name("kill"), w.mq.url, w.mq.exchange, w.mq.queue_prefix
        ),
    )
    .expect("config");
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_lottery"))
            .args([
                "serve",
                "--role",
                "worker",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .env("LOTTERY_LOG__LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("worker process")
    };
    // Kill it as soon as it has done part of the work.
    let mut worker = spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = w.complete().await;
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the worker made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.start_kill().expect("SIGKILL");
    let _ = worker.wait().await;
    let at_kill = w.complete().await;
    eprintln!("worker killed after {at_kill} of 3,000 grants");

    // The dead worker's claimed rows come back after their lease; a new worker finishes.
    let mut worker = spawn();
    w.wait_for(
        "after a SIGKILL",
        3_000,
        Duration::from_secs(120),
        async || {},
    )
    .await;
    worker.start_kill().expect("stop");
    let _ = worker.wait().await;
    assert_eq!(w.processed().await, 3_000, "each message applied once");
    assert_eq!(w.complete().await, 3_000);
    w.cleanup().await;
}
