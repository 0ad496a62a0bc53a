//! The instance's identity for id generation: a snowflake worker id leased so that no other
//! live instance holds it, renewed in the background, given up on a clean stop. Ids are
//! issued only while the lease holds; an instance that lost its lease takes another id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use lottery_domain::Clock;
use lottery_ids::{Generators, Validity, WorkerLeases};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::AppError;

/// Recorded above a holder's last millisecond, for ids borrowed ahead of the clock between
/// two renewals (4,096 ids per millisecond).
const HIGH_WATER_MARGIN_MS: i64 = 1_000;

pub struct WorkerIdentity {
    leases: Arc<dyn WorkerLeases>,
    ids: Arc<Generators>,
    validity: Arc<Validity>,
    clock: Arc<dyn Clock>,
    holder: String,
    ttl: Duration,
    worker: AtomicU32,
    /// Whether the last renewal succeeded, so a failing lease store logs once per change.
    renewing: AtomicBool,
}

impl std::fmt::Debug for WorkerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerIdentity")
            .field("holder", &self.holder)
            .field("worker", &self.worker_id())
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl WorkerIdentity {
    /// Leases a worker id for `holder` and builds the id generators on it. Fails when the
    /// lease store cannot be reached or every worker id is held by a live instance: an
    /// instance without one must not serve.
    pub async fn acquire(
        leases: Arc<dyn WorkerLeases>,
        clock: Arc<dyn Clock>,
        holder: String,
        ttl: Duration,
    ) -> Result<Arc<Self>, AppError> {
        let now = clock.now().timestamp_millis();
        let acquired = leases
            .acquire(&holder, now, now + ms(ttl))
            .await?
            .ok_or_else(|| {
                AppError::unavailable(
                    "every snowflake worker id (1,024) is held by a live instance",
                )
            })?;
        // No ids until the first renewal has recorded how far this holder may issue them.
        let validity = Arc::new(Validity::new(i64::MIN));
        let ids = Arc::new(Generators::leased(
            acquired.worker_id,
            clock.clone(),
            acquired.high_water_unix_ms,
            validity.clone(),
        )?);
        let identity = Arc::new(Self {
            leases,
            ids,
            validity,
            clock,
            holder,
            ttl,
            worker: AtomicU32::new(acquired.worker_id),
            renewing: AtomicBool::new(true),
        });
        identity.renew().await?;
        info!(worker = acquired.worker_id, holder = %identity.holder, "worker id leased");
        Ok(identity)
    }

    /// The generators on the leased worker id.
    pub fn ids(&self) -> Arc<Generators> {
        self.ids.clone()
    }

    pub fn worker_id(&self) -> u32 {
        self.worker.load(Ordering::SeqCst)
    }

    /// Whether ids may be issued now.
    pub fn holds(&self) -> bool {
        self.validity.holds_at(self.clock.now().timestamp_millis())
    }

    /// Extends the lease; when it was lost (it expired and another instance took the id),
    /// stops issuing at once and leases another id.
    pub async fn renew(&self) -> Result<(), AppError> {
        let until = self.clock.now().timestamp_millis() + ms(self.ttl);
        // Recorded before the validity is extended to `until`: the next holder of this id
        // starts above anything this one may issue meanwhile.
        let high_water =
            self.ids.snowflake().high_water_unix_ms().max(until) + HIGH_WATER_MARGIN_MS;
        let worker = self.worker_id();
        if self
            .leases
            .renew(worker, &self.holder, until, high_water)
            .await?
        {
            self.validity.set(until);
            return Ok(());
        }
        self.validity.set(i64::MIN);
        warn!(worker, holder = %self.holder, "worker id lease lost; leasing another");
        let now = self.clock.now().timestamp_millis();
        let acquired = self
            .leases
            .acquire(&self.holder, now, now + ms(self.ttl))
            .await?
            .ok_or_else(|| AppError::unavailable("no snowflake worker id is free"))?;
        self.ids
            .snowflake()
            .rebase(acquired.worker_id, acquired.high_water_unix_ms)?;
        self.worker.store(acquired.worker_id, Ordering::SeqCst);
        Box::pin(self.renew()).await
    }

    /// Renews every third of the lease's time to live until `stop` turns true, then gives
    /// the id up.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.ttl / 3;
        // After a failed renewal, try again soon: once the lease has run out, every moment
        // until the next renewal is a moment without ids (no draws).
        let retry = every.min(Duration::from_millis(500));
        loop {
            let pause = if self.renewing.load(Ordering::SeqCst) {
                every
            } else {
                retry
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
            match self.renew().await {
                Ok(()) => {
                    if !self.renewing.swap(true, Ordering::SeqCst) {
                        info!(worker = self.worker_id(), "worker id lease renewed again");
                    }
                }
                Err(e) => {
                    if self.renewing.swap(false, Ordering::SeqCst) {
                        error!(worker = self.worker_id(), error = %lottery_domain::Chain(&e),
                            "cannot renew the worker id lease; ids stop when it runs out");
                    }
                }
            }
        }
        self.release().await;
    }

    /// Gives the id up now (a clean stop), so another instance can take it at once.
    pub async fn release(&self) {
        self.validity.set(i64::MIN);
        let high_water = self.ids.snowflake().high_water_unix_ms() + HIGH_WATER_MARGIN_MS;
        if let Err(e) = self
            .leases
            .release(self.worker_id(), &self.holder, high_water)
            .await
        {
            warn!(error = %lottery_domain::Chain(&e), "could not give the worker id lease up; it expires by itself");
        }
    }
}
