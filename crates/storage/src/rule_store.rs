//! Rule trees: one row per tree, node and line, in the global database.

use chrono::Utc;
use db_router::Router;
use lottery_domain::{RepoResult, TreeId};
use lottery_rule::{Line, Node, NodeId, NodeKind, RuleTree, RuleTreeRepository, TreeSummary};

use crate::error::{Within, corrupt, repo};
use crate::rows::{int, millis, opt_text, parse, text};

#[derive(Debug, Clone)]
pub struct RuleTreeStore {
    router: Router,
}

impl RuleTreeStore {
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

#[async_trait::async_trait]
impl RuleTreeRepository for RuleTreeStore {
    async fn save(&self, tree: &RuleTree) -> RepoResult<()> {
        let mut tx = self.router.global().begin().await.map_err(repo)?;
        sqlx::query(
            "INSERT INTO rule_tree (tree_id, name, root_node, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tree.id().get())
        .bind(tree.name())
        .bind(tree.root().get())
        .bind(millis(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(repo)?;
        for node in tree.nodes() {
            let (kind, key, value) = match &node.kind {
                NodeKind::Stem { rule_key } => ("stem", Some(rule_key.as_str()), None),
                NodeKind::Fruit { value } => ("fruit", None, Some(value.as_str())),
            };
            sqlx::query("INSERT INTO rule_tree_node (tree_id, node_id, kind, rule_key, value) VALUES (?, ?, ?, ?, ?)")
                .bind(tree.id().get())
                .bind(node.id.get())
                .bind(kind)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(repo)?;
        }
        for (line_no, line) in tree.lines().iter().enumerate() {
            sqlx::query(
                "INSERT INTO rule_tree_line (tree_id, line_no, from_node, to_node, op, value) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(tree.id().get())
            .bind(line_no as i64)
            .bind(line.from.get())
            .bind(line.to.get())
            .bind(line.op.as_str())
            .bind(line.value.as_str())
            .execute(&mut *tx)
            .await
            .map_err(repo)?;
        }
        tx.commit().await.map_err(repo)
    }

    async fn tree(&self, id: TreeId) -> RepoResult<Option<RuleTree>> {
        let pool = self.router.global();
        let Some(head) = sqlx::query("SELECT name, root_node FROM rule_tree WHERE tree_id = ?")
            .bind(id.get())
            .fetch_optional(pool)
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?
        else {
            return Ok(None);
        };
        let nodes = sqlx::query("SELECT node_id, kind, rule_key, value FROM rule_tree_node WHERE tree_id = ? ORDER BY node_id")
            .bind(id.get())
            .fetch_all(pool).within(self.router.read_timeout())
            .await
            .map_err(repo)?
            .iter()
            .map(|r| {
                let node = NodeId::from(int(r, "node_id")?);
                Ok(match text(r, "kind")?.as_str() {
                    "stem" => Node::stem(node, opt_text(r, "rule_key")?.unwrap_or_default()),
                    "fruit" => Node::fruit(node, opt_text(r, "value")?.unwrap_or_default()),
                    other => return Err(corrupt(format!("rule node kind {other:?}"))),
                })
            })
            .collect::<RepoResult<Vec<_>>>()?;
        let lines = sqlx::query(
            "SELECT from_node, to_node, op, value FROM rule_tree_line WHERE tree_id = ? ORDER BY line_no",
        )
        .bind(id.get())
        .fetch_all(pool).within(self.router.read_timeout())
        .await
        .map_err(repo)?
        .iter()
        .map(|r| {
            Ok(Line::new(
                int(r, "from_node")?,
                int(r, "to_node")?,
                parse("op", text(r, "op")?.parse())?,
                text(r, "value")?,
            ))
        })
        .collect::<RepoResult<Vec<_>>>()?;
        let tree = RuleTree::new(
            id,
            text(&head, "name")?,
            NodeId::from(int(&head, "root_node")?),
            nodes,
            lines,
        )
        .map_err(|e| corrupt(format!("rule tree {id}: {e}")))?;
        Ok(Some(tree))
    }

    async fn list(&self, offset: u32, limit: u32) -> RepoResult<Vec<TreeSummary>> {
        sqlx::query(
            "SELECT t.tree_id, t.name, \
             (SELECT COUNT(*) FROM rule_tree_node n WHERE n.tree_id = t.tree_id) AS nodes, \
             (SELECT COUNT(*) FROM rule_tree_line l WHERE l.tree_id = t.tree_id) AS line_count \
             FROM rule_tree t ORDER BY t.created_at DESC, t.tree_id DESC LIMIT ? OFFSET ?",
        )
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(self.router.global())
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?
        .iter()
        .map(|r| {
            Ok(TreeSummary {
                id: parse("tree_id", TreeId::new(int(r, "tree_id")?))?,
                name: text(r, "name")?,
                nodes: u32::try_from(int(r, "nodes")?).unwrap_or(u32::MAX),
                lines: u32::try_from(int(r, "line_count")?).unwrap_or(u32::MAX),
            })
        })
        .collect()
    }
}
