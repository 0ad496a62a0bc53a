//! Win orders and their outbox rows, in the user's shard.

use chrono::{DateTime, Utc};
use db_router::Router;
use lottery_activity::{
    GiveAddress, GrantRepository, OrderFilter, OrderRepository, OutboxMessage, Page, WinOrder,
};
use lottery_award::{Award, GrantState};
use lottery_domain::{
    ActivityId, AwardId, OrderId, RepoError, RepoResult, StrategyId, TakeId, UserId,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

use crate::bulk::insert_rows;
use crate::error::{Within, repo, retrying, router};
use crate::outbox::insert_outbox;
use crate::rows::{int, millis, opt_int, opt_text, parse, text, time};
use crate::take_store::UserTables;
use crate::tally::Tally;

const ORDER_COLUMNS: &str = "order_id, take_id, user_id, activity_id, strategy_id, mode, award_id, award_kind, \
     award_name, award_content, fallback, grant_state, delivery, created_at, granted_at";

#[derive(Debug, Clone)]
pub struct OrderStore {
    router: Router,
}

impl OrderStore {
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

fn order_from(row: &AnyRow) -> RepoResult<WinOrder> {
    Ok(WinOrder {
        order_id: parse("order_id", OrderId::new(int(row, "order_id")?))?,
        take_id: parse("take_id", TakeId::new(int(row, "take_id")?))?,
        user_id: parse("user_id", UserId::new(text(row, "user_id")?))?,
        activity_id: parse("activity_id", ActivityId::new(int(row, "activity_id")?))?,
        strategy_id: parse("strategy_id", StrategyId::new(int(row, "strategy_id")?))?,
        mode: parse("mode", text(row, "mode")?.parse())?,
        award: parse(
            "award",
            Award::new(
                parse("award_id", AwardId::new(int(row, "award_id")?))?,
                parse("award_kind", text(row, "award_kind")?.parse())?,
                text(row, "award_name")?,
                text(row, "award_content")?,
            ),
        )?,
        fallback: int(row, "fallback")? != 0,
        grant_state: parse("grant_state", text(row, "grant_state")?.parse())?,
        delivery: opt_text(row, "delivery")?,
        created_at: time(int(row, "created_at")?)?,
        granted_at: opt_int(row, "granted_at")?.map(time).transpose()?,
    })
}

/// Inserts orders, a batch's in one statement.
pub(crate) async fn insert_orders(
    conn: &mut AnyConnection,
    table: &str,
    orders: &[&WinOrder],
) -> Result<(), sqlx::Error> {
    let head = format!("INSERT INTO {table} ({ORDER_COLUMNS}) ");
    insert_rows(conn, &head, "", 15, orders, |mut row, order| {
        row.push_bind(order.order_id.get())
            .push_bind(order.take_id.get())
            .push_bind(order.user_id.as_str())
            .push_bind(order.activity_id.get())
            .push_bind(order.strategy_id.get())
            .push_bind(order.mode.as_str())
            .push_bind(order.award.id.get())
            .push_bind(order.award.kind.as_str())
            .push_bind(order.award.name.as_str())
            .push_bind(order.award.content.as_str())
            .push_bind(i64::from(order.fallback))
            .push_bind(order.grant_state.as_str())
            .push_bind(order.delivery.as_deref())
            .push_bind(millis(order.created_at))
            .push_bind(order.granted_at.map(millis));
    })
    .await
}

pub(crate) async fn order_by_take(
    router: &Router,
    pool: &AnyPool,
    table: &str,
    user: &UserId,
    take: TakeId,
) -> RepoResult<Option<WinOrder>> {
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM {table} WHERE take_id = ? AND user_id = ?"
    ))
    .bind(take.get())
    .bind(user.as_str())
    .fetch_optional(pool)
    .within(router.read_timeout())
    .await
    .map_err(repo)?;
    row.as_ref().map(order_from).transpose()
}

#[async_trait::async_trait]
impl OrderRepository for OrderStore {
    async fn record_win(&self, order: &WinOrder, message: &OutboxMessage) -> RepoResult<()> {
        let t = UserTables::of(&self.router, &order.user_id);
        let pool = self.router.pool(&t.route).map_err(router)?;
        let consume = format!(
            "UPDATE {} SET state = 'used' WHERE take_id = ? AND user_id = ? AND state = 'open'",
            t.take
        );
        let consumed = retrying(self.router.read_timeout(), || async {
            let mut tx = pool.begin().await?;
            let consumed = sqlx::query(&consume)
                .bind(order.take_id.get())
                .bind(order.user_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !consumed {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_orders(&mut tx, &t.order, &[order]).await?;
            insert_outbox(&mut tx, &[message]).await?;
            // Last, as in every writer: a transaction holding a tally row waits for nothing.
            let mut tally = Tally::default();
            tally.orders([order]);
            tally.write(&mut tx, self.router.dialect()).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await?;
        if consumed {
            Ok(())
        } else {
            Err(RepoError::Conflict(format!(
                "take {} is not open: it was drawn already",
                order.take_id
            )))
        }
    }

    async fn orders(&self, user: &UserId, page: Page) -> RepoResult<Vec<WinOrder>> {
        let t = UserTables::of(&self.router, user);
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM {} WHERE user_id = ? ORDER BY created_at DESC, order_id DESC LIMIT ? OFFSET ?",
            t.order
        ))
        .bind(user.as_str())
        .bind(i64::from(page.limit))
        .bind(i64::from(page.offset))
        .fetch_all(self.router.pool(&t.route).map_err(router)?).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        rows.iter().map(order_from).collect()
    }

    async fn order(&self, user: &UserId, order: OrderId) -> RepoResult<Option<WinOrder>> {
        let t = UserTables::of(&self.router, user);
        let row = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM {} WHERE order_id = ? AND user_id = ?",
            t.order
        ))
        .bind(order.get())
        .bind(user.as_str())
        .fetch_optional(self.router.pool(&t.route).map_err(router)?)
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        row.as_ref().map(order_from).transpose()
    }

    async fn grant_counts(&self, activity: ActivityId) -> RepoResult<Vec<(GrantState, u64)>> {
        let per_table = self
            .router
            .fan_out(|route, pool| async move {
                sqlx::query(&format!(
                    "SELECT grant_state, COUNT(*) AS n FROM {} WHERE activity_id = ? GROUP BY grant_state",
                    route.table("win_order")
                ))
                .bind(activity.get())
                .fetch_all(&pool)
                .within(self.router.read_timeout())
                .await
            })
            .await
            .map_err(repo)?;
        let mut counts: Vec<(GrantState, u64)> = Vec::new();
        for (_, rows) in per_table {
            for row in rows {
                let state: GrantState = parse("grant_state", text(&row, "grant_state")?.parse())?;
                let n = int(&row, "n")?.max(0) as u64;
                match counts.iter_mut().find(|(s, _)| *s == state) {
                    Some((_, total)) => *total += n,
                    None => counts.push((state, n)),
                }
            }
        }
        Ok(counts)
    }

    async fn finish_grant(
        &self,
        user: &UserId,
        order: OrderId,
        to: GrantState,
        delivery: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let t = UserTables::of(&self.router, user);
        let r = sqlx::query(&format!(
            "UPDATE {} SET grant_state = ?, delivery = ?, granted_at = ? \
             WHERE order_id = ? AND user_id = ? AND grant_state = 'init'",
            t.order
        ))
        .bind(to.as_str())
        .bind(delivery)
        .bind(millis(at))
        .bind(order.get())
        .bind(user.as_str())
        .execute(self.router.pool(&t.route).map_err(router)?)
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        Ok(r.rows_affected() == 1)
    }

    async fn give_address(
        &self,
        user: &UserId,
        order: OrderId,
        message: &OutboxMessage,
    ) -> RepoResult<GiveAddress> {
        let t = UserTables::of(&self.router, user);
        let pool = self.router.pool(&t.route).map_err(router)?;
        // The compare-and-set decides between concurrent callers: on MariaDB the loser's
        // UPDATE waits for the winner's row lock and then matches nothing; SQLite has one
        // writer at a time.
        let give = format!(
            "UPDATE {} SET grant_state = ? WHERE order_id = ? AND user_id = ? AND grant_state = ?",
            t.order
        );
        let current = format!(
            "SELECT grant_state FROM {} WHERE order_id = ? AND user_id = ?",
            t.order
        );
        let stored: Option<Option<String>> = retrying(self.router.read_timeout(), || async {
            let mut tx = pool.begin().await?;
            let given = sqlx::query(&give)
                .bind(GrantState::Init.as_str())
                .bind(order.get())
                .bind(user.as_str())
                .bind(GrantState::AwaitingAddress.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !given {
                let state: Option<String> = sqlx::query_scalar(&current)
                    .bind(order.get())
                    .bind(user.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(Some(state));
            }
            insert_outbox(&mut tx, &[message]).await?;
            tx.commit().await?;
            Ok(None)
        })
        .await?;
        match stored {
            None => Ok(GiveAddress::Given),
            Some(None) => Ok(GiveAddress::NotFound),
            Some(Some(state)) => Ok(GiveAddress::NotAwaiting(parse(
                "grant_state",
                state.parse(),
            )?)),
        }
    }

    async fn orders_in_state(
        &self,
        filter: &OrderFilter,
        after: Option<OrderId>,
        limit: u32,
    ) -> RepoResult<Vec<WinOrder>> {
        let limit = limit.clamp(1, Page::MAX_LIMIT);
        let state = filter.state.as_str();
        let activity = filter.activity.map(ActivityId::get);
        // Order ids are positive: 0 lies below all of them.
        let after = after.map_or(0, OrderId::get);
        let per_table = self
            .router
            .fan_out(|route, pool| async move {
                let sql = format!(
                    "SELECT {ORDER_COLUMNS} FROM {} WHERE grant_state = ?{} AND order_id > ? \
                     ORDER BY order_id LIMIT ?",
                    route.table("win_order"),
                    if activity.is_some() {
                        " AND activity_id = ?"
                    } else {
                        ""
                    }
                );
                let mut query = sqlx::query(&sql).bind(state);
                if let Some(activity) = activity {
                    query = query.bind(activity);
                }
                query
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&pool)
                    .within(self.router.read_timeout())
                    .await
            })
            .await
            .map_err(repo)?;
        // Each table's first `limit` rows above `after` include the first `limit` of all.
        let mut orders = per_table
            .iter()
            .flat_map(|(_, rows)| rows)
            .map(order_from)
            .collect::<RepoResult<Vec<_>>>()?;
        orders.sort_unstable_by_key(|o| o.order_id);
        orders.truncate(limit as usize);
        Ok(orders)
    }
}

#[async_trait::async_trait]
impl GrantRepository for OrderStore {
    async fn apply_grant(
        &self,
        user: &UserId,
        order: OrderId,
        message_id: &str,
        to: GrantState,
        delivery: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let t = UserTables::of(&self.router, user);
        let pool = self.router.pool(&t.route).map_err(router)?;
        let mark = format!(
            "{} processed_message (message_id, processed_at) VALUES (?, ?)",
            self.router.dialect().insert_ignore_into()
        );
        let grant = format!(
            "UPDATE {} SET grant_state = ?, delivery = ?, granted_at = ? \
             WHERE order_id = ? AND user_id = ? AND grant_state = 'init'",
            t.order
        );
        retrying(self.router.read_timeout(), || async {
            let mut tx = pool.begin().await?;
            let first = sqlx::query(&mark)
                .bind(message_id)
                .bind(millis(at))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !first {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(&grant)
                .bind(to.as_str())
                .bind(delivery)
                .bind(millis(at))
                .bind(order.get())
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn is_processed(&self, user: &UserId, message_id: &str) -> RepoResult<bool> {
        let t = UserTables::of(&self.router, user);
        let found: Option<i64> =
            sqlx::query_scalar("SELECT processed_at FROM processed_message WHERE message_id = ?")
                .bind(message_id)
                .fetch_optional(self.router.pool(&t.route).map_err(router)?)
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?;
        Ok(found.is_some())
    }
}
