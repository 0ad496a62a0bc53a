//! What each activity recorded per shard database (`activity_tally`): takes that are not
//! void, and orders per award. The transactions that insert takes and orders add to it
//! before they commit, so an activity's counts are a read of a few rows, whatever the number
//! of takes stored: the stock sync and a stock reload cost the same on the first day of a
//! campaign and after millions of draws.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use db_router::{Dialect, Router};
use lottery_activity::{UserTake, WinOrder};
use lottery_domain::{ActivityId, AwardId, RepoResult};
use sqlx::AnyConnection;

use crate::bulk::insert_rows;
use crate::error::{Within, repo, router as router_error};
use crate::rows::{int, parse};

/// The `award_id` under which takes are counted (award ids start at 1).
const TAKES: i64 = 0;

/// Parts a transaction adds to: one at a time, in turn, so concurrent writers (several
/// instances, each with a writer per shard) seldom wait on one row lock until commit.
const PARTS: usize = 16;

static NEXT_PART: AtomicUsize = AtomicUsize::new(0);

/// Counts to add in one transaction, by (activity, award id or [`TAKES`]).
#[derive(Debug, Default)]
pub(crate) struct Tally(BTreeMap<(i64, i64), i64>);

impl Tally {
    pub(crate) fn takes<'a>(&mut self, takes: impl IntoIterator<Item = &'a UserTake>) {
        for take in takes {
            *self.0.entry((take.activity_id.get(), TAKES)).or_default() += 1;
        }
    }

    pub(crate) fn orders<'a>(&mut self, orders: impl IntoIterator<Item = &'a WinOrder>) {
        for order in orders {
            *self
                .0
                .entry((order.activity_id.get(), order.award.id.get()))
                .or_default() += 1;
        }
    }

    /// Adds another transaction-to-be's counts (a savepoint that was kept).
    pub(crate) fn merge(&mut self, other: Self) {
        for (key, n) in other.0 {
            *self.0.entry(key).or_default() += n;
        }
    }

    /// Adds the counts in the caller's transaction: one statement, none when empty. Callers
    /// write it last: holding tally rows, a transaction waits for nothing but its commit, and
    /// its rows are sorted, so writers meeting on one part queue and never deadlock.
    pub(crate) async fn write(
        &self,
        conn: &mut AnyConnection,
        dialect: Dialect,
    ) -> Result<(), sqlx::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        let part = format!("w{}", NEXT_PART.fetch_add(1, Ordering::Relaxed) % PARTS);
        let rows: Vec<(&(i64, i64), &i64)> = self.0.iter().collect();
        let tail = match dialect {
            Dialect::MySql => " ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
            Dialect::Sqlite => {
                " ON CONFLICT (activity_id, award_id, part) DO UPDATE SET n = n + excluded.n"
            }
        };
        let head = "INSERT INTO activity_tally (activity_id, award_id, part, n) ";
        insert_rows(
            conn,
            head,
            tail,
            4,
            &rows,
            |mut row, ((activity, award), n)| {
                row.push_bind(*activity)
                    .push_bind(*award)
                    .push_bind(part.clone())
                    .push_bind(*n);
            },
        )
        .await
    }
}

/// Takes (not void) and orders per award an activity recorded across every shard database.
pub(crate) async fn recorded(
    router: &Router,
    id: ActivityId,
) -> RepoResult<(u64, Vec<(AwardId, u64)>)> {
    // MariaDB sums to a DECIMAL; the count fits a BIGINT.
    let sum = match router.dialect() {
        Dialect::MySql => "CAST(SUM(n) AS SIGNED)",
        Dialect::Sqlite => "SUM(n)",
    };
    let sql = format!(
        "SELECT award_id, {sum} AS n FROM activity_tally WHERE activity_id = ? GROUP BY award_id"
    );
    let mut takes = 0u64;
    let mut won: BTreeMap<i64, u64> = BTreeMap::new();
    for db in router.routes().filter(|r| r.table == 0) {
        let pool = router.pool(&db).map_err(router_error)?;
        let rows = sqlx::query(&sql)
            .bind(id.get())
            .fetch_all(pool)
            .within(router.read_timeout())
            .await
            .map_err(repo)?;
        for row in rows {
            let award = int(&row, "award_id")?;
            let n = int(&row, "n")?.max(0) as u64;
            if award == TAKES {
                takes += n;
            } else {
                *won.entry(award).or_default() += n;
            }
        }
    }
    let won = won
        .into_iter()
        .map(|(award, n)| Ok((parse("award_id", AwardId::new(award))?, n)))
        .collect::<RepoResult<_>>()?;
    Ok((takes, won))
}
