//! How many statements the draw writer sends, counted from sqlx's statement log: sqlx logs
//! each statement it runs once, at target `sqlx::query`. On MariaDB that is every round trip
//! but the pool's pings, transaction control included; SQLite runs `BEGIN`, `SAVEPOINT`,
//! `RELEASE` and `COMMIT` without logging them.
//!
//! The tests share the process-wide log, so they run one at a time.

mod common;

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Backend, env, order, take, user};
use lottery_activity::{DrawRecord, DrawRepository, RecordOutcome};
use lottery_storage::BatchOptions;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata};

static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts sqlx's statement events and nothing else.
struct StatementLog;

impl tracing::Subscriber for StatementLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn count_statements() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(StatementLog).expect("no other subscriber");
    });
}

/// User `i` draws take `take_id` (limit 10), a win with its message when `win`.
fn draw(i: usize, take_id: i64, win: bool) -> DrawRecord {
    let u = user(&format!("counted-{i}"));
    let t = take(take_id, &u, 1);
    DrawRecord {
        new_take: Some((t.clone(), 10)),
        take_id: t.take_id,
        user_id: u,
        idempotency_key: Some(format!("key-{take_id}")),
        win: win.then(|| {
            let (o, m) = order(50_000 + take_id, &t);
            (o, Some(m))
        }),
        generation: 0,
    }
}

/// Statements for one draw alone, then for one batch of `BatchOptions::default().max_rows`
/// draws (a new take each, half of them wins, half of the users drawing for the first time)
/// on one shard database of four tables.
async fn statements_per_batch(b: Backend) -> (u64, u64) {
    let _alone = ONE_AT_A_TIME.lock().await;
    count_statements();
    let batch = BatchOptions::default().max_rows;
    let e = env(b, 1, 4).await;
    let draws = e.storage.batched_draws(BatchOptions::default());
    // Half of the users have drawn before: their counters exist. This opens the connection.
    for i in 0..batch / 2 {
        let first = draws.record_draw(draw(i, i as i64 + 1, false)).await;
        assert_eq!(first, Ok(RecordOutcome::Recorded));
    }
    STATEMENTS.store(0, Ordering::Relaxed);
    let alone = draws.record_draw(draw(0, 100_000, true)).await;
    assert_eq!(alone, Ok(RecordOutcome::Recorded));
    let single = STATEMENTS.swap(0, Ordering::Relaxed);
    // On this current-thread runtime the writer runs only once every draw below is queued,
    // so it takes them all in one batch.
    let tasks: Vec<_> = (0..batch)
        .map(|i| {
            let draws = draws.clone();
            tokio::spawn(async move {
                draws
                    .record_draw(draw(i, 1_000 + i as i64, i % 2 == 0))
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), Ok(RecordOutcome::Recorded));
    }
    let batched = STATEMENTS.load(Ordering::Relaxed);
    eprintln!("{b:?}: {single} statements for a draw alone, {batched} for a batch of {batch}");
    (single, batched)
}

/// One statement for the fence, four per user table (counters read and written, takes,
/// orders), one for the outbox and one for the activity tally; on MariaDB `BEGIN` and
/// `COMMIT` too.
#[tokio::test(flavor = "current_thread")]
async fn a_batch_takes_a_handful_of_statements_sqlite() {
    let (single, batched) = statements_per_batch(Backend::Sqlite).await;
    assert_eq!(single, 7);
    assert!(batched <= 1 + 4 * 4 + 2, "{batched} statements");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn a_batch_takes_a_handful_of_statements_mariadb() {
    let (single, batched) = statements_per_batch(Backend::MariaDb).await;
    assert_eq!(single, 2 + 7);
    assert!(batched <= 2 + 1 + 4 * 4 + 2, "{batched} statements");
}
