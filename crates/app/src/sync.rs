//! Brings the database's stock left in line with the stock store. Monotonic (the database
//! only ever goes down) and idempotent, so any instance may run it any number of times.

use lottery_activity::StockCounts;
use lottery_domain::ActivityId;

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
        let Some(counts) = self.lottery.live_stock(id).await? else {
            return Ok(None);
        };
        self.lottery
            .services()
            .activities
            .sync_stock(id, &counts)
            .await?;
        Ok(Some(counts))
    }

    /// Syncs every activity that is running (or approved and about to); returns how many
    /// were synced.
    pub async fn sync_running(&self) -> Result<usize, AppError> {
        let mut synced = 0;
        for activity in self.lottery.running_activities().await? {
            if self.sync(activity.id()).await?.is_some() {
                synced += 1;
            }
        }
        Ok(synced)
    }
}
