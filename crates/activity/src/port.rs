use chrono::{DateTime, Utc};
use lottery_award::GrantState;
use lottery_domain::{ActivityId, AwardId, OrderId, RepoResult, TakeId, UserId};

use crate::{Activity, ActivityState, Deployment, OutboxMessage, UserTake, WinOrder};

/// A page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u32,
    pub limit: u32,
}

impl Page {
    pub const MAX_LIMIT: u32 = 200;

    pub fn new(offset: u32, limit: u32) -> Self {
        Self {
            offset,
            limit: limit.clamp(1, Self::MAX_LIMIT),
        }
    }
}

/// Filters for the admin listing of activities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    /// Substring of the name.
    pub name: Option<String>,
    pub state: Option<ActivityState>,
}

/// Activities and their configuration (global, not sharded).
#[async_trait::async_trait]
pub trait ActivityRepository: Send + Sync {
    /// Stores the activity, its strategy and its awards in one transaction.
    async fn deploy(&self, deployment: &Deployment) -> RepoResult<()>;
    /// Replaces an activity's editable fields, strategy and awards, only while it is editing.
    /// `Ok(false)` when it is no longer editing.
    async fn revise(&self, deployment: &Deployment) -> RepoResult<bool>;
    async fn activity(&self, id: ActivityId) -> RepoResult<Option<Activity>>;
    async fn list(&self, filter: &ActivityFilter, page: Page) -> RepoResult<Vec<Activity>>;
    /// Compare-and-set of the state: `Ok(false)` when the stored state is no longer `from`.
    async fn change_state(
        &self,
        id: ActivityId,
        from: ActivityState,
        to: ActivityState,
    ) -> RepoResult<bool>;
    /// Activities the scheduler may have to move on: approved or doing.
    async fn schedulable(&self, limit: u32) -> RepoResult<Vec<Activity>>;
    /// The stock the database can vouch for: the configured stock less the takes and orders
    /// recorded in every shard (and never more than the last synced values). `None` for an
    /// unknown activity.
    async fn stock_snapshot(&self, id: ActivityId) -> RepoResult<Option<StockCounts>>;
    /// Brings the stored stock left down to the live values; never raises it, so stale or
    /// replayed syncs are harmless.
    async fn sync_stock(&self, id: ActivityId, counts: &StockCounts) -> RepoResult<()>;
}

/// Stock left of an activity and of each of its awards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockCounts {
    pub stock_left: u64,
    pub awards_left: Vec<(AwardId, u64)>,
}

/// The outcome of recording a take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOutcome {
    Recorded(UserTake),
    /// The user's counter had no takes left.
    QuotaExhausted,
}

/// Takes and per-user counters (sharded by user).
#[async_trait::async_trait]
pub trait TakeRepository: Send + Sync {
    /// The user's granted-but-undrawn take of the activity, if any.
    async fn open_take(&self, user: &UserId, activity: ActivityId) -> RepoResult<Option<UserTake>>;
    /// In one transaction: decrements (or creates) the user's counter and inserts the take.
    async fn record_take(&self, take: &UserTake, limit: u32) -> RepoResult<TakeOutcome>;
    /// Takes the user has used of this activity (granted, drawn or not).
    async fn takes_used(&self, user: &UserId, activity: ActivityId) -> RepoResult<u32>;
    /// Marks an open take used without a prize. `Ok(false)` if it was not open.
    async fn consume_take(&self, user: &UserId, take: TakeId) -> RepoResult<bool>;
    async fn takes(
        &self,
        user: &UserId,
        activity: Option<ActivityId>,
        page: Page,
    ) -> RepoResult<Vec<UserTake>>;
}

/// What one draw leaves in the user's shard, written in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawRecord {
    /// A take granted by this draw (counted against `limit`), or `None` when the draw used
    /// an open take granted earlier.
    pub new_take: Option<(UserTake, u32)>,
    pub take_id: TakeId,
    pub user_id: UserId,
    /// The client's idempotency key, stored on the take so a replay finds this draw.
    pub idempotency_key: Option<String>,
    /// The order and its outbox message for a win; `None` for a loss (the take is consumed).
    pub win: Option<(WinOrder, OutboxMessage)>,
}

/// How a draw record fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Recorded,
    /// The database's counter says the user has no takes left (the stock store disagreed).
    QuotaExhausted,
    /// The take was not open any more (drawn concurrently).
    TakeNotOpen,
    /// The idempotency key was already used by another draw.
    DuplicateKey,
}

/// A past draw found by its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastDraw {
    pub take: UserTake,
    pub order: Option<WinOrder>,
}

/// Records draws (sharded by user). Implementations may group concurrent draws of one shard
/// into one transaction; each record still succeeds or fails as a whole.
#[async_trait::async_trait]
pub trait DrawRepository: Send + Sync {
    async fn record_draw(&self, record: DrawRecord) -> RepoResult<RecordOutcome>;
    async fn find_by_key(&self, user: &UserId, key: &str) -> RepoResult<Option<PastDraw>>;
}

/// Win orders and their outbox rows (sharded by user).
#[async_trait::async_trait]
pub trait OrderRepository: Send + Sync {
    /// In one transaction: consumes the take, inserts the order and its outbox message.
    /// A second order for the same take is a conflict.
    async fn record_win(&self, order: &WinOrder, message: &OutboxMessage) -> RepoResult<()>;
    async fn orders(&self, user: &UserId, page: Page) -> RepoResult<Vec<WinOrder>>;
    async fn order(&self, user: &UserId, order: OrderId) -> RepoResult<Option<WinOrder>>;
    /// Moves the grant state forward as a compare-and-set from `init`.
    async fn finish_grant(
        &self,
        user: &UserId,
        order: OrderId,
        to: GrantState,
        delivery: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool>;
}

/// What one draw asks of the stock in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockClaim {
    /// Makes the claim idempotent: a retried claim with the same id returns the first
    /// outcome and takes nothing more. The take id the claim is for.
    pub claim_id: TakeId,
    pub activity_id: ActivityId,
    pub user_id: UserId,
    /// Take one unit of activity stock and one of the user's takes. False when the draw
    /// reuses a take granted earlier and only the award's stock is needed.
    pub take: bool,
    pub take_limit: u32,
    /// The drawn award, whose prize stock must be taken too.
    pub award: Option<AwardId>,
    /// Taken instead when `award` is out of stock.
    pub fallback: Option<AwardId>,
    /// Every key the claim touches expires after this time (the activity's end plus a margin),
    /// so no stock or guard key lives forever.
    pub expires_at: DateTime<Utc>,
}

/// What the stock step granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The take (if asked) was granted. `award` is the prize whose stock was taken: the drawn
    /// one, or the fallback (`fallback: true`) when the drawn one was out of stock, or none
    /// when both were. `award_exhausted` reports that the drawn award had no stock left.
    Granted {
        award: Option<AwardId>,
        fallback: bool,
        award_exhausted: bool,
    },
    /// No activity stock left: nothing was taken.
    SoldOut,
    /// The user has used all their takes: nothing was taken.
    QuotaExhausted,
}

/// Which stock the store does not hold yet and must be loaded from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The activity's stock (and its awards' stock).
    Activity(ActivityId),
    /// The user's take count for the activity.
    User(ActivityId, UserId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// The stock store is unreachable: nothing was taken.
    #[error("stock service unavailable: {0}")]
    Unavailable(String),
    /// The store holds no stock for this yet; load it and claim again.
    #[error("stock not loaded: {0:?}")]
    NotLoaded(Missing),
}

/// The stock of one activity as the database knows it, to (re)load the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockSnapshot {
    pub activity_id: ActivityId,
    pub stock_left: u64,
    pub awards_left: Vec<(AwardId, u64)>,
    pub expires_at: DateTime<Utc>,
}

/// Atomic stock and quotas (Redis in cluster mode, in memory embedded).
#[async_trait::async_trait]
pub trait StockLedger: Send + Sync {
    /// Checks and takes the activity stock, the user's quota and, for a win, the award's stock,
    /// all or nothing, in one step.
    async fn claim(&self, claim: &StockClaim) -> Result<ClaimOutcome, StockError>;
    /// Gives back what a claim took, when a later step failed. Idempotent: only a claim that
    /// is still held is given back, once.
    async fn release(&self, claim: &StockClaim) -> Result<(), StockError>;
    /// Loads an activity's stock if the store has none (never overwrites what it holds, so a
    /// stale database value cannot raise live stock).
    async fn load_activity(&self, snapshot: &StockSnapshot) -> Result<(), StockError>;
    /// Loads a user's used takes if the store has none.
    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError>;
    /// Activity stock left, `None` when not loaded.
    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError>;
    /// Stock left of each award, `None` for an award not loaded.
    async fn awards_left(
        &self,
        activity: ActivityId,
        awards: &[AwardId],
    ) -> Result<Vec<Option<u64>>, StockError>;
}

/// An outbox message claimed for publishing, with how often it was tried before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    pub message: OutboxMessage,
    /// Attempts before this one.
    pub attempts: u32,
}

/// Messages not yet confirmed by the broker, across every shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub pending: u64,
    /// Given up after too many attempts; kept for an operator.
    pub parked: u64,
}

/// The transactional outbox, as the relay sees it.
#[async_trait::async_trait]
pub trait OutboxRepository: Send + Sync {
    /// Claims up to `limit` due messages per shard database for `lease`: they are not due
    /// again before the lease ends, so relays running side by side do not take the same rows.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> RepoResult<Vec<PendingMessage>>;
    /// Marks broker-confirmed messages sent.
    async fn mark_sent(&self, messages: &[OutboxMessage], at: DateTime<Utc>) -> RepoResult<u64>;
    /// Records a failed attempt: due again at `next_attempt`, or parked for good.
    async fn retry_later(
        &self,
        message: &OutboxMessage,
        next_attempt: DateTime<Utc>,
        error: &str,
        park: bool,
    ) -> RepoResult<()>;
    async fn backlog(&self) -> RepoResult<OutboxBacklog>;
}

/// Applying delivered grants exactly once per message.
#[async_trait::async_trait]
pub trait GrantRepository: Send + Sync {
    /// In one transaction on the user's shard: records `message_id` as processed and moves the
    /// order's grant state from `init`. `Ok(false)` when the message was processed before
    /// (a redelivery): nothing changes.
    async fn apply_grant(
        &self,
        user: &UserId,
        order: OrderId,
        message_id: &str,
        to: GrantState,
        delivery: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool>;
    async fn is_processed(&self, user: &UserId, message_id: &str) -> RepoResult<bool>;
}

/// Leases that let one instance at a time run a scheduled job.
#[async_trait::async_trait]
pub trait JobLeases: Send + Sync {
    /// Takes or renews the lease on `job` for `holder` until `now + ttl`; `Ok(false)` while
    /// another holder's lease runs.
    async fn try_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> RepoResult<bool>;
    /// Gives the lease up early (on shutdown), if `holder` has it.
    async fn release(&self, job: &str, holder: &str) -> RepoResult<()>;
}

/// Tells the other instances that an activity's configuration changed, so their caches drop
/// it at once instead of after their time-to-live.
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    async fn announce(&self, activity: ActivityId) -> Result<(), StockError>;
}
