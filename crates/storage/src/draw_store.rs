//! Recording draws, with group commit: one writer per shard database takes every draw queued
//! for that database and commits them in one transaction. A draw's answer waits for the
//! commit, so nothing is acknowledged before it is durable, but under load one fsync serves
//! many draws. At low load a draw is written at once (nothing waits for a batch to fill).
//!
//! A batch is written with a handful of multi-row statements (see [`batch`]); when the
//! database refuses one (a reused idempotency key, a voided take id) the batch is written
//! again a record at a time, each in a savepoint, which gives every record its own outcome.

mod batch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use db_router::{Dialect, Route, Router};
use lottery_activity::{
    ClaimFate, ClaimRef, DrawRecord, DrawRepository, PastDraw, RecordOutcome, TakeState,
};
use lottery_domain::{ActivityId, RepoError, RepoResult, UserId};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::error::{Within, is_contention, repo, retrying, router};
use crate::order_store::{insert_orders, order_by_take};
use crate::outbox::insert_outbox;
use crate::rows::{millis, placeholders};
use crate::take_store::{
    TAKE_COLUMNS, TakeRow, UserTables, VOID_STATE, bump_counter, insert_takes, take_from,
};
use crate::tally::Tally;
use batch::Plan;

/// How draws are grouped.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// At most this many draws per transaction.
    pub max_rows: usize,
    /// Draws that may wait for a writer, per shard database, before callers wait to enqueue.
    pub queue: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            max_rows: 128,
            queue: 4096,
        }
    }
}

/// How a store's batches were written, counted since it was made (clones share the counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Batches written with multi-row statements.
    pub multi_row: u64,
    /// Batches written a record at a time: a record drew an open take granted earlier, or
    /// the multi-row statements were refused.
    pub per_record: u64,
    /// Of those, batches whose multi-row statements were refused and rolled back.
    pub fallbacks: u64,
}

#[derive(Debug, Default)]
struct Stats {
    multi_row: AtomicU64,
    per_record: AtomicU64,
    fallbacks: AtomicU64,
}

struct Job {
    record: DrawRecord,
    reply: oneshot::Sender<RepoResult<RecordOutcome>>,
}

/// Records draws, one transaction per draw or grouped per shard database.
#[derive(Clone)]
pub struct DrawStore {
    router: Router,
    /// One queue per shard database when batching.
    writers: Option<Arc<Vec<mpsc::Sender<Job>>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for DrawStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrawStore")
            .field("batched", &self.writers.is_some())
            .finish()
    }
}

impl DrawStore {
    /// One transaction per draw.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            writers: None,
            stats: Arc::default(),
        }
    }

    /// Group commit: spawns one writer task per shard database. The tasks end, after writing
    /// what is queued, when the last clone of this store is dropped.
    pub fn batched(router: Router, options: BatchOptions) -> Self {
        let stats = Arc::<Stats>::default();
        let mut writers = Vec::new();
        for db in router.routes().filter(|r| r.table == 0) {
            let (tx, rx) = mpsc::channel(options.queue.max(1));
            let max_rows = options.max_rows.max(1);
            tokio::spawn(writer(router.clone(), db, rx, max_rows, stats.clone()));
            writers.push(tx);
        }
        Self {
            router,
            writers: Some(Arc::new(writers)),
            stats,
        }
    }

    /// How this store's batches were written so far.
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            multi_row: self.stats.multi_row.load(Ordering::Relaxed),
            per_record: self.stats.per_record.load(Ordering::Relaxed),
            fallbacks: self.stats.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Records draws together, as a writer records what is queued: one transaction per
    /// shard database, bypassing the queues. Answers in the records' order.
    pub async fn record_draws(&self, records: &[DrawRecord]) -> Vec<RepoResult<RecordOutcome>> {
        let mut by_db: BTreeMap<u32, (Route, Vec<usize>)> = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            let route = self.router.route(record.user_id.as_str());
            by_db
                .entry(route.db)
                .or_insert((route, Vec::new()))
                .1
                .push(i);
        }
        let mut answers: Vec<RepoResult<RecordOutcome>> = records
            .iter()
            .map(|_| Err(RepoError::unavailable("not written")))
            .collect();
        for (route, indexes) in by_db.into_values() {
            let batch: Vec<&DrawRecord> = indexes.iter().map(|&i| &records[i]).collect();
            let results = match self.router.pool(&route) {
                Ok(pool) => write_batch(&self.router, pool, &batch, &self.stats).await,
                Err(e) => {
                    let e = router(e);
                    batch.iter().map(|_| Err(e.clone())).collect()
                }
            };
            for (i, result) in indexes.into_iter().zip(results) {
                answers[i] = result;
            }
        }
        answers
    }
}

async fn writer(
    router: Router,
    db: Route,
    mut rx: mpsc::Receiver<Job>,
    max_rows: usize,
    stats: Arc<Stats>,
) {
    let Ok(pool) = router.pool(&db).cloned() else {
        warn!(
            db = db.db,
            "no pool for shard database; draw writer not started"
        );
        return;
    };
    let mut batch = Vec::with_capacity(max_rows);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Take what else is already queued; never wait for more.
        while batch.len() < max_rows {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let records: Vec<&DrawRecord> = batch.iter().map(|j| &j.record).collect();
        let results = write_batch(&router, &pool, &records, &stats).await;
        for (job, result) in batch.drain(..).zip(results) {
            // The caller may have gone away; its draw is recorded all the same.
            let _ = job.reply.send(result);
        }
    }
}

/// Writes records of one shard database in one transaction: with a few multi-row
/// statements when it can, else (or when the database refuses one of them) a record at a
/// time, a savepoint each, so one bad record fails alone. Lock contention reruns the whole
/// batch.
async fn write_batch(
    router: &Router,
    pool: &AnyPool,
    records: &[&DrawRecord],
    stats: &Stats,
) -> Vec<RepoResult<RecordOutcome>> {
    if let Some(plan) = Plan::of(router, records) {
        let dialect = router.dialect();
        let written = retrying(router.read_timeout(), || {
            multi_row(pool, dialect, &plan, records)
        })
        .await;
        match written {
            Ok(Some(outcomes)) => {
                stats.multi_row.fetch_add(1, Ordering::Relaxed);
                return outcomes.into_iter().map(Ok).collect();
            }
            Ok(None) => {
                stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return records.iter().map(|_| Err(e.clone())).collect(),
        }
    }
    stats.per_record.fetch_add(1, Ordering::Relaxed);
    per_record(router, pool, records).await
}

/// One try of the multi-row path. `Ok(None)` when a statement was refused: a clash of keys
/// or ids, which the per-record path answers record by record, or anything unexpected; the
/// transaction is then rolled back. Contention is returned, for the caller to try again, and
/// so are the errors of beginning and committing: after a failed commit the batch may be
/// stored, and writing it again would answer clashes for draws that were recorded.
async fn multi_row(
    pool: &AnyPool,
    dialect: Dialect,
    plan: &Plan<'_>,
    records: &[&DrawRecord],
) -> Result<Option<Vec<RecordOutcome>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    match plan.write(&mut tx, dialect, records).await {
        Ok(outcomes) => {
            tx.commit().await?;
            Ok(Some(outcomes))
        }
        Err(e) if is_contention(&e) => Err(e),
        Err(e) => {
            // A clash is expected now and then (a replayed key, a voided take); anything
            // else means these statements need a look, though the batch is still written.
            if matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation()) {
                debug!(error = %e, "draw batch clashed with stored rows; writing it record by record");
            } else {
                warn!(error = %e, "multi-row draw batch refused; writing it record by record");
            }
            if let Err(e) = tx.rollback().await {
                debug!(error = %e, "rolling the refused batch back failed");
            }
            Ok(None)
        }
    }
}

/// The per-record path: a savepoint and a few statements per record, each record with the
/// outcome it would have alone, in batch order.
async fn per_record(
    router: &Router,
    pool: &AnyPool,
    records: &[&DrawRecord],
) -> Vec<RepoResult<RecordOutcome>> {
    let dialect = router.dialect();
    let written = retrying(router.read_timeout(), || async {
        let mut tx = pool.begin().await?;
        let fences = read_fences(&mut tx, dialect, records).await?;
        let mut outcomes = Vec::with_capacity(records.len());
        // Only the records whose savepoint is kept are counted.
        let mut tally = Tally::default();
        for record in records {
            if !admits(&fences, record) {
                outcomes.push(Ok(RecordOutcome::StaleGeneration));
                continue;
            }
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            let mut counted = Tally::default();
            match apply(&mut sp, router, dialect, record, &mut counted).await {
                Ok(RecordOutcome::Recorded) => {
                    sp.commit().await?;
                    tally.merge(counted);
                    outcomes.push(Ok(RecordOutcome::Recorded));
                }
                Ok(other) => {
                    sp.rollback().await?;
                    outcomes.push(Ok(other));
                }
                Err(e) if is_contention(&e) => return Err(e),
                Err(e) => {
                    sp.rollback().await?;
                    outcomes.push(Err(repo(e)));
                }
            }
        }
        tally.write(&mut tx, dialect).await?;
        tx.commit().await?;
        Ok(outcomes)
    })
    .await;
    match written {
        Ok(outcomes) => outcomes,
        Err(e) => records.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Stock fence generations by activity id.
type Fences = HashMap<i64, u64>;

/// The activity a record claims stock of, whose fence must admit it.
fn activity_of(record: &DrawRecord) -> Option<ActivityId> {
    record
        .new_take
        .as_ref()
        .map(|(t, _)| t.activity_id)
        .or_else(|| record.win.as_ref().map(|(o, _)| o.activity_id))
}

/// The stock fences of the batch's activities, in one statement, under a shared lock on
/// MariaDB: a reload raising a fence waits for this transaction, so every record it admits
/// is counted by that reload. An activity without a fence has generation 0.
async fn read_fences(
    conn: &mut AnyConnection,
    dialect: Dialect,
    records: &[&DrawRecord],
) -> Result<Fences, sqlx::Error> {
    let activities: BTreeSet<ActivityId> = records.iter().filter_map(|r| activity_of(r)).collect();
    if activities.is_empty() {
        return Ok(HashMap::new());
    }
    let lock = match dialect {
        Dialect::MySql => " LOCK IN SHARE MODE",
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "SELECT activity_id, generation FROM stock_fence WHERE activity_id IN ({}){lock}",
        placeholders(activities.len())
    );
    let mut query = sqlx::query(&sql);
    for activity in &activities {
        query = query.bind(activity.get());
    }
    let mut fences = HashMap::with_capacity(activities.len());
    for row in query.fetch_all(&mut *conn).await? {
        let generation: i64 = row.try_get("generation")?;
        fences.insert(row.try_get("activity_id")?, generation.max(0) as u64);
    }
    Ok(fences)
}

/// Whether the fence of the record's activity admits the record's generation.
fn admits(fences: &Fences, record: &DrawRecord) -> bool {
    activity_of(record)
        .is_none_or(|a| record.generation >= fences.get(&a.get()).copied().unwrap_or(0))
}

/// A clash on the take's primary key: the id was voided by a tombstone.
fn is_take_id_clash(e: &sqlx::Error, take_table: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation()
        && (db.message().contains("PRIMARY") || db.message().contains(&format!("{take_table}.take_id"))))
}

fn is_idempotency_clash(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation()
        && (db.message().contains("idempotency_key") || db.message().contains("uk_user_take_idem")))
}

/// One draw's statements, inside the caller's savepoint; what it inserted is added to
/// `tally`.
async fn apply(
    tx: &mut Transaction<'_, Any>,
    router: &Router,
    dialect: Dialect,
    record: &DrawRecord,
    tally: &mut Tally,
) -> Result<RecordOutcome, sqlx::Error> {
    let t = UserTables::of(router, &record.user_id);
    let result = async {
        if let Some(refused) = take_for(tx, dialect, &t, record).await? {
            return Ok(refused);
        }
        if let Some((take, _)) = &record.new_take {
            tally.takes([take]);
        }
        if let Some((order, message)) = &record.win {
            insert_orders(tx, &t.order, &[order]).await?;
            tally.orders([order]);
            if let Some(message) = message {
                insert_outbox(tx, &[message]).await?;
            }
        }
        Ok(RecordOutcome::Recorded)
    }
    .await;
    match result {
        Err(e) if is_idempotency_clash(&e) => Ok(RecordOutcome::DuplicateKey),
        other => other,
    }
}

/// Counts and inserts the record's new take, or uses the open take it draws. Answers the
/// outcome of a record that goes no further.
async fn take_for(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    t: &UserTables,
    record: &DrawRecord,
) -> Result<Option<RecordOutcome>, sqlx::Error> {
    let key = record.idempotency_key.as_deref();
    let Some((take, limit)) = &record.new_take else {
        let used = sqlx::query(&format!(
            "UPDATE {} SET state = 'used', idempotency_key = ? \
             WHERE take_id = ? AND user_id = ? AND state = 'open'",
            t.take
        ))
        .bind(key)
        .bind(record.take_id.get())
        .bind(record.user_id.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        return Ok((used == 0).then_some(RecordOutcome::TakeNotOpen));
    };
    let bumped = bump_counter(tx, dialect, t, &take.user_id, take.activity_id, *limit).await?;
    let Some(number) = bumped else {
        return Ok(Some(RecordOutcome::QuotaExhausted));
    };
    // The draw's result is known, so the take is stored already used.
    let row = TakeRow {
        take,
        number,
        state: TakeState::Used,
        key,
    };
    match insert_takes(tx, &t.take, &[row]).await {
        Err(e) if is_take_id_clash(&e, &t.take) => Ok(Some(RecordOutcome::Voided)),
        other => other.map(|()| None),
    }
}

#[async_trait::async_trait]
impl DrawRepository for DrawStore {
    async fn record_draw(&self, record: DrawRecord) -> RepoResult<RecordOutcome> {
        let route = self.router.route(record.user_id.as_str());
        match &self.writers {
            Some(writers) => {
                let sender = writers.get(route.db_index()).ok_or_else(|| {
                    RepoError::unavailable(format!("no writer for shard {}", route.db_label()))
                })?;
                let (reply, answer) = oneshot::channel();
                sender
                    .send(Job { record, reply })
                    .await
                    .map_err(|_| RepoError::unavailable("draw writer stopped"))?;
                answer
                    .await
                    .map_err(|_| RepoError::unavailable("draw writer stopped"))?
            }
            None => {
                let pool = self.router.pool(&route).map_err(router)?;
                write_batch(&self.router, pool, &[&record], &self.stats)
                    .await
                    .pop()
                    .unwrap_or_else(|| Err(RepoError::unavailable("no result")))
            }
        }
    }

    async fn find_by_key(&self, user: &UserId, key: &str) -> RepoResult<Option<PastDraw>> {
        let t = UserTables::of(&self.router, user);
        let pool = self.router.pool(&t.route).map_err(router)?;
        let row = sqlx::query(&format!(
            "SELECT {TAKE_COLUMNS} FROM {} WHERE user_id = ? AND idempotency_key = ?",
            t.take
        ))
        .bind(user.as_str())
        .bind(key)
        .fetch_optional(pool)
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        let Some(take) = row.as_ref().map(take_from).transpose()? else {
            return Ok(None);
        };
        let order = order_by_take(&self.router, pool, &t.order, user, take.take_id).await?;
        Ok(Some(PastDraw { take, order }))
    }

    async fn settle_claim(&self, claim: &ClaimRef) -> RepoResult<ClaimFate> {
        let t = UserTables::of(&self.router, &claim.user_id);
        let pool = self.router.pool(&t.route).map_err(router)?;
        let id = claim.take_id.get();
        for attempt in 0..4i64 {
            // Tombstones sit below the real take numbers (which count from 1), spread by the
            // take id so two of one user seldom meet; a meeting is retried with another.
            let number = -1 - (id.wrapping_add(attempt * 7_919).rem_euclid(2_000_000_000));
            let inserted = sqlx::query(&format!(
                "INSERT INTO {} ({TAKE_COLUMNS}, idempotency_key) VALUES (?, ?, ?, 0, ?, ?, ?, NULL)",
                t.take
            ))
            .bind(id)
            .bind(claim.user_id.as_str())
            .bind(claim.activity_id.get())
            .bind(number)
            .bind(millis(chrono::Utc::now()))
            .bind(VOID_STATE)
            .execute(pool).within(self.router.read_timeout())
            .await;
            match inserted {
                Ok(_) => return Ok(ClaimFate::Voided),
                Err(e) if matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation()) => {
                    // On MariaDB the insert waited for a draw transaction holding the id, so
                    // what is stored now is final.
                    let state: Option<String> = sqlx::query_scalar(&format!(
                        "SELECT state FROM {} WHERE take_id = ?",
                        t.take
                    ))
                    .bind(id)
                    .fetch_optional(pool)
                    .within(self.router.read_timeout())
                    .await
                    .map_err(repo)?;
                    match state.as_deref() {
                        Some(VOID_STATE) => return Ok(ClaimFate::Voided),
                        Some(_) => return Ok(ClaimFate::Recorded),
                        None => continue,
                    }
                }
                Err(e) => return Err(repo(e)),
            }
        }
        Err(RepoError::Conflict(format!(
            "could not void take {id}: its tombstone number kept clashing"
        )))
    }
}
