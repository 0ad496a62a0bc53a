//! Activities, strategies and awards: the global configuration.

use chrono::Utc;
use lottery_activity::{
    Activity, ActivityFilter, ActivityRepository, ActivitySpec, ActivityState, Deploy, Deployment,
    Page, Revise, StockCounts, TakenId,
};
use lottery_award::{Award, AwardRepository};
use lottery_domain::{ActivityId, AwardId, RepoError, RepoResult, StrategyId};
use lottery_strategy::{Rate, Strategy, StrategyAward, StrategyRepository};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use db_router::{Dialect, Router};

use crate::error::{Within, corrupt, repo, retrying, router as router_error};
use crate::rows::{int, like_pattern, millis, opt_int, parse, placeholders, text, time, u32_of};

const ACTIVITY_COLUMNS: &str = "activity_id, name, description, begin_at, end_at, stock, take_limit, strategy_id, state, creator";

/// Global configuration store: implements the activity, strategy and award repositories.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    router: Router,
}

impl ConfigStore {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    async fn insert_parts(
        tx: &mut Transaction<'static, Any>,
        d: &Deployment,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let s = &d.strategy;
        sqlx::query("INSERT INTO strategy (strategy_id, mode, fallback_award_id, created_at) VALUES (?, ?, ?, ?)")
            .bind(s.id().get())
            .bind(s.mode().as_str())
            .bind(s.fallback().map(AwardId::get))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Self::insert_strategy_awards(tx, s).await
    }

    async fn insert_strategy_awards(
        tx: &mut Transaction<'static, Any>,
        s: &Strategy,
    ) -> Result<(), sqlx::Error> {
        for (position, a) in s.awards().iter().enumerate() {
            sqlx::query(
                "INSERT INTO strategy_award (strategy_id, award_id, position, rate_units, award_count, award_left) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(s.id().get())
            .bind(a.award_id.get())
            .bind(position as i64)
            .bind(a.rate.units() as i64)
            .bind(i64::from(a.count))
            .bind(i64::from(a.count))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Inserts new award definitions; an id already stored is a unique violation.
    async fn insert_awards(
        tx: &mut Transaction<'static, Any>,
        awards: &[Award],
    ) -> Result<(), sqlx::Error> {
        for a in awards {
            sqlx::query("INSERT INTO award (award_id, kind, name, content) VALUES (?, ?, ?, ?)")
                .bind(a.id.get())
                .bind(a.kind.as_str())
                .bind(a.name.as_str())
                .bind(a.content.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Inserts or replaces the awards of a strategy being revised, after checking that none
    /// belongs to another strategy.
    async fn replace_own_awards(
        &self,
        tx: &mut Transaction<'static, Any>,
        strategy: StrategyId,
        awards: &[Award],
    ) -> Result<Option<TakenId>, sqlx::Error> {
        for a in awards {
            let other: Option<i64> = sqlx::query_scalar(
                "SELECT strategy_id FROM strategy_award WHERE award_id = ? AND strategy_id <> ? LIMIT 1",
            )
            .bind(a.id.get())
            .bind(strategy.get())
            .fetch_optional(&mut **tx)
            .await?;
            if other.is_some() {
                return Ok(Some(TakenId::Award(a.id)));
            }
        }
        let sql = format!(
            "INSERT INTO award (award_id, kind, name, content) VALUES (?, ?, ?, ?) {}",
            self.router
                .dialect()
                .upsert_clause(&["award_id"], &["kind", "name", "content"])
        );
        for a in awards {
            sqlx::query(&sql)
                .bind(a.id.get())
                .bind(a.kind.as_str())
                .bind(a.name.as_str())
                .bind(a.content.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(None)
    }

    /// Which id of a deployment that hit a unique key is already stored.
    async fn taken_id(&self, d: &Deployment) -> RepoResult<Option<TakenId>> {
        let pool = self.router.global();
        let exists = |sql: &'static str, id: i64| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(id)
                .fetch_optional(pool)
                .within(self.router.read_timeout())
                .await
                .map(|found| found.is_some())
                .map_err(repo)
        };
        let activity = d.activity.id();
        if exists(
            "SELECT 1 FROM activity WHERE activity_id = ?",
            activity.get(),
        )
        .await?
        {
            return Ok(Some(TakenId::Activity(activity)));
        }
        let strategy = d.strategy.id();
        if exists(
            "SELECT 1 FROM strategy WHERE strategy_id = ?",
            strategy.get(),
        )
        .await?
        {
            return Ok(Some(TakenId::Strategy(strategy)));
        }
        for a in &d.awards {
            if exists("SELECT 1 FROM award WHERE award_id = ?", a.id.get()).await? {
                return Ok(Some(TakenId::Award(a.id)));
            }
        }
        Ok(None)
    }

    async fn insert_deployment(
        tx: &mut Transaction<'static, Any>,
        d: &Deployment,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        Self::insert_awards(tx, &d.awards).await?;
        Self::insert_parts(tx, d, now).await?;
        let a = &d.activity;
        sqlx::query(&format!(
            "INSERT INTO activity ({ACTIVITY_COLUMNS}, stock_left, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(a.id().get())
        .bind(a.name())
        .bind(a.spec().description.as_str())
        .bind(millis(a.begin()))
        .bind(millis(a.end()))
        .bind(i64::from(a.stock()))
        .bind(i64::from(a.take_limit()))
        .bind(a.strategy_id().get())
        .bind(a.state().as_str())
        .bind(a.creator())
        .bind(i64::from(a.stock()))
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The configured stock of an activity and the count of each of its awards.
    async fn configured_stock(
        &self,
        id: ActivityId,
    ) -> RepoResult<Option<(u64, Vec<(AwardId, u64)>)>> {
        let Some(head) =
            sqlx::query("SELECT stock, strategy_id FROM activity WHERE activity_id = ?")
                .bind(id.get())
                .fetch_optional(self.router.global())
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?
        else {
            return Ok(None);
        };
        let strategy = parse("strategy_id", StrategyId::new(int(&head, "strategy_id")?))?;
        let awards = sqlx::query(
            "SELECT award_id, award_count FROM strategy_award WHERE strategy_id = ? ORDER BY position",
        )
        .bind(strategy.get())
        .fetch_all(self.router.global()).within(self.router.read_timeout())
        .await
        .map_err(repo)?
        .iter()
        .map(|r| {
            let award = parse("award_id", AwardId::new(int(r, "award_id")?))?;
            Ok((award, int(r, "award_count")?.max(0) as u64))
        })
        .collect::<RepoResult<Vec<_>>>()?;
        Ok(Some((int(&head, "stock")?.max(0) as u64, awards)))
    }

    /// Raises the activity's stock fence in every shard database to one generation above
    /// every fence there and at least `min_generation`; returns it.
    async fn raise_fences(&self, id: ActivityId, min_generation: u64) -> RepoResult<u64> {
        let databases: Vec<_> = self.router.routes().filter(|r| r.table == 0).collect();
        let mut generation = min_generation.max(1);
        for db in &databases {
            let pool = self.router.pool(db).map_err(router_error)?;
            let fence: Option<i64> =
                sqlx::query_scalar("SELECT generation FROM stock_fence WHERE activity_id = ?")
                    .bind(id.get())
                    .fetch_optional(pool)
                    .within(self.router.read_timeout())
                    .await
                    .map_err(repo)?;
            if let Some(f) = fence {
                generation = generation.max(f.max(0) as u64 + 1);
            }
        }
        let raise = match self.router.dialect() {
            Dialect::MySql => {
                "INSERT INTO stock_fence (activity_id, generation) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE generation = GREATEST(generation, VALUES(generation))"
            }
            Dialect::Sqlite => {
                "INSERT INTO stock_fence (activity_id, generation) VALUES (?, ?) \
                 ON CONFLICT (activity_id) DO UPDATE SET generation = MAX(generation, excluded.generation)"
            }
        };
        let value = i64::try_from(generation).map_err(|_| {
            RepoError::corrupt(format!("stock generation {generation} out of range"))
        })?;
        for db in &databases {
            let pool = self.router.pool(db).map_err(router_error)?;
            // On MariaDB this waits for the draw transactions holding the fence (shared
            // locks), so every record is either committed before it or checked after it.
            retrying(self.router.read_timeout(), || {
                sqlx::query(raise)
                    .bind(id.get())
                    .bind(value)
                    .execute(pool)
                    .within(self.router.read_timeout())
            })
            .await?;
        }
        Ok(generation)
    }

    /// Takes and wins per award recorded for an activity across every shard database,
    /// from the activity tally (a few rows, not a scan of the takes).
    async fn recorded(&self, id: ActivityId) -> RepoResult<(u64, Vec<(AwardId, u64)>)> {
        crate::tally::recorded(&self.router, id).await
    }

    /// Activity stock left as last synced to the database.
    pub async fn stock_left(&self, id: ActivityId) -> RepoResult<Option<u64>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT stock_left FROM activity WHERE activity_id = ?")
                .bind(id.get())
                .fetch_optional(self.router.global())
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?;
        Ok(v.map(|v| v.max(0) as u64))
    }

    /// Lowers the stored stock left to `left`; never raises it, so replays and out-of-order
    /// syncs are harmless. Returns whether anything changed.
    pub async fn sync_stock_left(&self, id: ActivityId, left: u64) -> RepoResult<bool> {
        let r = sqlx::query("UPDATE activity SET stock_left = ?, updated_at = ? WHERE activity_id = ? AND stock_left > ?")
            .bind(left as i64)
            .bind(millis(Utc::now()))
            .bind(id.get())
            .bind(left as i64)
            .execute(self.router.global()).within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        Ok(r.rows_affected() > 0)
    }

    /// Award stock left per award of a strategy, as last synced.
    pub async fn award_stock_left(&self, strategy: StrategyId) -> RepoResult<Vec<(AwardId, u64)>> {
        let rows = sqlx::query("SELECT award_id, award_left FROM strategy_award WHERE strategy_id = ? ORDER BY position")
            .bind(strategy.get())
            .fetch_all(self.router.global()).within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse("award_id", AwardId::new(int(r, "award_id")?))?,
                    int(r, "award_left")?.max(0) as u64,
                ))
            })
            .collect()
    }

    /// Monotonic, like [`Self::sync_stock_left`], for one award of a strategy.
    pub async fn sync_award_left(
        &self,
        strategy: StrategyId,
        award: AwardId,
        left: u64,
    ) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE strategy_award SET award_left = ? WHERE strategy_id = ? AND award_id = ? AND award_left > ?",
        )
        .bind(left as i64)
        .bind(strategy.get())
        .bind(award.get())
        .bind(left as i64)
        .execute(self.router.global()).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        Ok(r.rows_affected() > 0)
    }
}

fn activity_from(row: &AnyRow) -> RepoResult<Activity> {
    let spec = ActivitySpec {
        name: text(row, "name")?,
        description: text(row, "description")?,
        begin: time(int(row, "begin_at")?)?,
        end: time(int(row, "end_at")?)?,
        stock: u32_of("stock", int(row, "stock")?)?,
        take_limit: u32_of("take_limit", int(row, "take_limit")?)?,
    };
    let state: ActivityState = parse("state", text(row, "state")?.parse())?;
    parse(
        "activity",
        Activity::restore(
            parse("activity_id", ActivityId::new(int(row, "activity_id")?))?,
            spec,
            parse("strategy_id", StrategyId::new(int(row, "strategy_id")?))?,
            state,
            text(row, "creator")?,
        ),
    )
}

fn award_from(row: &AnyRow) -> RepoResult<Award> {
    parse(
        "award",
        Award::new(
            parse("award_id", AwardId::new(int(row, "award_id")?))?,
            parse("kind", text(row, "kind")?.parse())?,
            text(row, "name")?,
            text(row, "content")?,
        ),
    )
}

#[async_trait::async_trait]
impl ActivityRepository for ConfigStore {
    async fn deploy(&self, d: &Deployment) -> RepoResult<Deploy> {
        let now = millis(Utc::now());
        // Concurrent inserts of the same key can deadlock on MariaDB: run the whole
        // transaction again, and classify a unique violation only once it is a plain clash.
        let inserted = retrying(self.router.read_timeout(), || async {
            let mut tx = self.router.global().begin().await?;
            match Self::insert_deployment(&mut tx, d, now).await {
                Ok(()) => tx.commit().await.map(|()| true),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    tx.rollback().await?;
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        match inserted {
            true => Ok(Deploy::Deployed),
            false => {
                match self.taken_id(d).await? {
                    Some(taken) => Ok(Deploy::Taken(taken)),
                    // The clashing row was gone again by the time it was looked for.
                    None => Err(RepoError::Conflict(
                        "the deployment clashed with a concurrent one".into(),
                    )),
                }
            }
        }
    }

    async fn revise(&self, d: &Deployment) -> RepoResult<Revise> {
        let now = millis(Utc::now());
        let a = &d.activity;
        let mut tx = self.router.global().begin().await.map_err(repo)?;
        // The compare-and-set on `editing` comes first: it also locks the row on MariaDB, so a
        // concurrent submit waits for this revision or wins before it.
        let updated = sqlx::query(
            "UPDATE activity SET name = ?, description = ?, begin_at = ?, end_at = ?, stock = ?, stock_left = ?, \
             take_limit = ?, updated_at = ? WHERE activity_id = ? AND strategy_id = ? AND state = 'editing'",
        )
        .bind(a.name())
        .bind(a.spec().description.as_str())
        .bind(millis(a.begin()))
        .bind(millis(a.end()))
        .bind(i64::from(a.stock()))
        .bind(i64::from(a.stock()))
        .bind(i64::from(a.take_limit()))
        .bind(now)
        .bind(a.id().get())
        .bind(a.strategy_id().get())
        .execute(&mut *tx)
        .await
        .map_err(repo)?;
        if updated.rows_affected() == 0 {
            tx.rollback().await.map_err(repo)?;
            return Ok(Revise::NotEditing);
        }
        let s = &d.strategy;
        sqlx::query("UPDATE strategy SET mode = ?, fallback_award_id = ? WHERE strategy_id = ?")
            .bind(s.mode().as_str())
            .bind(s.fallback().map(AwardId::get))
            .bind(s.id().get())
            .execute(&mut *tx)
            .await
            .map_err(repo)?;
        sqlx::query("DELETE FROM strategy_award WHERE strategy_id = ?")
            .bind(s.id().get())
            .execute(&mut *tx)
            .await
            .map_err(repo)?;
        if let Some(taken) = self
            .replace_own_awards(&mut tx, s.id(), &d.awards)
            .await
            .map_err(repo)?
        {
            tx.rollback().await.map_err(repo)?;
            return Ok(Revise::Taken(taken));
        }
        Self::insert_strategy_awards(&mut tx, s)
            .await
            .map_err(repo)?;
        tx.commit().await.map_err(repo)?;
        Ok(Revise::Revised)
    }

    async fn activity(&self, id: ActivityId) -> RepoResult<Option<Activity>> {
        let row = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM activity WHERE activity_id = ?"
        ))
        .bind(id.get())
        .fetch_optional(self.router.global())
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        row.as_ref().map(activity_from).transpose()
    }

    async fn list(&self, filter: &ActivityFilter, page: Page) -> RepoResult<Vec<Activity>> {
        let mut sql = format!("SELECT {ACTIVITY_COLUMNS} FROM activity WHERE 1 = 1");
        if filter.name.is_some() {
            sql.push_str(" AND name LIKE ? ESCAPE '!'");
        }
        if filter.state.is_some() {
            sql.push_str(" AND state = ?");
        }
        sql.push_str(" ORDER BY activity_id DESC LIMIT ? OFFSET ?");
        let mut q = sqlx::query(&sql);
        if let Some(name) = &filter.name {
            q = q.bind(like_pattern(name));
        }
        if let Some(state) = filter.state {
            q = q.bind(state.as_str());
        }
        let rows = q
            .bind(i64::from(page.limit))
            .bind(i64::from(page.offset))
            .fetch_all(self.router.global())
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        rows.iter().map(activity_from).collect()
    }

    async fn change_state(
        &self,
        id: ActivityId,
        from: ActivityState,
        to: ActivityState,
    ) -> RepoResult<bool> {
        let r = sqlx::query(
            "UPDATE activity SET state = ?, updated_at = ? WHERE activity_id = ? AND state = ?",
        )
        .bind(to.as_str())
        .bind(millis(Utc::now()))
        .bind(id.get())
        .bind(from.as_str())
        .execute(self.router.global())
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        Ok(r.rows_affected() == 1)
    }

    async fn fence_stock(
        &self,
        id: ActivityId,
        min_generation: u64,
    ) -> RepoResult<Option<(u64, StockCounts)>> {
        if self.configured_stock(id).await?.is_none() {
            return Ok(None);
        }
        let generation = self.raise_fences(id, min_generation).await?;
        // Counted after every fence is up: each record the fences will still accept is of
        // this generation or newer, so none is counted here and again later.
        Ok(self
            .stock_counts(id)
            .await?
            .map(|counts| (generation, counts)))
    }

    async fn stock_counts(&self, id: ActivityId) -> RepoResult<Option<StockCounts>> {
        let Some((stock, awards)) = self.configured_stock(id).await? else {
            return Ok(None);
        };
        let (takes, won) = self.recorded(id).await?;
        let awards_left = awards
            .into_iter()
            .map(|(award, count)| {
                let used = won.iter().find(|(a, _)| *a == award).map_or(0, |(_, n)| *n);
                (award, count.saturating_sub(used))
            })
            .collect();
        Ok(Some(StockCounts {
            stock_left: stock.saturating_sub(takes),
            awards_left,
        }))
    }

    async fn sync_stock(&self, id: ActivityId, counts: &StockCounts) -> RepoResult<()> {
        self.sync_stock_left(id, counts.stock_left).await?;
        let Some(strategy) =
            sqlx::query_scalar::<_, i64>("SELECT strategy_id FROM activity WHERE activity_id = ?")
                .bind(id.get())
                .fetch_optional(self.router.global())
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?
        else {
            return Ok(());
        };
        let strategy = parse("strategy_id", StrategyId::new(strategy))?;
        for (award, left) in &counts.awards_left {
            self.sync_award_left(strategy, *award, *left).await?;
        }
        Ok(())
    }

    async fn running(&self, after: Option<ActivityId>, limit: u32) -> RepoResult<Vec<Activity>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM activity WHERE state IN ('approved', 'doing') \
             AND activity_id > ? ORDER BY activity_id LIMIT ?"
        ))
        .bind(after.map_or(0, ActivityId::get))
        .bind(i64::from(limit))
        .fetch_all(self.router.global())
        .within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        rows.iter().map(activity_from).collect()
    }

    async fn due(
        &self,
        now: chrono::DateTime<Utc>,
        after: Option<ActivityId>,
        limit: u32,
    ) -> RepoResult<Vec<Activity>> {
        let now = millis(now);
        let rows = sqlx::query(&format!(
            "SELECT {ACTIVITY_COLUMNS} FROM activity WHERE activity_id > ? AND \
             ((state = 'approved' AND begin_at <= ?) OR (state IN ('approved', 'doing') AND end_at < ?)) \
             ORDER BY activity_id LIMIT ?"
        ))
        .bind(after.map_or(0, ActivityId::get))
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.router.global()).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        rows.iter().map(activity_from).collect()
    }
}

#[async_trait::async_trait]
impl StrategyRepository for ConfigStore {
    async fn strategy(&self, id: StrategyId) -> RepoResult<Option<Strategy>> {
        let pool = self.router.global();
        let Some(head) =
            sqlx::query("SELECT mode, fallback_award_id FROM strategy WHERE strategy_id = ?")
                .bind(id.get())
                .fetch_optional(pool)
                .within(self.router.read_timeout())
                .await
                .map_err(repo)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT award_id, rate_units, award_count FROM strategy_award WHERE strategy_id = ? ORDER BY position",
        )
        .bind(id.get())
        .fetch_all(pool).within(self.router.read_timeout())
        .await
        .map_err(repo)?;
        let awards = rows
            .iter()
            .map(|r| {
                Ok(StrategyAward {
                    award_id: parse("award_id", AwardId::new(int(r, "award_id")?))?,
                    rate: parse(
                        "rate_units",
                        Rate::from_units(int(r, "rate_units")?.max(0) as u64),
                    )?,
                    count: u32_of("award_count", int(r, "award_count")?)?,
                })
            })
            .collect::<RepoResult<Vec<_>>>()?;
        let fallback = opt_int(&head, "fallback_award_id")?
            .map(|f| parse("fallback_award_id", AwardId::new(f)))
            .transpose()?;
        let mode = parse("mode", text(&head, "mode")?.parse())?;
        Strategy::new(id, mode, awards, fallback)
            .map(Some)
            .map_err(|e| corrupt(format!("strategy {id}: {e}")))
    }
}

#[async_trait::async_trait]
impl AwardRepository for ConfigStore {
    async fn award(&self, id: AwardId) -> RepoResult<Option<Award>> {
        Ok(self.awards(&[id]).await?.into_iter().next())
    }

    async fn awards(&self, ids: &[AwardId]) -> RepoResult<Vec<Award>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT award_id, kind, name, content FROM award WHERE award_id IN ({}) ORDER BY award_id",
            placeholders(ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.get());
        }
        let rows = q
            .fetch_all(self.router.global())
            .within(self.router.read_timeout())
            .await
            .map_err(repo)?;
        rows.iter().map(award_from).collect()
    }
}
