//! Pieces the services share, each holding only the ports it uses.

use std::sync::{Arc, OnceLock};

use lottery_activity::{
    Activity, ActivityRepository, ChangeFeed, StockCounts, StockLedger, StockSnapshot,
};
use lottery_domain::{ActivityId, AwardId, Clock};
use tracing::warn;

use crate::{ActivityConfig, AppError, ConfigCache};

/// Announces configuration changes: drops the local copy and tells the other instances.
#[derive(Clone)]
pub(crate) struct Changes {
    pub(crate) cache: Arc<ConfigCache>,
    /// Set once by the composition root (cluster mode); shared by every holder.
    pub(crate) feed: Arc<OnceLock<Arc<dyn ChangeFeed>>>,
}

impl Changes {
    pub(crate) async fn changed(&self, id: ActivityId) {
        self.cache.invalidate(id);
        if let Some(feed) = self.feed.get()
            && let Err(e) = feed.announce(id).await
        {
            // Other instances still converge within the cache's time-to-live.
            warn!(activity = %id, error = %lottery_domain::Chain(&e), "could not announce a configuration change");
        }
    }
}

/// Every running activity (approved or doing), read page by page.
pub(crate) async fn running_activities(
    activities: &dyn ActivityRepository,
) -> Result<Vec<Activity>, AppError> {
    const PAGE: u32 = 500;
    let mut all = Vec::new();
    loop {
        let after = all.last().map(Activity::id);
        let page = activities.running(after, PAGE).await?;
        let full = page.len() == PAGE as usize;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// Stock left as the stock store holds it, with the databases' counts behind it.
#[derive(Clone)]
pub(crate) struct StockView {
    pub(crate) stock: Arc<dyn StockLedger>,
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) cache: Arc<ConfigCache>,
}

impl StockView {
    /// The activity's and each award's stock left in the store (awards the store does not
    /// hold are left out). `None` when the store has not loaded the activity.
    pub(crate) async fn live(&self, id: ActivityId) -> Result<Option<StockCounts>, AppError> {
        let Some(stock_left) = self.stock.stock_left(id).await? else {
            return Ok(None);
        };
        let config = self.cache.get(id).await?;
        let ids: Vec<AwardId> = config
            .strategy()
            .awards()
            .iter()
            .map(|a| a.award_id)
            .collect();
        let left = self.stock.awards_left(id, &ids).await?;
        let awards_left = ids
            .into_iter()
            .zip(left)
            .filter_map(|(a, l)| l.map(|l| (a, l)))
            .collect();
        Ok(Some(StockCounts {
            stock_left,
            awards_left,
        }))
    }

    /// Live stock, falling back to the database's view for whatever the stock store has not
    /// loaded (or when it is unreachable).
    pub(crate) async fn counts(&self, id: ActivityId) -> Result<StockCounts, AppError> {
        let live = self.live(id).await.ok().flatten();
        self.over(id, live).await
    }

    /// The database's counts, overridden by what `live` (the stock store's view) holds.
    pub(crate) async fn over(
        &self,
        id: ActivityId,
        live: Option<StockCounts>,
    ) -> Result<StockCounts, AppError> {
        let db = self
            .activities
            .stock_counts(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("activity {id}")))?;
        let Some(live) = live else {
            return Ok(db);
        };
        let awards_left = db
            .awards_left
            .iter()
            .map(|(a, n)| {
                let held = live.awards_left.iter().find(|(x, _)| x == a);
                (*a, held.map_or(*n, |(_, l)| *l))
            })
            .collect();
        Ok(StockCounts {
            stock_left: live.stock_left,
            awards_left,
        })
    }
}

/// Loads an activity's stock into the store under a new generation.
#[derive(Clone)]
pub(crate) struct StockLoader {
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) stock: Arc<dyn StockLedger>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Serialises reloads in this process.
    pub(crate) reloading: Arc<tokio::sync::Mutex<()>>,
}

impl StockLoader {
    /// (Re)loads an activity's stock under a new generation: fences the shards, counts what
    /// they recorded, and loads the rest. Does nothing when the store already holds a
    /// generation newer than `seen` (the one found lacking): someone reloaded meanwhile, and
    /// reloading again would only fence off that generation's claims in flight.
    pub(crate) async fn reload(&self, config: &ActivityConfig, seen: u64) -> Result<(), AppError> {
        let id = config.activity.id();
        // One reload at a time in this process; the others then find it done.
        let _one = self.reloading.lock().await;
        let live = self.stock.generation(id).await?.unwrap_or(0);
        if live > seen {
            return Ok(());
        }
        let clock = u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0);
        let min = clock.max(live + 1);
        let (generation, counts) = self
            .activities
            .fence_stock(id, min)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("activity {id}")))?;
        self.stock
            .load_activity(&StockSnapshot {
                activity_id: id,
                generation,
                stock_left: counts.stock_left,
                awards_left: counts.awards_left,
                expires_at: config.key_expiry(),
                nobody_drew: counts.stock_left >= u64::from(config.activity.stock()),
            })
            .await?;
        Ok(())
    }

    /// A record was refused for an old generation. If the store still holds that generation
    /// (a reload raised the fences but died before loading), reload it now; otherwise a
    /// newer generation is live and nothing is needed.
    pub(crate) async fn catch_up(&self, config: &ActivityConfig, generation: u64) {
        let id = config.activity.id();
        if !matches!(self.stock.generation(id).await, Ok(Some(g)) if g <= generation) {
            return;
        }
        if let Err(e) = self.reload(config, generation).await {
            warn!(activity = %id, error = %lottery_domain::Chain(&e), "could not reload stock behind its fence");
        }
    }
}
