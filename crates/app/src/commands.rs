//! Admin use cases: deploy, revise, review actions, rule trees.

use chrono::{DateTime, Utc};
use lottery_activity::{
    Action, Activity, ActivityFilter, ActivitySpec, ActivityState, Deploy, Deployment, Page,
    Revise, TakenId,
};
use lottery_award::{Award, AwardKind};
use lottery_domain::{ActivityId, AwardId, StrategyId, TreeId};
use lottery_rule::RuleTree;
use lottery_strategy::{DrawMode, Rate, Strategy, StrategyAward};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use lottery_activity::{ActivityRepository, OrderRepository};
use lottery_award::{AwardRegistry, AwardRepository};
use lottery_ids::IdSource;
use lottery_rule::RuleTreeRepository;
use lottery_strategy::StrategyRepository;

use crate::AppError;
use crate::parts::{Changes, StockView};

/// One award of a deploy request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardSpec {
    /// Generated when absent.
    #[serde(default)]
    pub award_id: Option<AwardId>,
    #[serde(rename = "type")]
    pub kind: AwardKind,
    pub name: String,
    #[serde(default)]
    pub content: String,
    /// How many of this prize there are.
    pub count: u32,
    pub rate: Rate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategySpec {
    pub mode: DrawMode,
    /// Index into `awards` or an award id given there: the prize handed out when a won award
    /// is out of stock.
    #[serde(default)]
    pub fallback_award_id: Option<AwardId>,
    pub awards: Vec<AwardSpec>,
}

/// Everything needed to deploy (or revise) an activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployCommand {
    #[serde(default)]
    pub activity_id: Option<ActivityId>,
    #[serde(default)]
    pub strategy_id: Option<StrategyId>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub begin_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub stock: u32,
    pub take_limit: u32,
    pub strategy: StrategySpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    pub activity_id: ActivityId,
    pub strategy_id: StrategyId,
    pub award_ids: Vec<AwardId>,
    pub state: ActivityState,
}

fn invalid(e: impl std::fmt::Display) -> AppError {
    AppError::Invalid(e.to_string())
}

/// The admin use cases: deploy, revise, review actions, rule trees, the admin's views.
/// Holds only the ports they use.
#[derive(Clone)]
pub struct Administration {
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) strategies: Arc<dyn StrategyRepository>,
    pub(crate) awards: Arc<dyn AwardRepository>,
    pub(crate) rule_trees: Arc<dyn RuleTreeRepository>,
    pub(crate) orders: Arc<dyn OrderRepository>,
    pub(crate) ids: Arc<dyn IdSource>,
    pub(crate) registry: AwardRegistry,
    pub(crate) stock: StockView,
    pub(crate) changes: Changes,
}

impl std::fmt::Debug for Administration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Administration").finish_non_exhaustive()
    }
}

impl Administration {
    fn build_deployment(
        &self,
        cmd: DeployCommand,
        activity_id: ActivityId,
        strategy_id: StrategyId,
        creator: &str,
    ) -> Result<Deployment, AppError> {
        let mut awards = Vec::with_capacity(cmd.strategy.awards.len());
        let mut strategy_awards = Vec::with_capacity(cmd.strategy.awards.len());
        for spec in cmd.strategy.awards {
            let id = match spec.award_id {
                Some(id) => id,
                None => self.ids.award_id()?,
            };
            awards.push(
                Award::new(id, spec.kind, spec.name, spec.content)
                    .map_err(|e| invalid(format!("award {id}: {e}")))?,
            );
            strategy_awards.push(StrategyAward {
                award_id: id,
                rate: spec.rate,
                count: spec.count,
            });
        }
        let strategy = Strategy::new(
            strategy_id,
            cmd.strategy.mode,
            strategy_awards,
            cmd.strategy.fallback_award_id,
        )
        .map_err(invalid)?;
        let spec = ActivitySpec {
            name: cmd.name,
            description: cmd.description,
            begin: cmd.begin_time,
            end: cmd.end_time,
            stock: cmd.stock,
            take_limit: cmd.take_limit,
        };
        let activity = Activity::new(activity_id, spec, strategy_id, creator).map_err(invalid)?;
        Deployment::new(activity, strategy, awards, &self.registry).map_err(invalid)
    }

    /// Deploys an activity with its strategy and awards, in `editing`. Ids not supplied are
    /// generated; a generated id that happens to be taken (date-based activity codes meet
    /// within a busy day) is generated anew, while a supplied id that is taken is refused:
    /// a deployment never changes another activity.
    pub async fn deploy(&self, cmd: DeployCommand, creator: &str) -> Result<Deployed, AppError> {
        const ATTEMPTS: usize = 16;
        let supplied_awards: Vec<AwardId> = cmd
            .strategy
            .awards
            .iter()
            .filter_map(|a| a.award_id)
            .collect();
        let mut ids = (cmd.activity_id, cmd.strategy_id);
        let mut award_ids = Vec::new();
        for _ in 0..ATTEMPTS {
            let activity_id = ids.0.unwrap_or_else(|| self.ids.activity_id());
            let strategy_id = ids.1.unwrap_or_else(|| self.ids.strategy_id());
            let mut attempt = cmd.clone();
            for (spec, id) in attempt.strategy.awards.iter_mut().zip(&award_ids) {
                spec.award_id = spec.award_id.or(Some(*id));
            }
            let d = self.build_deployment(attempt, activity_id, strategy_id, creator)?;
            award_ids = d.awards.iter().map(|a| a.id).collect();
            let taken = match self.activities.deploy(&d).await? {
                Deploy::Deployed => {
                    return Ok(Deployed {
                        activity_id,
                        strategy_id,
                        award_ids,
                        state: d.activity.state(),
                    });
                }
                Deploy::Taken(taken) => taken,
            };
            let supplied = match taken {
                TakenId::Activity(_) => cmd.activity_id.is_some(),
                TakenId::Strategy(_) => cmd.strategy_id.is_some(),
                TakenId::Award(id) => supplied_awards.contains(&id),
            };
            if supplied {
                return Err(AppError::Conflict(format!(
                    "{taken} is already in use by another activity; leave it out to have one generated"
                )));
            }
            // Keep what was generated, except the id that was taken (award ids stay in the
            // order of the specs, which is the order of the deployment's awards).
            match taken {
                TakenId::Activity(_) => ids.1 = Some(strategy_id),
                TakenId::Strategy(_) => ids.0 = Some(activity_id),
                TakenId::Award(_) => {
                    ids = (Some(activity_id), Some(strategy_id));
                    // Award ids come from the snowflake: generate them all again.
                    award_ids.clear();
                }
            }
        }
        Err(AppError::unavailable(
            "no free id could be generated for the deployment; retry",
        ))
    }

    /// Replaces an activity's content while it is being edited.
    pub async fn revise(
        &self,
        id: ActivityId,
        cmd: DeployCommand,
        creator: &str,
    ) -> Result<Deployed, AppError> {
        let current = self.activity(id).await?;
        if current.state() != ActivityState::Editing {
            return Err(invalid_state(current.state()));
        }
        let d = self.build_deployment(cmd, id, current.strategy_id(), creator)?;
        match self.activities.revise(&d).await? {
            Revise::Revised => {}
            Revise::NotEditing => {
                return Err(AppError::Conflict(format!(
                    "activity {id} left editing while being revised"
                )));
            }
            Revise::Taken(taken) => {
                return Err(AppError::Conflict(format!(
                    "{taken} belongs to another activity; leave it out to have one generated"
                )));
            }
        }
        self.changes.changed(id).await;
        Ok(Deployed {
            activity_id: id,
            strategy_id: current.strategy_id(),
            award_ids: d.awards.iter().map(|a| a.id).collect(),
            state: ActivityState::Editing,
        })
    }

    /// Applies a review action as a compare-and-set on the stored state.
    pub async fn act(&self, id: ActivityId, action: Action) -> Result<ActivityState, AppError> {
        let activity = self.activity(id).await?;
        let from = activity.state();
        let to = from.apply(action)?;
        if !self.activities.change_state(id, from, to).await? {
            return Err(AppError::Conflict(format!(
                "activity {id} changed state concurrently; reload and retry"
            )));
        }
        self.changes.changed(id).await;
        Ok(to)
    }

    pub async fn activity(&self, id: ActivityId) -> Result<Activity, AppError> {
        self.activities
            .activity(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("activity {id}")))
    }

    pub async fn list_activities(
        &self,
        filter: &ActivityFilter,
        page: Page,
    ) -> Result<Vec<Activity>, AppError> {
        Ok(self.activities.list(filter, page).await?)
    }

    pub async fn strategy(&self, id: StrategyId) -> Result<Strategy, AppError> {
        self.strategies
            .strategy(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("strategy {id}")))
    }

    pub async fn awards(&self, ids: &[AwardId]) -> Result<Vec<Award>, AppError> {
        Ok(self.awards.awards(ids).await?)
    }

    /// Stock left as the stock store holds it: the activity's and each award's (awards the
    /// store does not hold are left out). `None` when the store has not loaded the activity.
    pub async fn live_stock(
        &self,
        id: ActivityId,
    ) -> Result<Option<lottery_activity::StockCounts>, AppError> {
        self.stock.live(id).await
    }

    /// Live stock, falling back to the database's view for whatever the stock store has not
    /// loaded (or when it is unreachable).
    pub async fn stock(&self, id: ActivityId) -> Result<lottery_activity::StockCounts, AppError> {
        self.stock.counts(id).await
    }

    /// Validates and stores a rule tree (with a generated id unless the tree has one).
    pub async fn save_tree(&self, tree: RuleTree) -> Result<TreeId, AppError> {
        self.rule_trees.save(&tree).await?;
        Ok(tree.id())
    }

    pub async fn tree(&self, id: TreeId) -> Result<RuleTree, AppError> {
        self.rule_trees
            .tree(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("rule tree {id}")))
    }

    /// Stored rule trees, newest first.
    pub async fn trees(&self, page: Page) -> Result<Vec<lottery_rule::TreeSummary>, AppError> {
        Ok(self.rule_trees.list(page.offset, page.limit).await?)
    }

    /// How many of the activity's orders are in each grant state.
    pub async fn grant_counts(
        &self,
        id: ActivityId,
    ) -> Result<Vec<(lottery_award::GrantState, u64)>, AppError> {
        Ok(self.orders.grant_counts(id).await?)
    }

    pub fn new_tree_id(&self) -> Result<TreeId, AppError> {
        Ok(self.ids.tree_id()?)
    }
}

/// Revising is only for activities being edited: anything else has been (or is being)
/// reviewed, so it is a conflict with that state, answered 409.
fn invalid_state(state: ActivityState) -> AppError {
    AppError::Conflict(format!(
        "the activity can only be changed while editing; it is {state}"
    ))
}
