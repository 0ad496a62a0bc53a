use lottery_domain::{AwardId, RepoResult};

use crate::{Award, AwardError, AwardKind, Delivery, DistributeError, Grant};

/// Delivers one kind of award. The single extension point for new prize kinds.
#[async_trait::async_trait]
pub trait AwardDistributor: Send + Sync {
    /// The kind this distributor serves.
    fn kind(&self) -> AwardKind;

    /// Checks an award of this kind when an activity is deployed, so a bad prize is refused
    /// up front instead of failing at delivery. Accepts everything unless overridden.
    fn validate(&self, award: &Award) -> Result<(), AwardError> {
        let _ = award;
        Ok(())
    }

    /// Whether an award of this kind can only be delivered to a shipping address. A win
    /// whose draw carried none is then stored `awaiting_address` and nothing is delivered
    /// until the winner gives one (`PUT /api/v1/me/orders/{order_id}/shipping`); the grant
    /// reaching [`distribute`](Self::distribute) carries it. False unless overridden.
    fn needs_address(&self) -> bool {
        false
    }

    /// Delivers the award. Called at least once per grant (redeliveries happen), so it must be
    /// idempotent per `grant.order_id`.
    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError>;
}

/// Where award definitions are kept. Implemented by the storage adapters.
#[async_trait::async_trait]
pub trait AwardRepository: Send + Sync {
    async fn award(&self, id: AwardId) -> RepoResult<Option<Award>>;
    async fn awards(&self, ids: &[AwardId]) -> RepoResult<Vec<Award>>;
}
