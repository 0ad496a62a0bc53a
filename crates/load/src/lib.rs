//! `lottery-load`: drives a running `lottery` server over HTTP and then audits its databases
//! and stock store.
//!
//! The tool mints its own tokens from the server's configuration (the file `lottery token
//! --config` takes, or the data directory of an embedded server), deploys a fresh activity
//! through the admin API unless given one (`--activity`), runs a scenario
//! ([`scenarios`]), prints throughput, latency percentiles and the count of every answer,
//! and audits the activity ([`audit`]) unless told not to (`--no-audit`).
//!
//! Modules: [`client`] (one hyper HTTP/1.1 connection per worker), [`tokens`],
//! [`scenarios`] (the engine and the scenarios), [`report`] (HdrHistogram, answers, the
//! result), [`audit`] (records, stock store, checks).
//!
//! # The JSON result (`--json FILE`)
//!
//! One object per run. Latencies are microseconds; `*_s` fields are seconds.
//!
//! ```text
//! {
//!   "scenario": "sustained",            // spike | sustained | rate | mixed | reads
//!   "parameters": {                     // everything the run was given
//!     "scenario": {"connections": 256, "duration": 15.0, "users": 1000, "new_users": false},
//!     "activity": {"stock": 10000000, "take_limit": 1000000, "award_count": 1000,
//!                  "award_rate": "0.5"},    // the activity deployed (or assumed, with --activity)
//!     "run": {"activity": {...the --activity/--stock/... options...}, "no_audit": false,
//!             "drain_timeout": 30.0, "json": "out.json", "wins": null}
//!   },
//!   "target": "http://127.0.0.1:8080",
//!   "mode": "embedded",                 // embedded | cluster (from the configuration)
//!   "activity_id": "261123702933",
//!   "activity_deployed": true,          // deployed for this run, or given with --activity
//!   "machine": {"cores": 2, "os": "linux"},   // where the tool ran
//!   "started_at": "2026-11-25T10:00:00.123Z",
//!   "duration_s": 15.002,               // from the first send to the last answer
//!   // The headline figures: the draws (the reads, for `reads`).
//!   "requests": 45123,
//!   "answers": {"win": 1000, "lose": 44100, "rate_limited": 23},  // by name, see below
//!   "classes": {"ok": 45100, "refused": 23, "server_error": 0, "transport": 0},
//!   "throughput_rps": 3007.8,           // requests / duration_s
//!   "latency_us": {"count": 45123, "min": 310, "mean": 8400.5, "p50": 7900, "p90": 12000,
//!                  "p95": 14100, "p99": 21000, "p999": 40000, "max": 61000},
//!   "schedule_lag_us": null,            // paced runs (spike, rate): how late each send left
//!                                       // against its schedule, same fields as latency_us
//!   "operations": [                     // every operation apart, same fields as the headline
//!     {"name": "draw", "requests": 45123, "answers": {...}, "classes": {...},
//!      "throughput_rps": 3007.8, "latency_us": {...}}
//!   ],                                  // mixed adds admin_list, admin_detail and deploy
//!                                       // (deploy, submit, approve, start timed as one);
//!                                       // reads has activity_view, my_activity, my_orders
//!   "audit": {                          // null with --no-audit
//!     "activity_id": "261123702933", "mode": "embedded",
//!     "stock_source": "admin_api",      // redis (cluster) | admin_api (embedded)
//!     "waited_s": 0.5, "passed": true,
//!     "checks": [{"name": "takes_within_stock", "passed": true,
//!                 "detail": "45123 takes recorded, stock 10000000"}, ...]
//!   }
//! }
//! ```
//!
//! Answer names: a draw answered `200` is `win` or `lose`, a read or admin call `ok`; an
//! error answer is named by its `code` (`sold_out`, `quota_exhausted`, `rate_limited`,
//! `unavailable`, `outcome_unknown`, `internal`, ...) or `http_<status>` without one; no
//! answer is `timeout` or `transport_error`. Classes: `ok` 2xx, `refused` 4xx,
//! `server_error` 5xx, `transport` no answer. Percentiles come from an HdrHistogram (three
//! significant figures). In paced runs a request's latency counts from its scheduled send
//! time, so time spent waiting for a free connection is counted (no coordinated omission);
//! it includes the timer's wake-up delay (about a millisecond), which `schedule_lag_us`
//! shows.

pub mod api;
pub mod audit;
pub mod client;
pub mod error;
pub mod report;
pub mod scenarios;
pub mod tokens;

use std::path::Path;

use lottery_server::config::{Config, Mode};

pub use error::LoadError;

/// `embedded` or `cluster`.
pub fn mode_name(config: &Config) -> &'static str {
    match config.mode() {
        Mode::Embedded => "embedded",
        Mode::Cluster => "cluster",
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), LoadError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| LoadError::Format {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|source| LoadError::File {
        path: path.display().to_string(),
        source,
    })
}
