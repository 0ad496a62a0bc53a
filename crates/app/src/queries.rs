//! Read models for users, admins and metrics, served from memory where the data lives
//! there (the configuration cache, the stock store).

use std::sync::Arc;

use lottery_activity::{
    ActivityRepository, ActivityState, OrderRepository, OutboxBacklog, OutboxRepository, Page,
    StockCounts, StockLedger, TakeRepository, UserTake, WinOrder,
};
use lottery_domain::{ActivityId, UserId};
use serde::Serialize;

use crate::commands::Administration;
use crate::parts::{StockView, running_activities};
use crate::{ActivityConfig, AppError, ConfigCache};

/// The read models of users and of metrics. Holds only the ports they read.
#[derive(Clone)]
pub struct Queries {
    pub(crate) cache: Arc<ConfigCache>,
    pub(crate) stock_view: StockView,
    pub(crate) stock: Arc<dyn StockLedger>,
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) takes: Arc<dyn TakeRepository>,
    pub(crate) orders: Arc<dyn OrderRepository>,
    pub(crate) outbox: Arc<dyn OutboxRepository>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries").finish_non_exhaustive()
    }
}

/// A user's standing in one activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserActivityView {
    pub activity_id: ActivityId,
    pub take_limit: u32,
    pub takes_used: u32,
    pub takes_left: u32,
}

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

impl Queries {
    /// The activity's configuration (from the cache).
    pub async fn activity_config(&self, id: ActivityId) -> Result<Arc<ActivityConfig>, AppError> {
        self.cache.get(id).await
    }

    /// What a user sees of an activity: from the cache and the stock store, and from the
    /// databases' counts only when the store has not loaded the activity.
    pub async fn activity_view(&self, id: ActivityId) -> Result<ActivityView, AppError> {
        let config = self.cache.get(id).await?;
        let stock = match self.stock_view.live(id).await.ok().flatten() {
            Some(live) if live.awards_left.len() == config.strategy().awards().len() => live,
            partial => self.stock_view.over(id, partial).await?,
        };
        Ok(ActivityView { config, stock })
    }

    /// Stock left per drawing activity and the outbox backlog.
    pub async fn gauges(&self) -> Gauges {
        let mut gauges = Gauges::default();
        if let Ok(running) = running_activities(self.activities.as_ref()).await {
            for a in running.iter().filter(|a| a.state() == ActivityState::Doing) {
                if let Ok(Some(left)) = self.stock.stock_left(a.id()).await {
                    gauges.stock_left.push((a.id(), left));
                }
            }
        }
        gauges.outbox = self.outbox.backlog().await.ok();
        gauges
    }

    /// The user's won orders, newest first.
    pub async fn user_orders(&self, user: &UserId, page: Page) -> Result<Vec<WinOrder>, AppError> {
        Ok(self.orders.orders(user, page).await?)
    }

    /// The user's takes (of one activity, if given), newest first.
    pub async fn user_takes(
        &self,
        user: &UserId,
        activity: Option<ActivityId>,
        page: Page,
    ) -> Result<Vec<UserTake>, AppError> {
        Ok(self.takes.takes(user, activity, page).await?)
    }

    /// How many takes the user used of an activity and has left.
    pub async fn user_activity(
        &self,
        user: &UserId,
        id: ActivityId,
    ) -> Result<UserActivityView, AppError> {
        let config = self.cache.get(id).await?;
        let used = self.takes.takes_used(user, id).await?;
        let limit = config.activity.take_limit();
        Ok(UserActivityView {
            activity_id: id,
            take_limit: limit,
            takes_used: used,
            takes_left: limit.saturating_sub(used),
        })
    }
}

/// An activity as its admins see it: configuration, stock, draws and wins, orders by state.
#[derive(Debug, Clone)]
pub struct ActivityDetail {
    pub activity: lottery_activity::Activity,
    pub strategy: lottery_strategy::Strategy,
    pub awards: Vec<AwardStats>,
    pub stock_left: u64,
    /// Stock taken: the draws made.
    pub draws: u64,
    pub wins: u64,
    pub orders: OrderStats,
}

/// One prize of a strategy: as configured, what is left and what was won.
#[derive(Debug, Clone)]
pub struct AwardStats {
    pub share: lottery_strategy::StrategyAward,
    /// `None` when the award row is missing (never in a consistent store).
    pub award: Option<lottery_award::Award>,
    pub left: u64,
    pub won: u64,
}

/// Win orders by grant state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderStats {
    pub awaiting_address: u64,
    pub pending: u64,
    pub granted: u64,
    pub failed: u64,
}

impl Administration {
    /// The admin's view of an activity.
    pub async fn activity_detail(&self, id: ActivityId) -> Result<ActivityDetail, AppError> {
        use lottery_award::GrantState;
        let activity = self.activity(id).await?;
        let strategy = self.strategy(activity.strategy_id()).await?;
        let ids: Vec<_> = strategy.awards().iter().map(|a| a.award_id).collect();
        let awards = self.awards(&ids).await?;
        let stock = self.stock(id).await?;
        let mut orders = OrderStats::default();
        for (grant, n) in self.grant_counts(id).await? {
            match grant {
                GrantState::AwaitingAddress => orders.awaiting_address += n,
                GrantState::Init => orders.pending += n,
                GrantState::Complete => orders.granted += n,
                GrantState::Failed => orders.failed += n,
            }
        }
        let awards: Vec<AwardStats> = strategy
            .awards()
            .iter()
            .map(|share| {
                let left = stock
                    .awards_left
                    .iter()
                    .find(|(a, _)| *a == share.award_id)
                    .map_or(0, |(_, n)| *n);
                AwardStats {
                    share: *share,
                    award: awards.iter().find(|a| a.id == share.award_id).cloned(),
                    left,
                    won: u64::from(share.count).saturating_sub(left),
                }
            })
            .collect();
        Ok(ActivityDetail {
            wins: awards.iter().map(|a| a.won).sum(),
            draws: u64::from(activity.stock()).saturating_sub(stock.stock_left),
            stock_left: stock.stock_left,
            activity,
            strategy,
            awards,
            orders,
        })
    }
}
