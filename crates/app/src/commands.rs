//! Admin use cases (deploy, revise, review actions, rule trees) and the user's views.

use chrono::{DateTime, Utc};
use lottery_activity::{
    Action, Activity, ActivityFilter, ActivitySpec, ActivityState, Deploy, Deployment, Page,
    Revise, TakenId, UserTake, WinOrder,
};
use lottery_award::{Award, AwardKind};
use lottery_domain::{ActivityId, AwardId, StrategyId, TreeId, UserId};
use lottery_rule::RuleTree;
use lottery_strategy::{DrawMode, Rate, Strategy, StrategyAward};
use serde::{Deserialize, Serialize};

use crate::{AppError, Lottery};

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

/// A user's standing in one activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserActivityView {
    pub activity_id: ActivityId,
    pub take_limit: u32,
    pub takes_used: u32,
    pub takes_left: u32,
}

fn invalid(e: impl std::fmt::Display) -> AppError {
    AppError::Invalid(e.to_string())
}

impl Lottery {
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
                None => self.svc.ids.award_id()?,
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
        Deployment::new(activity, strategy, awards, &self.svc.registry).map_err(invalid)
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
            let activity_id = ids.0.unwrap_or_else(|| self.svc.ids.activity_id());
            let strategy_id = ids.1.unwrap_or_else(|| self.svc.ids.strategy_id());
            let mut attempt = cmd.clone();
            for (spec, id) in attempt.strategy.awards.iter_mut().zip(&award_ids) {
                spec.award_id = spec.award_id.or(Some(*id));
            }
            let d = self.build_deployment(attempt, activity_id, strategy_id, creator)?;
            award_ids = d.awards.iter().map(|a| a.id).collect();
            let taken = match self.svc.activities.deploy(&d).await? {
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
        Err(AppError::Unavailable(
            "no free id could be generated for the deployment; retry".into(),
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
        match self.svc.activities.revise(&d).await? {
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
        self.changed(id).await;
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
        if !self.svc.activities.change_state(id, from, to).await? {
            return Err(AppError::Conflict(format!(
                "activity {id} changed state concurrently; reload and retry"
            )));
        }
        self.changed(id).await;
        Ok(to)
    }

    pub async fn activity(&self, id: ActivityId) -> Result<Activity, AppError> {
        self.svc
            .activities
            .activity(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("activity {id}")))
    }

    pub async fn list_activities(
        &self,
        filter: &ActivityFilter,
        page: Page,
    ) -> Result<Vec<Activity>, AppError> {
        Ok(self.svc.activities.list(filter, page).await?)
    }

    pub async fn strategy(&self, id: StrategyId) -> Result<Strategy, AppError> {
        self.svc
            .strategies
            .strategy(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("strategy {id}")))
    }

    pub async fn awards(&self, ids: &[AwardId]) -> Result<Vec<Award>, AppError> {
        Ok(self.svc.awards.awards(ids).await?)
    }

    /// Stock left as the stock store holds it: the activity's and each award's (awards the
    /// store does not hold are left out). `None` when the store has not loaded the activity.
    pub async fn live_stock(
        &self,
        id: ActivityId,
    ) -> Result<Option<lottery_activity::StockCounts>, AppError> {
        let Some(stock_left) = self.svc.stock.stock_left(id).await? else {
            return Ok(None);
        };
        let config = self.cache.get(id).await?;
        let ids: Vec<AwardId> = config
            .strategy()
            .awards()
            .iter()
            .map(|a| a.award_id)
            .collect();
        let left = self.svc.stock.awards_left(id, &ids).await?;
        let awards_left = ids
            .into_iter()
            .zip(left)
            .filter_map(|(a, l)| l.map(|l| (a, l)))
            .collect();
        Ok(Some(lottery_activity::StockCounts {
            stock_left,
            awards_left,
        }))
    }

    /// Live stock, falling back to the database's view for whatever the stock store has not
    /// loaded (or when it is unreachable).
    pub async fn stock(&self, id: ActivityId) -> Result<lottery_activity::StockCounts, AppError> {
        let live = self.live_stock(id).await.ok().flatten();
        self.stock_over(id, live).await
    }

    /// The database's counts, overridden by what `live` (the stock store's view) holds.
    pub(crate) async fn stock_over(
        &self,
        id: ActivityId,
        live: Option<lottery_activity::StockCounts>,
    ) -> Result<lottery_activity::StockCounts, AppError> {
        let db = self
            .svc
            .activities
            .stock_counts(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("activity {id}")))?;
        let Some(live) = live else {
            return Ok(db);
        };
        let awards_left = db
            .awards_left
            .iter()
            .map(|(a, n)| {
                (
                    *a,
                    live.awards_left
                        .iter()
                        .find(|(x, _)| x == a)
                        .map_or(*n, |(_, l)| *l),
                )
            })
            .collect();
        Ok(lottery_activity::StockCounts {
            stock_left: live.stock_left,
            awards_left,
        })
    }

    /// Validates and stores a rule tree (with a generated id unless the tree has one).
    pub async fn save_tree(&self, tree: RuleTree) -> Result<TreeId, AppError> {
        self.svc.rule_trees.save(&tree).await?;
        Ok(tree.id())
    }

    pub async fn tree(&self, id: TreeId) -> Result<RuleTree, AppError> {
        self.svc
            .rule_trees
            .tree(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("rule tree {id}")))
    }

    /// Stored rule trees, newest first.
    pub async fn trees(&self, page: Page) -> Result<Vec<lottery_rule::TreeSummary>, AppError> {
        Ok(self.svc.rule_trees.list(page.offset, page.limit).await?)
    }

    /// How many of the activity's orders are in each grant state.
    pub async fn grant_counts(
        &self,
        id: ActivityId,
    ) -> Result<Vec<(lottery_award::GrantState, u64)>, AppError> {
        Ok(self.svc.orders.grant_counts(id).await?)
    }

    pub fn new_tree_id(&self) -> Result<TreeId, AppError> {
        Ok(self.svc.ids.tree_id()?)
    }

    pub async fn user_orders(&self, user: &UserId, page: Page) -> Result<Vec<WinOrder>, AppError> {
        Ok(self.svc.orders.orders(user, page).await?)
    }

    pub async fn user_takes(
        &self,
        user: &UserId,
        activity: Option<ActivityId>,
        page: Page,
    ) -> Result<Vec<UserTake>, AppError> {
        Ok(self.svc.takes.takes(user, activity, page).await?)
    }

    pub async fn user_activity(
        &self,
        user: &UserId,
        id: ActivityId,
    ) -> Result<UserActivityView, AppError> {
        let config = self.cache.get(id).await?;
        let used = self.svc.takes.takes_used(user, id).await?;
        let limit = config.activity.take_limit();
        Ok(UserActivityView {
            activity_id: id,
            take_limit: limit,
            takes_used: used,
            takes_left: limit.saturating_sub(used),
        })
    }
}

/// Revising is only for activities being edited: anything else has been (or is being)
/// reviewed, so it is a conflict with that state, answered 409.
fn invalid_state(state: ActivityState) -> AppError {
    AppError::Conflict(format!(
        "the activity can only be changed while editing; it is {state}"
    ))
}
