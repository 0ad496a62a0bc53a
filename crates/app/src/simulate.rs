//! Dry-run draws for admins: how a strategy would pay out, touching no stock.

use lottery_domain::{ActivityId, AwardId, StrategyId};
use lottery_strategy::{Draw, DrawMode, Drawer, OutOfStock, Rate, Strategy, StrategyAward};
use serde::Serialize;

use crate::AppError;
use crate::commands::Administration;

/// Largest simulation accepted in one request.
pub const MAX_SIMULATED_DRAWS: u64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationRow {
    pub award_id: AwardId,
    /// The configured rate.
    pub rate: String,
    pub wins: u64,
    /// wins / draws.
    pub observed: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub draws: u64,
    pub awards: Vec<SimulationRow>,
    /// Draws that won nothing (the rates' remainder in single mode).
    pub nothing: u64,
}

/// A prize of a strategy not deployed yet: its id (or, without one, its position from 1) and
/// its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftShare {
    pub award_id: Option<AwardId>,
    pub rate: Rate,
}

impl Administration {
    /// Dry-runs the strategy of a deployed activity.
    pub async fn simulate_activity(
        &self,
        id: ActivityId,
        draws: u64,
    ) -> Result<Simulation, AppError> {
        let activity = self.activity(id).await?;
        let strategy = self.strategy(activity.strategy_id()).await?;
        self.simulate(strategy, draws).await
    }

    /// Dry-runs a strategy before it is deployed, from its mode and shares.
    pub async fn simulate_draft(
        &self,
        mode: DrawMode,
        shares: &[DraftShare],
        draws: u64,
    ) -> Result<Simulation, AppError> {
        let mut awards = Vec::with_capacity(shares.len());
        for (position, share) in (1_i64..).zip(shares) {
            let award_id = match share.award_id {
                Some(id) => id,
                None => AwardId::new(position).map_err(|e| AppError::Invalid(e.to_string()))?,
            };
            awards.push(StrategyAward {
                award_id,
                rate: share.rate,
                count: 0,
            });
        }
        // Never stored: the id only satisfies the type.
        let id = StrategyId::new(1).map_err(|e| AppError::internal(e.to_string()))?;
        let strategy = Strategy::new(id, mode, awards, None)
            .map_err(|e| AppError::Invalid(format!("strategy: {e}")))?;
        self.simulate(strategy, draws).await
    }

    /// Runs `draws` dry-run draws of `strategy` with every award in stock. CPU-bound, so it
    /// runs on the blocking pool and does not stall other requests.
    pub async fn simulate(&self, strategy: Strategy, draws: u64) -> Result<Simulation, AppError> {
        if draws == 0 || draws > MAX_SIMULATED_DRAWS {
            return Err(AppError::Invalid(format!(
                "draws must be 1 to {MAX_SIMULATED_DRAWS}"
            )));
        }
        tokio::task::spawn_blocking(move || simulate(&strategy, draws))
            .await
            .map_err(|e| AppError::internal(format!("simulation failed: {e}")))
    }
}

/// The simulation itself, deterministic for a given random source.
pub fn simulate_with<R: rand::Rng + ?Sized>(
    strategy: &Strategy,
    draws: u64,
    rng: &mut R,
) -> Simulation {
    let drawer = Drawer::new(strategy.clone());
    let awards = strategy.awards();
    let mut wins = vec![0u64; awards.len()];
    let mut nothing = 0u64;
    for _ in 0..draws {
        match drawer.draw(rng, OutOfStock::NONE) {
            Draw::Award(id) | Draw::OutOfStock(id) => match strategy.position(id) {
                Some(i) => wins[i] += 1,
                None => nothing += 1,
            },
            Draw::Nothing => nothing += 1,
        }
    }
    Simulation {
        draws,
        awards: awards
            .iter()
            .zip(wins)
            .map(|(a, w)| SimulationRow {
                award_id: a.award_id,
                rate: a.rate.to_string(),
                wins: w,
                observed: w as f64 / draws as f64,
            })
            .collect(),
        nothing,
    }
}

fn simulate(strategy: &Strategy, draws: u64) -> Simulation {
    simulate_with(strategy, draws, &mut rand::rng())
}
