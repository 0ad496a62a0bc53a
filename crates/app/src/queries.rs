//! Read models for users, operators and metrics, served from memory where the data lives
//! there (the configuration cache, the stock store).

use std::sync::Arc;

use lottery_activity::{ActivityState, OutboxBacklog, StockCounts};
use lottery_domain::ActivityId;

use crate::{ActivityConfig, AppError, Lottery};

/// An activity as its users see it: the configuration and what is left.
#[derive(Debug, Clone)]
pub struct ActivityView {
    pub config: Arc<ActivityConfig>,
    pub stock: StockCounts,
}

/// Point-in-time figures for metrics.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Stock left of every activity in `doing` whose stock is loaded.
    pub stock_left: Vec<(ActivityId, u64)>,
    /// `None` when the databases could not be read.
    pub outbox: Option<OutboxBacklog>,
}

impl Lottery {
    /// The activity's configuration (from the cache).
    pub async fn activity_config(&self, id: ActivityId) -> Result<Arc<ActivityConfig>, AppError> {
        self.cache.get(id).await
    }

    /// What a user sees of an activity: from the cache and the stock store, and from the
    /// databases' counts only when the store has not loaded the activity.
    pub async fn activity_view(&self, id: ActivityId) -> Result<ActivityView, AppError> {
        let config = self.cache.get(id).await?;
        let stock = match self.live_stock(id).await {
            Ok(Some(live)) if live.awards_left.len() == config.strategy().awards().len() => live,
            _ => self.stock(id).await?,
        };
        Ok(ActivityView { config, stock })
    }

    /// Stock left per drawing activity and the outbox backlog.
    pub async fn gauges(&self) -> Gauges {
        let mut gauges = Gauges::default();
        if let Ok(running) = self.running_activities().await {
            for a in running.iter().filter(|a| a.state() == ActivityState::Doing) {
                if let Ok(Some(left)) = self.svc.stock.stock_left(a.id()).await {
                    gauges.stock_left.push((a.id(), left));
                }
            }
        }
        gauges.outbox = self.svc.outbox.backlog().await.ok();
        gauges
    }
}
