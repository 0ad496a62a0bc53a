//! The application layer: use cases that orchestrate the domain through its ports.
//!
//! Nothing here knows which database, cache or broker is behind the ports: the composition
//! root hands in a [`Services`] and gets a [`Lottery`].

mod cache;
mod commands;
mod delivery;
mod draw;
mod error;
mod scheduler;
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

pub use cache::{ActivityConfig, CacheStats, ConfigCache};
pub use commands::{AwardSpec, DeployCommand, Deployed, StrategySpec, UserActivityView};
pub use delivery::{AwardDelivery, InProcessBus, OutboxRelay, RelayOptions, RelayReport};
pub use draw::{DrawOutcome, DrawRequest, DrawResult};
pub use error::AppError;
pub use scheduler::{Job, Scheduler, SchedulerOptions};
pub use simulate::{Simulation, SimulationRow};
pub use sync::StockSync;

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

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// The lottery's use cases.
#[derive(Debug, Clone)]
pub struct Lottery {
    svc: Services,
    cache: Arc<ConfigCache>,
}

impl Lottery {
    pub fn new(svc: Services) -> Self {
        let cache = Arc::new(ConfigCache::new(
            svc.clone(),
            std::time::Duration::from_secs(30),
        ));
        Self { svc, cache }
    }

    pub fn services(&self) -> &Services {
        &self.svc
    }

    /// The configuration cache (for invalidation from other instances and for metrics).
    pub fn cache(&self) -> &Arc<ConfigCache> {
        &self.cache
    }
}
