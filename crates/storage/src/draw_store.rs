//! Recording draws, with group commit: one writer per shard database takes every draw queued
//! for that database and commits them in one transaction, each inside its own savepoint. A
//! draw's answer waits for the commit, so nothing is acknowledged before it is durable, but
//! under load one fsync serves many draws. At low load a draw is written at once (nothing
//! waits for a batch to fill).

use std::collections::HashMap;
use std::sync::Arc;

use db_router::{Dialect, Route, Router};
use lottery_activity::{
    ClaimFate, ClaimRef, DrawRecord, DrawRepository, PastDraw, RecordOutcome, TakeState,
};
use lottery_domain::{ActivityId, RepoError, RepoResult, UserId};
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::error::{Within, is_contention, repo, retrying, router};
use crate::order_store::{insert_order, order_by_take};
use crate::outbox::insert_outbox;
use crate::rows::millis;
use crate::take_store::{
    TAKE_COLUMNS, UserTables, VOID_STATE, bump_counter, insert_take, take_from,
};

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
        }
    }

    /// Group commit: spawns one writer task per shard database. The tasks end, after writing
    /// what is queued, when the last clone of this store is dropped.
    pub fn batched(router: Router, options: BatchOptions) -> Self {
        let mut writers = Vec::new();
        for db in router.routes().filter(|r| r.table == 0) {
            let (tx, rx) = mpsc::channel(options.queue.max(1));
            tokio::spawn(writer(router.clone(), db, rx, options.max_rows.max(1)));
            writers.push(tx);
        }
        Self {
            router,
            writers: Some(Arc::new(writers)),
        }
    }
}

async fn writer(router: Router, db: Route, mut rx: mpsc::Receiver<Job>, max_rows: usize) {
    let Ok(pool) = router.pool(&db).cloned() else {
        warn!(
            db = db.db,
            "no pool for shard database; draw writer not started"
        );
        return;
    };
    let dialect = router.dialect();
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
        let results = write_batch(&router, &pool, dialect, &records).await;
        for (job, result) in batch.drain(..).zip(results) {
            // The caller may have gone away; its draw is recorded all the same.
            let _ = job.reply.send(result);
        }
    }
}

/// Writes records of one shard database in one transaction, a savepoint each, so one bad
/// record fails alone. Lock contention reruns the whole batch.
async fn write_batch(
    router: &Router,
    pool: &AnyPool,
    dialect: Dialect,
    records: &[&DrawRecord],
) -> Vec<RepoResult<RecordOutcome>> {
    let written = retrying(router.read_timeout(), || async {
        let mut tx = pool.begin().await?;
        let mut outcomes = Vec::with_capacity(records.len());
        let mut fences = HashMap::new();
        for record in records {
            if !fence_admits(&mut tx, dialect, &mut fences, record).await? {
                outcomes.push(Ok(RecordOutcome::StaleGeneration));
                continue;
            }
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            match apply(&mut sp, router, dialect, record).await {
                Ok(RecordOutcome::Recorded) => {
                    sp.commit().await?;
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
        tx.commit().await?;
        Ok(outcomes)
    })
    .await;
    match written {
        Ok(outcomes) => outcomes,
        Err(e) => records.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Whether the activity's stock fence in this database admits the record's generation. The
/// fence is read once per activity and batch, under a shared lock on MariaDB, so a reload
/// raising it waits for this transaction and every record it admits is counted by that
/// reload.
async fn fence_admits(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    fences: &mut HashMap<ActivityId, u64>,
    record: &DrawRecord,
) -> Result<bool, sqlx::Error> {
    let activity = record
        .new_take
        .as_ref()
        .map(|(t, _)| t.activity_id)
        .or_else(|| record.win.as_ref().map(|(o, _)| o.activity_id));
    let Some(activity) = activity else {
        return Ok(true);
    };
    let fence = match fences.get(&activity) {
        Some(f) => *f,
        None => {
            let lock = match dialect {
                Dialect::MySql => " LOCK IN SHARE MODE",
                Dialect::Sqlite => "",
            };
            let f: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT generation FROM stock_fence WHERE activity_id = ?{lock}"
            ))
            .bind(activity.get())
            .fetch_optional(&mut **tx)
            .await?;
            let f = f.map_or(0, |f| f.max(0) as u64);
            fences.insert(activity, f);
            f
        }
    };
    Ok(record.generation >= fence)
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

/// One draw's statements, inside the caller's savepoint.
async fn apply(
    tx: &mut Transaction<'_, Any>,
    router: &Router,
    dialect: Dialect,
    record: &DrawRecord,
) -> Result<RecordOutcome, sqlx::Error> {
    let t = UserTables::of(router, &record.user_id);
    let key = record.idempotency_key.as_deref();
    let result = async {
        match &record.new_take {
            Some((take, limit)) => {
                let Some(number) =
                    bump_counter(tx, dialect, &t, &take.user_id, take.activity_id, *limit).await?
                else {
                    return Ok(RecordOutcome::QuotaExhausted);
                };
                // The draw's result is known, so the take is stored already used.
                if let Err(e) = insert_take(tx, &t.take, take, number, TakeState::Used, key).await {
                    if is_take_id_clash(&e, &t.take) {
                        return Ok(RecordOutcome::Voided);
                    }
                    return Err(e);
                }
            }
            None => {
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
                if used == 0 {
                    return Ok(RecordOutcome::TakeNotOpen);
                }
            }
        }
        if let Some((order, message)) = &record.win {
            insert_order(tx, &t.order, order).await?;
            if let Some(message) = message {
                insert_outbox(tx, message).await?;
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
                write_batch(&self.router, pool, self.router.dialect(), &[&record])
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
