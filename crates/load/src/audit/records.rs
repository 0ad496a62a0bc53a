//! The records, read straight from the databases: the activity's configuration from the
//! global database, and its takes and orders from every table of every shard
//! (`user_take_NNN`, `win_order_NNN`; see docs/storage.md). Tombstones (takes in state
//! `void`) are not takes.

use std::collections::{HashMap, HashSet};

use db_router::{Route, Router, Spread};
use lottery_server::config::Config;
use sqlx::{AnyPool, Row};

use crate::error::LoadError;

/// The activity as configured.
#[derive(Debug, Clone)]
pub struct Configured {
    pub stock: u64,
    pub take_limit: u64,
    /// Each award of its strategy with its count.
    pub awards: Vec<(i64, u64)>,
}

/// A win order as stored.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order_id: i64,
    pub take_id: i64,
    pub user_id: String,
    pub award_id: i64,
    pub grant_state: String,
    /// The table it was found in.
    pub table: Route,
}

/// The activity's records over every shard table.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Takes (draws recorded), tombstones excluded.
    pub takes: u64,
    /// Users with more takes than the take limit, with their count.
    pub over_quota: Vec<(String, u64)>,
    pub orders: Vec<OrderRow>,
    /// Orders with no used take of the same id and user beside them.
    pub orders_without_take: Vec<i64>,
    /// The pending claims asked about that have a take recorded.
    pub recorded_claims: HashSet<i64>,
    /// How user ids route to tables.
    pub spread: Spread,
}

/// One table's share of [`Recorded`].
#[derive(Debug, Default)]
struct TableRows {
    takes: u64,
    over_quota: Vec<(String, u64)>,
    orders: Vec<OrderRow>,
    orders_without_take: Vec<i64>,
    recorded_claims: Vec<i64>,
}

/// Read access to the databases of one configuration.
#[derive(Debug)]
pub struct Records {
    router: Router,
}

impl Records {
    pub async fn connect(config: &Config) -> Result<Self, LoadError> {
        if config.database.is_none() && !config.data_dir.join("global.db").exists() {
            return Err(LoadError::Config(format!(
                "no embedded database under {} (give the server's --data-dir or --config)",
                config.data_dir.display()
            )));
        }
        let mut rc = lottery_server::compose::router_config(config).map_err(|e| {
            // A data directory that cannot be made says why in its source.
            match std::error::Error::source(&e) {
                Some(cause) => LoadError::Config(format!("{e}: {cause}")),
                None => LoadError::Config(e.to_string()),
            }
        })?;
        rc.max_connections = 2;
        Ok(Self {
            router: Router::connect(&rc).await?,
        })
    }

    pub async fn close(&self) {
        self.router.close().await;
    }

    /// The activity's stock, take limit and awards.
    pub async fn configuration(&self, activity: i64) -> Result<Configured, LoadError> {
        let global = self.router.global();
        let row = sqlx::query(
            "SELECT stock, take_limit, strategy_id FROM activity WHERE activity_id = ?",
        )
        .bind(activity)
        .fetch_optional(global)
        .await?
        .ok_or_else(|| {
            LoadError::Invalid(format!("activity {activity} is not in the global database"))
        })?;
        let strategy: i64 = row.try_get("strategy_id")?;
        let awards = sqlx::query(
            "SELECT award_id, award_count FROM strategy_award WHERE strategy_id = ? \
             ORDER BY position",
        )
        .bind(strategy)
        .fetch_all(global)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("award_id")?, count(r.try_get("award_count")?))))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Configured {
            stock: count(row.try_get("stock")?),
            take_limit: count(row.try_get("take_limit")?),
            awards,
        })
    }

    /// Takes and orders over every table; `pending` are claims (take id, user) to look for.
    pub async fn read(
        &self,
        activity: i64,
        configured: &Configured,
        pending: &[(i64, String)],
    ) -> Result<Recorded, LoadError> {
        let spread = self.router.spread();
        let mut by_table: HashMap<Route, Vec<i64>> = HashMap::new();
        for (take, user) in pending {
            by_table.entry(spread.route(user)).or_default().push(*take);
        }
        let by_table = &by_table;
        let limit = configured.take_limit;
        let tables = self
            .router
            .fan_out(|route, pool| {
                let claims = by_table.get(&route).cloned().unwrap_or_default();
                async move { read_table(route, pool, activity, limit, claims).await }
            })
            .await?;
        let mut all = Recorded {
            takes: 0,
            over_quota: Vec::new(),
            orders: Vec::new(),
            orders_without_take: Vec::new(),
            recorded_claims: HashSet::new(),
            spread,
        };
        for (_, t) in tables {
            all.takes += t.takes;
            all.over_quota.extend(t.over_quota);
            all.orders.extend(t.orders);
            all.orders_without_take.extend(t.orders_without_take);
            all.recorded_claims.extend(t.recorded_claims);
        }
        Ok(all)
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

async fn read_table(
    route: Route,
    pool: AnyPool,
    activity: i64,
    take_limit: u64,
    claims: Vec<i64>,
) -> Result<TableRows, sqlx::Error> {
    let takes_table = route.table("user_take");
    let orders_table = route.table("win_order");
    let takes: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {takes_table} WHERE activity_id = ? AND state <> 'void'"
    ))
    .bind(activity)
    .fetch_one(&pool)
    .await?;
    let over_quota = sqlx::query(&format!(
        "SELECT user_id, COUNT(*) AS n FROM {takes_table} WHERE activity_id = ? \
         AND state <> 'void' GROUP BY user_id HAVING COUNT(*) > ?"
    ))
    .bind(activity)
    .bind(i64::try_from(take_limit).unwrap_or(i64::MAX))
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("user_id")?, count(r.try_get("n")?))))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let orders = read_orders(route, &pool, activity).await?;
    let orders_without_take = sqlx::query_scalar(&format!(
        "SELECT o.order_id FROM {orders_table} o LEFT JOIN {takes_table} t \
         ON t.take_id = o.take_id AND t.user_id = o.user_id AND t.activity_id = o.activity_id \
         AND t.state = 'used' WHERE o.activity_id = ? AND t.take_id IS NULL"
    ))
    .bind(activity)
    .fetch_all(&pool)
    .await?;
    Ok(TableRows {
        takes: count(takes),
        over_quota,
        orders,
        orders_without_take,
        recorded_claims: recorded_claims(&takes_table, &pool, &claims).await?,
    })
}

async fn read_orders(
    route: Route,
    pool: &AnyPool,
    activity: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT order_id, take_id, user_id, award_id, grant_state FROM {} \
         WHERE activity_id = ?",
        route.table("win_order")
    ))
    .bind(activity)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(OrderRow {
            order_id: r.try_get("order_id")?,
            take_id: r.try_get("take_id")?,
            user_id: r.try_get("user_id")?,
            award_id: r.try_get("award_id")?,
            grant_state: r.try_get("grant_state")?,
            table: route,
        })
    })
    .collect()
}

/// Which of `claims` (take ids) have a take recorded in `table`.
async fn recorded_claims(
    table: &str,
    pool: &AnyPool,
    claims: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in claims.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql =
            format!("SELECT take_id FROM {table} WHERE state <> 'void' AND take_id IN ({marks})");
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        found.extend(query.fetch_all(pool).await?);
    }
    Ok(found)
}
