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
