//! Takes and per-user take counters, in the table the user id routes to.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use db_router::{Dialect, Route, Router};
use lottery_activity::{Page, TakeOutcome, TakeRepository, TakeState, UserTake};
use lottery_domain::{ActivityId, RepoResult, StrategyId, TakeId, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, QueryBuilder, Row, Transaction};

use crate::bulk::{cached, insert_rows};
use crate::error::{Within, corrupt, repo, retrying, router};
use crate::rows::{int, millis, parse, text, time, u32_of};
use crate::tally::Tally;

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
        Self::at(router.route(user.as_str()))
    }

    pub(crate) fn at(route: Route) -> Self {
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

/// A take to insert: numbered, in a state, with the draw's idempotency key if any.
pub(crate) struct TakeRow<'a> {
    pub take: &'a UserTake,
    pub number: i64,
    pub state: TakeState,
    pub key: Option<&'a str>,
}

/// Inserts takes, a batch's in one statement.
pub(crate) async fn insert_takes(
    conn: &mut AnyConnection,
    table: &str,
    rows: &[TakeRow<'_>],
) -> Result<(), sqlx::Error> {
    let head = format!("INSERT INTO {table} ({TAKE_COLUMNS}, idempotency_key) ");
    insert_rows(conn, &head, "", 8, rows, |mut row, r| {
        row.push_bind(r.take.take_id.get())
            .push_bind(r.take.user_id.as_str())
            .push_bind(r.take.activity_id.get())
            .push_bind(r.take.strategy_id.get())
            .push_bind(r.number)
            .push_bind(millis(r.take.taken_at))
            .push_bind(r.state.as_str())
            .push_bind(r.key);
    })
    .await
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

/// A user's take counter of one activity: user id and activity id.
pub(crate) type CounterKey = (String, i64);

/// A take counter as a batch leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub used: i64,
    pub limit: i64,
}

/// Counters one `SELECT` reads at most: SQLite nests each `OR` one level deeper and refuses
/// expressions deeper than 1000.
const COUNTERS_PER_READ: usize = 256;

/// The take counters of `keys` (a key without a counter is absent), locked until the
/// transaction ends on MariaDB: another instance's writer may count the same user at once.
/// The keys are ORed equalities on the primary key, which both backends look up by that
/// key (the row-value `IN` forms differ between them), so MariaDB locks only these rows and
/// the gaps where missing ones would go.
pub(crate) async fn read_counters(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
    keys: &[CounterKey],
) -> Result<HashMap<CounterKey, i64>, sqlx::Error> {
    let mut used = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(COUNTERS_PER_READ) {
        let mut query = QueryBuilder::<Any>::new(format!(
            "SELECT user_id, activity_id, used FROM {table} WHERE "
        ));
        for (i, (user, activity)) in chunk.iter().enumerate() {
            if i > 0 {
                query.push(" OR ");
            }
            query
                .push("(user_id = ")
                .push_bind(user.as_str())
                .push(" AND activity_id = ")
                .push_bind(*activity)
                .push(")");
        }
        query.push(dialect.for_update());
        let rows = query
            .build()
            .persistent(cached(chunk.len()))
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let key = (row.try_get("user_id")?, row.try_get("activity_id")?);
            used.insert(key, row.try_get("used")?);
        }
    }
    Ok(used)
}

/// Numbers takes, in order, exactly as [`bump_counter`] would one at a time from the
/// `stored` counters: a user's first take of an activity is 1 whatever its limit (the
/// counter is created), a later one is counted while `used < limit` (`None` past it).
/// Returns each take's number and the counters the batch changed, to be written.
pub(crate) fn number_takes(
    stored: &HashMap<CounterKey, i64>,
    takes: &[(&UserTake, u32)],
) -> (Vec<Option<i64>>, BTreeMap<CounterKey, Counted>) {
    let mut changed: BTreeMap<CounterKey, Counted> = BTreeMap::new();
    let numbers = takes
        .iter()
        .map(|(take, limit)| {
            let key = (take.user_id.as_str().to_owned(), take.activity_id.get());
            let limit = i64::from(*limit);
            let used = changed
                .get(&key)
                .map(|c| c.used)
                .or_else(|| stored.get(&key).copied());
            let number = match used {
                None => 1,
                Some(used) if used < limit => used + 1,
                Some(_) => return None,
            };
            changed.insert(
                key,
                Counted {
                    used: number,
                    limit,
                },
            );
            Some(number)
        })
        .collect();
    (numbers, changed)
}

/// Writes counters (created or updated) in one upsert; like [`bump_counter`], each keeps
/// the limit of its last counted take.
pub(crate) async fn write_counters(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
    counters: &BTreeMap<CounterKey, Counted>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&CounterKey, &Counted)> = counters.iter().collect();
    let head = format!("INSERT INTO {table} (user_id, activity_id, take_limit, used, updated_at) ");
    let tail = format!(
        " {}",
        dialect.upsert_clause(
            &["user_id", "activity_id"],
            &["used", "take_limit", "updated_at"]
        )
    );
    insert_rows(conn, &head, &tail, 5, &rows, |mut row, (key, c)| {
        row.push_bind(key.0.as_str())
            .push_bind(key.1)
            .push_bind(c.limit)
            .push_bind(c.used)
            .push_bind(now);
    })
    .await
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
            let row = TakeRow {
                take,
                number,
                state: TakeState::Open,
                key: None,
            };
            insert_takes(&mut tx, &t.take, &[row]).await?;
            let mut tally = Tally::default();
            tally.takes([take]);
            tally.write(&mut tx, self.router.dialect()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn take(user: &str, activity: i64) -> UserTake {
        UserTake {
            take_id: TakeId::new(1).expect("id"),
            user_id: UserId::new(user).expect("user"),
            activity_id: ActivityId::new(activity).expect("id"),
            strategy_id: StrategyId::new(1).expect("id"),
            take_number: 0,
            taken_at: Utc::now(),
            state: TakeState::Used,
        }
    }

    fn key(user: &str, activity: i64) -> CounterKey {
        (user.to_owned(), activity)
    }

    #[test]
    fn takes_are_numbered_as_one_bump_at_a_time() {
        let (a, b, c) = (take("a", 1), take("b", 1), take("a", 2));
        // "a" has 2 of 3 takes of activity 1; "b" and "a" of activity 2 have no counter.
        let stored = HashMap::from([(key("a", 1), 2)]);
        let takes = [(&a, 3), (&b, 2), (&a, 3), (&b, 2), (&b, 2), (&c, 0)];
        let (numbers, changed) = number_takes(&stored, &takes);
        // A first take is counted whatever the limit, as the counter is created with it.
        let expected = [Some(3), Some(1), None, Some(2), None, Some(1)];
        assert_eq!(numbers, expected);
        let counted = |used, limit| Counted { used, limit };
        let changed: Vec<_> = changed.into_iter().collect();
        assert_eq!(
            changed,
            [
                (key("a", 1), counted(3, 3)),
                (key("a", 2), counted(1, 0)),
                (key("b", 1), counted(2, 2)),
            ]
        );
    }

    #[test]
    fn a_counter_keeps_the_limit_of_its_last_counted_take() {
        let a = take("a", 1);
        let stored = HashMap::from([(key("a", 1), 1)]);
        // The limit went up between two draws; the one refused under the old limit is not
        // counted and leaves the counter as it was.
        let (numbers, changed) = number_takes(&stored, &[(&a, 1), (&a, 5), (&a, 2)]);
        assert_eq!(numbers, [None, Some(2), None]);
        assert_eq!(
            changed.get(&key("a", 1)),
            Some(&Counted { used: 2, limit: 5 })
        );
        let (numbers, changed) = number_takes(&stored, &[(&a, 1)]);
        assert_eq!((numbers, changed.len()), (vec![None], 0));
    }
}
