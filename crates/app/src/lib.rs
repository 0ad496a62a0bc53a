//! The application layer: use cases that orchestrate the domain through its ports.
//!
//! Nothing here knows which database, cache or broker is behind the ports: the composition
//! root hands in a [`Services`] and gets a [`Lottery`], whose services each keep only the
//! ports they use.

mod cache;
mod commands;
mod delivery;
mod draw;
mod error;
mod identity;
mod inflight;
mod orders;
mod parts;
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
pub use commands::{Administration, AwardSpec, DeployCommand, Deployed, StrategySpec};
pub use delivery::{AwardDelivery, InProcessBus, OutboxRelay, RelayOptions, RelayReport};
pub use draw::{DEFAULT_DRAW_DEADLINE, DrawOutcome, DrawRequest, DrawResult, Drawing};
pub use error::AppError;
pub use identity::WorkerIdentity;
pub use orders::{Fulfilment, OrderPage};
pub use queries::{
    ActivityDetail, ActivityView, AwardStats, Gauges, OrderStats, Queries, UserActivityView,
};
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

/// The lottery's use cases, one service per room: [`Drawing`], [`Administration`],
/// [`Queries`] and [`Fulfilment`], plus the jobs it builds ([`Lottery::scheduler`],
/// [`Lottery::stock_sync`], [`Lottery::reconciler`]). Each service holds only the ports it
/// uses; nothing here hands a port out.
#[derive(Clone)]
pub struct Lottery(Arc<Rooms>);

/// Every room, shared: a `Lottery` is cloned per request and per job, so a clone is one
/// reference count.
#[derive(Clone)]
struct Rooms {
    drawing: Arc<Drawing>,
    administration: Administration,
    queries: Queries,
    fulfilment: Fulfilment,
    jobs: JobPorts,
    cache: Arc<ConfigCache>,
    changes: parts::Changes,
}

/// What the jobs are built from.
#[derive(Clone)]
struct JobPorts {
    activities: Arc<dyn ActivityRepository>,
    stock: Arc<dyn StockLedger>,
    draws: Arc<dyn DrawRepository>,
    leases: Arc<dyn JobLeases>,
    clock: Arc<dyn Clock>,
    view: parts::StockView,
    loader: parts::StockLoader,
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
        let changes = parts::Changes {
            cache: cache.clone(),
            feed: Arc::default(),
        };
        let view = parts::StockView {
            stock: svc.stock.clone(),
            activities: svc.activities.clone(),
            cache: cache.clone(),
        };
        let loader = parts::StockLoader {
            activities: svc.activities.clone(),
            stock: svc.stock.clone(),
            clock: svc.clock.clone(),
            reloading: Arc::default(),
        };
        Self(Arc::new(Rooms {
            drawing: Arc::new(Self::drawing_of(&svc, &cache, loader.clone())),
            administration: Self::administration_of(&svc, view.clone(), changes.clone()),
            queries: Queries {
                cache: cache.clone(),
                stock_view: view.clone(),
                stock: svc.stock.clone(),
                activities: svc.activities.clone(),
                takes: svc.takes.clone(),
                orders: svc.orders.clone(),
                outbox: svc.outbox.clone(),
            },
            fulfilment: Fulfilment {
                orders: svc.orders.clone(),
                clock: svc.clock.clone(),
            },
            jobs: JobPorts {
                activities: svc.activities,
                stock: svc.stock,
                draws: svc.draws,
                leases: svc.leases,
                clock: svc.clock,
                view,
                loader,
            },
            cache,
            changes,
        }))
    }

    fn administration_of(
        svc: &Services,
        stock: parts::StockView,
        changes: parts::Changes,
    ) -> Administration {
        Administration {
            activities: svc.activities.clone(),
            strategies: svc.strategies.clone(),
            awards: svc.awards.clone(),
            rule_trees: svc.rule_trees.clone(),
            orders: svc.orders.clone(),
            ids: svc.ids.clone(),
            registry: svc.registry.clone(),
            stock,
            changes,
        }
    }

    fn drawing_of(svc: &Services, cache: &Arc<ConfigCache>, loader: parts::StockLoader) -> Drawing {
        Drawing {
            cache: cache.clone(),
            clock: svc.clock.clone(),
            ids: svc.ids.clone(),
            registry: svc.registry.clone(),
            stock: svc.stock.clone(),
            takes: svc.takes.clone(),
            draws: svc.draws.clone(),
            rule_trees: svc.rule_trees.clone(),
            loader,
            settler: settle::Settler::start(svc.stock.clone()),
            deadline: DEFAULT_DRAW_DEADLINE,
            in_flight: inflight::InFlight::default(),
        }
    }

    /// How long a draw waits for an outcome before answering [`AppError::OutcomeUnknown`];
    /// keep it below the request timeout.
    #[must_use]
    pub fn with_draw_deadline(mut self, deadline: std::time::Duration) -> Self {
        Arc::make_mut(&mut Arc::make_mut(&mut self.0).drawing).deadline = deadline;
        self
    }

    /// How long an activity's configuration is served from memory (30 s unless set); zero
    /// turns the cache off.
    #[must_use]
    pub fn with_cache_ttl(self, ttl: std::time::Duration) -> Self {
        self.0.cache.set_ttl(ttl);
        self
    }

    /// Announces every configuration change on `feed`, for the other instances' caches.
    /// Only the first feed given counts.
    #[must_use]
    pub fn with_change_feed(self, feed: Arc<dyn lottery_activity::ChangeFeed>) -> Self {
        let _ = self.0.changes.feed.set(feed);
        self
    }

    /// Draws: draw, draw by rules, replay.
    pub fn drawing(&self) -> &Arc<Drawing> {
        &self.0.drawing
    }

    /// The admin's commands and views.
    pub fn administration(&self) -> &Administration {
        &self.0.administration
    }

    /// The users' read models and the metrics' figures.
    pub fn queries(&self) -> &Queries {
        &self.0.queries
    }

    /// A winner's part after the draw.
    pub fn fulfilment(&self) -> &Fulfilment {
        &self.0.fulfilment
    }

    /// The background jobs, each on its interval and lease; `relay` moves the outbox.
    pub fn scheduler(&self, relay: Option<OutboxRelay>, options: SchedulerOptions) -> Scheduler {
        let j = &self.0.jobs;
        Scheduler {
            activities: j.activities.clone(),
            leases: j.leases.clone(),
            clock: j.clock.clone(),
            changes: self.0.changes.clone(),
            sync: self.stock_sync(),
            reconciler: self.reconciler(options.reconcile_grace),
            relay,
            options,
            on_report: None,
        }
    }

    /// The stock sync (see [`StockSync`]), to run outside the scheduler.
    pub fn stock_sync(&self) -> StockSync {
        StockSync {
            activities: self.0.jobs.activities.clone(),
            stock: self.0.jobs.stock.clone(),
            cache: self.0.cache.clone(),
            view: self.0.jobs.view.clone(),
            loader: self.0.jobs.loader.clone(),
        }
    }

    /// The claim reconciler (see [`Reconciler`]); `grace`: how old a pending claim must be
    /// before it is examined.
    pub fn reconciler(&self, grace: std::time::Duration) -> Reconciler {
        Reconciler {
            activities: self.0.jobs.activities.clone(),
            stock: self.0.jobs.stock.clone(),
            draws: self.0.jobs.draws.clone(),
            clock: self.0.jobs.clock.clone(),
            grace,
        }
    }

    /// A handle that drops cached configurations, for another instance's announcements.
    pub fn cache_invalidation(&self) -> CacheInvalidation {
        CacheInvalidation::new(self.0.cache.clone())
    }

    /// How the configuration cache is doing (hits, loads), for metrics.
    pub fn cache_stats(&self) -> &CacheStats {
        self.0.cache.stats()
    }
}

impl std::fmt::Debug for Lottery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lottery")
            .field("cache", &self.0.cache)
            .field("feed", &self.0.changes.feed.get().is_some())
            .finish_non_exhaustive()
    }
}
