//! Decision-tree rules.
//!
//! A [`RuleTree`] has a root node; stem nodes name a fact (a rule key such as `gender` or
//! `age`), lines lead from a stem to a child when the fact satisfies the line's limit, and
//! fruit nodes hold the result (for example an activity id, kept as text).
//!
//! Limits compare numerically when both the fact and the limit are decimal numbers ("9" < "10",
//! "25" == "25.0"), and as text otherwise; [`LineOp::Enum`] tests membership in a
//! comma-separated list. Trees are validated when built, and evaluation reports missing facts
//! and unmatched values as [`EvalError`]s rather than panicking.

mod eval;
mod facts;
mod limit;
mod model;
mod port;
mod tree;

pub use eval::{Decision, EvalError};
pub use facts::{FactSource, Facts, FactsError};
pub use model::{Line, LineOp, LineRef, Node, NodeId, NodeKind, RuleTreeSpec, TreeError};
pub use port::{RuleTreeRepository, TreeSummary};
pub use tree::RuleTree;
