//! The audit: reads an activity's records straight from the databases the configuration
//! names (every shard and every table) and its stock from the stock store, and checks that
//! nothing was oversold, lost or delivered twice.
//!
//! Checks that settle once the queues drain (grants, the stock store against the records)
//! are read again every half second until they pass or the drain timeout ends; a failed
//! check that cannot settle (more takes than stock, say) ends the wait at once.

mod checks;
mod records;
mod stock;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use lottery_server::config::Config;
use serde::{Deserialize, Serialize};

use crate::client::Endpoint;
use crate::error::LoadError;

pub use checks::Check;

const POLL: Duration = Duration::from_millis(500);

/// A win the server answered: what the audit looks for in the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Win {
    pub user_id: String,
    pub take_id: String,
    pub order_id: String,
    pub award_id: String,
}

/// What a run was told about its draws of one activity.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Answered {
    pub activity_id: String,
    /// Every win answer.
    pub wins: Vec<Win>,
    /// Draws answered 5xx or not at all: they may or may not have been recorded.
    pub unknown_outcomes: u64,
}

impl Answered {
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read(path).map_err(|source| LoadError::File {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| LoadError::Format {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), LoadError> {
        crate::write_json(path, self)
    }
}

/// How to reach the server's admin API: where the stock of an embedded server (in its
/// process's memory) is read from.
#[derive(Debug, Clone)]
pub struct AdminAccess {
    pub endpoint: Arc<Endpoint>,
    pub auth: HeaderValue,
    pub timeout: Duration,
}

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    pub activity_id: String,
    /// How long checks that settle (grants, stock store) are waited for.
    pub drain_timeout: Duration,
    /// The wins a run was answered; without it the checks about answers are skipped.
    pub answered: Option<Answered>,
    /// The server's admin API (needed in embedded mode).
    pub admin: Option<AdminAccess>,
}

/// The audit's result.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub activity_id: String,
    pub mode: &'static str,
    /// Where the stock left was read: `redis` or `admin_api`.
    pub stock_source: &'static str,
    /// How long the audit waited for checks to settle, in seconds.
    pub waited_s: f64,
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit of activity {} ({} mode, stock read from {}, waited {:.1} s): {}",
            self.activity_id,
            self.mode,
            self.stock_source,
            self.waited_s,
            if self.passed { "PASSED" } else { "FAILED" }
        )?;
        for c in &self.checks {
            let mark = if c.passed { "pass" } else { "FAIL" };
            writeln!(f, "  {mark} {}: {}", c.name, c.detail)?;
        }
        Ok(())
    }
}

/// Audits one activity: see the module documentation.
pub async fn audit(config: &Config, request: &AuditRequest) -> Result<AuditReport, LoadError> {
    let activity: i64 = request.activity_id.parse().map_err(|_| {
        LoadError::Invalid(format!(
            "activity id {:?} is not a number",
            request.activity_id
        ))
    })?;
    let records = records::Records::connect(config).await?;
    let result = poll(&records, config, request, activity).await;
    records.close().await;
    let (checks, stock_source, waited) = result?;
    Ok(AuditReport {
        activity_id: request.activity_id.clone(),
        mode: crate::mode_name(config),
        stock_source,
        waited_s: waited.as_secs_f64(),
        passed: checks.iter().all(|c| c.passed),
        checks,
    })
}

async fn poll(
    records: &records::Records,
    config: &Config,
    request: &AuditRequest,
    activity: i64,
) -> Result<(Vec<Check>, &'static str, Duration), LoadError> {
    let mut source = stock::StockSource::connect(config, request.admin.clone()).await?;
    let configured = records.configuration(activity).await?;
    let awards: Vec<i64> = configured.awards.iter().map(|(award, _)| *award).collect();
    let started = Instant::now();
    loop {
        // The store first, then the records: a draw in between can only make the records
        // hold more than the store accounts for, never hide a leak.
        let held = source.read(activity, &awards).await?;
        let recorded = records
            .read(activity, &configured, &held.pending_claims())
            .await?;
        let checks = checks::evaluate(&configured, &recorded, &held, request.answered.as_ref());
        let failing: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
        let may_settle = !failing.is_empty() && failing.iter().all(|c| c.settles);
        if !may_settle || started.elapsed() >= request.drain_timeout {
            return Ok((checks, source.name(), started.elapsed()));
        }
        tokio::time::sleep(POLL).await;
    }
}
