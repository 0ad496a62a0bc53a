//! One user's draw, from eligibility to a durable result.
//!
//! 1. A replayed idempotency key returns the first draw's result.
//! 2. The activity's configuration comes from the cache; state and time window are checked.
//! 3. The strategy draws locally (O(1)), aiming only at awards not known to be out of stock.
//! 4. One atomic claim on the stock store, under the new take's id, takes the activity stock,
//!    the user's take and, for a win, the award's stock or the fallback's.
//! 5. One shard transaction records the take, and the order with its outbox row for a win.
//!    The answer is sent only after that commit.
//!
//! The claim is a guard: it is given back when the record is known not to exist (refused, or
//! voided after an unclear failure), kept when the record exists, and left to the
//! reconciler when neither can be known now. A started draw runs to its end on a task of its
//! own, whether or not its caller waits.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use lottery_activity::{
    AwardInvoice, ClaimFate, ClaimOutcome, ClaimRef, DrawRecord, DrawRepository, Missing,
    OutboxMessage, ParticipationError, PastDraw, RecordOutcome, StockClaim, StockError,
    StockLedger, TakeRepository, TakeState, UserTake, WinOrder,
};
use lottery_award::{Award, AwardRegistry, GrantState, ShippingAddress};
use lottery_domain::{ActivityId, AwardId, Clock, OrderId, TakeId, TreeId, UserId};
use lottery_ids::IdSource;
use lottery_rule::{Facts, RuleTreeRepository};
use lottery_strategy::Draw;
use serde::Serialize;
use tracing::Instrument;

use crate::cache::ActivityConfig;
use crate::inflight::Joined;
use crate::parts::StockLoader;
use crate::settle::Settler;
use crate::{AppError, ConfigCache};

/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawRequest {
    pub user: UserId,
    pub activity: ActivityId,
    pub idempotency_key: Option<String>,
    /// Where physical prizes go, if the user gave it.
    pub shipping: Option<ShippingAddress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawOutcome {
    Win,
    Lose,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrawResult {
    pub result: DrawOutcome,
    pub activity_id: ActivityId,
    pub take_id: TakeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub award: Option<Award>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// For a win, the order's grant state: `awaiting_address` when the prize can only be
    /// delivered to a shipping address and the draw carried none. A replay tells the state
    /// the order is in now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_state: Option<GrantState>,
    /// The drawn prize was out of stock and the strategy's fallback prize was given.
    pub fallback: bool,
    /// This answer repeats an earlier draw with the same idempotency key.
    pub replayed: bool,
}

impl DrawResult {
    fn from_past(past: PastDraw) -> Self {
        let order = past.order;
        Self {
            result: if order.is_some() {
                DrawOutcome::Win
            } else {
                DrawOutcome::Lose
            },
            activity_id: past.take.activity_id,
            take_id: past.take.take_id,
            fallback: order.as_ref().is_some_and(|o| o.fallback),
            award: order.as_ref().map(|o| o.award.clone()),
            grant_state: order.as_ref().map(|o| o.grant_state),
            order_id: order.map(|o| o.order_id),
            replayed: true,
        }
    }
}

/// How long a caller waits for a draw's outcome by default; the draw itself goes on.
pub const DEFAULT_DRAW_DEADLINE: StdDuration = StdDuration::from_secs(8);

/// The draw use cases: draw, draw by rules, replay. Holds only the ports a draw uses.
#[derive(Clone)]
pub struct Drawing {
    pub(crate) cache: Arc<ConfigCache>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdSource>,
    pub(crate) registry: AwardRegistry,
    pub(crate) stock: Arc<dyn StockLedger>,
    pub(crate) takes: Arc<dyn TakeRepository>,
    pub(crate) draws: Arc<dyn DrawRepository>,
    pub(crate) rule_trees: Arc<dyn RuleTreeRepository>,
    pub(crate) loader: StockLoader,
    pub(crate) settler: Settler,
    /// How long a caller waits for a draw's outcome.
    pub(crate) deadline: StdDuration,
    /// Keyed draws running in this process.
    pub(crate) in_flight: crate::inflight::InFlight,
}

impl std::fmt::Debug for Drawing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drawing")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Claims tried while stock reloads (this or other instances') fence them off or drop the
/// entries they need.
const RELOAD_ATTEMPTS: u32 = 8;

/// A pause of a few milliseconds, longer with every attempt and jittered, so the draws that
/// met a reload do not meet the next one in step.
async fn settle_pause(attempt: u32) {
    let base = 2_u64.saturating_mul(u64::from(attempt.min(6)) + 1);
    let jitter = rand::random::<u64>() % (base + 1);
    tokio::time::sleep(StdDuration::from_millis(base + jitter)).await;
}

/// What a claim granted, to be recorded.
struct Granted {
    award: Option<AwardId>,
    fallback: bool,
    generation: u64,
}

impl Drawing {
    /// Takes part in an activity and draws.
    ///
    /// The draw runs on a task of its own and always ends recorded or given back; when its
    /// outcome is not known within the draw deadline the answer is
    /// [`AppError::OutcomeUnknown`], and a replay with the same idempotency key returns the
    /// real outcome.
    pub async fn draw(self: &Arc<Self>, req: DrawRequest) -> Result<DrawResult, AppError> {
        if let Some(key) = &req.idempotency_key
            && (key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY
                || key.chars().any(char::is_control))
        {
            return Err(AppError::Invalid(format!(
                "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes of printable text"
            )));
        }
        // Before anything is drawn or taken: a bad address is the caller's to fix.
        if let Some(address) = &req.shipping {
            address.validate()?;
        }
        let (mut outcome, joined) = match self.in_flight.join(&req) {
            // A replay of a draw still running here waits for that draw's outcome.
            Joined::Running(outcome) => (outcome, true),
            Joined::First {
                publish,
                outcome,
                done,
            } => {
                let me = Arc::clone(self);
                // A child of the caller's span, so the draw's lines carry the request's id
                // even after the caller has gone.
                let span = tracing::info_span!("draw", activity = %req.activity, user = %req.user);
                tokio::spawn(
                    async move {
                        let result = me.run_draw(req).await;
                        let _ = publish.send(Some(result));
                        drop(done);
                    }
                    .instrument(span),
                );
                (outcome, false)
            }
        };
        let waited = tokio::time::timeout(self.deadline, outcome.wait_for(Option::is_some));
        let result = match waited.await {
            Ok(Ok(result)) => result.clone().unwrap_or(Err(AppError::OutcomeUnknown)),
            Ok(Err(_)) => Err(AppError::internal("draw task ended without an outcome")),
            Err(_) => Err(AppError::OutcomeUnknown),
        };
        result.map(|mut r| {
            r.replayed |= joined;
            r
        })
    }

    async fn run_draw(&self, req: DrawRequest) -> Result<DrawResult, AppError> {
        let config = self.cache.get(req.activity).await?;
        let now = self.clock.now();
        // Only a user who took part can have a draw to replay, and the stock store knows who
        // did: a new user's keyed draw (the shape of a spike) touches no database before its
        // claim, and a sold-out answer none at all.
        let may_replay = req.idempotency_key.is_some()
            && !matches!(
                self.stock.user_takes(req.activity, &req.user).await,
                Ok(Some(0))
            );
        if may_replay
            && let Some(key) = &req.idempotency_key
            && let Some(past) = self.replay(&req.user, key, req.activity).await?
        {
            return Ok(past);
        }
        // Stock and quota are checked atomically by the claim; here only state and window.
        config.activity.check_participation(now, u64::MAX, 0)?;
        if config.known_sold_out(now.timestamp_millis()) {
            return Err(ParticipationError::SoldOut.into());
        }
        // A claim fenced off by a concurrent reload (instances loading the same activity at
        // once) took nothing for good: draw again with a new claim. Every instance may reload
        // a new activity once at its first draws, so a draw can meet as many fences as there
        // are instances; a short, growing pause lets the reloads settle.
        for attempt in 0..RELOAD_ATTEMPTS {
            match self.claim_and_record(&req, &config).await {
                Err(AppError::Stale) => settle_pause(attempt).await,
                other => return other,
            }
        }
        Err(AppError::unavailable(
            "the activity's stock was reloaded meanwhile; draw again",
        ))
    }

    /// Draws, claims and records once.
    async fn claim_and_record(
        &self,
        req: &DrawRequest,
        config: &ActivityConfig,
    ) -> Result<DrawResult, AppError> {
        let claim = self.aim(req, config)?;
        let granted = self.granted(&claim, config).await?;
        let record = match self.record_for(config, req, claim.claim_id, &granted) {
            Ok(r) => r,
            Err(e) => {
                self.give_back(&claim).await;
                return Err(e);
            }
        };
        let result = DrawResult {
            result: if record.win.is_some() {
                DrawOutcome::Win
            } else {
                DrawOutcome::Lose
            },
            activity_id: req.activity,
            take_id: claim.claim_id,
            order_id: record.win.as_ref().map(|(o, _)| o.order_id),
            award: record.win.as_ref().map(|(o, _)| o.award.clone()),
            grant_state: record.win.as_ref().map(|(o, _)| o.grant_state),
            fallback: granted.fallback,
            replayed: false,
        };
        match self.draws.record_draw(record).await {
            Ok(RecordOutcome::Recorded) => {
                self.settler.recorded(req.activity, claim.claim_id);
                Ok(result)
            }
            Ok(refused) => {
                self.give_back(&claim).await;
                self.refused(refused, config, req, granted.generation).await
            }
            Err(e) => self.unclear_record(&claim, result, e).await,
        }
    }

    /// Draws locally (aiming only at awards not known to be out of stock) and shapes the
    /// claim for it, under a new take id.
    fn aim(&self, req: &DrawRequest, config: &ActivityConfig) -> Result<StockClaim, AppError> {
        let aimed = {
            let mut rng = rand::rng();
            match config.drawer.draw(&mut rng, config.out_of_stock()) {
                Draw::Award(a) | Draw::OutOfStock(a) => Some(a),
                Draw::Nothing => None,
            }
        };
        Ok(StockClaim {
            claim_id: self.ids.take_id()?,
            activity_id: req.activity,
            user_id: req.user.clone(),
            take: true,
            take_limit: config.activity.take_limit(),
            award: aimed,
            fallback: aimed.and(config.strategy().fallback()),
            expires_at: config.key_expiry(),
        })
    }

    /// Claims the stock; what was granted, or the answer when nothing was.
    async fn granted(
        &self,
        claim: &StockClaim,
        config: &ActivityConfig,
    ) -> Result<Granted, AppError> {
        match self.claim(claim, config).await? {
            ClaimOutcome::SoldOut => {
                config.mark_sold_out(self.clock.now().timestamp_millis());
                Err(ParticipationError::SoldOut.into())
            }
            ClaimOutcome::QuotaExhausted => Err(self.quota_exhausted(config)),
            ClaimOutcome::Withdrawn => Err(AppError::unavailable(
                "the draw was interrupted; draw again",
            )),
            ClaimOutcome::Granted {
                award,
                fallback,
                award_exhausted,
                generation,
            } => {
                if award_exhausted && let Some(a) = claim.award {
                    config.mark_out_of_stock(a);
                }
                Ok(Granted {
                    award,
                    fallback,
                    generation,
                })
            }
        }
    }

    fn quota_exhausted(&self, config: &ActivityConfig) -> AppError {
        ParticipationError::QuotaExhausted {
            limit: config.activity.take_limit(),
        }
        .into()
    }

    /// The answer to a record the database refused; its claim is already given back.
    async fn refused(
        &self,
        refused: RecordOutcome,
        config: &ActivityConfig,
        req: &DrawRequest,
        generation: u64,
    ) -> Result<DrawResult, AppError> {
        match refused {
            RecordOutcome::QuotaExhausted => Err(self.quota_exhausted(config)),
            RecordOutcome::DuplicateKey => {
                let key = req.idempotency_key.as_deref().unwrap_or_default();
                self.replay(&req.user, key, req.activity)
                    .await?
                    .ok_or_else(|| {
                        AppError::Conflict("idempotency key in use by a draw in flight".into())
                    })
            }
            RecordOutcome::StaleGeneration => {
                self.loader.catch_up(config, generation).await;
                Err(AppError::Stale)
            }
            RecordOutcome::Voided | RecordOutcome::TakeNotOpen | RecordOutcome::Recorded => Err(
                AppError::unavailable("the draw was interrupted; draw again"),
            ),
        }
    }

    /// The record failed in a way that leaves its fate unknown (a lost commit
    /// acknowledgement, a timeout): read it back by voiding the take id, which either finds
    /// the record or makes sure it can never arrive.
    async fn unclear_record(
        &self,
        claim: &StockClaim,
        result: DrawResult,
        error: lottery_domain::RepoError,
    ) -> Result<DrawResult, AppError> {
        let pair = ClaimRef {
            take_id: claim.claim_id,
            user_id: claim.user_id.clone(),
            activity_id: claim.activity_id,
        };
        match self.draws.settle_claim(&pair).await {
            Ok(ClaimFate::Recorded) => {
                self.settler.recorded(claim.activity_id, claim.claim_id);
                Ok(result)
            }
            Ok(ClaimFate::Voided) => {
                self.give_back(claim).await;
                Err(error.into())
            }
            // Neither known nor settled: the reconciler settles the claim once the database
            // answers again; a replay with the same key then tells the outcome.
            Err(_) => Err(AppError::OutcomeUnknown),
        }
    }

    /// Picks the activity with a stored rule tree from the user's facts, then draws.
    pub async fn draw_by_rules(
        self: &Arc<Self>,
        user: UserId,
        tree: TreeId,
        facts: &Facts,
        idempotency_key: Option<String>,
        shipping: Option<ShippingAddress>,
    ) -> Result<DrawResult, AppError> {
        let tree = self
            .rule_trees
            .tree(tree)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("rule tree {tree}")))?;
        let decision = tree
            .evaluate(facts)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let activity: ActivityId = decision.value.parse().map_err(|_| {
            AppError::internal(format!(
                "rule tree {} leads to {:?}, which is not an activity id",
                tree.id(),
                decision.value
            ))
        })?;
        self.draw(DrawRequest {
            user,
            activity,
            idempotency_key,
            shipping,
        })
        .await
    }

    async fn replay(
        &self,
        user: &UserId,
        key: &str,
        activity: ActivityId,
    ) -> Result<Option<DrawResult>, AppError> {
        let Some(past) = self.draws.find_by_key(user, key).await? else {
            return Ok(None);
        };
        if past.take.activity_id != activity {
            return Err(AppError::Conflict(format!(
                "idempotency key was used for activity {}, not {activity}",
                past.take.activity_id
            )));
        }
        Ok(Some(DrawResult::from_past(past)))
    }

    /// Claims stock, loading the store from the database when it does not hold the activity
    /// or the user (in the stock's generation) yet.
    async fn claim(
        &self,
        claim: &StockClaim,
        config: &ActivityConfig,
    ) -> Result<ClaimOutcome, AppError> {
        for attempt in 0..RELOAD_ATTEMPTS {
            if attempt > 0 {
                // Another instance's reload can drop the entries just loaded: let it finish.
                settle_pause(attempt).await;
            }
            match self.stock.claim(claim).await {
                Ok(outcome) => return Ok(outcome),
                Err(StockError::NotLoaded(Missing::Activity(_, seen))) => {
                    self.loader.reload(config, seen).await?;
                }
                Err(StockError::NotLoaded(Missing::User {
                    activity,
                    user,
                    generation,
                })) => {
                    let used = self.takes.takes_used(&user, activity).await?;
                    self.stock
                        .load_user(activity, &user, used, generation, claim.expires_at)
                        .await?;
                }
                Err(e @ StockError::Unavailable(_)) => {
                    // The claim may have been applied before the connection failed. Its
                    // release either gives it back or, arriving first, makes it take nothing;
                    // if the release fails too, the reconciler settles it.
                    self.give_back(claim).await;
                    return Err(e.into());
                }
            }
        }
        Err(AppError::unavailable("stock could not be loaded"))
    }

    /// Gives a claim back. If the store cannot be reached now, the claim stays pending and
    /// the reconciler gives it back once its record is known not to exist.
    pub(crate) async fn give_back(&self, claim: &StockClaim) {
        if let Err(e) = self.stock.release(claim).await {
            // Many at once while the store is down; the reconciler reports what it repairs.
            tracing::debug!(claim = %claim.claim_id, activity = %claim.activity_id, error = %lottery_domain::Chain(&e),
                "stock claim not given back now; the reconciler will");
        }
    }

    fn record_for(
        &self,
        config: &ActivityConfig,
        req: &DrawRequest,
        take_id: TakeId,
        granted: &Granted,
    ) -> Result<DrawRecord, AppError> {
        let now = self.clock.now();
        let activity = &config.activity;
        let take = UserTake {
            take_id,
            user_id: req.user.clone(),
            activity_id: activity.id(),
            strategy_id: activity.strategy_id(),
            take_number: 0,
            taken_at: now,
            state: TakeState::Used,
        };
        let win = match granted.award {
            None => None,
            Some(a) => Some(self.win_for(config, req, take_id, a, granted.fallback, now)?),
        };
        Ok(DrawRecord {
            new_take: Some((take, activity.take_limit())),
            take_id,
            user_id: req.user.clone(),
            idempotency_key: req.idempotency_key.clone(),
            win,
            generation: granted.generation,
        })
    }
}

impl Drawing {
    /// The order of a win and its delivery message (none while a shipped prize waits for its
    /// address: nothing delivers it, or fails it, meanwhile).
    fn win_for(
        &self,
        config: &ActivityConfig,
        req: &DrawRequest,
        take_id: TakeId,
        award: AwardId,
        fallback: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(WinOrder, Option<OutboxMessage>), AppError> {
        let award = config
            .awards
            .get(&award)
            .cloned()
            .ok_or_else(|| AppError::internal(format!("award {award} is not configured")))?;
        let awaits_address = req.shipping.is_none() && self.registry.needs_address(&award.kind);
        let activity = &config.activity;
        let order = WinOrder {
            order_id: self.ids.order_id()?,
            take_id,
            user_id: req.user.clone(),
            activity_id: activity.id(),
            strategy_id: activity.strategy_id(),
            mode: config.strategy().mode(),
            award,
            fallback,
            grant_state: if awaits_address {
                GrantState::AwaitingAddress
            } else {
                GrantState::Init
            },
            delivery: None,
            created_at: now,
            granted_at: None,
        };
        let message = if awaits_address {
            None
        } else {
            Some(invoice_message(&order, req.shipping.clone(), now)?)
        };
        Ok((order, message))
    }
}

/// The delivery message of an order: the same whether the address came with the draw or
/// later.
pub(crate) fn invoice_message(
    order: &WinOrder,
    shipping: Option<ShippingAddress>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<OutboxMessage, AppError> {
    let invoice = AwardInvoice {
        version: AwardInvoice::VERSION,
        user_id: order.user_id.clone(),
        order_id: order.order_id,
        activity_id: order.activity_id,
        award: order.award.clone(),
        shipping,
    };
    OutboxMessage::invoice(&invoice, at).map_err(|e| AppError::internal(format!("invoice: {e}")))
}
