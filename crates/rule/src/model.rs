use std::fmt;
use std::str::FromStr;

use lottery_domain::TreeId;
use serde::{Deserialize, Serialize};

/// Identifies a node within one tree. Only unique per tree, so any `i64` is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub i64);

impl NodeId {
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for NodeId {
    fn from(raw: i64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a node does: a stem asks for a fact, a fruit holds the result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    /// Branches on the fact named `rule_key` (for example `gender` or `age`).
    Stem { rule_key: String },
    /// A leaf; `value` is opaque here (the application parses it, e.g. as an activity id).
    Fruit { value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    #[serde(flatten)]
    pub kind: NodeKind,
}

impl Node {
    pub fn stem(id: impl Into<NodeId>, rule_key: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: NodeKind::Stem {
                rule_key: rule_key.into(),
            },
        }
    }

    pub fn fruit(id: impl Into<NodeId>, value: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: NodeKind::Fruit {
                value: value.into(),
            },
        }
    }
}

/// How a line's limit is compared with the fact.
///
/// Comparisons are numeric when both sides parse as decimal numbers, textual otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineOp {
    Eq,
    Gt,
    Lt,
    Ge,
    Le,
    /// The fact is one of the comma-separated items of the limit.
    Enum,
}

impl LineOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Gt => "gt",
            Self::Lt => "lt",
            Self::Ge => "ge",
            Self::Le => "le",
            Self::Enum => "enum",
        }
    }
}

impl fmt::Display for LineOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LineOp {
    type Err = TreeError;

    /// Case-insensitive, so stored upper-case names ("EQ", "ENUM") parse too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        [Self::Eq, Self::Gt, Self::Lt, Self::Ge, Self::Le, Self::Enum]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| TreeError::UnknownOp(s.to_owned()))
    }
}

/// An edge from a stem to a child, taken when the stem's fact satisfies `op value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Line {
    pub from: NodeId,
    pub to: NodeId,
    pub op: LineOp,
    pub value: String,
}

impl Line {
    pub fn new(
        from: impl Into<NodeId>,
        to: impl Into<NodeId>,
        op: LineOp,
        value: impl Into<String>,
    ) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            op,
            value: value.into(),
        }
    }
}

/// The raw parts of a tree, as stored. Turn it into a [`crate::RuleTree`] with
/// [`crate::RuleTree::from_spec`], which validates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTreeSpec {
    pub id: TreeId,
    pub name: String,
    pub root: NodeId,
    pub nodes: Vec<Node>,
    /// Order matters: at each stem the first matching line (in this order) wins.
    pub lines: Vec<Line>,
}

/// Names a line in errors: its position in the declared list and its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineRef {
    pub index: usize,
    pub from: NodeId,
    pub to: NodeId,
}

impl LineRef {
    pub(crate) fn of(index: usize, line: &Line) -> Self {
        Self {
            index,
            from: line.from,
            to: line.to,
        }
    }
}

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line #{} ({} -> {})", self.index, self.from, self.to)
    }
}

/// Why a tree was rejected. Each variant names the offending node or line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("node id {0} is used by more than one node")]
    DuplicateNode(NodeId),
    #[error("root node {0} is not one of the tree's nodes")]
    UnknownRoot(NodeId),
    #[error("{line} leads into the root node {root}; the root must have no incoming lines")]
    RootIsTarget { root: NodeId, line: LineRef },
    #[error("{line} starts at node {}, which does not exist", line.from)]
    UnknownLineSource { line: LineRef },
    #[error("{line} ends at node {}, which does not exist", line.to)]
    UnknownLineTarget { line: LineRef },
    #[error("{line} starts at fruit node {}; fruits cannot have outgoing lines", line.from)]
    LineFromFruit { line: LineRef },
    #[error("stem node {0} has an empty rule key")]
    EmptyRuleKey(NodeId),
    #[error("fruit node {0} has an empty value")]
    EmptyFruitValue(NodeId),
    #[error("stem node {0} has no outgoing lines")]
    StemWithoutLines(NodeId),
    #[error("{line} has an enum limit {list:?} with no items")]
    EmptyEnumList { line: LineRef, list: String },
    #[error("{line} has an enum limit {list:?} with a blank item")]
    BlankEnumItem { line: LineRef, list: String },
    #[error("{line} closes a cycle back to node {}", line.to)]
    Cycle { line: LineRef },
    #[error("node {0} cannot be reached from the root")]
    Unreachable(NodeId),
    #[error("unknown line operator {0:?} (expected eq, gt, lt, ge, le or enum)")]
    UnknownOp(String),
}
