use std::collections::HashSet;

use lottery_award::{Award, AwardError, AwardRegistry};
use lottery_domain::AwardId;
use lottery_strategy::Strategy;
use serde::Serialize;

use crate::{Activity, ActivityError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error(transparent)]
    Activity(#[from] ActivityError),
    #[error("award {award}: {source}")]
    Award { award: AwardId, source: AwardError },
    #[error("the strategy lists award {0}, which the deployment does not define")]
    MissingAward(AwardId),
    #[error("award {0} is defined but the strategy does not use it")]
    UnusedAward(AwardId),
    #[error("award {0} is defined twice")]
    DuplicateAward(AwardId),
    #[error("the activity names strategy {activity} but the strategy is {strategy}")]
    StrategyMismatch {
        activity: lottery_domain::StrategyId,
        strategy: lottery_domain::StrategyId,
    },
}

/// An activity with its strategy and awards: what an admin deploys, stored in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub activity: Activity,
    pub strategy: Strategy,
    pub awards: Vec<Award>,
}

impl Deployment {
    /// Checks that the parts fit together and that every award is deliverable.
    pub fn new(
        activity: Activity,
        strategy: Strategy,
        awards: Vec<Award>,
        registry: &AwardRegistry,
    ) -> Result<Self, DeploymentError> {
        if activity.strategy_id() != strategy.id() {
            return Err(DeploymentError::StrategyMismatch {
                activity: activity.strategy_id(),
                strategy: strategy.id(),
            });
        }
        let mut defined = HashSet::with_capacity(awards.len());
        for award in &awards {
            if !defined.insert(award.id) {
                return Err(DeploymentError::DuplicateAward(award.id));
            }
            registry
                .validate(award)
                .map_err(|source| DeploymentError::Award {
                    award: award.id,
                    source,
                })?;
        }
        let used: HashSet<AwardId> = strategy.awards().iter().map(|a| a.award_id).collect();
        if let Some(missing) = used.iter().find(|id| !defined.contains(*id)) {
            return Err(DeploymentError::MissingAward(*missing));
        }
        if let Some(unused) = awards.iter().find(|a| !used.contains(&a.id)) {
            return Err(DeploymentError::UnusedAward(unused.id));
        }
        Ok(Self {
            activity,
            strategy,
            awards,
        })
    }

    pub fn award(&self, id: AwardId) -> Option<&Award> {
        self.awards.iter().find(|a| a.id == id)
    }
}
