//! `lottery-load`: load scenarios against a running `lottery` server, and the audit of an
//! activity's records. See the library's documentation for the JSON result and
//! `docs/load-tool.md` for usage.
//!
//! Exit status: 0 when the run (and its audit) passed, 1 when something stopped it, 2 when
//! an audit check failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lottery_load::LoadError;
use lottery_load::audit::{Answered, AuditRequest};
use lottery_load::scenarios::{
    MixedOptions, RateOptions, ReadsOptions, RunOptions, Scenario, SpikeOptions, SustainedOptions,
    Target,
};

#[derive(Debug, Parser)]
#[command(
    name = "lottery-load",
    version,
    about = "Load scenarios against a running lottery server, and the audit of what they left"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The server and its configuration.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The server's configuration file (as for `lottery token --config`).
    #[arg(long, env = "LOTTERY_CONFIG")]
    config: Option<PathBuf>,
    /// The server's data directory (embedded mode: its SQLite files and token secret).
    #[arg(long, env = "LOTTERY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The server's URL (default: where the configuration listens).
    #[arg(long)]
    url: Option<String>,
    /// Seconds a request may wait for its answer.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

impl TargetArgs {
    fn target(&self) -> Result<Target, LoadError> {
        let config =
            lottery_load::tokens::load_config(self.config.as_deref(), self.data_dir.as_deref())?;
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(LoadError::Invalid("--timeout must be above 0".into()));
        }
        Target::new(
            config,
            self.url.as_deref(),
            Duration::from_secs_f64(self.timeout),
        )
    }
}

/// A scenario's arguments: the server, the scenario's options, what happens around it.
#[derive(Debug, Args)]
struct ScenarioArgs<T: Args> {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    options: T,
    #[command(flatten)]
    run: RunOptions,
}

impl<T: Args> ScenarioArgs<T> {
    fn split(self, scenario: impl FnOnce(T) -> Scenario) -> (TargetArgs, Scenario, RunOptions) {
        (self.target, scenario(self.options), self.run)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// New users each drawing once, spread over a few seconds, against a small stock.
    Spike(ScenarioArgs<SpikeOptions>),
    /// Closed model: connections drawing back to back for a duration.
    Sustained(ScenarioArgs<SustainedOptions>),
    /// Open model: draws at a fixed rate, latency from each draw's scheduled time.
    Rate(ScenarioArgs<RateOptions>),
    /// Draws, admin reads and deploys of new activities at the same time.
    Mixed(ScenarioArgs<MixedOptions>),
    /// Closed model over the user read endpoints.
    Reads(ScenarioArgs<ReadsOptions>),
    /// Audit an activity's records and stock (exit status 2 when a check fails).
    Audit {
        #[command(flatten)]
        target: TargetArgs,
        /// The activity.
        #[arg(long)]
        activity: String,
        /// Seconds to wait for deliveries and claims to settle.
        #[arg(long, default_value_t = 30.0)]
        drain_timeout: f64,
        /// The wins a run was answered (its `--wins` file): also checks each has its order.
        #[arg(long)]
        wins: Option<PathBuf>,
        /// Write the audit as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether everything passed.
async fn run(command: Command) -> Result<bool, LoadError> {
    let (target, scenario, options) = match command {
        Command::Spike(a) => a.split(Scenario::Spike),
        Command::Sustained(a) => a.split(Scenario::Sustained),
        Command::Rate(a) => a.split(Scenario::Rate),
        Command::Mixed(a) => a.split(Scenario::Mixed),
        Command::Reads(a) => a.split(Scenario::Reads),
        Command::Audit {
            target,
            activity,
            drain_timeout,
            wins,
            json,
        } => return audit(&target, activity, drain_timeout, wins, json).await,
    };
    let target = target.target()?;
    let result = lottery_load::scenarios::run(&target, &scenario, &options).await?;
    print!("{}", result.report);
    if let Some(path) = &options.json {
        lottery_load::write_json(path, &result.report)?;
    }
    if let Some(path) = &options.wins {
        result.answered.write(path)?;
    }
    Ok(result.report.audit_passed())
}

async fn audit(
    target: &TargetArgs,
    activity: String,
    drain_timeout: f64,
    wins: Option<PathBuf>,
    json: Option<PathBuf>,
) -> Result<bool, LoadError> {
    let target = target.target()?;
    let answered = wins.as_deref().map(Answered::read).transpose()?;
    if let Some(a) = &answered
        && a.activity_id != activity
    {
        return Err(LoadError::Invalid(format!(
            "the wins file is about activity {}, not {activity}",
            a.activity_id
        )));
    }
    let request = AuditRequest {
        activity_id: activity,
        drain_timeout: Duration::from_secs_f64(drain_timeout.max(0.0)),
        answered,
        admin: Some(target.admin_access()?),
    };
    let report = lottery_load::audit::audit(&target.config, &request).await?;
    print!("{report}");
    if let Some(path) = &json {
        lottery_load::write_json(path, &report)?;
    }
    Ok(report.passed())
}
