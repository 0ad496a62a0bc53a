//! The stock ledger on rows of the global database: the classic row-lock design, where each
//! claim is one transaction that locks its activity's stock row, checks and takes, and
//! inserts the claim's row. It has the semantics of the in-memory and Redis ledgers (the
//! contract suite in `crates/stock/tests/ledger.rs` runs against all of them); it is the
//! slower of the three, since claims of one activity wait for each other's commits.
//!
//! Rows stand for the Redis keys: one per activity (generation, stock left, whether every
//! claimant has an entry), per award, per user entry and per claim. Each carries the time it
//! expires, read as absent from then on and deleted by a periodic sweep.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use db_router::{Dialect, Router};
use lottery_activity::{
    ClaimOutcome, Missing, PendingClaim, StockClaim, StockError, StockLedger, StockSnapshot,
};
use lottery_domain::{ActivityId, AwardId, Chain, RepoError, TakeId, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{Within, repo, retrying};
use crate::rows::{millis, placeholders};

/// Claims between two sweeps of expired rows: often enough to bound the tables, rarely
/// enough that the sweep's deletes cost nothing per claim.
const SWEEP_EVERY: u32 = 4_096;

/// How long a claim's row is kept for recognising a retried claim (as the Redis ledger's
/// `CLAIM_RECORD_TTL`): retries happen within a request, so an hour is ample.
const CLAIM_ROW_TTL: chrono::Duration = chrono::Duration::hours(1);

type Tx = Transaction<'static, Any>;

/// The [`StockLedger`] on database rows (`[stock] strategy = "database"`).
#[derive(Debug)]
pub struct SqlLedger {
    router: Router,
    claims_since_sweep: AtomicU32,
}

/// An activity's stock row, live (not expired).
#[derive(Debug, Clone, Copy)]
struct StockRow {
    generation: u64,
    left: u64,
    complete: bool,
}

/// A claim's row, live.
#[derive(Debug, Clone)]
enum ClaimRow {
    Held {
        outcome: ClaimOutcome,
        took: bool,
        generation: u64,
    },
    Withdrawn,
}

/// The writes that run as one transaction each.
#[derive(Clone, Copy)]
enum Write<'a> {
    Claim(&'a StockClaim),
    Release(&'a StockClaim),
    Load(&'a StockSnapshot),
}

enum Written {
    Claimed(Result<ClaimOutcome, StockError>),
    Done,
}

/// What the checks of a claim decided, before anything is changed.
enum Verdict {
    /// Answered without taking anything.
    Answer(Result<ClaimOutcome, StockError>),
    /// Granted: the award taken (the drawn one or the fallback).
    Grant {
        award: Option<AwardId>,
        fallback: bool,
        exhausted: bool,
    },
}

impl SqlLedger {
    /// A ledger on the router's global database (migrated: version 4 adds its tables).
    pub fn new(router: Router) -> Self {
        Self {
            router,
            claims_since_sweep: AtomicU32::new(0),
        }
    }

    fn dialect(&self) -> Dialect {
        self.router.dialect()
    }

    /// A write transaction. SQLite takes its write lock at once (`BEGIN IMMEDIATE`): a
    /// transaction that read first and wrote later would fail to upgrade whenever another
    /// writer committed meanwhile, instead of waiting its turn.
    async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let pool = self.router.global();
        match self.dialect() {
            Dialect::MySql => pool.begin().await,
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    /// The database's clock in ms since the epoch: one clock for every instance, as Redis's
    /// `TIME` is for the Redis ledger, so claim times compare across instances.
    fn now_expr(&self) -> &'static str {
        match self.dialect() {
            Dialect::MySql => "CAST(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(3)) * 1000 AS SIGNED)",
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }

    /// Deletes every expired row: what a Redis server does to expired keys. Runs by itself
    /// every few thousand claims; callable to bound the tables at once.
    ///
    /// # Errors
    /// [`StockError::Unavailable`] when the database does not answer.
    pub async fn sweep(&self) -> Result<u64, StockError> {
        let now = millis(Utc::now());
        let statements = [
            "DELETE FROM stock_ledger_claim WHERE expires_at <= ?",
            "DELETE FROM stock_ledger_user WHERE expires_at <= ?",
            "DELETE FROM stock_ledger_award WHERE activity_id IN \
             (SELECT activity_id FROM stock_ledger WHERE expires_at <= ?)",
            "DELETE FROM stock_ledger WHERE expires_at <= ?",
        ];
        let mut deleted = 0;
        for sql in statements {
            deleted += sqlx::query(sql)
                .bind(now)
                .execute(self.router.global())
                .within(self.router.read_timeout())
                .await
                .map_err(|e| unavailable(&repo(e)))?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// Counts a claim towards the next sweep and runs it when due. A failed sweep only
    /// leaves rows that read as absent anyway: logged, never the claim's failure.
    async fn sweep_when_due(&self) {
        if self.claims_since_sweep.fetch_add(1, Ordering::Relaxed) + 1 < SWEEP_EVERY {
            return;
        }
        self.claims_since_sweep.store(0, Ordering::Relaxed);
        if let Err(e) = self.sweep().await {
            tracing::debug!(error = %e, "stock ledger: sweep of expired rows failed");
        }
    }
}

fn unavailable(e: &RepoError) -> StockError {
    StockError::Unavailable(Chain(e).to_string())
}

/// A stored value that does not make a domain value, as the driver reports a bad column.
fn decode<T, E>(r: Result<T, E>) -> Result<T, sqlx::Error>
where
    E: std::error::Error + Send + Sync + 'static,
{
    r.map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn count(v: i64) -> Result<u64, sqlx::Error> {
    decode(u64::try_from(v))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// When a claim's row made now expires: with its activity, and within the hour.
fn claim_row_expiry(activity_expiry: DateTime<Utc>) -> i64 {
    millis(activity_expiry.min(Utc::now() + CLAIM_ROW_TTL))
}

/// Reads the activity's stock row with its expiry, locking it until commit (MariaDB; SQLite
/// holds the database's write lock already): every claim, release and load of one activity
/// passes through this row, one at a time.
async fn lock_stock(
    tx: &mut Tx,
    d: Dialect,
    activity: ActivityId,
) -> Result<Option<(StockRow, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT generation, stock_left, complete, expires_at FROM stock_ledger \
         WHERE activity_id = ?{}",
        d.for_update()
    );
    let Some(row) = sqlx::query(&sql)
        .bind(activity.get())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let stock = StockRow {
        generation: count(row.try_get("generation")?)?,
        left: count(row.try_get("stock_left")?)?,
        complete: row.try_get::<i64, _>("complete")? != 0,
    };
    Ok(Some((stock, row.try_get("expires_at")?)))
}

/// The live stock row, locked.
async fn live_stock(
    tx: &mut Tx,
    d: Dialect,
    activity: ActivityId,
    now: i64,
) -> Result<Option<StockRow>, sqlx::Error> {
    let row = lock_stock(tx, d, activity).await?;
    Ok(row.filter(|(_, expires)| *expires > now).map(|(s, _)| s))
}

/// Reads and locks a claim's row; an expired one is deleted first, so it reads as absent.
async fn lock_claim(
    tx: &mut Tx,
    d: Dialect,
    c: &StockClaim,
    now: i64,
) -> Result<Option<ClaimRow>, sqlx::Error> {
    let sql = format!(
        "SELECT state, took, award_id, fallback, exhausted, generation, expires_at \
         FROM stock_ledger_claim WHERE activity_id = ? AND claim_id = ?{}",
        d.for_update()
    );
    let Some(row) = sqlx::query(&sql)
        .bind(c.activity_id.get())
        .bind(c.claim_id.get())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    if row.try_get::<i64, _>("expires_at")? <= now {
        sqlx::query("DELETE FROM stock_ledger_claim WHERE activity_id = ? AND claim_id = ?")
            .bind(c.activity_id.get())
            .bind(c.claim_id.get())
            .execute(&mut **tx)
            .await?;
        return Ok(None);
    }
    claim_row(&row).map(Some)
}

/// The award a claim's row took, if any.
fn award_column(row: &AnyRow) -> Result<Option<AwardId>, sqlx::Error> {
    row.try_get::<Option<i64>, _>("award_id")?
        .map(|a| decode(AwardId::new(a)))
        .transpose()
}

fn claim_row(row: &AnyRow) -> Result<ClaimRow, sqlx::Error> {
    if row.try_get::<String, _>("state")? != "held" {
        return Ok(ClaimRow::Withdrawn);
    }
    let generation = count(row.try_get("generation")?)?;
    let award = award_column(row)?;
    Ok(ClaimRow::Held {
        outcome: ClaimOutcome::Granted {
            award,
            fallback: row.try_get::<i64, _>("fallback")? != 0,
            award_exhausted: row.try_get::<i64, _>("exhausted")? != 0,
            generation,
        },
        took: row.try_get::<i64, _>("took")? != 0,
        generation,
    })
}

/// Inserts a claim's row: held with its outcome, or the withdrawn marker.
async fn insert_claim(
    tx: &mut Tx,
    c: &StockClaim,
    row: &ClaimRow,
    now_expr: &str,
) -> Result<(), sqlx::Error> {
    let (state, took, award, fallback, exhausted, generation) = match row {
        ClaimRow::Held {
            outcome:
                ClaimOutcome::Granted {
                    award,
                    fallback,
                    award_exhausted,
                    ..
                },
            took,
            generation,
        } => (
            "held",
            *took,
            award.map(AwardId::get),
            *fallback,
            *award_exhausted,
            *generation,
        ),
        ClaimRow::Held { .. } | ClaimRow::Withdrawn => ("withdrawn", false, None, false, false, 0),
    };
    let sql = format!(
        "INSERT INTO stock_ledger_claim (activity_id, claim_id, user_id, state, took, award_id, \
         fallback, exhausted, generation, claimed_at, settled, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {now_expr}, 0, ?)"
    );
    sqlx::query(&sql)
        .bind(c.activity_id.get())
        .bind(c.claim_id.get())
        .bind(c.user_id.as_str())
        .bind(state)
        .bind(i64::from(took))
        .bind(award)
        .bind(i64::from(fallback))
        .bind(i64::from(exhausted))
        .bind(to_i64(generation))
        .bind(claim_row_expiry(c.expires_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The user's live entry (generation, used), locked.
async fn lock_user(
    tx: &mut Tx,
    d: Dialect,
    activity: ActivityId,
    user: &UserId,
    now: i64,
) -> Result<Option<(u64, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT generation, used FROM stock_ledger_user \
         WHERE activity_id = ? AND user_id = ? AND expires_at > ?{}",
        d.for_update()
    );
    let row = sqlx::query(&sql)
        .bind(activity.get())
        .bind(user.as_str())
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => Ok(Some((
            count(row.try_get("generation")?)?,
            row.try_get("used")?,
        ))),
        None => Ok(None),
    }
}

/// The stock left of the named awards that have a row, locked.
async fn lock_awards(
    tx: &mut Tx,
    d: Dialect,
    activity: ActivityId,
    awards: &[AwardId],
) -> Result<Vec<(AwardId, u64)>, sqlx::Error> {
    let sql = format!(
        "SELECT award_id, award_left FROM stock_ledger_award \
         WHERE activity_id = ? AND award_id IN ({}){}",
        placeholders(awards.len()),
        d.for_update()
    );
    let mut query = sqlx::query(&sql).bind(activity.get());
    for a in awards {
        query = query.bind(a.get());
    }
    let mut out = Vec::new();
    for row in query.fetch_all(&mut **tx).await? {
        out.push((
            decode(AwardId::new(row.try_get("award_id")?))?,
            count(row.try_get("award_left")?)?,
        ));
    }
    Ok(out)
}

/// Every check of a claim, with nothing changed yet, in the in-memory ledger's order: an
/// early answer takes nothing.
async fn check(
    tx: &mut Tx,
    d: Dialect,
    c: &StockClaim,
    stock: StockRow,
    now: i64,
) -> Result<Verdict, sqlx::Error> {
    let generation = stock.generation;
    if c.take {
        // Sold out needs no user: a spike of new users is answered without loading them.
        if stock.left == 0 {
            return Ok(Verdict::Answer(Ok(ClaimOutcome::SoldOut)));
        }
        match lock_user(tx, d, c.activity_id, &c.user_id, now).await? {
            Some((g, used)) if g == generation => {
                if used >= i64::from(c.take_limit) {
                    return Ok(Verdict::Answer(Ok(ClaimOutcome::QuotaExhausted)));
                }
            }
            _ => {
                return Ok(Verdict::Answer(Err(StockError::NotLoaded(Missing::User {
                    activity: c.activity_id,
                    user: c.user_id.clone(),
                    generation,
                }))));
            }
        }
    }
    let Some(wanted) = c.award else {
        return Ok(Verdict::Grant {
            award: None,
            fallback: false,
            exhausted: false,
        });
    };
    let named: Vec<AwardId> = [Some(wanted), c.fallback].into_iter().flatten().collect();
    let left = lock_awards(tx, d, c.activity_id, &named).await?;
    let left_of = |a: AwardId| left.iter().find(|(id, _)| *id == a).map(|(_, n)| *n);
    let not_loaded = || {
        Verdict::Answer(Err(StockError::NotLoaded(Missing::Activity(
            c.activity_id,
            generation,
        ))))
    };
    let grant = |award, fallback, exhausted| Verdict::Grant {
        award,
        fallback,
        exhausted,
    };
    Ok(match (left_of(wanted), c.fallback) {
        (None, _) => not_loaded(),
        (Some(n), _) if n > 0 => grant(Some(wanted), false, false),
        (Some(_), None) => grant(None, false, true),
        (Some(_), Some(f)) => match left_of(f) {
            None => not_loaded(),
            Some(n) if n > 0 => grant(Some(f), true, true),
            Some(_) => grant(None, false, true),
        },
    })
}

/// What a claim moves: the activity's unit and the user's take when it took them, and the
/// award's unit.
struct Share<'a> {
    activity: ActivityId,
    user: &'a UserId,
    generation: u64,
    took: bool,
    award: Option<AwardId>,
}

/// Takes a claim's share (`give` = -1) or gives it back (`give` = 1). Only rows of the
/// claim's generation move: stock of another generation was counted afresh by its load.
async fn shift(tx: &mut Tx, s: &Share<'_>, give: i64, now: i64) -> Result<(), sqlx::Error> {
    let generation = to_i64(s.generation);
    if s.took {
        sqlx::query(
            "UPDATE stock_ledger SET stock_left = stock_left + ? \
             WHERE activity_id = ? AND generation = ?",
        )
        .bind(give)
        .bind(s.activity.get())
        .bind(generation)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE stock_ledger_user SET used = used - ? WHERE activity_id = ? AND user_id = ? \
             AND generation = ? AND expires_at > ? AND used - ? >= 0",
        )
        .bind(give)
        .bind(s.activity.get())
        .bind(s.user.as_str())
        .bind(generation)
        .bind(now)
        .bind(give)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(award) = s.award {
        sqlx::query(
            "UPDATE stock_ledger_award SET award_left = award_left + ? \
             WHERE activity_id = ? AND award_id = ?",
        )
        .bind(give)
        .bind(s.activity.get())
        .bind(award.get())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One claim, inside its transaction.
async fn claim_in(
    tx: &mut Tx,
    d: Dialect,
    c: &StockClaim,
    now_expr: &str,
) -> Result<Result<ClaimOutcome, StockError>, sqlx::Error> {
    let now = millis(Utc::now());
    // The stock row first: the lock that orders this claim among the activity's others.
    let stock = live_stock(tx, d, c.activity_id, now).await?;
    match lock_claim(tx, d, c, now).await? {
        Some(ClaimRow::Held { outcome, .. }) => return Ok(Ok(outcome)),
        Some(ClaimRow::Withdrawn) => return Ok(Ok(ClaimOutcome::Withdrawn)),
        None => {}
    }
    let Some(stock) = stock else {
        return Ok(Err(StockError::NotLoaded(Missing::Activity(
            c.activity_id,
            0,
        ))));
    };
    let (award, fallback, exhausted) = match check(tx, d, c, stock, now).await? {
        Verdict::Answer(answer) => return Ok(answer),
        Verdict::Grant {
            award,
            fallback,
            exhausted,
        } => (award, fallback, exhausted),
    };
    let share = Share {
        activity: c.activity_id,
        user: &c.user_id,
        generation: stock.generation,
        took: c.take,
        award,
    };
    shift(tx, &share, -1, now).await?;
    let outcome = ClaimOutcome::Granted {
        award,
        fallback,
        award_exhausted: exhausted,
        generation: stock.generation,
    };
    let held = ClaimRow::Held {
        outcome,
        took: c.take,
        generation: stock.generation,
    };
    insert_claim(tx, c, &held, now_expr).await?;
    Ok(Ok(outcome))
}

/// One release, inside its transaction: the claim's row becomes the withdrawn marker (so a
/// late claim takes nothing), and a held claim of the live generation gives its share back.
async fn release_in(
    tx: &mut Tx,
    d: Dialect,
    c: &StockClaim,
    now_expr: &str,
) -> Result<(), sqlx::Error> {
    let now = millis(Utc::now());
    let stock = live_stock(tx, d, c.activity_id, now).await?;
    let held = lock_claim(tx, d, c, now).await?;
    if held.is_some() {
        sqlx::query(
            "UPDATE stock_ledger_claim SET state = 'withdrawn', expires_at = ? \
             WHERE activity_id = ? AND claim_id = ?",
        )
        .bind(claim_row_expiry(c.expires_at))
        .bind(c.activity_id.get())
        .bind(c.claim_id.get())
        .execute(&mut **tx)
        .await?;
    } else {
        insert_claim(tx, c, &ClaimRow::Withdrawn, now_expr).await?;
    }
    let Some(ClaimRow::Held {
        outcome: ClaimOutcome::Granted { award, .. },
        took,
        generation,
    }) = held
    else {
        return Ok(());
    };
    if stock.is_some_and(|s| s.generation != generation) {
        return Ok(());
    }
    let share = Share {
        activity: c.activity_id,
        user: &c.user_id,
        generation,
        took,
        award,
    };
    shift(tx, &share, 1, now).await
}

/// One load of an activity's stock, inside its transaction: replaces an older generation's
/// (or an expired) row and its awards; keeps what a live row knows of the claimants.
async fn load_in(tx: &mut Tx, d: Dialect, s: &StockSnapshot) -> Result<(), sqlx::Error> {
    let now = millis(Utc::now());
    let old = lock_stock(tx, d, s.activity_id).await?;
    let live = old
        .filter(|(_, expires)| *expires > now)
        .map(|(row, _)| row);
    if live.is_some_and(|l| l.generation >= s.generation) {
        return Ok(());
    }
    let complete = live.is_some_and(|l| l.complete) || s.nobody_drew;
    let sql = if old.is_some() {
        "UPDATE stock_ledger SET generation = ?, stock_left = ?, complete = ?, expires_at = ? \
         WHERE activity_id = ?"
    } else {
        "INSERT INTO stock_ledger (generation, stock_left, complete, expires_at, activity_id) \
         VALUES (?, ?, ?, ?, ?)"
    };
    sqlx::query(sql)
        .bind(to_i64(s.generation))
        .bind(to_i64(s.stock_left))
        .bind(i64::from(complete))
        .bind(millis(s.expires_at))
        .bind(s.activity_id.get())
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM stock_ledger_award WHERE activity_id = ?")
        .bind(s.activity_id.get())
        .execute(&mut **tx)
        .await?;
    if s.awards_left.is_empty() {
        return Ok(());
    }
    let rows = vec!["(?, ?, ?)"; s.awards_left.len()].join(", ");
    let sql =
        format!("INSERT INTO stock_ledger_award (activity_id, award_id, award_left) VALUES {rows}");
    let mut insert = sqlx::query(&sql);
    for (award, left) in &s.awards_left {
        insert = insert
            .bind(s.activity_id.get())
            .bind(award.get())
            .bind(to_i64(*left));
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

impl SqlLedger {
    /// Runs one write in a transaction and commits it; reruns the whole of it when it lost
    /// to lock contention (a deadlock, a lock wait timeout, SQLite busy), which rolled
    /// everything back. Each attempt is bounded by the read timeout.
    async fn transact(&self, write: Write<'_>) -> Result<Written, StockError> {
        let (d, now_expr) = (self.dialect(), self.now_expr());
        retrying(self.router.read_timeout(), || async {
            let mut tx = self.begin().await?;
            let written = match write {
                Write::Claim(c) => Written::Claimed(claim_in(&mut tx, d, c, now_expr).await?),
                Write::Release(c) => {
                    release_in(&mut tx, d, c, now_expr).await?;
                    Written::Done
                }
                Write::Load(s) => {
                    load_in(&mut tx, d, s).await?;
                    Written::Done
                }
            };
            tx.commit().await?;
            Ok(written)
        })
        .await
        .map_err(|e| unavailable(&e))
    }

    /// Loads a user's entry unless one of this generation or newer is live: an update of an
    /// older or expired entry, else an insert of a new one. The insert may find another
    /// loader's row, perhaps of an older generation, so the update runs once more.
    async fn upsert_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        generation: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let pool = self.router.global();
        let (generation, expires) = (to_i64(generation), millis(expires_at));
        let update = || {
            sqlx::query(
                "UPDATE stock_ledger_user SET generation = ?, used = ?, expires_at = ? \
                 WHERE activity_id = ? AND user_id = ? AND (generation < ? OR expires_at <= ?)",
            )
            .bind(generation)
            .bind(i64::from(used))
            .bind(expires)
            .bind(activity.get())
            .bind(user.as_str())
            .bind(generation)
            .bind(millis(Utc::now()))
            .execute(pool)
        };
        if update().await?.rows_affected() > 0 {
            return Ok(());
        }
        let insert = format!(
            "{} stock_ledger_user (activity_id, user_id, generation, used, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
            self.dialect().insert_ignore_into()
        );
        let inserted = sqlx::query(&insert)
            .bind(activity.get())
            .bind(user.as_str())
            .bind(generation)
            .bind(i64::from(used))
            .bind(expires)
            .execute(pool)
            .await?;
        if inserted.rows_affected() == 0 {
            update().await?;
        }
        Ok(())
    }

    /// One column of the activity's live stock row.
    async fn stock_column(
        &self,
        activity: ActivityId,
        column: &str,
    ) -> Result<Option<u64>, StockError> {
        let sql =
            format!("SELECT {column} FROM stock_ledger WHERE activity_id = ? AND expires_at > ?");
        let value: Option<i64> = sqlx::query_scalar(&sql)
            .bind(activity.get())
            .bind(millis(Utc::now()))
            .fetch_optional(self.router.global())
            .within(self.router.read_timeout())
            .await
            .map_err(|e| unavailable(&repo(e)))?;
        value
            .map(|v| count(v).map_err(|e| unavailable(&repo(e))))
            .transpose()
    }

    /// The live user entry's count; else 0 when the live stock row has known every claimant
    /// since nobody drew; else unknown.
    async fn user_count(
        &self,
        activity: ActivityId,
        user: &UserId,
    ) -> Result<Option<u32>, sqlx::Error> {
        let pool = self.router.global();
        let now = millis(Utc::now());
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT used FROM stock_ledger_user \
             WHERE activity_id = ? AND user_id = ? AND expires_at > ?",
        )
        .bind(activity.get())
        .bind(user.as_str())
        .bind(now)
        .fetch_optional(pool)
        .await?;
        if let Some(used) = used {
            return decode(u32::try_from(used)).map(Some);
        }
        let complete: Option<i64> = sqlx::query_scalar(
            "SELECT complete FROM stock_ledger WHERE activity_id = ? AND expires_at > ?",
        )
        .bind(activity.get())
        .bind(now)
        .fetch_optional(pool)
        .await?;
        Ok(complete.is_some_and(|c| c != 0).then_some(0))
    }
}

/// A pending claim's row as the reconciler reads it.
fn pending_claim(row: &AnyRow) -> Result<PendingClaim, sqlx::Error> {
    Ok(PendingClaim {
        claim_id: decode(TakeId::new(row.try_get("claim_id")?))?,
        user_id: decode(UserId::new(row.try_get::<String, _>("user_id")?))?,
        generation: count(row.try_get("generation")?)?,
        claimed_at_ms: row.try_get("claimed_at")?,
        took: row.try_get::<i64, _>("took")? != 0,
        award: award_column(row)?,
    })
}

impl SqlLedger {
    async fn pending(
        &self,
        activity: ActivityId,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingClaim>, sqlx::Error> {
        let now = millis(Utc::now());
        let rows = sqlx::query(
            "SELECT c.claim_id, c.user_id, c.generation, c.claimed_at, c.took, c.award_id \
             FROM stock_ledger_claim c JOIN stock_ledger s ON s.activity_id = c.activity_id \
             WHERE c.activity_id = ? AND c.state = 'held' AND c.settled = 0 \
             AND c.claimed_at <= ? AND c.expires_at > ? AND s.expires_at > ? \
             ORDER BY c.claimed_at, c.claim_id LIMIT ?",
        )
        .bind(activity.get())
        .bind(before_ms)
        .bind(now)
        .bind(now)
        .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
        .fetch_all(self.router.global())
        .await?;
        rows.iter().map(pending_claim).collect()
    }

    async fn award_rows(&self, activity: ActivityId) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.award_id, a.award_left FROM stock_ledger_award a \
             JOIN stock_ledger s ON s.activity_id = a.activity_id \
             WHERE a.activity_id = ? AND s.expires_at > ?",
        )
        .bind(activity.get())
        .bind(millis(Utc::now()))
        .fetch_all(self.router.global())
        .await
    }

    /// Bounds a read by the read timeout and reports its failure as the port's.
    async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StockError> {
        read.within(self.router.read_timeout())
            .await
            .map_err(|e| unavailable(&repo(e)))
    }
}

#[async_trait::async_trait]
impl StockLedger for SqlLedger {
    async fn claim(&self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        let written = self.transact(Write::Claim(c)).await?;
        self.sweep_when_due().await;
        match written {
            Written::Claimed(answer) => answer,
            Written::Done => Err(StockError::Unavailable("no claim answer".into())),
        }
    }

    async fn release(&self, c: &StockClaim) -> Result<(), StockError> {
        self.transact(Write::Release(c)).await.map(drop)
    }

    async fn load_activity(&self, s: &StockSnapshot) -> Result<(), StockError> {
        self.transact(Write::Load(s)).await.map(drop)
    }

    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        generation: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError> {
        retrying(self.router.read_timeout(), || {
            self.upsert_user(activity, user, used, generation, expires_at)
        })
        .await
        .map_err(|e| unavailable(&e))
    }

    async fn generation(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        self.stock_column(activity, "generation").await
    }

    async fn user_takes(
        &self,
        activity: ActivityId,
        user: &UserId,
    ) -> Result<Option<u32>, StockError> {
        self.read(self.user_count(activity, user)).await
    }

    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        self.stock_column(activity, "stock_left").await
    }

    async fn awards_left(
        &self,
        activity: ActivityId,
        awards: &[AwardId],
    ) -> Result<Vec<Option<u64>>, StockError> {
        let rows = self.read(self.award_rows(activity)).await?;
        let left = |a: &AwardId| {
            let n = rows.iter().find(|(id, _)| *id == a.get()).map(|(_, n)| *n);
            n.map(|n| count(n).map_err(|e| unavailable(&repo(e))))
                .transpose()
        };
        awards.iter().map(left).collect()
    }

    async fn pending_claims(
        &self,
        activity: ActivityId,
        claimed_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingClaim>, StockError> {
        self.read(self.pending(activity, claimed_before_ms, limit))
            .await
    }

    async fn settle(&self, activity: ActivityId, claims: &[TakeId]) -> Result<(), StockError> {
        if claims.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE stock_ledger_claim SET settled = 1 WHERE activity_id = ? AND claim_id IN ({})",
            placeholders(claims.len())
        );
        let mut query = sqlx::query(&sql).bind(activity.get());
        for c in claims {
            query = query.bind(c.get());
        }
        self.read(query.execute(self.router.global())).await?;
        Ok(())
    }

    async fn now_ms(&self) -> Result<i64, StockError> {
        let sql = format!("SELECT {}", self.now_expr());
        self.read(sqlx::query_scalar(&sql).fetch_one(self.router.global()))
            .await
    }
}
