//! Activity configuration cache with single flight: however many requests miss the same
//! activity at once, one load reaches the database and the others wait for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lottery_activity::{Activity, ActivityRepository};
use lottery_award::{Award, AwardRepository};
use lottery_domain::{ActivityId, AwardId};
use lottery_strategy::{Drawer, OutOfStock, Strategy, StrategyRepository};
use tokio::sync::OnceCell;

use crate::AppError;

/// Where a configuration is loaded from.
struct CachePorts {
    activities: Arc<dyn ActivityRepository>,
    strategies: Arc<dyn StrategyRepository>,
    awards: Arc<dyn AwardRepository>,
}

/// An activity with everything a draw needs, precomputed.
#[derive(Debug)]
pub struct ActivityConfig {
    pub activity: Activity,
    pub drawer: Drawer,
    pub awards: HashMap<AwardId, Award>,
    /// Awards seen out of stock, so draws stop aiming at them (the stock store stays the
    /// authority; this only saves wasted claims and keeps entirety draws renormalised).
    out_of_stock: Mutex<OutOfStock>,
    /// Until when (ms since the epoch) draws may be answered "sold out" without asking the
    /// stock store: in a spike most requests arrive after the stock is gone, and they need
    /// not cost a round trip each. Kept short, since given-back stock can reappear.
    sold_out_until: AtomicI64,
}

impl ActivityConfig {
    /// How long a sold-out answer is trusted.
    pub const SOLD_OUT_MEMO_MS: i64 = 500;

    pub fn known_sold_out(&self, now_ms: i64) -> bool {
        self.sold_out_until.load(Ordering::Relaxed) > now_ms
    }

    pub fn mark_sold_out(&self, now_ms: i64) {
        self.sold_out_until
            .store(now_ms + Self::SOLD_OUT_MEMO_MS, Ordering::Relaxed);
    }

    /// When the activity's stock keys expire: a week after it ends.
    pub fn key_expiry(&self) -> chrono::DateTime<chrono::Utc> {
        self.activity.end() + chrono::Duration::days(7)
    }

    pub fn strategy(&self) -> &Strategy {
        self.drawer.strategy()
    }

    pub fn out_of_stock(&self) -> OutOfStock {
        *self
            .out_of_stock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn mark_out_of_stock(&self, award: AwardId) {
        if let Some(pos) = self.strategy().position(award) {
            self.out_of_stock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(pos);
        }
    }
}

struct Entry {
    cell: Arc<OnceCell<Arc<ActivityConfig>>>,
    created: Instant,
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub loads: AtomicU64,
    pub hits: AtomicU64,
}

pub struct ConfigCache {
    ports: CachePorts,
    /// Milliseconds; set once at start, read on every lookup.
    ttl_ms: std::sync::atomic::AtomicU64,
    entries: Mutex<HashMap<ActivityId, Entry>>,
    stats: CacheStats,
}

impl std::fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache")
            .field("ttl", &self.ttl())
            .field("stats", &self.stats)
            .finish()
    }
}

impl ConfigCache {
    /// `ttl` bounds how long another instance's change can go unseen when no invalidation
    /// reaches this one.
    pub fn new(
        activities: Arc<dyn ActivityRepository>,
        strategies: Arc<dyn StrategyRepository>,
        awards: Arc<dyn AwardRepository>,
        ttl: Duration,
    ) -> Self {
        Self {
            ports: CachePorts {
                activities,
                strategies,
                awards,
            },
            ttl_ms: std::sync::atomic::AtomicU64::new(millis(ttl)),
            entries: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// Changes how long configurations are served; zero serves none from memory.
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(millis(ttl), Ordering::Relaxed);
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The activity's configuration, loaded once however many callers miss at the same time.
    pub async fn get(&self, id: ActivityId) -> Result<Arc<ActivityConfig>, AppError> {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = entries
                .get(&id)
                .is_some_and(|e| e.created.elapsed() < self.ttl());
            if !fresh {
                entries.insert(
                    id,
                    Entry {
                        cell: Arc::new(OnceCell::new()),
                        created: Instant::now(),
                    },
                );
            }
            entries.get(&id).map(|e| e.cell.clone())
        };
        let Some(cell) = cell else {
            return Err(AppError::internal("cache entry vanished"));
        };
        if let Some(hit) = cell.get() {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }
        // A failed load is not cached: the next caller tries again.
        cell.get_or_try_init(|| self.load(id)).await.cloned()
    }

    /// Drops every cached configuration (after missing announcements from other instances).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Drops the cached configuration (after an admin change, or when told by another
    /// instance).
    pub fn invalidate(&self, id: ActivityId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    async fn load(&self, id: ActivityId) -> Result<Arc<ActivityConfig>, AppError> {
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        let activity = self
            .ports
            .activities
            .activity(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("activity {id}")))?;
        let strategy = self
            .ports
            .strategies
            .strategy(activity.strategy_id())
            .await?
            .ok_or_else(|| {
                AppError::internal(format!(
                    "strategy {} of activity {id} is missing",
                    activity.strategy_id()
                ))
            })?;
        let ids: Vec<AwardId> = strategy.awards().iter().map(|a| a.award_id).collect();
        let awards: HashMap<AwardId, Award> = self
            .ports
            .awards
            .awards(&ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        if let Some(missing) = ids.iter().find(|id| !awards.contains_key(id)) {
            return Err(AppError::internal(format!(
                "award {missing} of activity {id} is missing"
            )));
        }
        Ok(Arc::new(ActivityConfig {
            activity,
            drawer: Drawer::new(strategy),
            awards,
            out_of_stock: Mutex::new(OutOfStock::NONE),
            sold_out_until: AtomicI64::new(0),
        }))
    }
}

/// Drops cached configurations, and can do nothing else: what a listener for other instances'
/// change announcements needs.
#[derive(Debug, Clone)]
pub struct CacheInvalidation {
    cache: Arc<ConfigCache>,
}

impl CacheInvalidation {
    pub(crate) fn new(cache: Arc<ConfigCache>) -> Self {
        Self { cache }
    }

    pub fn invalidate(&self, id: ActivityId) {
        self.cache.invalidate(id);
    }

    pub fn clear(&self) {
        self.cache.clear();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
