//! What every handler shares.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use lottery_app::{AppError, DrawResult, Lottery};

use crate::auth::{HasKeys, Keys, User};
use crate::compose::DrawLimiter;
use crate::config::Mode;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{Gauges, Metrics};

/// One backing service as `/readyz` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: &'static str,
    /// Why it cannot serve now; `None` when it answered in time.
    pub problem: Option<String>,
    /// Whether this instance's role cannot work without it: a required dependency that fails
    /// makes the instance not ready; any other is reported as degraded only.
    pub required: bool,
}

/// Checks the backing services for `/readyz` and reads gauges for `/metrics`.
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    /// One entry per backing service, each check bounded in time.
    async fn check(&self) -> Vec<Dependency>;
    /// Messages waiting for the consumer.
    async fn consumer_lag(&self) -> u64;
}

#[derive(Clone)]
pub struct AppState {
    pub lottery: Lottery,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
    pub probe: Arc<dyn Probe>,
    pub mode: Mode,
    limiter: DrawLimiter,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl HasKeys for AppState {
    fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }
}

impl AppState {
    pub fn new(
        lottery: Lottery,
        metrics: Arc<Metrics>,
        keys: Arc<Keys>,
        probe: Arc<dyn Probe>,
        mode: Mode,
        limiter: DrawLimiter,
    ) -> Self {
        Self {
            lottery,
            keys,
            metrics,
            probe,
            mode,
            limiter,
        }
    }

    /// Per-user draw rate limit: across every instance in cluster mode (see
    /// [`DrawLimiter`]).
    pub async fn rate_limit(&self, user: &User) -> ApiResult<()> {
        if self.limiter.check(&user.id).await.is_err() {
            self.metrics
                .record_draw("rate_limited", std::time::Duration::ZERO);
            return Err(ApiError::RateLimited);
        }
        Ok(())
    }

    /// Runs a draw and records its outcome and latency.
    pub async fn observe_draw(
        &self,
        draw: impl Future<Output = Result<DrawResult, AppError>>,
    ) -> ApiResult<DrawResult> {
        let started = Instant::now();
        let result = draw.await;
        let outcome = match &result {
            Ok(r) => match r.result {
                lottery_app::DrawOutcome::Win => "win",
                lottery_app::DrawOutcome::Lose => "lose",
            },
            Err(e) => ApiError::App(e.clone()).status_and_code().1,
        };
        self.metrics.record_draw(outcome, started.elapsed());
        result.map_err(ApiError::App)
    }

    pub async fn gauges(&self) -> Gauges {
        let figures = self.lottery.queries().gauges().await;
        let mut gauges = Gauges {
            stock_left: figures
                .stock_left
                .iter()
                .map(|(id, left)| (id.to_string(), *left))
                .collect(),
            ..Gauges::default()
        };
        if let Some(backlog) = figures.outbox {
            gauges.outbox_pending = backlog.pending;
            gauges.outbox_parked = backlog.parked;
        }
        gauges.consumer_lag = self.probe.consumer_lag().await;
        gauges
    }
}
