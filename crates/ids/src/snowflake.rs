use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use lottery_domain::Clock;

use crate::IdGenError;

/// The snowflake epoch, 2024-01-01T00:00:00Z, in Unix milliseconds.
pub const EPOCH_MILLIS: i64 = 1_704_067_200_000;
pub const TIMESTAMP_BITS: u32 = 41;
pub const WORKER_BITS: u32 = 10;
pub const SEQUENCE_BITS: u32 = 12;
pub const MAX_WORKER_ID: u32 = (1 << WORKER_BITS) - 1;
pub const MAX_SEQUENCE: u16 = (1 << SEQUENCE_BITS) - 1;
pub const MAX_TIMESTAMP: u64 = (1 << TIMESTAMP_BITS) - 1;

/// The snowflake epoch as a date.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EPOCH_MILLIS).unwrap_or(DateTime::UNIX_EPOCH)
}

/// The fields of a snowflake id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnowflakeParts {
    /// Milliseconds since [`EPOCH_MILLIS`]. May run slightly ahead of the wall clock after
    /// bursts of more than 4096 ids in a millisecond.
    pub millis: u64,
    pub worker: u16,
    pub sequence: u16,
}

impl SnowflakeParts {
    /// Splits an id into its fields; `None` for ids that are not positive.
    pub fn decode(id: i64) -> Option<Self> {
        if id <= 0 {
            return None;
        }
        let raw = id as u64;
        Some(Self {
            millis: raw >> (WORKER_BITS + SEQUENCE_BITS),
            worker: ((raw >> SEQUENCE_BITS) & u64::from(MAX_WORKER_ID)) as u16,
            sequence: (raw & u64::from(MAX_SEQUENCE)) as u16,
        })
    }

    /// Joins the fields into an id; `None` if a field is out of range or the id would be 0.
    pub fn encode(self) -> Option<i64> {
        if self.millis > MAX_TIMESTAMP
            || u32::from(self.worker) > MAX_WORKER_ID
            || self.sequence > MAX_SEQUENCE
        {
            return None;
        }
        let raw = (self.millis << (WORKER_BITS + SEQUENCE_BITS))
            | (u64::from(self.worker) << SEQUENCE_BITS)
            | u64::from(self.sequence);
        // 41 + 10 + 12 = 63 bits, so the sign bit is always clear.
        let id = raw as i64;
        (id > 0).then_some(id)
    }

    /// When the id was issued (its logical millisecond).
    pub fn timestamp(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(EPOCH_MILLIS + self.millis as i64)
            .unwrap_or(DateTime::UNIX_EPOCH)
    }
}

/// Until when a leased worker id may issue ids (Unix milliseconds), shared between the
/// generator and whoever renews the lease. Ids stop when it runs out, so an instance that
/// lost its lease can never issue an id that another holder of the same worker id issues.
#[derive(Debug, Default)]
pub struct Validity(AtomicI64);

impl Validity {
    pub fn new(until_unix_ms: i64) -> Self {
        Self(AtomicI64::new(until_unix_ms))
    }

    pub fn until(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the end of validity (forward on renewal; anywhere on a new lease).
    pub fn set(&self, until_unix_ms: i64) {
        self.0.store(until_unix_ms, Ordering::SeqCst);
    }

    pub fn holds_at(&self, unix_ms: i64) -> bool {
        unix_ms <= self.until()
    }
}

#[derive(Debug)]
struct State {
    worker: u16,
    /// The latest wall-clock reading seen (ms since the epoch), to detect the clock going back.
    last_wall: i64,
    /// The millisecond of the last id issued; ahead of `last_wall` after a sequence overflow.
    logical: i64,
    sequence: u16,
}

/// Issues 64-bit, time-ordered ids: 41 bits of milliseconds since 2024-01-01T00:00:00Z,
/// 10 bits of worker id, 12 bits of sequence.
///
/// Ids from one generator strictly increase. When 4096 ids have been issued in one
/// millisecond, the generator borrows the next millisecond instead of waiting, so it never
/// blocks; the borrowed time is paid back as the wall clock catches up. It refuses to issue
/// ids while the wall clock reads earlier than a previous reading.
pub struct Snowflake {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// For a leased worker id: until when it may issue ids.
    validity: Option<Arc<Validity>>,
}

fn checked_worker(worker_id: u32) -> Result<u16, IdGenError> {
    u16::try_from(worker_id)
        .ok()
        .filter(|&w| u32::from(w) <= MAX_WORKER_ID)
        .ok_or(IdGenError::WorkerIdOutOfRange {
            worker_id,
            max: MAX_WORKER_ID,
        })
}

impl Snowflake {
    /// `worker_id` must be unique among the processes sharing an id space (0..=1023).
    pub fn new(worker_id: u32, clock: Arc<dyn Clock>) -> Result<Self, IdGenError> {
        Ok(Self {
            clock,
            state: Mutex::new(State {
                worker: checked_worker(worker_id)?,
                last_wall: i64::MIN,
                logical: -1,
                sequence: 0,
            }),
            validity: None,
        })
    }

    /// A generator for a leased worker id. `floor_unix_ms` is the highest millisecond the
    /// id's previous holders may have issued ids at: every id of this generator lies above
    /// it, however far the wall clock reads behind (it borrows milliseconds ahead, as after
    /// a sequence overflow). Ids are issued only while `validity` holds.
    pub fn leased(
        worker_id: u32,
        clock: Arc<dyn Clock>,
        floor_unix_ms: i64,
        validity: Arc<Validity>,
    ) -> Result<Self, IdGenError> {
        let ids = Self {
            validity: Some(validity),
            ..Self::new(worker_id, clock)?
        };
        ids.rebase(worker_id, floor_unix_ms)?;
        Ok(ids)
    }

    /// Switches to another leased worker id, whose previous holders issued ids at or below
    /// `floor_unix_ms`. Ids keep increasing.
    pub fn rebase(&self, worker_id: u32, floor_unix_ms: i64) -> Result<(), IdGenError> {
        let worker = checked_worker(worker_id)?;
        let mut state = self.lock();
        state.worker = worker;
        // The next id is at the millisecond after the floor (or later), never at it.
        state.logical = state.logical.max(floor_unix_ms - EPOCH_MILLIS);
        state.sequence = MAX_SEQUENCE;
        Ok(())
    }

    pub fn worker_id(&self) -> u16 {
        self.lock().worker
    }

    /// The millisecond (Unix) of the last id issued, or of the floor: what a lease records
    /// so that the next holder of this worker id starts above it.
    pub fn high_water_unix_ms(&self) -> i64 {
        EPOCH_MILLIS + self.lock().logical.max(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing below can panic midway through an update, so a poisoned lock still guards
        // a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next id: positive and greater than every id this generator issued before.
    pub fn next_id(&self) -> Result<i64, IdGenError> {
        let mut state = self.lock();
        // Read the clock under the lock: a reading taken before it could be older than one
        // another thread has already recorded, which would look like the clock going back.
        let now = self.clock.now();
        if let Some(validity) = &self.validity
            && !validity.holds_at(now.timestamp_millis())
        {
            return Err(IdGenError::NoWorkerLease);
        }
        let wall = now.timestamp_millis() - EPOCH_MILLIS;
        if wall < 0 {
            return Err(IdGenError::BeforeEpoch { now });
        }
        // A leased generator borrows ahead of a clock that went back instead of refusing:
        // its floor and its own last id keep the ids unique and increasing.
        if wall < state.last_wall && self.validity.is_none() {
            let by_ms = state.last_wall.abs_diff(wall);
            return Err(IdGenError::ClockMovedBackwards { by_ms });
        }
        state.last_wall = state.last_wall.max(wall);

        let (millis, sequence) = if wall > state.logical {
            (wall, 0)
        } else if state.sequence < MAX_SEQUENCE {
            (state.logical, state.sequence + 1)
        } else {
            (state.logical + 1, 0)
        };
        // The very first slot of worker 0 would be id 0, which is not a valid id.
        let sequence = if millis == 0 && sequence == 0 && state.worker == 0 {
            1
        } else {
            sequence
        };
        let parts = SnowflakeParts {
            millis: millis as u64,
            worker: state.worker,
            sequence,
        };
        let id = parts.encode().ok_or(IdGenError::Exhausted)?;
        state.logical = millis;
        state.sequence = sequence;
        Ok(id)
    }

    /// Same as [`SnowflakeParts::decode`].
    pub fn decode(id: i64) -> Option<SnowflakeParts> {
        SnowflakeParts::decode(id)
    }
}

impl fmt::Debug for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snowflake")
            .field("worker", &self.worker_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use lottery_domain::FixedClock;

    use super::*;

    #[test]
    fn the_epoch_constant_is_2024() {
        assert_eq!(
            epoch(),
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .expect("date")
        );
    }

    #[test]
    fn worker_zero_at_the_epoch_skips_id_zero() {
        let ids = Snowflake::new(0, Arc::new(FixedClock::new(epoch()))).expect("worker 0");
        assert_eq!(ids.next_id(), Ok(1));
        assert_eq!(ids.next_id(), Ok(2));
    }

    #[test]
    fn encode_rejects_out_of_range_fields() {
        let ok = SnowflakeParts {
            millis: 5,
            worker: 3,
            sequence: 7,
        };
        assert_eq!(ok.encode().and_then(SnowflakeParts::decode), Some(ok));
        assert_eq!(
            SnowflakeParts {
                millis: MAX_TIMESTAMP + 1,
                ..ok
            }
            .encode(),
            None
        );
        assert_eq!(SnowflakeParts { worker: 1024, ..ok }.encode(), None);
        assert_eq!(
            SnowflakeParts {
                sequence: 4096,
                ..ok
            }
            .encode(),
            None
        );
        assert_eq!(
            SnowflakeParts {
                millis: 0,
                worker: 0,
                sequence: 0
            }
            .encode(),
            None
        );
        assert_eq!(SnowflakeParts::decode(0), None);
        assert_eq!(SnowflakeParts::decode(-1), None);
    }

    #[test]
    fn the_clock_before_the_epoch_or_past_its_range_is_refused() {
        let clock = Arc::new(FixedClock::new(epoch() - chrono::Duration::milliseconds(1)));
        let ids = Snowflake::new(1, clock.clone()).expect("worker 1");
        assert!(matches!(ids.next_id(), Err(IdGenError::BeforeEpoch { .. })));
        clock.set(epoch() + chrono::Duration::milliseconds(MAX_TIMESTAMP as i64 + 1));
        assert_eq!(ids.next_id(), Err(IdGenError::Exhausted));
    }
}
