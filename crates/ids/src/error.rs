use chrono::{DateTime, Utc};
use lottery_domain::IdError;

/// Why an id could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdGenError {
    #[error("worker id {worker_id} is out of range 0..={max}")]
    WorkerIdOutOfRange { worker_id: u32, max: u32 },
    /// The wall clock read earlier than a previous reading. No id is issued until it has
    /// caught up, since ids issued meanwhile could repeat ones already handed out.
    #[error("the clock moved backwards by {by_ms} ms; no ids until it catches up")]
    ClockMovedBackwards { by_ms: u64 },
    #[error("the clock reads {now}, before the id epoch 2024-01-01T00:00:00Z")]
    BeforeEpoch { now: DateTime<Utc> },
    /// 41 bits of milliseconds from 2024 last until 2093.
    #[error("snowflake timestamps are exhausted: the clock is past the 41-bit range")]
    Exhausted,
    /// The instance holds no lease on its worker id (lost, or not renewed in time): no id is
    /// issued, since another instance may hold the same worker id now.
    #[error("this instance holds no worker id lease; no ids until it holds one again")]
    NoWorkerLease,
    #[error(transparent)]
    Invalid(#[from] IdError),
}
