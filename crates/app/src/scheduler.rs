//! Background jobs: activity state moves at their times, the outbox relay, the stock sync and
//! the claim reconciler.
//! Each job runs on one instance at a time (a lease in the database), so any number of
//! instances may run the scheduler side by side.

use std::sync::Arc;
use std::time::Duration;

use lottery_activity::{ActivityRepository, JobLeases};
use lottery_domain::Clock;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::parts::Changes;
use crate::{AppError, Failure, LogGate, OutboxRelay, Reconciler, StockSync};

/// Activities read per page.
const PAGE: u32 = 500;

/// A scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// approved -> doing at the begin time, approved/doing -> closed after the end time.
    ActivityStates,
    OutboxRelay,
    StockSync,
    /// Settles stock claims that no draw settled (see [`Reconciler`]).
    Reconcile,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Self::ActivityStates => "activity_states",
            Self::OutboxRelay => "outbox_relay",
            Self::StockSync => "stock_sync",
            Self::Reconcile => "reconcile",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// This instance's name in the leases.
    pub holder: String,
    pub state_interval: Duration,
    pub relay_interval: Duration,
    pub sync_interval: Duration,
    pub reconcile_interval: Duration,
    /// Age a pending claim must reach before the reconciler examines it.
    pub reconcile_grace: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            holder: format!("instance-{}", std::process::id()),
            state_interval: Duration::from_secs(1),
            relay_interval: Duration::from_millis(200),
            sync_interval: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(1),
            reconcile_grace: Duration::from_secs(10),
        }
    }
}

/// What a round of a job reports, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobReport {
    Reconcile(crate::ReconcileReport),
    StockSync(crate::SyncReport),
    /// Every round this instance ran (it held the lease), successful or not: how long it
    /// took. Whether a job's cost grows with the records stored shows here.
    Round {
        job: Job,
        elapsed: Duration,
    },
}

/// Called with each reported round.
pub type ReportHook = Arc<dyn Fn(&JobReport) + Send + Sync>;

#[derive(Clone)]
pub struct Scheduler {
    pub(crate) activities: Arc<dyn ActivityRepository>,
    pub(crate) leases: Arc<dyn JobLeases>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) changes: Changes,
    pub(crate) sync: StockSync,
    pub(crate) reconciler: Reconciler,
    pub(crate) relay: Option<OutboxRelay>,
    pub(crate) options: SchedulerOptions,
    pub(crate) on_report: Option<ReportHook>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Reports every reconciler and stock sync round to `hook`.
    #[must_use]
    pub fn on_report(mut self, hook: ReportHook) -> Self {
        self.on_report = Some(hook);
        self
    }

    /// Moves every activity whose time has come, once each: a state change is a
    /// compare-and-set, so an activity another instance already moved is skipped, and closed
    /// activities are never scanned again (no endless loop).
    pub async fn move_activities(&self) -> Result<usize, AppError> {
        let now = self.clock.now();
        let mut moved = 0;
        let mut after = None;
        loop {
            let page = self.activities.due(now, after, PAGE).await?;
            for activity in &page {
                let Some(action) = activity.due_action(now) else {
                    continue;
                };
                let from = activity.state();
                let Ok(to) = from.apply(action) else { continue };
                if self
                    .activities
                    .change_state(activity.id(), from, to)
                    .await?
                {
                    self.changes.changed(activity.id()).await;
                    debug!(activity = %activity.id(), %from, %to, "scheduled state change");
                    moved += 1;
                }
            }
            if page.len() < PAGE as usize {
                return Ok(moved);
            }
            after = page.last().map(lottery_activity::Activity::id);
        }
    }

    /// Runs `job` once if this instance holds (or takes) its lease.
    pub async fn run_job(&self, job: Job) -> Result<Option<usize>, AppError> {
        // Three rounds, but 3 s to 15 s: long enough that a slow round keeps the lease, short
        // enough that a dead holder delays its job by seconds only. (Jobs are idempotent, so
        // a round run twice around an expiry does no harm.)
        let ttl = (self.interval(job) * 3).clamp(Duration::from_secs(3), Duration::from_secs(15));
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(15));
        if !self
            .leases
            .try_lease(job.name(), &self.options.holder, self.clock.now(), ttl)
            .await?
        {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let done = self.run_leased(job).await;
        if let Some(hook) = &self.on_report {
            hook(&JobReport::Round {
                job,
                elapsed: started.elapsed(),
            });
        }
        done.map(Some)
    }

    async fn run_leased(&self, job: Job) -> Result<usize, AppError> {
        Ok(match job {
            Job::ActivityStates => self.move_activities().await?,
            Job::OutboxRelay => match &self.relay {
                Some(relay) => relay.run_once().await?.sent,
                None => 0,
            },
            Job::StockSync => {
                let report = self.sync.sync_running().await?;
                if let Some(hook) = &self.on_report {
                    hook(&JobReport::StockSync(report));
                }
                report.synced
            }
            Job::Reconcile => {
                let report = self.reconciler.run_once().await?;
                if let Some(hook) = &self.on_report {
                    hook(&JobReport::Reconcile(report));
                }
                report.given_back
            }
        })
    }

    fn interval(&self, job: Job) -> Duration {
        match job {
            Job::ActivityStates => self.options.state_interval,
            Job::OutboxRelay => self.options.relay_interval,
            Job::StockSync => self.options.sync_interval,
            Job::Reconcile => self.options.reconcile_interval,
        }
    }

    /// Runs every job on its interval until `shutdown` turns true, then gives the leases up.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let jobs = [
            Job::ActivityStates,
            Job::OutboxRelay,
            Job::StockSync,
            Job::Reconcile,
        ];
        let mut tasks = Vec::new();
        for job in jobs {
            let me = self.clone();
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(me.interval(job));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let gate = LogGate::new(Duration::from_secs(30));
                loop {
                    tokio::select! {
                        _ = tick.tick() => match me.run_job(job).await {
                            Ok(_) => {
                                if gate.succeeded() {
                                    info!(job = job.name(), "scheduled job works again");
                                }
                            }
                            Err(e) => match gate.failed() {
                                Failure::Started => {
                                    warn!(job = job.name(), error = %lottery_domain::Chain(&e), "scheduled job failed");
                                }
                                Failure::Continuing { held_back } => {
                                    warn!(job = job.name(), error = %lottery_domain::Chain(&e), failures = held_back + 1,
                                        "scheduled job still failing");
                                }
                                Failure::Quiet => {}
                            },
                        },
                        _ = stop.changed() => break,
                    }
                }
                let _ = me.leases.release(job.name(), &me.options.holder).await;
            }));
        }
        let _ = shutdown.changed().await;
        for t in tasks {
            let _ = t.await;
        }
    }
}
