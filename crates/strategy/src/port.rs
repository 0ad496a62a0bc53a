use lottery_domain::{RepoResult, StrategyId};

use crate::Strategy;

/// Where strategies are kept. Implemented by the storage adapters.
#[async_trait::async_trait]
pub trait StrategyRepository: Send + Sync {
    async fn strategy(&self, id: StrategyId) -> RepoResult<Option<Strategy>>;
}
