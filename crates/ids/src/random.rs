use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Datelike, Utc};
use lottery_domain::Clock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Date-based codes for activity ids: `YYMMDD` of the clock's UTC date followed by six random
/// digits, e.g. `261123482910`.
///
/// Codes have 12 digits for dates in 2010..=2099. They are random within a day, so callers
/// rely on a unique key in storage to catch the rare collision.
pub struct ShortCode {
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
}

impl ShortCode {
    /// Seeded from the operating system.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Deterministic, for tests and simulations.
    pub fn with_seed(clock: Arc<dyn Clock>, seed: u64) -> Self {
        Self {
            clock,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    pub fn next_code(&self) -> i64 {
        let now = self.clock.now();
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        Self::generate(now, &mut *rng)
    }

    /// The code for `at` with random digits from `rng`.
    pub fn generate<R: Rng + ?Sized>(at: DateTime<Utc>, rng: &mut R) -> i64 {
        let date = at.date_naive();
        let yy = i64::from(date.year().rem_euclid(100));
        let yymmdd = yy * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day());
        yymmdd * 1_000_000 + rng.random_range(0..1_000_000)
    }
}

impl fmt::Debug for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShortCode").finish_non_exhaustive()
    }
}

/// Random 11-digit numbers, `10_000_000_000..=99_999_999_999`, used for strategy ids.
pub struct RandomNumber11 {
    rng: Mutex<StdRng>,
}

impl RandomNumber11 {
    pub const MIN: i64 = 10_000_000_000;
    pub const MAX: i64 = 99_999_999_999;

    /// Seeded from the operating system.
    pub fn new() -> Self {
        Self {
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Deterministic, for tests and simulations.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    pub fn next_number(&self) -> i64 {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        Self::generate(&mut *rng)
    }

    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> i64 {
        rng.random_range(Self::MIN..=Self::MAX)
    }
}

impl Default for RandomNumber11 {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RandomNumber11 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RandomNumber11").finish_non_exhaustive()
    }
}
