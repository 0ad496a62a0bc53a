use lottery_domain::{RepoResult, TreeId};

use crate::RuleTree;

/// Where rule trees are kept. Implemented by the storage adapters, which store
/// [`RuleTree::spec`] and rebuild through [`RuleTree::from_spec`] (reporting a rejected tree
/// as [`lottery_domain::RepoError::Corrupt`]).
#[async_trait::async_trait]
pub trait RuleTreeRepository: Send + Sync {
    /// Inserts or replaces the tree with this id.
    async fn save(&self, tree: &RuleTree) -> RepoResult<()>;

    async fn tree(&self, id: TreeId) -> RepoResult<Option<RuleTree>>;

    /// Stored trees, newest first: `limit` of them after skipping `offset`.
    async fn list(&self, offset: u32, limit: u32) -> RepoResult<Vec<TreeSummary>>;
}

/// A stored tree named in a listing (read the whole tree with [`RuleTreeRepository::tree`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    pub id: TreeId,
    pub name: String,
    pub nodes: u32,
    pub lines: u32,
}
