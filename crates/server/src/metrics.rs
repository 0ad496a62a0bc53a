//! Prometheus metrics in a registry owned by the server (no global recorder, so several
//! servers can live in one process, as the tests do), encoded by `prometheus-client`.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the draw latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DrawLabels {
    /// `win`, `lose`, or an error code such as `sold_out`.
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FateLabels {
    fate: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: &'static str,
}

/// Upper bounds of the job round histogram, in seconds.
const JOB_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabels {
    activity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

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

#[derive(Debug)]
pub struct Metrics {
    /// Encoding holds the lock too, so a scrape never sees gauges half set by another.
    registry: Mutex<Registry>,
    draws: Family<DrawLabels, Counter>,
    latency: Histogram,
    reconciled: Family<FateLabels, Counter>,
    drift_repairs: Counter,
    job_rounds: Family<JobLabels, Histogram>,
    stock_left: Family<ActivityLabels, Gauge>,
    outbox: Family<StateLabels, Gauge>,
    consumer_lag: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: Mutex::new(Registry::default()),
            draws: Family::default(),
            latency: Histogram::new(BUCKETS),
            reconciled: Family::default(),
            drift_repairs: Counter::default(),
            job_rounds: Family::new_with_constructor(|| Histogram::new(JOB_BUCKETS)),
            stock_left: Family::default(),
            outbox: Family::default(),
            consumer_lag: Gauge::default(),
        };
        m.register();
        m
    }
}

impl Metrics {
    fn register(&self) {
        let mut r = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.register(
            "lottery_draws",
            "Draws by outcome (win, lose, or the error code)",
            self.draws.clone(),
        );
        r.register(
            "lottery_draw_duration_seconds",
            "Time to answer a draw",
            self.latency.clone(),
        );
        r.register(
            "lottery_reconciled_claims",
            "Stock claims no draw settled, settled by the reconciler, by fate (given_back: no record, the repairs)",
            self.reconciled.clone(),
        );
        r.register(
            "lottery_stock_drift_repairs",
            "Times the stock store held more than the records allow and was reloaded (an alarm)",
            self.drift_repairs.clone(),
        );
        r.register(
            "lottery_job_round_duration_seconds",
            "Time a round of a scheduled job took on this instance, by job",
            self.job_rounds.clone(),
        );
        r.register(
            "lottery_stock_left",
            "Activity stock left, per running activity",
            self.stock_left.clone(),
        );
        r.register(
            "lottery_outbox_backlog",
            "Outbox messages not yet confirmed by the broker",
            self.outbox.clone(),
        );
        r.register(
            "lottery_consumer_lag",
            "Messages waiting for the award consumer",
            self.consumer_lag.clone(),
        );
    }

    pub fn record_draw(&self, outcome: &'static str, elapsed: Duration) {
        self.draws
            .get_or_create(&DrawLabels { result: outcome })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    pub fn record_job(&self, report: &lottery_app::JobReport) {
        match report {
            lottery_app::JobReport::Reconcile(r) => {
                for (fate, n) in [
                    ("given_back", r.given_back),
                    ("recorded", r.recorded),
                    ("superseded", r.superseded),
                    ("unresolved", r.unresolved),
                ] {
                    self.reconciled
                        .get_or_create(&FateLabels { fate })
                        .inc_by(n as u64);
                }
            }
            lottery_app::JobReport::StockSync(s) => {
                self.drift_repairs.inc_by(s.repaired as u64);
            }
            lottery_app::JobReport::Round { job, elapsed } => {
                self.job_rounds
                    .get_or_create(&JobLabels { job: job.name() })
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// The text exposition of every metric, with `gauges` as read now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Activities that stopped running drop out of the family.
        self.stock_left.clear();
        for (activity, left) in &gauges.stock_left {
            let labels = ActivityLabels {
                activity: activity.clone(),
            };
            self.stock_left.get_or_create(&labels).set(gauge(*left));
        }
        for (state, n) in [
            ("pending", gauges.outbox_pending),
            ("parked", gauges.outbox_parked),
        ] {
            self.outbox
                .get_or_create(&StateLabels { state })
                .set(gauge(n));
        }
        self.consumer_lag.set(gauge(gauges.consumer_lag));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
        assert!(
            text.contains("lottery_draws_total{result=\"win\"} 1"),
            "{text}"
        );
        assert!(text.contains("lottery_draws_total{result=\"sold_out\"} 1"));
        assert!(text.contains("lottery_draw_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("lottery_draw_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("lottery_stock_left{activity=\"7\"} 5"));
        // A stopped activity is gone at the next scrape.
        let text = m.render(&Gauges::default());
        assert!(
            !text.contains("lottery_stock_left{activity=\"7\"}"),
            "{text}"
        );
    }

    #[test]
    fn job_rounds_are_timed_by_job() {
        let m = Metrics::default();
        m.record_job(&lottery_app::JobReport::Round {
            job: lottery_app::Job::StockSync,
            elapsed: Duration::from_millis(3),
        });
        let text = m.render(&Gauges::default());
        assert!(
            text.contains(
                "lottery_job_round_duration_seconds_bucket{le=\"0.005\",job=\"stock_sync\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("lottery_job_round_duration_seconds_count{job=\"stock_sync\"} 1"));
    }

    #[test]
    fn two_servers_in_one_process_count_apart() {
        let a = Metrics::default();
        let b = Metrics::default();
        a.record_draw("win", Duration::from_millis(1));
        assert!(!b.render(&Gauges::default()).contains("result=\"win\""));
    }
}
