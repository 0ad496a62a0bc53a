//! The multi-row path of the draw writer: a batch in a handful of statements instead of a
//! handful per draw. After one read of the batch's stock fences, each user table the batch
//! touches takes four statements: its take counters read (locked on MariaDB), numbered in
//! memory and written back in one upsert, its takes inserted in one statement and its orders
//! in another; the outbox rows of the whole batch follow in one more.
//!
//! The outcomes are those the per-record path would give the same batch as long as no
//! statement is refused. A refused one (a key or take id clash) rolls all of it back, and
//! the batch is written again by the per-record path, which answers each record alone.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use db_router::{Dialect, Route, Router};
use lottery_activity::{DrawRecord, OutboxMessage, RecordOutcome, TakeState, UserTake};
use sqlx::AnyConnection;

use super::{admits, read_fences};
use crate::order_store::insert_orders;
use crate::outbox::insert_outbox;
use crate::rows::millis;
use crate::take_store::{
    CounterKey, TakeRow, UserTables, insert_takes, number_takes, read_counters, write_counters,
};
use crate::tally::Tally;

/// One record of the batch, with the take it grants.
struct Draw<'a> {
    /// Its place in the batch, where its outcome goes.
    index: usize,
    record: &'a DrawRecord,
    take: &'a UserTake,
    limit: u32,
}

/// A batch's records grouped by the user table they are written to, each group in batch
/// order (a user's takes are numbered in that order).
pub(super) struct Plan<'a> {
    groups: BTreeMap<Route, Vec<Draw<'a>>>,
    len: usize,
}

impl<'a> Plan<'a> {
    /// `None` when a record draws an open take granted earlier (`new_take: None`). That is
    /// rare, and the batch then goes the per-record way whole: a record's outcome may depend
    /// on those before it (a shared idempotency key), which only that path keeps in order.
    pub(super) fn of(router: &Router, records: &[&'a DrawRecord]) -> Option<Self> {
        let mut groups: BTreeMap<Route, Vec<Draw<'a>>> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            let (take, limit) = record.new_take.as_ref()?;
            let draw = Draw {
                index,
                record,
                take,
                limit: *limit,
            };
            let route = router.route(record.user_id.as_str());
            groups.entry(route).or_default().push(draw);
        }
        Some(Self {
            groups,
            len: records.len(),
        })
    }

    /// Writes the batch inside the caller's transaction and answers each record. On an
    /// error the transaction holds part of the batch and must be rolled back.
    pub(super) async fn write(
        &self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        records: &[&DrawRecord],
    ) -> Result<Vec<RecordOutcome>, sqlx::Error> {
        let fences = read_fences(conn, dialect, records).await?;
        let mut outcomes = vec![RecordOutcome::Recorded; self.len];
        let mut messages = Vec::new();
        let mut tally = Tally::default();
        let now = millis(Utc::now());
        for (route, draws) in &self.groups {
            let mut admitted = Vec::with_capacity(draws.len());
            for draw in draws {
                if admits(&fences, draw.record) {
                    admitted.push(draw);
                } else {
                    outcomes[draw.index] = RecordOutcome::StaleGeneration;
                }
            }
            let group = Group {
                tables: UserTables::at(*route),
                draws: admitted,
            };
            group
                .write(conn, dialect, now, &mut outcomes, &mut messages, &mut tally)
                .await?;
        }
        // One outbox and one tally statement per shard database, for every table together.
        insert_outbox(conn, &messages).await?;
        tally.write(conn, dialect).await?;
        Ok(outcomes)
    }
}

/// The admitted records of one user table.
struct Group<'p, 'a> {
    tables: UserTables,
    draws: Vec<&'p Draw<'a>>,
}

impl<'a> Group<'_, 'a> {
    /// Counts and numbers the group's takes, then inserts them and the orders of their wins;
    /// a take past its quota is answered and left out. Collects the wins' outbox messages
    /// and counts what it inserts in `tally`.
    async fn write(
        &self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        now: i64,
        outcomes: &mut [RecordOutcome],
        messages: &mut Vec<&'a OutboxMessage>,
        tally: &mut Tally,
    ) -> Result<(), sqlx::Error> {
        if self.draws.is_empty() {
            return Ok(());
        }
        let t = &self.tables;
        let takes: Vec<(&UserTake, u32)> = self.draws.iter().map(|d| (d.take, d.limit)).collect();
        // Sorted, so concurrent writers lock counters in one order.
        let keys: BTreeSet<CounterKey> = takes
            .iter()
            .map(|(take, _)| (take.user_id.as_str().to_owned(), take.activity_id.get()))
            .collect();
        let keys: Vec<CounterKey> = keys.into_iter().collect();
        let stored = read_counters(conn, dialect, &t.count, &keys).await?;
        let (numbers, counted) = number_takes(&stored, &takes);
        write_counters(conn, dialect, &t.count, &counted, now).await?;
        let mut rows = Vec::with_capacity(self.draws.len());
        let mut orders = Vec::new();
        for (draw, number) in self.draws.iter().zip(numbers) {
            let Some(number) = number else {
                outcomes[draw.index] = RecordOutcome::QuotaExhausted;
                continue;
            };
            // The draw's result is known, so the take is stored already used.
            rows.push(TakeRow {
                take: draw.take,
                number,
                state: TakeState::Used,
                key: draw.record.idempotency_key.as_deref(),
            });
            if let Some((order, message)) = &draw.record.win {
                orders.push(order);
                messages.extend(message.as_ref());
            }
        }
        tally.takes(rows.iter().map(|r| r.take));
        tally.orders(orders.iter().copied());
        insert_takes(conn, &t.take, &rows).await?;
        insert_orders(conn, &t.order, &orders).await
    }
}
