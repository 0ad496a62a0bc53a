//! Shared set-up for the broker tests: unique names, sample messages, a recording handler.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lottery_activity::{Handled, Inbound, MessageHandler, OutboxMessage, Topic};
use lottery_domain::UserId;
use lottery_mq::{AmqpConsumer, MqAdmin, MqConfig};
use lottery_testkit::{Service, unique_name};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A config whose exchange and queues belong to this test alone, with short timings.
pub async fn fresh_config(label: &str) -> MqConfig {
    let url = Service::RabbitMq.require().await;
    let mut config = MqConfig::new(url);
    config.exchange = unique_name(&format!("mq_{label}"));
    config.queue_prefix = unique_name(&format!("mq_{label}"));
    config.retry_delay_ms = 100;
    config.reconnect_min_ms = 100;
    config.reconnect_max_ms = 1_000;
    config.reconnect_cooldown_ms = 200;
    config.connect_timeout_ms = 2_000;
    config.confirm_timeout_ms = 5_000;
    config.shutdown_grace_ms = 5_000;
    config
}

pub async fn admin(config: &MqConfig) -> MqAdmin {
    let admin = MqAdmin::connect(config).await.expect("admin connects");
    admin.declare_topology().await.expect("topology declares");
    admin
}

pub async fn remove(admin: MqAdmin) {
    admin.delete_topology().await.expect("topology deletes");
    admin.close().await;
}

pub fn message(topic: Topic, id: &str, payload: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: id.to_owned(),
        topic,
        user_id: UserId::new("user-1").expect("valid user id"),
        payload: payload.to_owned(),
        created_at: chrono::Utc::now(),
    }
}

pub fn json_messages(topic: Topic, prefix: &str, n: usize) -> Vec<OutboxMessage> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            message(
                topic,
                &id,
                &serde_json::json!({ "n": i, "id": id }).to_string(),
            )
        })
        .collect()
}

type Decide = dyn Fn(&Inbound, usize) -> Handled + Send + Sync;

/// Records every delivery it sees; `decide` gets the message and how many times its id was
/// seen before, and the outcome is only returned after `delay`.
pub struct Recorder {
    seen: Mutex<Vec<Inbound>>,
    done: Mutex<Vec<String>>,
    delay: Duration,
    decide: Box<Decide>,
}

impl Recorder {
    pub fn new(
        delay: Duration,
        decide: impl Fn(&Inbound, usize) -> Handled + Send + Sync + 'static,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            seen: Mutex::new(Vec::new()),
            done: Mutex::new(Vec::new()),
            delay,
            decide: Box::new(decide),
        })
    }

    pub fn accepting(delay: Duration) -> Arc<Recorder> {
        Self::new(delay, |_, _| Handled::Done)
    }

    pub fn seen(&self) -> Vec<Inbound> {
        self.seen.lock().expect("lock").clone()
    }

    /// Ids the handler returned `Done` for, in order, with repeats.
    pub fn done(&self) -> Vec<String> {
        self.done.lock().expect("lock").clone()
    }

    pub fn done_count(&self) -> usize {
        self.done.lock().expect("lock").len()
    }

    pub fn done_by_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in self.done() {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

#[async_trait::async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: &Inbound) -> Handled {
        let before = {
            let mut seen = self.seen.lock().expect("lock");
            let before = seen
                .iter()
                .filter(|m| m.message_id == message.message_id)
                .count();
            seen.push(message.clone());
            before
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let outcome = (self.decide)(message, before);
        if outcome == Handled::Done {
            self.done
                .lock()
                .expect("lock")
                .push(message.message_id.clone());
        }
        outcome
    }
}

/// A consumer running in its own task, stoppable gracefully or by abort.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    pub fn start(config: &MqConfig, handler: Arc<Recorder>, topic: Topic) -> Running {
        let consumer = AmqpConsumer::new(config.clone()).expect("valid consumer config");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                // A dropped sender also means stop.
                let _ = stopped.await;
            };
            consumer.run(handler, topic, shutdown).await;
        });
        Running {
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("consumer stops within 20 s")
            .expect("consumer task did not panic");
    }

    /// Kills the consumer without its graceful stop, like a crashed process.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
