//! Brings the database's stock left in line with the stock store. Monotonic (the database
//! only ever goes down) and idempotent, so any instance may run it any number of times.

use lottery_activity::{ActivityState, StockCounts};
use lottery_domain::{ActivityId, AwardId};

use crate::{AppError, Lottery};

#[derive(Debug, Clone)]
pub struct StockSync {
    lottery: Lottery,
}

impl StockSync {
    pub fn new(lottery: Lottery) -> Self {
        Self { lottery }
    }

    /// Syncs one activity; returns the live counts written, or `None` when the store does
    /// not hold the activity (nothing to sync).
    pub async fn sync(&self, id: ActivityId) -> Result<Option<StockCounts>, AppError> {
        let svc = self.lottery.services();
        let Some(stock_left) = svc.stock.stock_left(id).await? else {
            return Ok(None);
        };
        let config = self.lottery.cache().get(id).await?;
        let ids: Vec<AwardId> = config
            .strategy()
            .awards()
            .iter()
            .map(|a| a.award_id)
            .collect();
        let left = svc.stock.awards_left(id, &ids).await?;
        let awards_left = ids
            .into_iter()
            .zip(left)
            .filter_map(|(a, l)| l.map(|l| (a, l)))
            .collect();
        let counts = StockCounts {
            stock_left,
            awards_left,
        };
        svc.activities.sync_stock(id, &counts).await?;
        Ok(Some(counts))
    }

    /// Syncs every activity that is running (or approved and about to); returns how many
    /// were synced.
    pub async fn sync_running(&self) -> Result<usize, AppError> {
        let mut synced = 0;
        for activity in self
            .lottery
            .services()
            .activities
            .schedulable(1_000)
            .await?
        {
            if matches!(
                activity.state(),
                ActivityState::Doing | ActivityState::Approved
            ) && self.sync(activity.id()).await?.is_some()
            {
                synced += 1;
            }
        }
        Ok(synced)
    }
}
