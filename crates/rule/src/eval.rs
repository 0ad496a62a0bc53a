use serde::{Deserialize, Serialize};

use crate::model::NodeId;

/// The outcome of walking a tree: the fruit's value and the nodes visited, root first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub value: String,
    pub path: Vec<NodeId>,
}

impl Decision {
    /// The fruit node the walk ended at.
    pub fn fruit(&self) -> Option<NodeId> {
        self.path.last().copied()
    }
}

/// Why a walk did not reach a fruit. Both cases come from the facts, never from the tree,
/// which was validated when it was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("node {node} needs fact {key:?}, which was not given")]
    MissingFact { node: NodeId, key: String },
    #[error("no line from node {node} accepts {key} = {value:?}")]
    NoMatchingLine {
        node: NodeId,
        key: String,
        value: String,
    },
}
