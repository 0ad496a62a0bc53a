//! Leases in the global database: one instance at a time runs each scheduled job, and no
//! two live instances hold the same snowflake worker id.

use chrono::{DateTime, Utc};
use db_router::{Dialect, Router};
use lottery_activity::JobLeases;
use lottery_domain::RepoResult;
use lottery_ids::{AcquiredWorker, MAX_WORKER_ID, WorkerLeases};

use crate::error::{Within, corrupt, repo};
use crate::rows::millis;

#[derive(Debug, Clone)]
pub struct LeaseStore {
    router: Router,
}

impl LeaseStore {
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

#[async_trait::async_trait]
impl JobLeases for LeaseStore {
    async fn try_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> RepoResult<bool> {
        let pool = self.router.global();
        let until = millis(now + ttl);
        // Take over an expired lease or renew our own: a compare-and-set on the row.
        let taken = sqlx::query(
            "UPDATE job_lease SET holder = ?, lease_until = ? WHERE job = ? AND (lease_until < ? OR holder = ?)",
        )
        .bind(holder)
        .bind(until)
        .bind(job)
        .bind(millis(now))
        .bind(holder)
        .execute(pool).within(self.router.read_timeout())
        .await
        .map_err(repo)?
        .rows_affected()
            == 1;
        if taken {
            return Ok(true);
        }
        let insert = format!(
            "{} job_lease (job, holder, lease_until) VALUES (?, ?, ?)",
            self.router.dialect().insert_ignore_into()
        );
        let created = sqlx::query(&insert)
            .bind(job)
            .bind(holder)
            .bind(until)
            .execute(pool)
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        Ok(created.rows_affected() == 1)
    }

    async fn release(&self, job: &str, holder: &str) -> RepoResult<()> {
        sqlx::query("UPDATE job_lease SET lease_until = 0 WHERE job = ? AND holder = ?")
            .bind(job)
            .bind(holder)
            .execute(self.router.global())
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        Ok(())
    }
}

impl LeaseStore {
    /// The two-argument maximum of the dialect.
    fn greatest(&self) -> &'static str {
        match self.router.dialect() {
            Dialect::MySql => "GREATEST",
            Dialect::Sqlite => "MAX",
        }
    }
}

fn acquired(worker: i64, high_water_unix_ms: i64) -> RepoResult<Option<AcquiredWorker>> {
    Ok(Some(AcquiredWorker {
        worker_id: u32::try_from(worker).map_err(corrupt)?,
        high_water_unix_ms,
    }))
}

#[async_trait::async_trait]
impl WorkerLeases for LeaseStore {
    async fn acquire(
        &self,
        holder: &str,
        now_unix_ms: i64,
        until_unix_ms: i64,
    ) -> RepoResult<Option<AcquiredWorker>> {
        let pool = self.router.global();
        let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT worker_id, holder, lease_until, high_water FROM worker_lease ORDER BY worker_id",
        )
        .fetch_all(pool).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        // An expired or released id first, so ids stay few; a compare-and-set on what was
        // read, so two instances racing for it cannot both win.
        for (worker, old_holder, old_until, high_water) in &rows {
            if *old_until >= now_unix_ms {
                continue;
            }
            let taken = sqlx::query(
                "UPDATE worker_lease SET holder = ?, lease_until = ? \
                 WHERE worker_id = ? AND holder = ? AND lease_until = ?",
            )
            .bind(holder)
            .bind(until_unix_ms)
            .bind(worker)
            .bind(old_holder)
            .bind(old_until)
            .execute(pool)
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?
            .rows_affected()
                == 1;
            if taken {
                return acquired(*worker, *high_water);
            }
        }
        let used: std::collections::HashSet<i64> = rows.iter().map(|r| r.0).collect();
        let insert = format!(
            "{} worker_lease (worker_id, holder, lease_until, high_water) VALUES (?, ?, ?, 0)",
            self.router.dialect().insert_ignore_into()
        );
        for worker in (0..=i64::from(MAX_WORKER_ID)).filter(|w| !used.contains(w)) {
            let created = sqlx::query(&insert)
                .bind(worker)
                .bind(holder)
                .bind(until_unix_ms)
                .execute(pool)
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?
                .rows_affected()
                == 1;
            if created {
                return acquired(worker, 0);
            }
        }
        Ok(None)
    }

    async fn renew(
        &self,
        worker_id: u32,
        holder: &str,
        until_unix_ms: i64,
        high_water_unix_ms: i64,
    ) -> RepoResult<bool> {
        let pool = self.router.global();
        let greatest = self.greatest();
        let changed = sqlx::query(&format!(
            "UPDATE worker_lease SET lease_until = ?, high_water = {greatest}(high_water, ?) \
             WHERE worker_id = ? AND holder = ?"
        ))
        .bind(until_unix_ms)
        .bind(high_water_unix_ms)
        .bind(i64::from(worker_id))
        .bind(holder)
        .execute(pool)
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?
        .rows_affected();
        if changed == 1 {
            return Ok(true);
        }
        // MariaDB counts changed rows only: a renewal that changed nothing still holds.
        let current: Option<String> =
            sqlx::query_scalar("SELECT holder FROM worker_lease WHERE worker_id = ?")
                .bind(i64::from(worker_id))
                .fetch_optional(pool)
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?;
        Ok(current.as_deref() == Some(holder))
    }

    async fn release(
        &self,
        worker_id: u32,
        holder: &str,
        high_water_unix_ms: i64,
    ) -> RepoResult<()> {
        let greatest = self.greatest();
        sqlx::query(&format!(
            "UPDATE worker_lease SET lease_until = 0, high_water = {greatest}(high_water, ?) \
             WHERE worker_id = ? AND holder = ?"
        ))
        .bind(high_water_unix_ms)
        .bind(i64::from(worker_id))
        .bind(holder)
        .execute(self.router.global())
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        Ok(())
    }
}
