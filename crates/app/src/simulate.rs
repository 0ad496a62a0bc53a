//! Dry-run draws for admins: how a strategy would pay out, touching no stock.

use lottery_domain::AwardId;
use lottery_strategy::{Draw, Drawer, OutOfStock, Strategy};
use serde::Serialize;

use crate::{AppError, Lottery};

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

impl Lottery {
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
            .map_err(|e| AppError::Internal(format!("simulation failed: {e}")))
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
