use chrono::{DateTime, Utc};
use lottery_award::GrantState;
use lottery_domain::{ActivityId, AwardId, OrderId, RepoResult, StrategyId, TakeId, UserId};

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
    /// Stores the activity, its strategy and its awards in one transaction, all new: an id
    /// that is already stored is reported as [`Deploy::Taken`] and nothing is written, so a
    /// deployment never changes another activity.
    async fn deploy(&self, deployment: &Deployment) -> RepoResult<Deploy>;
    /// Replaces an activity's editable fields, strategy and awards, only while it is editing;
    /// an award id that belongs to another strategy is reported as taken, and nothing is
    /// written.
    async fn revise(&self, deployment: &Deployment) -> RepoResult<Revise>;
    async fn activity(&self, id: ActivityId) -> RepoResult<Option<Activity>>;
    async fn list(&self, filter: &ActivityFilter, page: Page) -> RepoResult<Vec<Activity>>;
    /// Compare-and-set of the state: `Ok(false)` when the stored state is no longer `from`.
    async fn change_state(
        &self,
        id: ActivityId,
        from: ActivityState,
        to: ActivityState,
    ) -> RepoResult<bool>;
    /// Running activities (approved or doing) with ids above `after`, in id order, at most
    /// `limit`: page through all of them by passing the last id seen.
    async fn running(&self, after: Option<ActivityId>, limit: u32) -> RepoResult<Vec<Activity>>;
    /// Activities whose state move is due at `now` (approved and begun, or running and
    /// ended), ids above `after`, in id order, at most `limit`. Indexed: a round costs what
    /// is due, not what is stored.
    async fn due(
        &self,
        now: DateTime<Utc>,
        after: Option<ActivityId>,
        limit: u32,
    ) -> RepoResult<Vec<Activity>>;
    /// Fences and counts, for (re)loading the stock store: raises the activity's stock fence
    /// in every shard database to a generation of at least `min_generation` and above every
    /// fence there, then counts the takes and orders recorded. Draw records carrying an older
    /// generation are refused from then on, so the counts, taken after the fence, include
    /// every record that will ever be accepted for the older generations. Returns the
    /// generation and the configured stock less what was counted; `None` for an unknown
    /// activity.
    async fn fence_stock(
        &self,
        id: ActivityId,
        min_generation: u64,
    ) -> RepoResult<Option<(u64, StockCounts)>>;
    /// The stock left as the database counts it (configured less recorded), with no fence:
    /// for views and the stock sync. `None` for an unknown activity.
    async fn stock_counts(&self, id: ActivityId) -> RepoResult<Option<StockCounts>>;
    /// Brings the stored stock left down to the live values; never raises it, so stale or
    /// replayed syncs are harmless.
    async fn sync_stock(&self, id: ActivityId, counts: &StockCounts) -> RepoResult<()>;
}

/// How a deployment fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deploy {
    Deployed,
    /// An id of the deployment is already stored; nothing was written.
    Taken(TakenId),
}

/// How a revision fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revise {
    Revised,
    /// The activity is no longer editing; nothing was written.
    NotEditing,
    /// An award id belongs to another strategy; nothing was written.
    Taken(TakenId),
}

/// An id already in use by another activity, strategy or award.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenId {
    Activity(ActivityId),
    Strategy(StrategyId),
    Award(AwardId),
}

impl std::fmt::Display for TakenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Activity(id) => write!(f, "activity id {id}"),
            Self::Strategy(id) => write!(f, "strategy id {id}"),
            Self::Award(id) => write!(f, "award id {id}"),
        }
    }
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
    /// The order for a win, with its outbox message; `None` for a loss (the take is
    /// consumed). The message is `None` for an order awaiting its shipping address: nothing
    /// is delivered until [`OrderRepository::give_address`] writes it.
    pub win: Option<(WinOrder, Option<OutboxMessage>)>,
    /// The stock generation of the draw's claim: the record is refused when the activity's
    /// stock was reloaded under a newer generation since (see
    /// [`ActivityRepository::fence_stock`]).
    pub generation: u64,
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
    /// The claim's stock generation was fenced off by a reload: the draw did not happen.
    StaleGeneration,
    /// The take id was voided (its claim was given back as unrecorded): the draw did not
    /// happen.
    Voided,
}

/// A claim whose draw may or may not have been recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub take_id: TakeId,
    pub user_id: UserId,
    pub activity_id: ActivityId,
}

/// What became of a claim's draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimFate {
    /// The draw is recorded: the claim holds its stock for good.
    Recorded,
    /// The take id is voided: no record can ever be stored under it, so the claim may be
    /// given back.
    Voided,
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
    /// Settles what became of each claim's draw, for certain: a take id with no record is
    /// voided (a tombstone takes its place), so a record still in flight is refused when it
    /// arrives. Fails with `Unavailable` when the user's shard cannot be reached; then
    /// nothing is known and nothing may be given back.
    async fn settle_claim(&self, claim: &ClaimRef) -> RepoResult<ClaimFate>;
}

/// Win orders and their outbox rows (sharded by user).
#[async_trait::async_trait]
pub trait OrderRepository: Send + Sync {
    /// In one transaction: consumes the take, inserts the order and its outbox message.
    /// A second order for the same take is a conflict.
    async fn record_win(&self, order: &WinOrder, message: &OutboxMessage) -> RepoResult<()>;
    async fn orders(&self, user: &UserId, page: Page) -> RepoResult<Vec<WinOrder>>;
    async fn order(&self, user: &UserId, order: OrderId) -> RepoResult<Option<WinOrder>>;
    /// How many of an activity's orders are in each grant state (states with none are left
    /// out). Reads every shard: for an admin's view, not for the draw path.
    async fn grant_counts(&self, activity: ActivityId) -> RepoResult<Vec<(GrantState, u64)>>;
    /// Moves the grant state forward as a compare-and-set from `init`.
    async fn finish_grant(
        &self,
        user: &UserId,
        order: OrderId,
        to: GrantState,
        delivery: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Starts the delivery of an order that awaits its shipping address: in one transaction
    /// on the user's shard, moves the order's grant state from `awaiting_address` to `init`
    /// (a compare-and-set) and inserts `message`, the invoice carrying the address. Of
    /// concurrent calls for one order exactly one is [`GiveAddress::Given`]; the others, and
    /// every later call, find it [`GiveAddress::NotAwaiting`].
    ///
    /// Errors: [`GiveAddress::NotAwaiting`] and [`GiveAddress::NotFound`] (the user has no
    /// such order) write nothing. `RepoError::Conflict` when the outbox already holds a
    /// message with the same id (nothing written). `RepoError::Unavailable` when the shard
    /// cannot be reached or the commit's outcome is unknown: the order then tells whether
    /// the address was given (`init` or later) or not (`awaiting_address`).
    async fn give_address(
        &self,
        user: &UserId,
        order: OrderId,
        message: &OutboxMessage,
    ) -> RepoResult<GiveAddress>;
    /// Orders matching `filter` across every shard, with ids above `after`, in id order, at
    /// most `limit` (1 to [`Page::MAX_LIMIT`]): page through them by passing the last id
    /// seen. Indexed by (state, order id) in each shard table.
    async fn orders_in_state(
        &self,
        filter: &OrderFilter,
        after: Option<OrderId>,
        limit: u32,
    ) -> RepoResult<Vec<WinOrder>>;
}

/// How giving an order its shipping address fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveAddress {
    /// The order moved to `init` and its delivery message was written.
    Given,
    /// The order is in this state, not `awaiting_address`: nothing was written.
    NotAwaiting(GrantState),
    /// The user has no order with this id.
    NotFound,
}

/// Which orders an operator lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFilter {
    pub state: GrantState,
    /// Only this activity's orders.
    pub activity: Option<ActivityId>,
}

/// What one draw asks of the stock in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockClaim {
    /// The id of the take the claim is for: a claim and its record are one pair, so the
    /// reconciler can tell a claim whose draw was recorded from one whose draw died. A
    /// retried claim with the same id returns the first outcome and takes nothing more.
    pub claim_id: TakeId,
    pub activity_id: ActivityId,
    pub user_id: UserId,
    /// Take one unit of activity stock and one of the user's takes. False when only the
    /// award's stock is needed.
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
    /// `generation` is the stock generation the claim was taken from; the draw's record must
    /// carry it, so a record of a claim on stock that has since been reloaded is refused.
    Granted {
        award: Option<AwardId>,
        fallback: bool,
        award_exhausted: bool,
        generation: u64,
    },
    /// No activity stock left: nothing was taken.
    SoldOut,
    /// The user has used all their takes: nothing was taken.
    QuotaExhausted,
    /// The claim was given back (or its release arrived first): it holds nothing and never
    /// will.
    Withdrawn,
}

/// Which stock the store does not hold yet and must be loaded from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The activity's stock (and its awards' stock), or any part of it; with the generation
    /// the store holds (0 for none), so that of several callers finding it missing only the
    /// first reloads it.
    Activity(ActivityId, u64),
    /// The user's take count for the activity, in the stock's current generation.
    User {
        activity: ActivityId,
        user: UserId,
        generation: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// The stock store is unreachable. A claim that failed this way may or may not have been
    /// applied: release it (a release that overtakes its claim blocks the claim) or leave it
    /// to the reconciler.
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
    /// Raised on every load; see [`StockLedger::load_activity`].
    pub generation: u64,
    pub stock_left: u64,
    pub awards_left: Vec<(AwardId, u64)>,
    pub expires_at: DateTime<Utc>,
    /// No take of the activity is recorded (nor can one of an older generation still be):
    /// from this load on, the store holds an entry for every user who claims.
    pub nobody_drew: bool,
}

/// A claim the store holds that no draw has settled yet (recorded or given back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingClaim {
    pub claim_id: TakeId,
    pub user_id: UserId,
    /// The stock generation it was taken from.
    pub generation: u64,
    /// Milliseconds since the Unix epoch, by the store's clock.
    pub claimed_at_ms: i64,
    /// It took a unit of activity stock and one of the user's takes.
    pub took: bool,
    /// The award whose stock it took (the drawn one or the fallback).
    pub award: Option<AwardId>,
}

impl PendingClaim {
    /// The claim as [`StockLedger::release`] takes it: `award` names the award it took
    /// whether that was the drawn one or the fallback.
    pub fn to_claim(&self, activity: ActivityId, expires_at: DateTime<Utc>) -> StockClaim {
        StockClaim {
            claim_id: self.claim_id,
            activity_id: activity,
            user_id: self.user_id.clone(),
            take: self.took,
            take_limit: 0,
            award: self.award,
            fallback: self.award,
            expires_at,
        }
    }
}

/// Atomic stock and quotas (Redis in cluster mode, in memory embedded).
///
/// Errors: every method fails with [`StockError::Unavailable`] when the store cannot be
/// reached in time; `claim` also with [`StockError::NotLoaded`] when part of the stock it
/// needs is absent (never loaded, expired or lost), which the caller answers by loading.
#[async_trait::async_trait]
pub trait StockLedger: Send + Sync {
    /// Checks and takes the activity stock, the user's quota and, for a win, the award's stock,
    /// all or nothing, in one step. A granted claim stays pending until settled or released.
    async fn claim(&self, claim: &StockClaim) -> Result<ClaimOutcome, StockError>;
    /// Gives back what a claim took, once. A claim of an older generation gives nothing back
    /// (the reload counted it as not taken). A release that arrives before its claim leaves
    /// a marker, so the late claim is answered [`ClaimOutcome::Withdrawn`] and takes nothing.
    async fn release(&self, claim: &StockClaim) -> Result<(), StockError>;
    /// Loads an activity's stock for `snapshot.generation`: replaces what the store holds
    /// when that is of an older generation (or absent), and does nothing otherwise. User
    /// counts of older generations then read as not loaded.
    async fn load_activity(&self, snapshot: &StockSnapshot) -> Result<(), StockError>;
    /// Loads a user's used takes for `generation`, unless the store already has them for
    /// that generation.
    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        generation: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError>;
    /// The generation of the loaded stock, `None` when not loaded.
    async fn generation(&self, activity: ActivityId) -> Result<Option<u64>, StockError>;
    /// The user's takes as the store counts them, without touching the database: `Some(n)`
    /// from the user's entry (of any generation: a take always goes through the store), or
    /// `Some(0)` when the user has none and the store has held every claimant's entry since
    /// nobody had drawn ([`StockSnapshot::nobody_drew`]); `None` when it cannot tell (the
    /// entries were lost, or the stock was first loaded mid-campaign).
    async fn user_takes(
        &self,
        activity: ActivityId,
        user: &UserId,
    ) -> Result<Option<u32>, StockError>;
    /// Activity stock left, `None` when not loaded.
    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError>;
    /// Stock left of each award, `None` for an award not loaded.
    async fn awards_left(
        &self,
        activity: ActivityId,
        awards: &[AwardId],
    ) -> Result<Vec<Option<u64>>, StockError>;
    /// Pending claims taken at or before `claimed_before_ms` (store clock), oldest first, at
    /// most `limit`.
    async fn pending_claims(
        &self,
        activity: ActivityId,
        claimed_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingClaim>, StockError>;
    /// Marks claims settled: their draws were recorded (or their generation is gone), so
    /// they hold what they took for good.
    async fn settle(&self, activity: ActivityId, claims: &[TakeId]) -> Result<(), StockError>;
    /// The store's clock, in milliseconds since the Unix epoch (the clock of
    /// [`PendingClaim::claimed_at_ms`]).
    async fn now_ms(&self) -> Result<i64, StockError>;
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

/// How often one user may draw: `per_second` draws a second on average, and up to `burst`
/// at once after a pause (the generic cell rate algorithm, GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawRate {
    pub per_second: u32,
    pub burst: u32,
}

impl DrawRate {
    /// The time one draw's allowance takes to come back, in microseconds (at least 1).
    pub fn interval_micros(&self) -> u64 {
        1_000_000 / u64::from(self.per_second.max(1))
    }

    /// How far ahead of the steady rate a user may draw, in microseconds: `burst - 1`
    /// intervals, so that `burst` draws pass at once.
    pub fn tolerance_micros(&self) -> u64 {
        self.interval_micros() * u64::from(self.burst.max(1) - 1)
    }
}

/// What a [`DrawRateLimit`] decided for one draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The draw may go ahead; it was counted.
    Allowed,
    /// Too soon: the draw was not counted. `retry_after` is how long until one would be
    /// allowed.
    Limited { retry_after: std::time::Duration },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The limit's store did not answer in time; whether the draw was counted is unknown.
    #[error("draw rate limit unavailable: {0}")]
    Unavailable(String),
}

/// The per-user draw rate limit, one [`DrawRate`] for every user, counted wherever the
/// limit's state lives: in process (embedded mode) or in Redis, shared by every instance
/// (cluster mode), so a user's rate is the same behind one instance or many.
///
/// Contract (`crates/stock/tests/rate_limit.rs` runs it against each adapter):
/// * `burst` draws in a row are allowed to a user who has not drawn for a while; the next
///   is limited, and a limited draw counts nothing, so a client that keeps knocking does
///   not push its own allowance further out;
/// * the allowance comes back at `per_second`: over a long run a user is allowed at most
///   `burst + per_second * seconds` draws, and `retry_after` is never longer than one
///   interval;
/// * users are independent; a user's state is dropped once the allowance is whole again,
///   so memory follows the users drawing now, not every user ever seen;
/// * errors: [`RateLimitError::Unavailable`] when the store cannot answer in time. The
///   limit guards fairness, not stock (quotas and stock are checked atomically by the
///   claim), so the caller may let the draw through (the server falls back to a limit of
///   its own process: see docs/operations.md).
#[async_trait::async_trait]
pub trait DrawRateLimit: Send + Sync {
    async fn admit(&self, user: &UserId) -> Result<RateDecision, RateLimitError>;
}

/// Every repository the application needs, as one storage adapter provides them: built in one
/// place (`lottery_storage::Storage::repositories`) for the composition root and the tests.
#[derive(Clone)]
pub struct Repositories {
    pub activities: std::sync::Arc<dyn ActivityRepository>,
    pub strategies: std::sync::Arc<dyn lottery_strategy::StrategyRepository>,
    pub awards: std::sync::Arc<dyn lottery_award::AwardRepository>,
    pub takes: std::sync::Arc<dyn TakeRepository>,
    pub orders: std::sync::Arc<dyn OrderRepository>,
    pub draws: std::sync::Arc<dyn DrawRepository>,
    pub rule_trees: std::sync::Arc<dyn lottery_rule::RuleTreeRepository>,
    pub outbox: std::sync::Arc<dyn OutboxRepository>,
    pub grants: std::sync::Arc<dyn GrantRepository>,
    pub leases: std::sync::Arc<dyn JobLeases>,
}

impl std::fmt::Debug for Repositories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repositories").finish_non_exhaustive()
    }
}
