//! The reconciler: settles stock claims that no draw settled. A claim is pending from the
//! moment the stock store grants it until its draw's record is known to exist (settled) or
//! known never to exist (given back). A draw that dies between the two (a killed process, a
//! cancelled task, an unreachable store) leaves its claim pending; after a grace period the
//! reconciler voids the claim's take id in the user's shard, which finds the record if it
//! exists and otherwise makes sure it never will, and then settles or gives the claim back.
//! It never gives back a claim whose record exists, so it can neither oversell nor leak.

use std::sync::Arc;
use std::time::Duration;

use lottery_activity::{ActivityRepository, ClaimFate, ClaimRef, DrawRepository, StockLedger};
use lottery_domain::{ActivityId, Clock};
use tracing::{info, warn};

use crate::AppError;
use crate::parts::running_activities;

/// Claims examined per activity and round.
const PER_ROUND: usize = 1_000;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Pending claims past the grace period that were examined.
    pub examined: usize,
    /// Claims whose draws were recorded: settled.
    pub recorded: usize,
    /// Claims with no record: voided and given back (the repairs).
    pub given_back: usize,
    /// Claims of a stock generation that has been reloaded since: the reload counted them.
    pub superseded: usize,
    /// Claims whose shard could not be reached: left for a later round.
    pub unresolved: usize,
}

impl ReconcileReport {
    fn add(&mut self, other: Self) {
        self.examined += other.examined;
        self.recorded += other.recorded;
        self.given_back += other.given_back;
        self.superseded += other.superseded;
        self.unresolved += other.unresolved;
    }
}

#[derive(Clone)]
pub struct Reconciler {
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) stock: Arc<dyn StockLedger>,
    pub(crate) draws: Arc<dyn DrawRepository>,
    pub(crate) clock: Arc<dyn Clock>,
    /// How old a pending claim must be before it is examined; longer than a draw normally
    /// takes, so live draws are left alone.
    pub(crate) grace: Duration,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// One round over every running activity.
    pub async fn run_once(&self) -> Result<ReconcileReport, AppError> {
        let mut report = ReconcileReport::default();
        for activity in running_activities(self.activities.as_ref()).await? {
            report.add(self.reconcile(activity.id()).await?);
        }
        if report.given_back > 0 || report.unresolved > 0 {
            warn!(
                given_back = report.given_back,
                unresolved = report.unresolved,
                recorded = report.recorded,
                "reconciler repaired stock claims that no draw settled"
            );
        } else if report.recorded + report.superseded > 0 {
            info!(
                recorded = report.recorded,
                superseded = report.superseded,
                "reconciler settled claims"
            );
        }
        Ok(report)
    }

    /// One round over one activity.
    pub async fn reconcile(&self, id: ActivityId) -> Result<ReconcileReport, AppError> {
        let stock = &self.stock;
        let mut report = ReconcileReport::default();
        let Some(live) = stock.generation(id).await? else {
            return Ok(report);
        };
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let before = stock.now_ms().await?.saturating_sub(grace);
        let pending = stock.pending_claims(id, before, PER_ROUND).await?;
        let expires_at = self.clock.now() + chrono::Duration::hours(1);
        let mut settled = Vec::new();
        for claim in pending {
            report.examined += 1;
            if claim.generation != live {
                // The reload fenced its record off or counted it: nothing to give back.
                report.superseded += 1;
                settled.push(claim.claim_id);
                continue;
            }
            let pair = ClaimRef {
                take_id: claim.claim_id,
                user_id: claim.user_id.clone(),
                activity_id: id,
            };
            match self.draws.settle_claim(&pair).await {
                Ok(ClaimFate::Recorded) => {
                    report.recorded += 1;
                    settled.push(claim.claim_id);
                }
                Ok(ClaimFate::Voided) => {
                    stock.release(&claim.to_claim(id, expires_at)).await?;
                    report.given_back += 1;
                }
                Err(e) => {
                    report.unresolved += 1;
                    warn!(activity = %id, claim = %claim.claim_id, error = %lottery_domain::Chain(&e),
                        "pending claim left for a later round");
                }
            }
        }
        stock.settle(id, &settled).await?;
        Ok(report)
    }
}
