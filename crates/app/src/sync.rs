//! The stock sync: checks the stock store against the records and brings the database's
//! stock left in line with the store.
//!
//! The check is the platform's proof of no oversell: for every activity and award, what the
//! store has left plus what the shards recorded must never exceed what was configured. The
//! records are read first and the store second, so a draw between the two reads can only
//! lower the sum; a sum above the configuration is real drift (a store restored from an old
//! snapshot, a hand edit), and the activity's stock is reloaded under a new generation,
//! which makes it exact again, and the repair is logged and counted.
//!
//! The database write is monotonic (it only ever goes down) and idempotent, so any instance
//! may run the sync any number of times.

use std::sync::Arc;

use lottery_activity::{ActivityRepository, StockCounts, StockLedger};
use lottery_domain::ActivityId;
use tracing::error;

use crate::parts::{StockLoader, StockView, running_activities};
use crate::{AppError, ConfigCache};

/// What syncing one activity found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The live counts written to the database.
    pub live: StockCounts,
    /// The store held more than the configuration allows and was reloaded.
    pub repaired: bool,
}

/// What a round over every running activity did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub synced: usize,
    /// Activities whose stock store drifted above the records and were reloaded.
    pub repaired: usize,
}

#[derive(Clone)]
pub struct StockSync {
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) stock: Arc<dyn StockLedger>,
    pub(crate) cache: Arc<ConfigCache>,
    pub(crate) view: StockView,
    pub(crate) loader: StockLoader,
}

impl std::fmt::Debug for StockSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StockSync").finish_non_exhaustive()
    }
}

/// Whether the store holds more than the records leave of the configuration.
fn drifted(recorded: &StockCounts, live: &StockCounts) -> bool {
    live.stock_left > recorded.stock_left
        || live.awards_left.iter().any(|(award, left)| {
            recorded
                .awards_left
                .iter()
                .find(|(a, _)| a == award)
                .is_some_and(|(_, allowed)| left > allowed)
        })
}

impl StockSync {
    /// Checks and syncs one activity; `None` when the store does not hold the activity
    /// (nothing to sync).
    pub async fn sync(&self, id: ActivityId) -> Result<Option<Synced>, AppError> {
        let Some(recorded) = self.activities.stock_counts(id).await? else {
            return Ok(None);
        };
        let Some(generation) = self.stock.generation(id).await? else {
            return Ok(None);
        };
        let Some(mut live) = self.view.live(id).await? else {
            return Ok(None);
        };
        let repaired = drifted(&recorded, &live);
        if repaired {
            error!(activity = %id, ?recorded, ?live,
                "stock store holds more than the records allow; reloading it");
            let config = self.cache.get(id).await?;
            self.loader.reload(&config, generation).await?;
            let Some(reloaded) = self.view.live(id).await? else {
                return Ok(None);
            };
            live = reloaded;
        }
        self.activities.sync_stock(id, &live).await?;
        Ok(Some(Synced { live, repaired }))
    }

    /// Syncs every activity that is running (or approved and about to).
    pub async fn sync_running(&self) -> Result<SyncReport, AppError> {
        let mut report = SyncReport::default();
        for activity in running_activities(self.activities.as_ref()).await? {
            if let Some(synced) = self.sync(activity.id()).await? {
                report.synced += 1;
                report.repaired += usize::from(synced.repaired);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use lottery_domain::AwardId;

    use super::*;

    fn counts(stock: u64, award: u64) -> StockCounts {
        StockCounts {
            stock_left: stock,
            awards_left: vec![(AwardId::new(1).expect("id"), award)],
        }
    }

    #[test]
    fn drift_is_more_left_than_the_records_allow() {
        assert!(!drifted(&counts(10, 5), &counts(10, 5)));
        assert!(!drifted(&counts(10, 5), &counts(7, 2)), "claims in flight");
        assert!(drifted(&counts(10, 5), &counts(11, 5)));
        assert!(drifted(&counts(10, 5), &counts(10, 6)));
    }
}
