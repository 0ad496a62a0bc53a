//! The in-process ledger of embedded mode, with the Redis ledger's semantics.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use lottery_activity::{ClaimOutcome, Missing, StockClaim, StockError, StockLedger, StockSnapshot};
use lottery_domain::{ActivityId, AwardId, TakeId, UserId};

/// Claims between two sweeps of expired entries: often enough to bound memory, rarely
/// enough that the O(n) pass costs nothing per claim.
const SWEEP_EVERY: u32 = 4_096;

#[derive(Debug)]
struct Stock {
    left: u64,
    awards: HashMap<AwardId, u64>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Used {
    used: u32,
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
    users: HashMap<(ActivityId, UserId), Used>,
    // Keyed by activity too, as the Redis keys are.
    claims: HashMap<(ActivityId, TakeId), ClaimRecord>,
    claims_since_sweep: u32,
}

/// The embedded-mode [`StockLedger`].
///
/// Every check and change of a claim happens under one lock, which is what makes it atomic;
/// the critical section is a few map lookups, far below the cost of the database write that
/// follows each draw. Entries past their `expires_at` read as absent, as expired Redis keys
/// do, and are dropped by a periodic sweep during claims.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that can panic, so a poisoned lock
        // is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn sweep(&mut self, now: DateTime<Utc>) {
        self.claims_since_sweep += 1;
        if self.claims_since_sweep < SWEEP_EVERY {
            return;
        }
        self.claims_since_sweep = 0;
        self.claims.retain(|_, c| c.expires_at > now);
        self.users.retain(|_, u| u.expires_at > now);
        self.activities.retain(|_, s| s.expires_at > now);
    }

    /// Drops the expired entries one call is about to read, so they count as absent.
    fn expire(&mut self, activity: ActivityId, user: Option<&UserId>, claim: Option<TakeId>) {
        let now = Utc::now();
        if self
            .activities
            .get(&activity)
            .is_some_and(|s| s.expires_at <= now)
        {
            self.activities.remove(&activity);
        }
        if let Some(user) = user {
            let key = (activity, user.clone());
            if self.users.get(&key).is_some_and(|u| u.expires_at <= now) {
                self.users.remove(&key);
            }
        }
        if let Some(claim) = claim {
            let key = (activity, claim);
            if self.claims.get(&key).is_some_and(|c| c.expires_at <= now) {
                self.claims.remove(&key);
            }
        }
    }

    fn claim(&mut self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        self.sweep(Utc::now());
        self.expire(c.activity_id, Some(&c.user_id), Some(c.claim_id));
        if let Some(record) = self.claims.get(&(c.activity_id, c.claim_id)) {
            return Ok(record.outcome);
        }
        let not_loaded = || StockError::NotLoaded(Missing::Activity(c.activity_id));
        let user_key = (c.activity_id, c.user_id.clone());
        // Every check first, with nothing changed yet, so an early return takes nothing.
        if c.take {
            let stock = self.activities.get(&c.activity_id).ok_or_else(not_loaded)?;
            let Some(user) = self.users.get(&user_key) else {
                return Err(StockError::NotLoaded(Missing::User(
                    c.activity_id,
                    c.user_id.clone(),
                )));
            };
            if stock.left == 0 {
                return Ok(ClaimOutcome::SoldOut);
            }
            if user.used >= c.take_limit {
                return Ok(ClaimOutcome::QuotaExhausted);
            }
        }
        let mut award = None;
        let mut fallback = false;
        let mut exhausted = false;
        if let Some(wanted) = c.award {
            let awards = &self
                .activities
                .get(&c.activity_id)
                .ok_or_else(not_loaded)?
                .awards;
            let left = *awards.get(&wanted).ok_or_else(not_loaded)?;
            if left > 0 {
                award = Some(wanted);
            } else {
                exhausted = true;
                if let Some(f) = c.fallback
                    && *awards.get(&f).ok_or_else(not_loaded)? > 0
                {
                    award = Some(f);
                    fallback = true;
                }
            }
        }
        // Then every change; the checks above guarantee each entry exists and is positive.
        if c.take {
            if let Some(stock) = self.activities.get_mut(&c.activity_id) {
                stock.left -= 1;
            }
            if let Some(user) = self.users.get_mut(&user_key) {
                user.used += 1;
            }
        }
        if let Some(a) = award
            && let Some(left) = self
                .activities
                .get_mut(&c.activity_id)
                .and_then(|s| s.awards.get_mut(&a))
        {
            *left -= 1;
        }
        let outcome = ClaimOutcome::Granted {
            award,
            fallback,
            award_exhausted: exhausted,
        };
        self.claims.insert(
            (c.activity_id, c.claim_id),
            ClaimRecord {
                outcome,
                took_take: c.take,
                released: false,
                expires_at: crate::claim_record_expiry(c.expires_at),
            },
        );
        Ok(outcome)
    }

    fn release(&mut self, c: &StockClaim) {
        self.expire(c.activity_id, Some(&c.user_id), Some(c.claim_id));
        let Some(record) = self.claims.get_mut(&(c.activity_id, c.claim_id)) else {
            return;
        };
        if record.released {
            return;
        }
        record.released = true;
        let ClaimOutcome::Granted { award, .. } = record.outcome else {
            return;
        };
        let took_take = record.took_take;
        // Counters that expired meanwhile stay absent, as in Redis.
        if let Some(stock) = self.activities.get_mut(&c.activity_id) {
            if took_take {
                stock.left += 1;
            }
            if let Some(left) = award.and_then(|a| stock.awards.get_mut(&a)) {
                *left += 1;
            }
        }
        if took_take && let Some(user) = self.users.get_mut(&(c.activity_id, c.user_id.clone())) {
            user.used = user.used.saturating_sub(1);
        }
    }
}

#[async_trait::async_trait]
impl StockLedger for MemoryLedger {
    async fn claim(&self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        self.lock().claim(c)
    }

    async fn release(&self, c: &StockClaim) -> Result<(), StockError> {
        self.lock().release(c);
        Ok(())
    }

    async fn load_activity(&self, s: &StockSnapshot) -> Result<(), StockError> {
        let mut st = self.lock();
        st.expire(s.activity_id, None, None);
        let stock = st.activities.entry(s.activity_id).or_insert_with(|| Stock {
            left: s.stock_left,
            awards: HashMap::new(),
            expires_at: s.expires_at,
        });
        // Awards missing from an earlier snapshot are added; live ones are kept.
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
        let mut st = self.lock();
        st.expire(activity, Some(user), None);
        st.users
            .entry((activity, user.clone()))
            .or_insert(Used { used, expires_at });
        Ok(())
    }

    async fn stock_left(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        let mut st = self.lock();
        st.expire(activity, None, None);
        Ok(st.activities.get(&activity).map(|s| s.left))
    }

    async fn awards_left(
        &self,
        activity: ActivityId,
        awards: &[AwardId],
    ) -> Result<Vec<Option<u64>>, StockError> {
        let mut st = self.lock();
        st.expire(activity, None, None);
        let stock = st.activities.get(&activity);
        Ok(awards
            .iter()
            .map(|a| stock.and_then(|s| s.awards.get(a).copied()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: i64, expires_at: DateTime<Utc>) -> StockClaim {
        StockClaim {
            claim_id: TakeId::new(id).expect("id"),
            activity_id: ActivityId::new(1).expect("id"),
            user_id: UserId::new("u").expect("user"),
            take: false,
            take_limit: 1,
            award: None,
            fallback: None,
            expires_at,
        }
    }

    #[tokio::test]
    async fn expired_entries_read_as_absent_and_are_swept() {
        let ledger = MemoryLedger::new();
        let past = Utc::now() - chrono::Duration::seconds(1);
        let activity = ActivityId::new(1).expect("id");
        ledger
            .load_activity(&StockSnapshot {
                activity_id: activity,
                stock_left: 3,
                awards_left: vec![],
                expires_at: past,
            })
            .await
            .expect("load");
        assert_eq!(ledger.stock_left(activity).await, Ok(None));

        let future = Utc::now() + chrono::Duration::hours(1);
        for id in 1..=i64::from(SWEEP_EVERY) {
            ledger.claim(&claim(id, past)).await.expect("claim");
        }
        // The claim that filled the count swept the expired records before it.
        ledger
            .claim(&claim(1_000_000, future))
            .await
            .expect("claim");
        let st = ledger.lock();
        assert!(
            st.claims.len() <= 2,
            "{} claim records kept",
            st.claims.len()
        );
    }
}
