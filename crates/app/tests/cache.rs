//! The configuration cache: one database load per cold activity, however many readers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Mode, award, command, world_with};
use lottery_activity::{
    Activity, ActivityFilter, ActivityRepository, ActivityState, Deploy, Deployment, Page, Revise,
    StockCounts,
};
use lottery_award::AwardKind;
use lottery_domain::{ActivityId, RepoResult};
use lottery_strategy::DrawMode;

/// Counts the activity reads that reach the real repository.
struct Counting {
    inner: Arc<dyn ActivityRepository>,
    reads: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl ActivityRepository for Counting {
    async fn deploy(&self, d: &Deployment) -> RepoResult<Deploy> {
        self.inner.deploy(d).await
    }
    async fn revise(&self, d: &Deployment) -> RepoResult<Revise> {
        self.inner.revise(d).await
    }
    async fn activity(&self, id: ActivityId) -> RepoResult<Option<Activity>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        // Widen the window in which concurrent misses could each start a load.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.inner.activity(id).await
    }
    async fn list(&self, f: &ActivityFilter, p: Page) -> RepoResult<Vec<Activity>> {
        self.inner.list(f, p).await
    }
    async fn change_state(
        &self,
        id: ActivityId,
        from: ActivityState,
        to: ActivityState,
    ) -> RepoResult<bool> {
        self.inner.change_state(id, from, to).await
    }
    async fn running(&self, after: Option<ActivityId>, limit: u32) -> RepoResult<Vec<Activity>> {
        self.inner.running(after, limit).await
    }
    async fn due(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        after: Option<ActivityId>,
        limit: u32,
    ) -> RepoResult<Vec<Activity>> {
        self.inner.due(now, after, limit).await
    }
    async fn fence_stock(
        &self,
        id: ActivityId,
        min_generation: u64,
    ) -> RepoResult<Option<(u64, StockCounts)>> {
        self.inner.fence_stock(id, min_generation).await
    }
    async fn stock_counts(&self, id: ActivityId) -> RepoResult<Option<StockCounts>> {
        self.inner.stock_counts(id).await
    }
    async fn sync_stock(&self, id: ActivityId, counts: &StockCounts) -> RepoResult<()> {
        self.inner.sync_stock(id, counts).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cold_reads_load_once() {
    let reads = Arc::new(AtomicU64::new(0));
    let counter = reads.clone();
    let w = world_with(Mode::Embedded, move |mut s| {
        s.activities = Arc::new(Counting {
            inner: s.activities.clone(),
            reads: counter,
        });
        s
    })
    .await;
    let d = deploy_one(&w.lottery).await;
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let lottery = w.lottery.clone();
            tokio::spawn(async move {
                lottery
                    .queries()
                    .activity_config(d.activity_id)
                    .await
                    .map(|c| c.activity.id())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("config"), d.activity_id);
    }
    assert_eq!(reads.load(Ordering::SeqCst), 1, "exactly one database load");
    assert_eq!(w.lottery.cache_stats().loads.load(Ordering::SeqCst), 1);

    // An admin change invalidates: the next read loads the new state once more.
    w.lottery
        .administration()
        .act(d.activity_id, lottery_activity::Action::Submit)
        .await
        .expect("submit");
    let before = reads.load(Ordering::SeqCst);
    let config = w
        .lottery
        .queries()
        .activity_config(d.activity_id)
        .await
        .expect("config");
    assert_eq!(config.activity.state(), ActivityState::PendingReview);
    assert_eq!(reads.load(Ordering::SeqCst), before + 1);

    // A miss for an unknown activity is not cached as a success.
    let unknown = ActivityId::new(77).expect("id");
    assert!(w.lottery.queries().activity_config(unknown).await.is_err());
}

/// `[cache] ttl_ms = 0`: the cache is off, every read loads the configuration again (the
/// comparison the performance report makes).
#[tokio::test]
async fn a_zero_time_to_live_turns_the_cache_off() {
    let w = world_with(Mode::Embedded, |s| s).await;
    let lottery = w.lottery.clone().with_cache_ttl(std::time::Duration::ZERO);
    let d = deploy_one(&lottery).await;
    for _ in 0..3 {
        lottery
            .queries()
            .activity_config(d.activity_id)
            .await
            .expect("config");
    }
    let stats = lottery.cache_stats();
    assert_eq!(stats.loads.load(Ordering::SeqCst), 3, "one load per read");
    assert_eq!(stats.hits.load(Ordering::SeqCst), 0);
}

/// An activity with one coupon award, deployed (not started).
async fn deploy_one(lottery: &lottery_app::Lottery) -> lottery_app::Deployed {
    lottery
        .administration()
        .deploy(
            command(
                10,
                1,
                DrawMode::Single,
                vec![award(AwardKind::COUPON, "c", 10, "0.5")],
            ),
            "admin",
        )
        .await
        .expect("deploy")
}
