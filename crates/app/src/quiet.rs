//! Log lines for repeated failures, rate-limited: the first failure of a run is written at
//! once, then at most one line per period carrying how many were held back, and one line
//! when it works again. A dependency that is down writes a few lines, not one per request,
//! message or round.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct State {
    failing: bool,
    last_line: Option<Instant>,
    held_back: u64,
}

/// One gate per kind of failure (a job, a dependency).
#[derive(Debug)]
pub struct LogGate {
    every: Duration,
    state: Mutex<State>,
}

/// What a failure may log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The first failure after working: log it.
    Started,
    /// Still failing and a period has passed: log, with the failures held back since.
    Continuing { held_back: u64 },
    /// Still failing within the period: stay quiet.
    Quiet,
}

impl LogGate {
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new(State {
                failing: false,
                last_line: None,
                held_back: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain counters: a panic elsewhere leaves them usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A failure happened: whether and how to log it.
    pub fn failed(&self) -> Failure {
        let mut s = self.lock();
        let now = Instant::now();
        if !s.failing {
            s.failing = true;
            s.last_line = Some(now);
            s.held_back = 0;
            return Failure::Started;
        }
        if s.last_line
            .is_none_or(|at| now.duration_since(at) >= self.every)
        {
            let held_back = s.held_back;
            s.last_line = Some(now);
            s.held_back = 0;
            return Failure::Continuing { held_back };
        }
        s.held_back += 1;
        Failure::Quiet
    }

    /// It worked: `true` when it had been failing (log the recovery once).
    pub fn succeeded(&self) -> bool {
        let mut s = self.lock();
        std::mem::replace(&mut s.failing, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_logs_its_start_then_one_line_a_period_then_its_end() {
        let gate = LogGate::new(Duration::from_millis(50));
        assert!(!gate.succeeded(), "nothing to report while working");
        assert_eq!(gate.failed(), Failure::Started);
        for _ in 0..100 {
            assert_eq!(gate.failed(), Failure::Quiet);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(gate.failed(), Failure::Continuing { held_back: 100 });
        assert!(gate.succeeded());
        assert!(!gate.succeeded());
        assert_eq!(gate.failed(), Failure::Started);
    }
}
