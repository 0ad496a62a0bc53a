//! The transactional outbox: one table per shard database, written in the same transaction
//! as the record it announces, read by the relay across every shard.

use chrono::{DateTime, Utc};
use db_router::{Route, Router};
use lottery_activity::{OutboxBacklog, OutboxMessage, OutboxRepository, PendingMessage, Topic};
use lottery_domain::{RepoResult, UserId};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::bulk::insert_rows;
use crate::error::{Within, corrupt, repo, retrying, router};
use crate::rows::{int, millis, parse, placeholders, text, time};

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Not yet confirmed by the broker.
    Pending,
    /// Confirmed by the broker.
    Sent,
    /// Gave up after too many attempts; kept for an operator, never dropped.
    Parked,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Parked => "parked",
        }
    }
}

/// A stored outbox message with its delivery bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The shard database holding the row (1-based, as in [`Route::db`]).
    pub db: u32,
    pub message: OutboxMessage,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
}

/// Inserts messages as pending, a batch's in one statement.
pub(crate) async fn insert_outbox(
    conn: &mut AnyConnection,
    messages: &[&OutboxMessage],
) -> Result<(), sqlx::Error> {
    let head = "INSERT INTO outbox (message_id, topic, user_id, payload, state, attempts, \
                next_attempt_at, created_at) ";
    insert_rows(conn, head, "", 6, messages, |mut row, m| {
        row.push_bind(m.message_id.as_str())
            .push_bind(m.topic.as_str())
            .push_bind(m.user_id.as_str())
            .push_bind(m.payload.as_str())
            .push("'pending'")
            .push("0")
            .push_bind(millis(m.created_at))
            .push_bind(millis(m.created_at));
    })
    .await
}

fn row_from(db: u32, row: &AnyRow) -> RepoResult<OutboxRow> {
    let topic = match text(row, "topic")?.as_str() {
        "award_invoice" => Topic::AwardInvoice,
        other => return Err(corrupt(format!("outbox topic {other:?}"))),
    };
    Ok(OutboxRow {
        db,
        message: OutboxMessage {
            message_id: text(row, "message_id")?,
            topic,
            user_id: parse("user_id", UserId::new(text(row, "user_id")?))?,
            payload: text(row, "payload")?,
            created_at: time(int(row, "created_at")?)?,
        },
        attempts: u32::try_from(int(row, "attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: time(int(row, "next_attempt_at")?)?,
    })
}

#[derive(Debug, Clone)]
pub struct OutboxStore {
    router: Router,
}

impl OutboxStore {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// One route per shard database, for per-database tables.
    fn databases(&self) -> impl Iterator<Item = Route> + use<> {
        self.router.routes().filter(|r| r.table == 0)
    }

    /// Pending messages due at `now`, up to `limit` per shard database, from every shard.
    pub async fn due(&self, now: DateTime<Utc>, limit: u32) -> RepoResult<Vec<OutboxRow>> {
        let mut out = Vec::new();
        let scans = self.databases().map(|db| async move {
            let pool = self.router.pool(&db).map_err(router)?;
            let rows = sqlx::query(
                "SELECT message_id, topic, user_id, payload, attempts, next_attempt_at, created_at FROM outbox \
                 WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, message_id LIMIT ?",
            )
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(pool).within(self.router.read_timeout())
            .await
            .map_err(repo)?;
            rows.iter().map(|r| row_from(db.db, r)).collect::<RepoResult<Vec<_>>>()
        });
        for rows in futures::future::try_join_all(scans).await? {
            out.extend(rows);
        }
        Ok(out)
    }

    /// Counts messages in a state across every shard.
    pub async fn count(&self, state: OutboxState) -> RepoResult<u64> {
        let mut total = 0u64;
        for db in self.databases() {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = ?")
                .bind(state.as_str())
                .fetch_one(self.router.pool(&db).map_err(router)?)
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?;
            total += n.max(0) as u64;
        }
        Ok(total)
    }
}

#[async_trait::async_trait]
impl OutboxRepository for OutboxStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> RepoResult<Vec<PendingMessage>> {
        let lock = if self.router.dialect().supports_skip_locked() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let select = format!(
            "SELECT message_id, topic, user_id, payload, attempts, next_attempt_at, created_at FROM outbox \
             WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, message_id LIMIT ?{lock}"
        );
        let claims = self.databases().map(|db| {
            let select = select.clone();
            async move {
                let pool = self.router.pool(&db).map_err(router)?;
                retrying(self.router.read_timeout(), || async {
                    let mut tx = pool.begin().await?;
                    let rows = sqlx::query(&select)
                        .bind(millis(now))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?;
                    if rows.is_empty() {
                        tx.rollback().await?;
                        return Ok(Vec::new());
                    }
                    let ids: Vec<String> = rows
                        .iter()
                        .map(|r| sqlx::Row::try_get::<String, _>(r, "message_id"))
                        .collect::<Result<_, _>>()?;
                    let lease_sql = format!(
                        "UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1 WHERE message_id IN ({})",
                        placeholders(ids.len())
                    );
                    let mut q = sqlx::query(&lease_sql).bind(millis(now + lease));
                    for id in &ids {
                        q = q.bind(id.as_str());
                    }
                    q.execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(rows)
                })
                .await?
                .iter()
                .map(|r| {
                    let row = row_from(db.db, r)?;
                    Ok(PendingMessage { message: row.message, attempts: row.attempts })
                })
                .collect::<RepoResult<Vec<_>>>()
            }
        });
        Ok(futures::future::try_join_all(claims)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn mark_sent(&self, messages: &[OutboxMessage], at: DateTime<Utc>) -> RepoResult<u64> {
        let mut total = 0;
        for db in self.databases() {
            let ids: Vec<&str> = messages
                .iter()
                .filter(|m| self.router.route(m.user_id.as_str()).db == db.db)
                .map(|m| m.message_id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let sql = format!(
                "UPDATE outbox SET state = 'sent', sent_at = ? WHERE state = 'pending' AND message_id IN ({})",
                placeholders(ids.len())
            );
            let mut q = sqlx::query(&sql).bind(millis(at));
            for id in ids {
                q = q.bind(id);
            }
            total += q
                .execute(self.router.pool(&db).map_err(router)?)
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?
                .rows_affected();
        }
        Ok(total)
    }

    async fn retry_later(
        &self,
        message: &OutboxMessage,
        next_attempt: DateTime<Utc>,
        error: &str,
        park: bool,
    ) -> RepoResult<()> {
        let route = self.router.route(message.user_id.as_str());
        let state = if park {
            OutboxState::Parked
        } else {
            OutboxState::Pending
        };
        // Errors can be long (broker messages); the column holds 512 characters.
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE outbox SET state = ?, next_attempt_at = ?, last_error = ? WHERE message_id = ? AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(millis(next_attempt))
        .bind(error)
        .bind(message.message_id.as_str())
        .execute(self.router.pool(&route).map_err(router)?).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        Ok(())
    }

    async fn backlog(&self) -> RepoResult<OutboxBacklog> {
        Ok(OutboxBacklog {
            pending: self.count(OutboxState::Pending).await?,
            parked: self.count(OutboxState::Parked).await?,
        })
    }
}
