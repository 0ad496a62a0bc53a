//! Takes and per-user take counters, in the table the user id routes to.

use chrono::Utc;
use db_router::{Dialect, Route, Router};
use lottery_activity::{Page, TakeOutcome, TakeRepository, TakeState, UserTake};
use lottery_domain::{ActivityId, RepoResult, StrategyId, TakeId, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::error::{Within, corrupt, repo, retrying, router};
use crate::rows::{int, millis, parse, text, time, u32_of};

/// The state of a tombstone: a take id whose claim was given back unrecorded. It holds the
/// id so a record arriving late is refused; reads of takes pass over it.
pub(crate) const VOID_STATE: &str = "void";

pub(crate) const TAKE_COLUMNS: &str =
    "take_id, user_id, activity_id, strategy_id, take_number, taken_at, state";

#[derive(Debug, Clone)]
pub struct TakeStore {
    router: Router,
}

/// The table names of one user's shard.
pub(crate) struct UserTables {
    pub route: Route,
    pub take: String,
    pub count: String,
    pub order: String,
}

impl UserTables {
    pub(crate) fn of(router: &Router, user: &UserId) -> Self {
        let route = router.route(user.as_str());
        Self {
            take: route.table("user_take"),
            count: route.table("user_take_count"),
            order: route.table("win_order"),
            route,
        }
    }
}

pub(crate) fn take_from(row: &AnyRow) -> RepoResult<UserTake> {
    let state = match text(row, "state")?.as_str() {
        "open" => TakeState::Open,
        "used" => TakeState::Used,
        other => return Err(corrupt(format!("take state {other:?}"))),
    };
    Ok(UserTake {
        take_id: parse("take_id", TakeId::new(int(row, "take_id")?))?,
        user_id: parse("user_id", UserId::new(text(row, "user_id")?))?,
        activity_id: parse("activity_id", ActivityId::new(int(row, "activity_id")?))?,
        strategy_id: parse("strategy_id", StrategyId::new(int(row, "strategy_id")?))?,
        take_number: u32_of("take_number", int(row, "take_number")?)?,
        taken_at: time(int(row, "taken_at")?)?,
        state,
    })
}

impl TakeStore {
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

/// Inserts a take numbered `number` in `state`, with the draw's idempotency key if any.
pub(crate) async fn insert_take(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    take: &UserTake,
    number: i64,
    state: TakeState,
    key: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {table} ({TAKE_COLUMNS}, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(take.take_id.get())
    .bind(take.user_id.as_str())
    .bind(take.activity_id.get())
    .bind(take.strategy_id.get())
    .bind(number)
    .bind(millis(take.taken_at))
    .bind(state.as_str())
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts one more take on the user's counter if the limit allows; returns the new count
/// (the take's number) or `None` when the quota is used up.
pub(crate) async fn bump_counter(
    tx: &mut Transaction<'_, Any>,
    dialect: Dialect,
    t: &UserTables,
    user: &UserId,
    activity: ActivityId,
    limit: u32,
) -> Result<Option<i64>, sqlx::Error> {
    let now = millis(Utc::now());
    let bump = format!(
        "UPDATE {} SET used = used + 1, take_limit = ?, updated_at = ? \
         WHERE user_id = ? AND activity_id = ? AND used < ?",
        t.count
    );
    let mut counted = run_bump(tx, &bump, now, user, activity, limit).await?;
    if !counted {
        // First take: create the counter. If a concurrent first take created it meanwhile,
        // the insert is ignored (after waiting for that transaction) and the bump retried.
        let create = format!(
            "{} {} (user_id, activity_id, take_limit, used, updated_at) VALUES (?, ?, ?, 1, ?)",
            dialect.insert_ignore_into(),
            t.count
        );
        let inserted = sqlx::query(&create)
            .bind(user.as_str())
            .bind(activity.get())
            .bind(i64::from(limit))
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1;
        counted = inserted || run_bump(tx, &bump, now, user, activity, limit).await?;
    }
    if !counted {
        return Ok(None);
    }
    let used: i64 = sqlx::query_scalar(&format!(
        "SELECT used FROM {} WHERE user_id = ? AND activity_id = ?",
        t.count
    ))
    .bind(user.as_str())
    .bind(activity.get())
    .fetch_one(&mut **tx)
    .await?;
    Ok(Some(used))
}

async fn run_bump(
    tx: &mut Transaction<'_, Any>,
    sql: &str,
    now: i64,
    user: &UserId,
    activity: ActivityId,
    limit: u32,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(sql)
        .bind(i64::from(limit))
        .bind(now)
        .bind(user.as_str())
        .bind(activity.get())
        .bind(i64::from(limit))
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[async_trait::async_trait]
impl TakeRepository for TakeStore {
    async fn open_take(&self, user: &UserId, activity: ActivityId) -> RepoResult<Option<UserTake>> {
        let t = UserTables::of(&self.router, user);
        let row = sqlx::query(&format!(
            "SELECT {TAKE_COLUMNS} FROM {} WHERE user_id = ? AND activity_id = ? AND state = 'open' \
             ORDER BY take_number LIMIT 1",
            t.take
        ))
        .bind(user.as_str())
        .bind(activity.get())
        .fetch_optional(self.router.pool(&t.route).map_err(router)?).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        row.as_ref().map(take_from).transpose()
    }

    async fn record_take(&self, take: &UserTake, limit: u32) -> RepoResult<TakeOutcome> {
        let t = UserTables::of(&self.router, &take.user_id);
        let pool = self.router.pool(&t.route).map_err(router)?;
        let number = retrying(self.router.read_timeout(), || async {
            let mut tx = pool.begin().await?;
            let Some(number) = bump_counter(
                &mut tx,
                self.router.dialect(),
                &t,
                &take.user_id,
                take.activity_id,
                limit,
            )
            .await?
            else {
                tx.rollback().await?;
                return Ok(None);
            };
            insert_take(&mut tx, &t.take, take, number, TakeState::Open, None).await?;
            tx.commit().await?;
            Ok(Some(number))
        })
        .await?;
        let Some(number) = number else {
            return Ok(TakeOutcome::QuotaExhausted);
        };
        let mut recorded = take.clone();
        recorded.take_number = u32_of("used", number)?;
        recorded.state = TakeState::Open;
        Ok(TakeOutcome::Recorded(recorded))
    }

    async fn takes_used(&self, user: &UserId, activity: ActivityId) -> RepoResult<u32> {
        let t = UserTables::of(&self.router, user);
        let used: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT used FROM {} WHERE user_id = ? AND activity_id = ?",
            t.count
        ))
        .bind(user.as_str())
        .bind(activity.get())
        .fetch_optional(self.router.pool(&t.route).map_err(router)?)
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        u32_of("used", used.unwrap_or(0))
    }

    async fn consume_take(&self, user: &UserId, take: TakeId) -> RepoResult<bool> {
        let t = UserTables::of(&self.router, user);
        let r = sqlx::query(&format!(
            "UPDATE {} SET state = 'used' WHERE take_id = ? AND user_id = ? AND state = 'open'",
            t.take
        ))
        .bind(take.get())
        .bind(user.as_str())
        .execute(self.router.pool(&t.route).map_err(router)?)
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        Ok(r.rows_affected() == 1)
    }

    async fn takes(
        &self,
        user: &UserId,
        activity: Option<ActivityId>,
        page: Page,
    ) -> RepoResult<Vec<UserTake>> {
        let t = UserTables::of(&self.router, user);
        let filter = if activity.is_some() {
            " AND activity_id = ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {TAKE_COLUMNS} FROM {} WHERE user_id = ? AND state <> 'void'{filter} ORDER BY taken_at DESC, take_id DESC LIMIT ? OFFSET ?",
            t.take
        );
        let mut q = sqlx::query(&sql).bind(user.as_str());
        if let Some(a) = activity {
            q = q.bind(a.get());
        }
        let rows = q
            .bind(i64::from(page.limit))
            .bind(i64::from(page.offset))
            .fetch_all(self.router.pool(&t.route).map_err(router)?)
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        rows.iter().map(take_from).collect()
    }
}
