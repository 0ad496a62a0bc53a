//! The in-process ledger of embedded mode.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use lottery_activity::{ClaimOutcome, Missing, StockClaim, StockError, StockLedger, StockSnapshot};
use lottery_domain::{ActivityId, AwardId, TakeId, UserId};

#[derive(Debug)]
struct Stock {
    left: u64,
    awards: HashMap<AwardId, u64>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct ClaimRecord {
    outcome: ClaimOutcome,
    took_take: bool,
    released: bool,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct State {
    activities: HashMap<ActivityId, Stock>,
    users: HashMap<(ActivityId, UserId), (u32, DateTime<Utc>)>,
    claims: HashMap<TakeId, ClaimRecord>,
    claims_since_sweep: usize,
}

/// Every check and change of a claim happens under one lock, which is what makes it atomic;
/// the critical section is a few map lookups, far below the cost of the database write that
/// follows each draw.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Drops entries past their expiry, now and then, so memory stays bounded.
    fn sweep(&mut self, now: DateTime<Utc>) {
        self.claims_since_sweep += 1;
        if self.claims_since_sweep < 10_000 {
            return;
        }
        self.claims_since_sweep = 0;
        self.claims.retain(|_, c| c.expires_at > now);
        self.users.retain(|_, (_, exp)| *exp > now);
        self.activities.retain(|_, s| s.expires_at > now);
    }
}

#[async_trait::async_trait]
impl StockLedger for MemoryLedger {
    async fn claim(&self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        let mut st = self.lock();
        st.sweep(Utc::now());
        if let Some(record) = st.claims.get(&c.claim_id) {
            return Ok(record.outcome);
        }
        let State {
            activities,
            users,
            claims,
            ..
        } = &mut *st;
        let stock = activities
            .get_mut(&c.activity_id)
            .ok_or(StockError::NotLoaded(Missing::Activity(c.activity_id)))?;
        let user_key = (c.activity_id, c.user_id.clone());
        if c.take {
            let Some((used, _)) = users.get(&user_key) else {
                return Err(StockError::NotLoaded(Missing::User(
                    c.activity_id,
                    c.user_id.clone(),
                )));
            };
            if stock.left == 0 {
                return Ok(ClaimOutcome::SoldOut);
            }
            if *used >= c.take_limit {
                return Ok(ClaimOutcome::QuotaExhausted);
            }
        }
        let mut award = None;
        let mut fallback = false;
        let mut exhausted = false;
        if let Some(wanted) = c.award {
            let left = *stock
                .awards
                .get(&wanted)
                .ok_or(StockError::NotLoaded(Missing::Activity(c.activity_id)))?;
            if left > 0 {
                award = Some(wanted);
            } else {
                exhausted = true;
                if let Some(f) = c.fallback {
                    let fl = *stock
                        .awards
                        .get(&f)
                        .ok_or(StockError::NotLoaded(Missing::Activity(c.activity_id)))?;
                    if fl > 0 {
                        award = Some(f);
                        fallback = true;
                    }
                }
            }
        }
        if c.take {
            stock.left -= 1;
            if let Some((used, _)) = users.get_mut(&user_key) {
                *used += 1;
            }
        }
        if let Some(a) = award
            && let Some(left) = stock.awards.get_mut(&a)
        {
            *left -= 1;
        }
        let outcome = ClaimOutcome::Granted {
            award,
            fallback,
            award_exhausted: exhausted,
        };
        claims.insert(
            c.claim_id,
            ClaimRecord {
                outcome,
                took_take: c.take,
                released: false,
                expires_at: c.expires_at,
            },
        );
        Ok(outcome)
    }

    async fn release(&self, c: &StockClaim) -> Result<(), StockError> {
        let mut st = self.lock();
        let State {
            activities,
            users,
            claims,
            ..
        } = &mut *st;
        let Some(record) = claims.get_mut(&c.claim_id) else {
            return Ok(());
        };
        if record.released {
            return Ok(());
        }
        record.released = true;
        let ClaimOutcome::Granted { award, .. } = record.outcome else {
            return Ok(());
        };
        if let Some(stock) = activities.get_mut(&c.activity_id) {
            if record.took_take {
                stock.left += 1;
            }
            if let Some(a) = award
                && let Some(left) = stock.awards.get_mut(&a)
            {
                *left += 1;
            }
        }
        if record.took_take
            && let Some((used, _)) = users.get_mut(&(c.activity_id, c.user_id.clone()))
        {
            *used = used.saturating_sub(1);
        }
        Ok(())
    }

    async fn load_activity(&self, s: &StockSnapshot) -> Result<(), StockError> {
        let mut st = self.lock();
        let stock = st.activities.entry(s.activity_id).or_insert_with(|| Stock {
            left: s.stock_left,
            awards: HashMap::new(),
            expires_at: s.expires_at,
        });
        for (award, left) in &s.awards_left {
            stock.awards.entry(*award).or_insert(*left);
        }
        Ok(())
    }

    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError> {
        self.lock()
            .users
            .entry((activity, user.clone()))
            .or_insert((used, expires_at));
        Ok(())
    }

    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        Ok(self.lock().activities.get(&activity).map(|s| s.left))
    }

    async fn awards_left(
        &self,
        activity: ActivityId,
        awards: &[AwardId],
    ) -> Result<Vec<Option<u64>>, StockError> {
        let st = self.lock();
        let stock = st.activities.get(&activity);
        Ok(awards
            .iter()
            .map(|a| stock.and_then(|s| s.awards.get(a).copied()))
            .collect())
    }
}
