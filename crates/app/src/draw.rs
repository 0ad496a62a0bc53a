//! One user's draw, from eligibility to a durable result.
//!
//! 1. A replayed idempotency key returns the first draw's result.
//! 2. The activity's configuration comes from the cache; state and time window are checked.
//! 3. The strategy draws locally (O(1)), aiming only at awards not known to be out of stock.
//! 4. One atomic claim on the stock store takes the activity stock and the user's take (unless
//!    an open take is reused) and, for a win, the award's stock or the fallback's.
//! 5. One shard transaction records the take, and the order with its outbox row for a win.
//!    The answer is sent only after that commit.
//!
//! If step 5 fails or is refused, the claim is given back, so no stock is lost.

use chrono::Duration;
use lottery_activity::{
    AwardInvoice, ClaimOutcome, DrawRecord, Missing, OutboxMessage, ParticipationError, PastDraw,
    RecordOutcome, StockClaim, StockError, StockSnapshot, TakeState, UserTake, WinOrder,
};
use lottery_award::{Award, GrantState, ShippingAddress};
use lottery_domain::{ActivityId, OrderId, TakeId, UserId};
use lottery_rule::{Facts, RuleTree};
use lottery_strategy::Draw;
use serde::Serialize;
use tracing::{error, warn};

use crate::cache::ActivityConfig;
use crate::{AppError, Lottery};

/// Stock keys outlive the activity by this much, then expire.
const KEY_MARGIN_DAYS: i64 = 7;
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
            order_id: order.map(|o| o.order_id),
            replayed: true,
        }
    }
}

impl Lottery {
    /// Takes part in an activity and draws.
    pub async fn draw(&self, req: DrawRequest) -> Result<DrawResult, AppError> {
        if let Some(key) = &req.idempotency_key {
            if key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY
                || key.chars().any(char::is_control)
            {
                return Err(AppError::Invalid(format!(
                    "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes of printable text"
                )));
            }
            if let Some(past) = self.replay(&req.user, key, req.activity).await? {
                return Ok(past);
            }
        }
        let config = self.cache.get(req.activity).await?;
        let now = self.svc.clock.now();
        // Stock and quota are checked atomically by the claim; here only state and window.
        config.activity.check_participation(now, u64::MAX, 0)?;
        if config.known_sold_out(now.timestamp_millis()) {
            return Err(ParticipationError::SoldOut.into());
        }
        let open = self.svc.takes.open_take(&req.user, req.activity).await?;

        let drawn = {
            let mut rng = rand::rng();
            config.drawer.draw(&mut rng, config.out_of_stock())
        };
        let aimed = match drawn {
            Draw::Award(a) | Draw::OutOfStock(a) => Some(a),
            Draw::Nothing => None,
        };
        let take_id = match &open {
            Some(t) => t.take_id,
            None => self.svc.ids.take_id()?,
        };
        let claim = StockClaim {
            // Unique per attempt: a retry of this claim is recognised, a later draw is not.
            claim_id: self.svc.ids.take_id()?,
            activity_id: req.activity,
            user_id: req.user.clone(),
            take: open.is_none(),
            take_limit: config.activity.take_limit(),
            award: aimed,
            fallback: aimed.and(config.strategy().fallback()),
            expires_at: config.activity.end() + Duration::days(KEY_MARGIN_DAYS),
        };
        let (award, fallback) = match self.claim(&claim).await? {
            ClaimOutcome::SoldOut => {
                config.mark_sold_out(self.svc.clock.now().timestamp_millis());
                return Err(ParticipationError::SoldOut.into());
            }
            ClaimOutcome::QuotaExhausted => {
                return Err(ParticipationError::QuotaExhausted {
                    limit: config.activity.take_limit(),
                }
                .into());
            }
            ClaimOutcome::Granted {
                award,
                fallback,
                award_exhausted,
            } => {
                if award_exhausted && let Some(a) = aimed {
                    config.mark_out_of_stock(a);
                }
                (award, fallback)
            }
        };

        let record = match self.record_for(&config, &req, open.as_ref(), take_id, award, fallback) {
            Ok(r) => r,
            Err(e) => {
                self.give_back(&claim).await;
                return Err(e);
            }
        };
        let order = record
            .win
            .as_ref()
            .map(|(o, _)| (o.order_id, o.award.clone()));
        let outcome = self.svc.draws.record_draw(record).await;
        match outcome {
            Ok(RecordOutcome::Recorded) => Ok(DrawResult {
                result: if order.is_some() {
                    DrawOutcome::Win
                } else {
                    DrawOutcome::Lose
                },
                activity_id: req.activity,
                take_id,
                order_id: order.as_ref().map(|(id, _)| *id),
                award: order.map(|(_, a)| a),
                fallback,
                replayed: false,
            }),
            Ok(refused) => {
                self.give_back(&claim).await;
                match refused {
                    RecordOutcome::QuotaExhausted => Err(ParticipationError::QuotaExhausted {
                        limit: config.activity.take_limit(),
                    }
                    .into()),
                    RecordOutcome::DuplicateKey => {
                        let key = req.idempotency_key.as_deref().unwrap_or_default();
                        self.replay(&req.user, key, req.activity)
                            .await?
                            .ok_or_else(|| {
                                AppError::Conflict(
                                    "idempotency key in use by a draw in flight".into(),
                                )
                            })
                    }
                    _ => Err(AppError::Conflict(
                        "this take was drawn concurrently; draw again".into(),
                    )),
                }
            }
            Err(e) => {
                self.give_back(&claim).await;
                Err(e.into())
            }
        }
    }

    /// Picks the activity with a rule tree from the user's facts, then draws.
    pub async fn draw_by_rules(
        &self,
        user: UserId,
        tree: &RuleTree,
        facts: &Facts,
        idempotency_key: Option<String>,
        shipping: Option<ShippingAddress>,
    ) -> Result<DrawResult, AppError> {
        let decision = tree
            .evaluate(facts)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let activity: ActivityId = decision.value.parse().map_err(|_| {
            AppError::Internal(format!(
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
        let Some(past) = self.svc.draws.find_by_key(user, key).await? else {
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
    /// or the user yet.
    async fn claim(&self, claim: &StockClaim) -> Result<ClaimOutcome, AppError> {
        for _ in 0..3 {
            match self.svc.stock.claim(claim).await {
                Ok(outcome) => return Ok(outcome),
                Err(StockError::NotLoaded(Missing::Activity(id))) => {
                    let counts = self
                        .svc
                        .activities
                        .stock_snapshot(id)
                        .await?
                        .ok_or_else(|| AppError::NotFound(format!("activity {id}")))?;
                    let snapshot = StockSnapshot {
                        activity_id: id,
                        stock_left: counts.stock_left,
                        awards_left: counts.awards_left,
                        expires_at: claim.expires_at,
                    };
                    self.svc.stock.load_activity(&snapshot).await?;
                }
                Err(StockError::NotLoaded(Missing::User(id, user))) => {
                    let used = self.svc.takes.takes_used(&user, id).await?;
                    self.svc
                        .stock
                        .load_user(id, &user, used, claim.expires_at)
                        .await?;
                }
                Err(e @ StockError::Unavailable(_)) => {
                    // The claim may have been applied before the connection failed: give it
                    // back if it was, so nothing stays taken for a draw that did not happen.
                    self.give_back(claim).await;
                    return Err(e.into());
                }
            }
        }
        Err(AppError::Unavailable("stock could not be loaded".into()))
    }

    /// Gives a claim back; retried in the background if the store is unreachable now.
    async fn give_back(&self, claim: &StockClaim) {
        if self.svc.stock.release(claim).await.is_ok() {
            return;
        }
        let stock = self.svc.stock.clone();
        let claim = claim.clone();
        tokio::spawn(async move {
            for attempt in 1..=20u32 {
                tokio::time::sleep(std::time::Duration::from_millis(250 * u64::from(attempt)))
                    .await;
                if stock.release(&claim).await.is_ok() {
                    warn!(claim = %claim.claim_id, attempt, "stock claim given back after a retry");
                    return;
                }
            }
            error!(claim = %claim.claim_id, activity = %claim.activity_id, "could not give a stock claim back");
        });
    }

    fn record_for(
        &self,
        config: &ActivityConfig,
        req: &DrawRequest,
        open: Option<&UserTake>,
        take_id: TakeId,
        award: Option<lottery_domain::AwardId>,
        fallback: bool,
    ) -> Result<DrawRecord, AppError> {
        let now = self.svc.clock.now();
        let activity = &config.activity;
        let take = match open {
            Some(t) => t.clone(),
            None => UserTake {
                take_id,
                user_id: req.user.clone(),
                activity_id: activity.id(),
                strategy_id: activity.strategy_id(),
                take_number: 0,
                taken_at: now,
                state: TakeState::Used,
            },
        };
        let win = match award {
            None => None,
            Some(a) => {
                let award =
                    config.awards.get(&a).cloned().ok_or_else(|| {
                        AppError::Internal(format!("award {a} is not configured"))
                    })?;
                let order = WinOrder {
                    order_id: self.svc.ids.order_id()?,
                    take_id,
                    user_id: req.user.clone(),
                    activity_id: activity.id(),
                    strategy_id: activity.strategy_id(),
                    mode: config.strategy().mode(),
                    award: award.clone(),
                    fallback,
                    grant_state: GrantState::Init,
                    delivery: None,
                    created_at: now,
                    granted_at: None,
                };
                let invoice = AwardInvoice {
                    version: AwardInvoice::VERSION,
                    user_id: req.user.clone(),
                    order_id: order.order_id,
                    activity_id: activity.id(),
                    award,
                    shipping: req.shipping.clone(),
                };
                let message = OutboxMessage::invoice(&invoice, now)
                    .map_err(|e| AppError::Internal(format!("invoice: {e}")))?;
                Some((order, message))
            }
        };
        Ok(DrawRecord {
            new_take: open.is_none().then(|| (take, activity.take_limit())),
            take_id,
            user_id: req.user.clone(),
            idempotency_key: req.idempotency_key.clone(),
            win,
        })
    }
}
