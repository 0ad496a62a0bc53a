//! The application layer: use cases that orchestrate the domain through its ports.
//!
//! Nothing here knows which database, cache or broker is behind the ports: the composition
//! root hands in a [`Services`] and gets a [`Lottery`].

mod cache;
mod commands;
mod delivery;
mod draw;
mod error;
mod identity;
mod inflight;
mod orders;
mod queries;
mod quiet;
mod reconcile;
mod scheduler;
mod settle;
mod simulate;
mod sync;

use std::sync::Arc;

use lottery_activity::{
    ActivityRepository, DrawRepository, GrantRepository, JobLeases, OrderRepository,
    OutboxRepository, StockLedger, TakeRepository,
};
use lottery_award::{AwardRegistry, AwardRepository};
use lottery_domain::Clock;
use lottery_ids::IdSource;
use lottery_rule::RuleTreeRepository;
use lottery_strategy::StrategyRepository;

pub use cache::{ActivityConfig, CacheInvalidation, CacheStats, ConfigCache};
pub use commands::{AwardSpec, DeployCommand, Deployed, StrategySpec, UserActivityView};
pub use delivery::{AwardDelivery, InProcessBus, OutboxRelay, RelayOptions, RelayReport};
pub use draw::{DEFAULT_DRAW_DEADLINE, DrawOutcome, DrawRequest, DrawResult};
pub use error::AppError;
pub use identity::WorkerIdentity;
pub use orders::OrderPage;
pub use queries::{ActivityDetail, ActivityView, AwardStats, Gauges, OrderStats};
pub use quiet::{Failure, LogGate};
pub use reconcile::{ReconcileReport, Reconciler};
pub use scheduler::{Job, JobReport, ReportHook, Scheduler, SchedulerOptions};
pub use simulate::{DraftShare, Simulation, SimulationRow};
pub use sync::{StockSync, SyncReport, Synced};

/// The ports the use cases need, wired by the composition root.
#[derive(Clone)]
pub struct Services {
    pub activities: Arc<dyn ActivityRepository>,
    pub strategies: Arc<dyn StrategyRepository>,
    pub awards: Arc<dyn AwardRepository>,
    pub takes: Arc<dyn TakeRepository>,
    pub orders: Arc<dyn OrderRepository>,
    pub draws: Arc<dyn DrawRepository>,
    pub rule_trees: Arc<dyn RuleTreeRepository>,
    pub outbox: Arc<dyn OutboxRepository>,
    pub grants: Arc<dyn GrantRepository>,
    pub leases: Arc<dyn JobLeases>,
    pub stock: Arc<dyn StockLedger>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    pub registry: AwardRegistry,
}

impl Services {
    /// The ports of `repositories` with the stock store, clock, id source and award kinds.
    pub fn new(
        repositories: lottery_activity::Repositories,
        stock: Arc<dyn StockLedger>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        registry: AwardRegistry,
    ) -> Self {
        let lottery_activity::Repositories {
            activities,
            strategies,
            awards,
            takes,
            orders,
            draws,
            rule_trees,
            outbox,
            grants,
            leases,
        } = repositories;
        Self {
            activities,
            strategies,
            awards,
            takes,
            orders,
            draws,
            rule_trees,
            outbox,
            grants,
            leases,
            stock,
            clock,
            ids,
            registry,
        }
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// The lottery's use cases.
#[derive(Clone)]
pub struct Lottery {
    svc: Services,
    cache: Arc<ConfigCache>,
    /// Announces configuration changes to other instances (cluster mode).
    feed: Option<Arc<dyn lottery_activity::ChangeFeed>>,
    settler: settle::Settler,
    /// How long a caller waits for a draw's outcome.
    draw_deadline: std::time::Duration,
    /// Serialises stock reloads in this process.
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// Keyed draws running in this process.
    in_flight: inflight::InFlight,
}

impl Lottery {
    /// Must be called within a Tokio runtime: it starts the task that settles recorded claims.
    pub fn new(svc: Services) -> Self {
        let cache = Arc::new(ConfigCache::new(
            svc.activities.clone(),
            svc.strategies.clone(),
            svc.awards.clone(),
            std::time::Duration::from_secs(30),
        ));
        Self {
            settler: settle::Settler::start(svc.stock.clone()),
            svc,
            cache,
            feed: None,
            draw_deadline: DEFAULT_DRAW_DEADLINE,
            reloading: Arc::default(),
            in_flight: inflight::InFlight::default(),
        }
    }

    /// How long [`draw`](Self::draw) waits for an outcome before answering
    /// [`AppError::OutcomeUnknown`]; keep it below the request timeout.
    #[must_use]
    pub fn with_draw_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.draw_deadline = deadline;
        self
    }

    /// Announces every configuration change on `feed`, for the other instances' caches.
    pub fn with_change_feed(mut self, feed: Arc<dyn lottery_activity::ChangeFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Drops the local copy of an activity and tells the other instances to do the same.
    pub(crate) async fn changed(&self, id: lottery_domain::ActivityId) {
        self.cache.invalidate(id);
        if let Some(feed) = &self.feed
            && let Err(e) = feed.announce(id).await
        {
            // Other instances still converge within the cache's time-to-live.
            tracing::warn!(activity = %id, error = %e, "could not announce a configuration change");
        }
    }

    /// Every running activity (approved or doing), read page by page.
    pub async fn running_activities(&self) -> Result<Vec<lottery_activity::Activity>, AppError> {
        const PAGE: u32 = 500;
        let mut all = Vec::new();
        loop {
            let after = all.last().map(lottery_activity::Activity::id);
            let page = self.svc.activities.running(after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// The ports, for the jobs of this crate only: handlers and jobs outside call use cases.
    pub(crate) fn services(&self) -> &Services {
        &self.svc
    }

    pub(crate) fn cache(&self) -> &Arc<ConfigCache> {
        &self.cache
    }

    /// A handle that drops cached configurations, for another instance's announcements.
    pub fn cache_invalidation(&self) -> CacheInvalidation {
        CacheInvalidation::new(self.cache.clone())
    }

    /// How the configuration cache is doing (hits, loads), for metrics.
    pub fn cache_stats(&self) -> &CacheStats {
        self.cache.stats()
    }
}

impl std::fmt::Debug for Lottery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lottery")
            .field("cache", &self.cache)
            .field("feed", &self.feed.is_some())
            .finish()
    }
}
