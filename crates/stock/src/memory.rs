//! The in-process ledger of embedded mode, with the Redis ledger's semantics.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use lottery_activity::{
    ClaimOutcome, Missing, PendingClaim, StockClaim, StockError, StockLedger, StockSnapshot,
};
use lottery_domain::{ActivityId, AwardId, TakeId, UserId};

use crate::expiring::{Expires, Expiring};

/// Claims between two sweeps of expired activities (a pass over the activities only).
const SWEEP_EVERY: u32 = 4_096;

/// Expired claim records, and as many users, each claim drops at most (of one part of each
/// map, in turn): far more than a claim and its release add, and few enough that no claim
/// waits on a long pass. (A pass over every entry, every few thousand claims, held the lock
/// long enough to stall every draw once millions of claim records and users were kept.)
const DROPS_PER_CLAIM: usize = 64;

#[derive(Debug)]
struct Stock {
    generation: u64,
    left: u64,
    awards: HashMap<AwardId, u64>,
    expires_at: DateTime<Utc>,
    /// Claims not settled yet, with their claim time (ms).
    pending: HashMap<TakeId, i64>,
    /// Every claimant has an entry in `users` (see [`StockSnapshot::nobody_drew`]).
    complete: bool,
}

#[derive(Debug)]
struct Used {
    generation: u64,
    used: u32,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
enum ClaimRecord {
    Held {
        outcome: ClaimOutcome,
        took: bool,
        user: UserId,
        generation: u64,
        expires_at: DateTime<Utc>,
    },
    /// Released after it was made, or before (a marker that refuses the late claim).
    Withdrawn { expires_at: DateTime<Utc> },
}

#[derive(Debug, Default)]
struct State {
    activities: HashMap<ActivityId, Stock>,
    users: Expiring<(ActivityId, UserId), Used>,
    // Keyed by activity too, as the Redis keys are.
    claims: Expiring<(ActivityId, TakeId), ClaimRecord>,
    claims_since_sweep: u32,
}

impl Expires for Used {
    fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl Expires for ClaimRecord {
    fn expires_at(&self) -> DateTime<Utc> {
        match self {
            Self::Held { expires_at, .. } | Self::Withdrawn { expires_at } => *expires_at,
        }
    }
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
        self.claims.drop_expired(now, DROPS_PER_CLAIM);
        self.users.drop_expired(now, DROPS_PER_CLAIM);
        self.claims_since_sweep += 1;
        if self.claims_since_sweep < SWEEP_EVERY {
            return;
        }
        self.claims_since_sweep = 0;
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
            self.users.remove_expired(&(activity, user.clone()), now);
        }
        if let Some(claim) = claim {
            self.claims.remove_expired(&(activity, claim), now);
        }
    }

    fn claim(&mut self, c: &StockClaim) -> Result<ClaimOutcome, StockError> {
        self.sweep(Utc::now());
        self.expire(c.activity_id, Some(&c.user_id), Some(c.claim_id));
        match self.claims.get(&(c.activity_id, c.claim_id)) {
            Some(ClaimRecord::Held { outcome, .. }) => return Ok(*outcome),
            Some(ClaimRecord::Withdrawn { .. }) => return Ok(ClaimOutcome::Withdrawn),
            None => {}
        }
        let user_key = (c.activity_id, c.user_id.clone());
        let stock = self
            .activities
            .get(&c.activity_id)
            .ok_or(StockError::NotLoaded(Missing::Activity(c.activity_id, 0)))?;
        let generation = stock.generation;
        let not_loaded = || StockError::NotLoaded(Missing::Activity(c.activity_id, generation));
        // Every check first, with nothing changed yet, so an early return takes nothing.
        if c.take {
            // Sold out needs no user: a spike of new users is answered without loading them.
            if stock.left == 0 {
                return Ok(ClaimOutcome::SoldOut);
            }
            match self.users.get(&user_key) {
                Some(user) if user.generation == generation => {
                    if user.used >= c.take_limit {
                        return Ok(ClaimOutcome::QuotaExhausted);
                    }
                }
                _ => {
                    return Err(StockError::NotLoaded(Missing::User {
                        activity: c.activity_id,
                        user: c.user_id.clone(),
                        generation,
                    }));
                }
            }
        }
        let mut award = None;
        let mut fallback = false;
        let mut exhausted = false;
        if let Some(wanted) = c.award {
            let left = *stock.awards.get(&wanted).ok_or_else(not_loaded)?;
            if left > 0 {
                award = Some(wanted);
            } else {
                exhausted = true;
                if let Some(f) = c.fallback
                    && *stock.awards.get(&f).ok_or_else(not_loaded)? > 0
                {
                    award = Some(f);
                    fallback = true;
                }
            }
        }
        // Then every change; the checks above guarantee each entry exists and is positive.
        if c.take
            && let Some(user) = self.users.get_mut(&user_key)
        {
            user.used += 1;
        }
        if let Some(stock) = self.activities.get_mut(&c.activity_id) {
            if c.take {
                stock.left -= 1;
            }
            if let Some(left) = award.and_then(|a| stock.awards.get_mut(&a)) {
                *left -= 1;
            }
            stock
                .pending
                .insert(c.claim_id, Utc::now().timestamp_millis());
        }
        let outcome = ClaimOutcome::Granted {
            award,
            fallback,
            award_exhausted: exhausted,
            generation,
        };
        self.claims.insert(
            (c.activity_id, c.claim_id),
            ClaimRecord::Held {
                outcome,
                took: c.take,
                user: c.user_id.clone(),
                generation,
                expires_at: crate::claim_record_expiry(c.expires_at),
            },
        );
        Ok(outcome)
    }

    fn release(&mut self, c: &StockClaim) {
        self.expire(c.activity_id, Some(&c.user_id), Some(c.claim_id));
        let key = (c.activity_id, c.claim_id);
        let withdrawn = ClaimRecord::Withdrawn {
            expires_at: crate::claim_record_expiry(c.expires_at),
        };
        let Some(ClaimRecord::Held {
            outcome,
            took,
            generation,
            ..
        }) = self.claims.insert(key, withdrawn.clone())
        else {
            // Released before, or never claimed: the marker refuses a late claim.
            return;
        };
        let ClaimOutcome::Granted { award, .. } = outcome else {
            return;
        };
        // Stock of an older generation was counted afresh by the reload: give nothing back.
        if let Some(stock) = self.activities.get_mut(&c.activity_id) {
            stock.pending.remove(&c.claim_id);
            if stock.generation != generation {
                return;
            }
            if took {
                stock.left += 1;
            }
            if let Some(left) = award.and_then(|a| stock.awards.get_mut(&a)) {
                *left += 1;
            }
        }
        if took
            && let Some(user) = self.users.get_mut(&(c.activity_id, c.user_id.clone()))
            && user.generation == generation
        {
            user.used = user.used.saturating_sub(1);
        }
    }

    fn pending(&mut self, activity: ActivityId, before_ms: i64, limit: usize) -> Vec<PendingClaim> {
        self.expire(activity, None, None);
        let Some(stock) = self.activities.get(&activity) else {
            return Vec::new();
        };
        let mut due: Vec<(i64, TakeId)> = stock
            .pending
            .iter()
            .filter(|(_, at)| **at <= before_ms)
            .map(|(id, at)| (*at, *id))
            .collect();
        due.sort_unstable();
        due.truncate(limit.max(1));
        let mut out = Vec::with_capacity(due.len());
        let mut gone = Vec::new();
        for (at, id) in due {
            match self.claims.get(&(activity, id)) {
                Some(ClaimRecord::Held {
                    outcome: ClaimOutcome::Granted { award, .. },
                    took,
                    user,
                    generation,
                    ..
                }) => out.push(PendingClaim {
                    claim_id: id,
                    user_id: user.clone(),
                    generation: *generation,
                    claimed_at_ms: at,
                    took: *took,
                    award: *award,
                }),
                _ => gone.push(id),
            }
        }
        if let Some(stock) = self.activities.get_mut(&activity) {
            for id in gone {
                stock.pending.remove(&id);
            }
        }
        out
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
        if st
            .activities
            .get(&s.activity_id)
            .is_some_and(|live| live.generation >= s.generation)
        {
            return Ok(());
        }
        let (pending, complete) = st
            .activities
            .remove(&s.activity_id)
            .map(|old| (old.pending, old.complete))
            .unwrap_or_default();
        st.activities.insert(
            s.activity_id,
            Stock {
                generation: s.generation,
                left: s.stock_left,
                awards: s.awards_left.iter().copied().collect(),
                expires_at: s.expires_at,
                pending,
                complete: complete || s.nobody_drew,
            },
        );
        Ok(())
    }

    async fn load_user(
        &self,
        activity: ActivityId,
        user: &UserId,
        used: u32,
        generation: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StockError> {
        let mut st = self.lock();
        st.expire(activity, Some(user), None);
        let key = (activity, user.clone());
        if st
            .users
            .get(&key)
            .is_some_and(|u| u.generation >= generation)
        {
            return Ok(());
        }
        st.users.insert(
            key,
            Used {
                generation,
                used,
                expires_at,
            },
        );
        Ok(())
    }

    async fn generation(&self, activity: ActivityId) -> Result<Option<u64>, StockError> {
        let mut st = self.lock();
        st.expire(activity, None, None);
        Ok(st.activities.get(&activity).map(|s| s.generation))
    }

    async fn user_takes(
        &self,
        activity: ActivityId,
        user: &UserId,
    ) -> Result<Option<u32>, StockError> {
        let mut st = self.lock();
        st.expire(activity, Some(user), None);
        if let Some(u) = st.users.get(&(activity, user.clone())) {
            return Ok(Some(u.used));
        }
        Ok(st
            .activities
            .get(&activity)
            .is_some_and(|s| s.complete)
            .then_some(0))
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

    async fn pending_claims(
        &self,
        activity: ActivityId,
        claimed_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingClaim>, StockError> {
        Ok(self.lock().pending(activity, claimed_before_ms, limit))
    }

    async fn settle(&self, activity: ActivityId, claims: &[TakeId]) -> Result<(), StockError> {
        let mut st = self.lock();
        if let Some(stock) = st.activities.get_mut(&activity) {
            for c in claims {
                stock.pending.remove(c);
            }
        }
        Ok(())
    }

    async fn now_ms(&self) -> Result<i64, StockError> {
        Ok(Utc::now().timestamp_millis())
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
        let future = Utc::now() + chrono::Duration::hours(1);
        let activity = ActivityId::new(1).expect("id");
        let snapshot = |expires_at| StockSnapshot {
            activity_id: activity,
            generation: 1,
            stock_left: 3,
            awards_left: vec![],
            expires_at,
            nobody_drew: false,
        };
        ledger.load_activity(&snapshot(past)).await.expect("load");
        assert_eq!(ledger.stock_left(activity).await, Ok(None));
        ledger.load_activity(&snapshot(future)).await.expect("load");

        for id in 1..=i64::from(SWEEP_EVERY) {
            ledger.claim(&claim(id, past)).await.expect("claim");
        }
        // Each claim dropped expired records of one part: at most the few written since a
        // part's last turn are left.
        ledger
            .claim(&claim(1_000_000, future))
            .await
            .expect("claim");
        let st = ledger.lock();
        assert!(
            st.claims.len() <= 2 * 64,
            "{} claim records kept",
            st.claims.len()
        );
    }

    /// Expired records go a few per claim, soon after they expire, and no claim drops more
    /// than a few: no claim waits on a pass over millions of entries.
    #[tokio::test]
    async fn expired_records_go_a_few_per_claim() {
        let ledger = MemoryLedger::new();
        let future = Utc::now() + chrono::Duration::hours(1);
        let activity = ActivityId::new(1).expect("id");
        let snapshot = StockSnapshot {
            activity_id: activity,
            generation: 1,
            stock_left: 3,
            awards_left: vec![],
            expires_at: future,
            nobody_drew: false,
        };
        ledger.load_activity(&snapshot).await.expect("load");
        let soon = Utc::now() + chrono::Duration::milliseconds(300);
        for id in 1..=5_000 {
            ledger.claim(&claim(id, soon)).await.expect("claim");
        }
        assert_eq!(ledger.lock().claims.len(), 5_000);
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        // Two turns of every part.
        let rounds = 2 * 64;
        for id in 0..rounds {
            let before = ledger.lock().claims.len();
            ledger
                .claim(&claim(10_000 + id as i64, future))
                .await
                .expect("claim");
            let after = ledger.lock().claims.len();
            assert!(
                before + 1 - after <= DROPS_PER_CLAIM,
                "{before} -> {after} records in one claim"
            );
        }
        assert_eq!(
            ledger.lock().claims.len(),
            rounds,
            "every expired record is gone, the new ones stay"
        );
    }
}
