//! Recording and reporting: latencies in an HdrHistogram (microseconds), answers counted by
//! name and class, and the result of a run, printed and written as JSON (the shape is
//! documented on the crate).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::audit::{AuditReport, Win};

/// Largest latency recorded exactly (one hour, in µs); longer ones are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, three significant figures.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("1 µs to 1 h at 3 significant figures is a valid histogram"),
        )
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides: adding cannot fall out of range.
        let _ = self.0.add(&other.0);
    }

    pub fn percentiles(&self) -> Percentiles {
        let h = &self.0;
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Percentiles {
            count: h.len(),
            min: if h.is_empty() { 0 } else { h.min() },
            mean: if h.is_empty() { 0.0 } else { h.mean() },
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// What kind of answer a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx.
    Ok,
    /// 4xx: a refusal the server meant (sold out, quota, rate limit, ...).
    Refused,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connection failure or timeout.
    Transport,
}

impl Class {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Ok,
            500..=599 => Self::ServerError,
            _ => Self::Refused,
        }
    }
}

/// Answers counted by class.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Classes {
    pub ok: u64,
    pub refused: u64,
    pub server_error: u64,
    pub transport: u64,
}

impl Classes {
    fn add(&mut self, class: Class, n: u64) {
        match class {
            Class::Ok => self.ok += n,
            Class::Refused => self.refused += n,
            Class::ServerError => self.server_error += n,
            Class::Transport => self.transport += n,
        }
    }

    fn merge(&mut self, o: &Self) {
        self.ok += o.ok;
        self.refused += o.refused;
        self.server_error += o.server_error;
        self.transport += o.transport;
    }

    fn total(&self) -> u64 {
        self.ok + self.refused + self.server_error + self.transport
    }
}

/// One operation's record: latencies, answers by name, answers by class.
#[derive(Debug, Clone, Default)]
pub struct OpStats {
    pub latencies: Latencies,
    pub answers: BTreeMap<String, u64>,
    pub classes: Classes,
}

impl OpStats {
    fn merge(&mut self, o: &Self) {
        self.latencies.merge(&o.latencies);
        for (answer, n) in &o.answers {
            *self.answers.entry(answer.clone()).or_default() += n;
        }
        self.classes.merge(&o.classes);
    }
}

/// Everything a run recorded: per operation, how late paced sends went out, the wins
/// answered, and how many draws ended with an unknown outcome (5xx or no answer).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub ops: BTreeMap<&'static str, OpStats>,
    pub schedule_lag: Option<Latencies>,
    pub wins: Vec<Win>,
    pub unknown_outcomes: u64,
}

impl Tally {
    pub fn record(&mut self, op: &'static str, latency: Duration, answer: &str, class: Class) {
        let stats = self.ops.entry(op).or_default();
        stats.latencies.record(latency);
        stats.classes.add(class, 1);
        match stats.answers.get_mut(answer) {
            Some(n) => *n += 1,
            None => {
                stats.answers.insert(answer.to_owned(), 1);
            }
        }
    }

    pub fn record_lag(&mut self, lag: Duration) {
        self.schedule_lag
            .get_or_insert_with(Latencies::default)
            .record(lag);
    }

    /// The named operations merged into one.
    pub fn combined(&self, names: &[&str]) -> OpStats {
        let mut all = OpStats::default();
        for (_, stats) in self.ops.iter().filter(|(n, _)| names.contains(n)) {
            all.merge(stats);
        }
        all
    }
}

/// The machine the tool ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub os: &'static str,
}

impl Machine {
    pub fn this() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            os: std::env::consts::OS,
        }
    }
}

/// One operation in the result.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub name: String,
    pub requests: u64,
    pub answers: BTreeMap<String, u64>,
    pub classes: Classes,
    pub throughput_rps: f64,
    pub latency_us: Percentiles,
}

impl Operation {
    fn of(name: &str, stats: &OpStats, seconds: f64) -> Self {
        let requests = stats.classes.total();
        Self {
            name: name.to_owned(),
            requests,
            answers: stats.answers.clone(),
            classes: stats.classes,
            throughput_rps: rate(requests, seconds),
            latency_us: stats.latencies.percentiles(),
        }
    }
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// What a run was: the scenario, its parameters, where it ran.
#[derive(Debug, Clone)]
pub struct RunMeta {
    pub scenario: &'static str,
    pub parameters: serde_json::Value,
    pub target: String,
    pub mode: &'static str,
    pub activity_id: String,
    pub activity_deployed: bool,
    /// The operations the headline figures are about (`draw`, or the reads).
    pub primary: Vec<&'static str>,
}

/// The result of a run: printed, and written with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub parameters: serde_json::Value,
    pub target: String,
    pub mode: String,
    pub activity_id: String,
    pub activity_deployed: bool,
    pub machine: Machine,
    pub started_at: DateTime<Utc>,
    pub duration_s: f64,
    pub requests: u64,
    pub answers: BTreeMap<String, u64>,
    pub classes: Classes,
    pub throughput_rps: f64,
    pub latency_us: Percentiles,
    pub schedule_lag_us: Option<Percentiles>,
    pub operations: Vec<Operation>,
    pub audit: Option<AuditReport>,
}

impl Report {
    pub fn build(meta: RunMeta, tally: &Tally, started_at: DateTime<Utc>, took: Duration) -> Self {
        let seconds = took.as_secs_f64();
        let primary = Operation::of("primary", &tally.combined(&meta.primary), seconds);
        Self {
            scenario: meta.scenario.to_owned(),
            parameters: meta.parameters,
            target: meta.target,
            mode: meta.mode.to_owned(),
            activity_id: meta.activity_id,
            activity_deployed: meta.activity_deployed,
            machine: Machine::this(),
            started_at,
            duration_s: seconds,
            requests: primary.requests,
            answers: primary.answers,
            classes: primary.classes,
            throughput_rps: primary.throughput_rps,
            latency_us: primary.latency_us,
            schedule_lag_us: tally.schedule_lag.as_ref().map(Latencies::percentiles),
            operations: tally
                .ops
                .iter()
                .map(|(name, stats)| Operation::of(name, stats, seconds))
                .collect(),
            audit: None,
        }
    }

    /// Whether the audit (if one ran) passed.
    pub fn audit_passed(&self) -> bool {
        self.audit.as_ref().is_none_or(AuditReport::passed)
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn latency_line(p: &Percentiles) -> String {
    format!(
        "p50 {}  p95 {}  p99 {}  max {}",
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        ms(p.max)
    )
}

fn answers_line(answers: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = answers.iter().map(|(a, n)| format!("{a} {n}")).collect();
    parts.join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} against {} ({} mode), activity {}{}; {} cores here",
            self.scenario,
            self.target,
            self.mode,
            self.activity_id,
            if self.activity_deployed {
                " (deployed for this run)"
            } else {
                ""
            },
            self.machine.cores
        )?;
        writeln!(
            f,
            "  {} requests in {:.2} s: {:.1} /s; {}",
            self.requests,
            self.duration_s,
            self.throughput_rps,
            latency_line(&self.latency_us)
        )?;
        writeln!(f, "  answers: {}", answers_line(&self.answers))?;
        let c = &self.classes;
        writeln!(
            f,
            "  classes: 2xx {}, 4xx {}, 5xx {}, no answer {}",
            c.ok, c.refused, c.server_error, c.transport
        )?;
        if let Some(lag) = &self.schedule_lag_us {
            writeln!(f, "  sends behind schedule: {}", latency_line(lag))?;
        }
        if self.operations.len() > 1 {
            for op in &self.operations {
                writeln!(
                    f,
                    "  {:<14} {:>8} requests, {:>9.1} /s; {}; {}",
                    op.name,
                    op.requests,
                    op.throughput_rps,
                    latency_line(&op.latency_us),
                    answers_line(&op.answers)
                )?;
            }
        }
        if let Some(audit) = &self.audit {
            write!(f, "{audit}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_latencies_add_up_per_operation() {
        let mut t = Tally::default();
        t.record("draw", Duration::from_millis(2), "win", Class::Ok);
        t.record("draw", Duration::from_millis(4), "sold_out", Class::Refused);
        t.record("draw", Duration::from_millis(6), "win", Class::Ok);
        t.record("deploy", Duration::from_millis(50), "ok", Class::Ok);
        let draw = t.combined(&["draw"]);
        assert_eq!(draw.answers.get("win"), Some(&2));
        assert_eq!(draw.classes.refused, 1);
        let p = draw.latencies.percentiles();
        assert_eq!(p.count, 3);
        assert!((3_990..=4_010).contains(&p.p50), "{p:?}");
        assert!((5_990..=6_010).contains(&p.max), "{p:?}");
        let all = t.combined(&["draw", "deploy"]);
        assert_eq!(all.classes.total(), 4);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let p = Latencies::default().percentiles();
        assert_eq!((p.count, p.p99, p.max), (0, 0, 0));
    }
}
