use std::collections::HashMap;

use lottery_domain::TreeId;
use serde::{Deserialize, Serialize};

use crate::eval::{Decision, EvalError};
use crate::facts::FactSource;
use crate::limit::{EnumListError, Limit, number};
use crate::model::{Line, LineRef, Node, NodeId, NodeKind, RuleTreeSpec, TreeError};

/// A compiled line: the child's position in the node list and its parsed limit.
#[derive(Debug, Clone)]
struct Edge {
    to: usize,
    line: usize,
    limit: Limit,
}

/// A node's outgoing edges, as a slice of [`RuleTree::edges`].
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

/// A validated decision tree.
///
/// Only [`RuleTree::new`] and [`RuleTree::from_spec`] build one, so every tree in hand has a
/// single root, no cycles, no unreachable nodes, and stems that all lead somewhere. The lines
/// are compiled at build time (adjacency by position, limits parsed) so that evaluation does no
/// lookups by id and no allocation other than the returned path.
#[derive(Debug, Clone)]
pub struct RuleTree {
    spec: RuleTreeSpec,
    root: usize,
    /// Outgoing edges per node, indexed like `spec.nodes`.
    out: Vec<Span>,
    /// All edges, grouped by source node, each group in declared order.
    edges: Vec<Edge>,
    depth: usize,
}

impl RuleTree {
    /// Validates and builds a tree. Lines are tried in the order given.
    pub fn new(
        id: TreeId,
        name: impl Into<String>,
        root: NodeId,
        nodes: Vec<Node>,
        lines: Vec<Line>,
    ) -> Result<Self, TreeError> {
        Self::from_spec(RuleTreeSpec {
            id,
            name: name.into(),
            root,
            nodes,
            lines,
        })
    }

    /// Validates and builds a tree from its stored parts.
    pub fn from_spec(spec: RuleTreeSpec) -> Result<Self, TreeError> {
        let nodes = &spec.nodes;
        let mut index = HashMap::with_capacity(nodes.len());
        for (pos, node) in nodes.iter().enumerate() {
            if index.insert(node.id, pos).is_some() {
                return Err(TreeError::DuplicateNode(node.id));
            }
            match &node.kind {
                NodeKind::Stem { rule_key } if rule_key.trim().is_empty() => {
                    return Err(TreeError::EmptyRuleKey(node.id));
                }
                NodeKind::Fruit { value } if value.trim().is_empty() => {
                    return Err(TreeError::EmptyFruitValue(node.id));
                }
                _ => {}
            }
        }
        let root = *index
            .get(&spec.root)
            .ok_or(TreeError::UnknownRoot(spec.root))?;

        let mut outgoing: Vec<Vec<Edge>> = (0..nodes.len()).map(|_| Vec::new()).collect();
        for (i, line) in spec.lines.iter().enumerate() {
            let at = LineRef::of(i, line);
            let from = *index
                .get(&line.from)
                .ok_or(TreeError::UnknownLineSource { line: at })?;
            if matches!(nodes[from].kind, NodeKind::Fruit { .. }) {
                return Err(TreeError::LineFromFruit { line: at });
            }
            let to = *index
                .get(&line.to)
                .ok_or(TreeError::UnknownLineTarget { line: at })?;
            if to == root {
                return Err(TreeError::RootIsTarget {
                    root: spec.root,
                    line: at,
                });
            }
            let limit = Limit::new(line.op, &line.value).map_err(|e| {
                let list = line.value.clone();
                match e {
                    EnumListError::Empty => TreeError::EmptyEnumList { line: at, list },
                    EnumListError::BlankItem => TreeError::BlankEnumItem { line: at, list },
                }
            })?;
            outgoing[from].push(Edge { to, line: i, limit });
        }
        for (node, out) in nodes.iter().zip(&outgoing) {
            if matches!(node.kind, NodeKind::Stem { .. }) && out.is_empty() {
                return Err(TreeError::StemWithoutLines(node.id));
            }
        }

        let mut out = Vec::with_capacity(nodes.len());
        let mut edges = Vec::with_capacity(spec.lines.len());
        for group in outgoing {
            let start = edges.len();
            edges.extend(group);
            out.push(Span {
                start,
                end: edges.len(),
            });
        }

        let depth = check_shape(&spec, root, &out, &edges)?;
        Ok(Self {
            spec,
            root,
            out,
            edges,
            depth,
        })
    }

    pub fn id(&self) -> TreeId {
        self.spec.id
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn root(&self) -> NodeId {
        self.spec.root
    }

    pub fn nodes(&self) -> &[Node] {
        &self.spec.nodes
    }

    pub fn lines(&self) -> &[Line] {
        &self.spec.lines
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.spec.nodes.iter().find(|n| n.id == id)
    }

    /// The parts the tree was built from, for adapters that store nodes and lines.
    pub fn spec(&self) -> &RuleTreeSpec {
        &self.spec
    }

    pub fn into_spec(self) -> RuleTreeSpec {
        self.spec
    }

    /// The number of nodes on the longest path from the root to a fruit.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Walks from the root: at each stem, the first line (in declared order) whose limit the
    /// fact satisfies is followed, until a fruit is reached.
    pub fn evaluate<F: FactSource + ?Sized>(&self, facts: &F) -> Result<Decision, EvalError> {
        let mut path = Vec::with_capacity(self.depth);
        let mut at = self.root;
        // Validation guarantees acyclicity, so this ends within `depth` steps.
        loop {
            let node = &self.spec.nodes[at];
            path.push(node.id);
            let rule_key = match &node.kind {
                NodeKind::Fruit { value } => {
                    return Ok(Decision {
                        value: value.clone(),
                        path,
                    });
                }
                NodeKind::Stem { rule_key } => rule_key,
            };
            let fact = facts.fact(rule_key).ok_or_else(|| EvalError::MissingFact {
                node: node.id,
                key: rule_key.clone(),
            })?;
            let fact_num = number(fact);
            let span = self.out[at];
            let next = self.edges[span.start..span.end]
                .iter()
                .find(|edge| edge.limit.matches(fact, fact_num))
                .ok_or_else(|| EvalError::NoMatchingLine {
                    node: node.id,
                    key: rule_key.clone(),
                    value: fact.to_owned(),
                })?;
            at = next.to;
        }
    }
}

/// Depth-first from the root, iteratively so a deep tree cannot overflow the stack. Rejects
/// cycles and unreachable nodes, and returns the longest root-to-fruit path length in nodes.
fn check_shape(
    spec: &RuleTreeSpec,
    root: usize,
    out: &[Span],
    edges: &[Edge],
) -> Result<usize, TreeError> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let n = spec.nodes.len();
    let mut state = vec![NEW; n];
    let mut depth = vec![0usize; n];
    // Each frame is a node and how many of its edges have been followed.
    let mut stack = vec![(root, 0usize)];
    state[root] = OPEN;
    while let Some(frame) = stack.last_mut() {
        let (at, cursor) = *frame;
        let span = out[at];
        if span.start + cursor < span.end {
            frame.1 += 1;
            let edge = &edges[span.start + cursor];
            match state[edge.to] {
                NEW => {
                    state[edge.to] = OPEN;
                    stack.push((edge.to, 0));
                }
                OPEN => {
                    let line = LineRef::of(edge.line, &spec.lines[edge.line]);
                    return Err(TreeError::Cycle { line });
                }
                _ => {}
            }
        } else {
            let below = edges[span.start..span.end]
                .iter()
                .map(|e| depth[e.to])
                .max()
                .unwrap_or(0);
            depth[at] = below + 1;
            state[at] = DONE;
            stack.pop();
        }
    }
    if let Some(pos) = state.iter().position(|&s| s != DONE) {
        return Err(TreeError::Unreachable(spec.nodes[pos].id));
    }
    Ok(depth[root])
}

impl PartialEq for RuleTree {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Eq for RuleTree {}

/// Serialised as its [`RuleTreeSpec`].
impl Serialize for RuleTree {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(s)
    }
}

/// Deserialised through [`RuleTree::from_spec`], so stored data is validated again.
impl<'de> Deserialize<'de> for RuleTree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = RuleTreeSpec::deserialize(d)?;
        Self::from_spec(spec).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RuleTreeSpec> for RuleTree {
    type Error = TreeError;

    fn try_from(spec: RuleTreeSpec) -> Result<Self, Self::Error> {
        Self::from_spec(spec)
    }
}

impl From<RuleTree> for RuleTreeSpec {
    fn from(tree: RuleTree) -> Self {
        tree.spec
    }
}
