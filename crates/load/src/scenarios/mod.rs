//! The scenarios: what load each one puts on the server, on the [`engine`].
//!
//! - `spike`: `users` new users, each drawing once, spread evenly over `within` seconds
//!   (paced), against a small stock: most are answered sold out.
//! - `sustained`: closed model, `connections` workers drawing back to back for `duration`
//!   seconds, as a pool of returning users (round robin) or a new user per request.
//! - `rate`: open model, `rate` draws per second for `duration` seconds, latency measured from
//!   each draw's scheduled time.
//! - `mixed`: draws as in `sustained`, plus admins reading the activity list and the
//!   activity's detail, plus a new activity deployed and started every `deploy_every`
//!   seconds.
//! - `reads`: closed model over the user read endpoints (activity view, my activity, first
//!   page of my orders), after each user of the pool drew once.

pub mod engine;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lottery_server::config::Config;
use serde::Serialize;

use crate::api::{ActivitySpec, Admin};
use crate::audit::{AdminAccess, Answered, AuditRequest};
use crate::client::Endpoint;
use crate::error::LoadError;
use crate::report::{Report, RunMeta};
use crate::tokens::Tokens;

pub use workloads::{
    ClosedLoad, MixedOptions, RateOptions, ReadsOptions, SpikeOptions, SustainedOptions,
    UserOptions,
};

/// The server a run drives, and the configuration it was started from.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: Config,
    pub endpoint: Arc<Endpoint>,
    pub tokens: Tokens,
    /// How long a request may wait for its answer.
    pub timeout: Duration,
}

impl Target {
    /// `url` defaults to where the configuration listens.
    pub fn new(config: Config, url: Option<&str>, timeout: Duration) -> Result<Self, LoadError> {
        let url = url.map_or_else(|| crate::tokens::default_url(&config), str::to_owned);
        Ok(Self {
            endpoint: Arc::new(Endpoint::parse(&url)?),
            tokens: Tokens::from_config(&config)?,
            config,
            timeout,
        })
    }

    pub fn admin(&self) -> Result<Admin, LoadError> {
        Ok(Admin::new(
            self.endpoint.clone(),
            self.timeout,
            self.tokens.admin("lottery-load")?,
        ))
    }

    /// The admin API, for the audit's view of an embedded server's stock.
    pub fn admin_access(&self) -> Result<AdminAccess, LoadError> {
        Ok(AdminAccess {
            endpoint: self.endpoint.clone(),
            auth: self.tokens.admin("lottery-load")?,
            timeout: self.timeout,
        })
    }
}

/// The activity a run draws in: an existing one, or one deployed for the run.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct ActivityOptions {
    /// Draw in this running activity instead of deploying a new one.
    #[arg(long)]
    pub activity: Option<String>,
    /// Stock of the deployed activity (default: spike 100, others 10,000,000).
    #[arg(long)]
    pub stock: Option<u32>,
    /// Draws each user may make (default: spike 1, others 1,000,000).
    #[arg(long)]
    pub take_limit: Option<u32>,
    /// Coupons the activity's one award has (default: spike the stock, others 1,000).
    #[arg(long)]
    pub award_count: Option<u32>,
    /// Probability of winning a coupon in one draw.
    #[arg(long, default_value = "0.5")]
    pub award_rate: String,
}

/// What happens around the load: audit, files written.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RunOptions {
    #[command(flatten)]
    pub activity: ActivityOptions,
    /// Skip the audit after the run.
    #[arg(long)]
    pub no_audit: bool,
    /// How long the audit waits for deliveries and claims to settle, in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the wins answered (for a later `lottery-load audit --wins`) to this file.
    #[arg(long)]
    pub wins: Option<PathBuf>,
}

/// One scenario with its options.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Scenario {
    Spike(SpikeOptions),
    Sustained(SustainedOptions),
    Rate(RateOptions),
    Mixed(MixedOptions),
    Reads(ReadsOptions),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Spike(_) => "spike",
            Self::Sustained(_) => "sustained",
            Self::Rate(_) => "rate",
            Self::Mixed(_) => "mixed",
            Self::Reads(_) => "reads",
        }
    }

    /// The activity deployed for the run: the options, else this scenario's defaults.
    pub fn activity_spec(&self, o: &ActivityOptions) -> ActivitySpec {
        let spike = matches!(self, Self::Spike(_));
        let stock = o.stock.unwrap_or(if spike { 100 } else { 10_000_000 });
        ActivitySpec {
            stock,
            take_limit: o.take_limit.unwrap_or(if spike { 1 } else { 1_000_000 }),
            award_count: o.award_count.unwrap_or(if spike { stock } else { 1_000 }),
            award_rate: o.award_rate.clone(),
        }
    }
}

/// A run's result, and what it was answered (for an audit later).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub report: Report,
    pub answered: Answered,
}

/// Runs `scenario` against `target`, then (unless `no_audit`) audits the activity.
pub async fn run(
    target: &Target,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<RunResult, LoadError> {
    let spec = scenario.activity_spec(&options.activity);
    let (activity_id, deployed) = match &options.activity.activity {
        Some(id) => (id.clone(), false),
        None => {
            let name = format!("lottery-load {}", scenario.name());
            (target.admin()?.deploy_running(&spec, &name).await?, true)
        }
    };
    let tag = run_tag();
    let ran = workloads::drive(target, scenario, &spec, &activity_id, tag).await?;
    let meta = RunMeta {
        scenario: scenario.name(),
        parameters: serde_json::json!({"scenario": scenario, "activity": spec, "run": options}),
        target: target.endpoint.base().to_owned(),
        mode: crate::mode_name(&target.config),
        activity_id: activity_id.clone(),
        activity_deployed: deployed,
        primary: ran.primary,
    };
    let mut report = Report::build(meta, &ran.ran.tally, ran.ran.started_at, ran.ran.took);
    let answered = Answered {
        activity_id: activity_id.clone(),
        wins: ran.ran.tally.wins,
        unknown_outcomes: ran.ran.tally.unknown_outcomes,
    };
    if !options.no_audit {
        let request = AuditRequest {
            activity_id,
            drain_timeout: Duration::from_secs_f64(options.drain_timeout.max(0.0)),
            answered: Some(answered.clone()),
            admin: Some(target.admin_access()?),
        };
        report.audit = Some(crate::audit::audit(&target.config, &request).await?);
    }
    Ok(RunResult { report, answered })
}

/// A short random tag: user ids and idempotency keys of one run never meet another's.
fn run_tag() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let letters: String = (0..6)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect();
    format!("load-{letters}")
}
