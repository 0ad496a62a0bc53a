//! Each scenario's options and the worker groups it runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::{self, Driver, Op, Picker, Plan, Ran, SideTask, lock};
use super::{Scenario, Target};
use crate::api::ActivitySpec;
use crate::error::LoadError;
use crate::report::Class;

/// Who draws: returning users or new ones.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct UserOptions {
    /// Returning users, drawing round robin.
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,
    /// A new user for every request instead of returning users.
    #[arg(long)]
    pub new_users: bool,
}

impl UserOptions {
    fn pool(&self) -> Option<u64> {
        (!self.new_users).then_some(self.users)
    }
}

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct SpikeOptions {
    /// New users, each drawing once.
    #[arg(long, default_value_t = 2_000)]
    pub users: u64,
    /// Seconds over which their draws are spread evenly.
    #[arg(long, default_value_t = 5.0)]
    pub within: f64,
    /// Connections (workers) sending them.
    #[arg(short = 'c', long, default_value_t = 256)]
    pub connections: usize,
}

/// A closed model: connections sending back to back for a while.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ClosedLoad {
    /// Concurrent connections, each sending its next request when the last is answered.
    #[arg(short = 'c', long, default_value_t = 256)]
    pub connections: usize,
    /// Seconds.
    #[arg(short = 'd', long, default_value_t = 30.0)]
    pub duration: f64,
}

impl ClosedLoad {
    fn plan(&self, pick: Picker) -> Result<Plan, LoadError> {
        at_least_one("--connections", self.connections as u64)?;
        Ok(Plan {
            workers: self.connections,
            pace: None,
            duration: Some(positive("--duration", self.duration)?),
            total: None,
            pick,
        })
    }
}

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct SustainedOptions {
    #[command(flatten)]
    #[serde(flatten)]
    pub load: ClosedLoad,
    #[command(flatten)]
    #[serde(flatten)]
    pub users: UserOptions,
}

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RateOptions {
    /// Draws per second, sent on schedule whatever the answers' latency.
    #[arg(short = 'r', long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Seconds.
    #[arg(short = 'd', long, default_value_t = 30.0)]
    pub duration: f64,
    /// Connections available to send on (a draw waits for a free one; its latency counts from
    /// its scheduled time).
    #[arg(short = 'c', long, default_value_t = 256)]
    pub connections: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub users: UserOptions,
}

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct MixedOptions {
    /// The draws, as in `sustained`.
    #[command(flatten)]
    #[serde(flatten)]
    pub draws: SustainedOptions,
    /// Admins reading back to back (the activity list, then the activity's detail).
    #[arg(long, default_value_t = 2)]
    pub admin_readers: usize,
    /// A new activity is deployed and started every this many seconds.
    #[arg(long, default_value_t = 2.0)]
    pub deploy_every: f64,
}

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ReadsOptions {
    #[command(flatten)]
    #[serde(flatten)]
    pub load: ClosedLoad,
    /// Returning users (each draws once first, so it has something to read).
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,
}

/// What a scenario ran, and which operations its headline figures are about.
#[derive(Debug)]
pub(super) struct Driven {
    pub ran: Ran,
    pub primary: Vec<&'static str>,
}

fn positive(name: &str, v: f64) -> Result<Duration, LoadError> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(LoadError::Invalid(format!(
            "{name} must be above 0, not {v}"
        )))
    }
}

fn at_least_one(name: &str, v: u64) -> Result<(), LoadError> {
    if v == 0 {
        return Err(LoadError::Invalid(format!("{name} must be at least 1")));
    }
    Ok(())
}

/// Request `seq` is a draw by user `seq`.
fn draw_pick() -> Picker {
    Arc::new(|seq| (Op::Draw, seq))
}

pub(super) async fn drive(
    target: &Target,
    scenario: &Scenario,
    spec: &ActivitySpec,
    activity_id: &str,
    tag: String,
) -> Result<Driven, LoadError> {
    let (pool, plans, sides) = match scenario {
        Scenario::Spike(o) => (None, vec![spike_plan(o)?], Vec::new()),
        Scenario::Sustained(o) => (o.users.pool(), vec![o.load.plan(draw_pick())?], Vec::new()),
        Scenario::Rate(o) => (o.users.pool(), vec![rate_plan(o)?], Vec::new()),
        Scenario::Mixed(o) => {
            let (plans, side) = mixed_plans(target, o, spec)?;
            (o.draws.users.pool(), plans, vec![side])
        }
        Scenario::Reads(o) => return reads(target, o, activity_id, tag).await,
    };
    let driver = Arc::new(Driver::new(target, activity_id, pool, tag)?);
    Ok(Driven {
        ran: engine::run(driver, plans, sides).await?,
        primary: vec![Op::Draw.name()],
    })
}

fn spike_plan(o: &SpikeOptions) -> Result<Plan, LoadError> {
    at_least_one("--users", o.users)?;
    at_least_one("--connections", o.connections as u64)?;
    positive("--within", o.within)?;
    Ok(Plan {
        workers: o.connections,
        pace: Some(o.users as f64 / o.within),
        duration: None,
        total: Some(o.users),
        pick: draw_pick(),
    })
}

fn rate_plan(o: &RateOptions) -> Result<Plan, LoadError> {
    at_least_one("--connections", o.connections as u64)?;
    positive("--rate", o.rate)?;
    Ok(Plan {
        workers: o.connections,
        pace: Some(o.rate),
        duration: Some(positive("--duration", o.duration)?),
        total: None,
        pick: draw_pick(),
    })
}

fn mixed_plans(
    target: &Target,
    o: &MixedOptions,
    spec: &ActivitySpec,
) -> Result<(Vec<Plan>, SideTask), LoadError> {
    let every = positive("--deploy-every", o.deploy_every)?;
    let duration = positive("--duration", o.draws.load.duration)?;
    let readers = ClosedLoad {
        connections: o.admin_readers,
        duration: o.draws.load.duration,
    };
    let admin_pick: Picker = Arc::new(|seq| {
        let op = if seq % 2 == 0 {
            Op::AdminList
        } else {
            Op::AdminDetail
        };
        (op, 0)
    });
    let mut plans = vec![o.draws.load.plan(draw_pick())?];
    if o.admin_readers > 0 {
        plans.push(readers.plan(admin_pick)?);
    }
    Ok((plans, deployer(target, spec.clone(), every, duration)?))
}

/// Deploys and starts a new activity every `every` until `duration` is over, timing each
/// (deploy, submit, approve and start: four calls) as one `deploy`.
fn deployer(
    target: &Target,
    spec: ActivitySpec,
    every: Duration,
    duration: Duration,
) -> Result<SideTask, LoadError> {
    let mut admin = target.admin()?;
    Ok(Box::new(move |start, tally| {
        Box::pin(async move {
            for n in 1u32.. {
                let due = start + every * n;
                if due >= start + duration {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
                let began = Instant::now();
                let result = admin
                    .deploy_running(&spec, &format!("lottery-load mixed, extra {n}"))
                    .await;
                let (answer, class) = match &result {
                    Ok(_) => ("ok".to_owned(), Class::Ok),
                    Err(e) => failure(e),
                };
                lock(&tally).record("deploy", began.elapsed(), &answer, class);
            }
        })
    }))
}

fn failure(e: &LoadError) -> (String, Class) {
    match e {
        LoadError::Refused { status, .. } => (format!("http_{status}"), Class::of_status(*status)),
        LoadError::Transport { source, .. } => (source.answer().to_owned(), Class::Transport),
        _ => ("unreadable".to_owned(), Class::Ok),
    }
}

/// Each user of the pool draws once (not measured), then the reads run.
async fn reads(
    target: &Target,
    o: &ReadsOptions,
    activity_id: &str,
    tag: String,
) -> Result<Driven, LoadError> {
    const READS: [Op; 3] = [Op::ActivityView, Op::MyActivity, Op::MyOrders];
    at_least_one("--users", o.users)?;
    let plan = o
        .load
        .plan(Arc::new(|seq| (READS[(seq % 3) as usize], seq / 3)))?;
    let driver = Arc::new(Driver::new(target, activity_id, Some(o.users), tag)?);
    let prime = Plan {
        workers: plan
            .workers
            .min(usize::try_from(o.users).unwrap_or(usize::MAX)),
        pace: None,
        duration: None,
        total: Some(o.users),
        pick: draw_pick(),
    };
    let primed = engine::run(driver.clone(), vec![prime], Vec::new()).await?;
    let mut ran = engine::run(driver, vec![plan], Vec::new()).await?;
    // The priming draws' wins are the activity's too: the audit must know them.
    ran.tally.wins.extend(primed.tally.wins);
    ran.tally.unknown_outcomes += primed.tally.unknown_outcomes;
    Ok(Driven {
        ran,
        primary: READS.iter().map(|op| op.name()).collect(),
    })
}
