//! Job leases in the global database: one instance at a time runs each scheduled job.

use chrono::{DateTime, Utc};
use db_router::Router;
use lottery_activity::JobLeases;
use lottery_domain::RepoResult;

use crate::error::repo;
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
        .execute(pool)
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
            .await
            .map_err(repo)?;
        Ok(created.rows_affected() == 1)
    }

    async fn release(&self, job: &str, holder: &str) -> RepoResult<()> {
        sqlx::query("UPDATE job_lease SET lease_until = 0 WHERE job = ? AND holder = ?")
            .bind(job)
            .bind(holder)
            .execute(self.router.global())
            .await
            .map_err(repo)?;
        Ok(())
    }
}
