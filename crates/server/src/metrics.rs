//! Prometheus metrics, kept in atomics owned by the server (no global recorder, so several
//! servers can live in one process, as the tests do) and rendered in the text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the draw latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    /// Draws by outcome: `win`, `lose`, or an error code such as `sold_out`.
    draws: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    /// Stock claims the reconciler settled, by fate.
    reconciled: [AtomicU64; 4],
    /// Activities whose stock store held more than the records allow, reloaded.
    drift_repairs: AtomicU64,
}

/// Fates of reconciled claims, in the order of `Metrics::reconciled`.
const FATES: [&str; 4] = ["given_back", "recorded", "superseded", "unresolved"];

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (activity id, stock left) of running activities.
    pub stock_left: Vec<(String, u64)>,
    pub outbox_pending: u64,
    pub outbox_parked: u64,
    /// Messages waiting for the consumer (broker queue depth, or pending outbox rows embedded).
    pub consumer_lag: u64,
}

impl Metrics {
    pub fn record_draw(&self, outcome: &str, elapsed: Duration) {
        *self
            .draws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(outcome.to_owned())
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn record_job(&self, report: &lottery_app::JobReport) {
        match report {
            lottery_app::JobReport::Reconcile(r) => self.record_reconcile(r),
            lottery_app::JobReport::StockSync(s) => {
                self.drift_repairs
                    .fetch_add(s.repaired as u64, Ordering::Relaxed);
            }
        }
    }

    fn record_reconcile(&self, report: &lottery_app::ReconcileReport) {
        let counts = [
            report.given_back,
            report.recorded,
            report.superseded,
            report.unresolved,
        ];
        for (slot, n) in self.reconciled.iter().zip(counts) {
            slot.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        self.render_jobs(&mut out);
        self.render_draws(&mut out);
        render_gauges(&mut out, gauges);
        out
    }

    fn render_jobs(&self, out: &mut String) {
        family(
            out,
            "lottery_reconciled_claims_total",
            "counter",
            "Stock claims no draw settled, settled by the reconciler, by fate (given_back: no record, the repairs).",
        );
        for (fate, n) in FATES.iter().zip(&self.reconciled) {
            let _ = writeln!(
                out,
                "lottery_reconciled_claims_total{{fate=\"{fate}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        family(
            out,
            "lottery_stock_drift_repairs_total",
            "counter",
            "Times the stock store held more than the records allow and was reloaded (an alarm).",
        );
        let _ = writeln!(
            out,
            "lottery_stock_drift_repairs_total {}",
            self.drift_repairs.load(Ordering::Relaxed)
        );
    }

    fn render_draws(&self, out: &mut String) {
        family(
            out,
            "lottery_draws_total",
            "counter",
            "Draws by outcome (win, lose, or the error code).",
        );
        for (outcome, n) in self
            .draws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "lottery_draws_total{{result=\"{outcome}\"}} {n}");
        }
        family(
            out,
            "lottery_draw_duration_seconds",
            "histogram",
            "Time to answer a draw.",
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "lottery_draw_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "lottery_draw_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "lottery_draw_duration_seconds_sum {sum}");
        let _ = writeln!(out, "lottery_draw_duration_seconds_count {count}");
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_gauges(out: &mut String, gauges: &Gauges) {
    family(
        out,
        "lottery_stock_left",
        "gauge",
        "Activity stock left, per running activity.",
    );
    for (activity, left) in &gauges.stock_left {
        let _ = writeln!(out, "lottery_stock_left{{activity=\"{activity}\"}} {left}");
    }
    family(
        out,
        "lottery_outbox_backlog",
        "gauge",
        "Outbox messages not yet confirmed by the broker.",
    );
    let _ = writeln!(
        out,
        "lottery_outbox_backlog{{state=\"pending\"}} {}",
        gauges.outbox_pending
    );
    let _ = writeln!(
        out,
        "lottery_outbox_backlog{{state=\"parked\"}} {}",
        gauges.outbox_parked
    );
    family(
        out,
        "lottery_consumer_lag",
        "gauge",
        "Messages waiting for the award consumer.",
    );
    let _ = writeln!(out, "lottery_consumer_lag {}", gauges.consumer_lag);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.record_draw("win", Duration::from_millis(3));
        m.record_draw("sold_out", Duration::from_millis(30));
        let text = m.render(&Gauges {
            stock_left: vec![("7".into(), 5)],
            ..Gauges::default()
        });
        assert!(text.contains("lottery_draws_total{result=\"win\"} 1"));
        assert!(text.contains("lottery_draws_total{result=\"sold_out\"} 1"));
        assert!(text.contains("lottery_draw_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("lottery_draw_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("lottery_stock_left{activity=\"7\"} 5"));
    }
}
