//! A small migration runner. sqlx's own migrator cannot stamp one script onto every sharded
//! table (`user_take_000`, `user_take_001`, ...), so scripts are embedded here and applied per
//! scope: the global database, each shard database, and each table suffix of each shard.
//! Every statement is `IF NOT EXISTS` and versions are recorded with an insert-ignore, so two
//! instances migrating at once do no harm.

use db_router::{Dialect, Router};
use sqlx::AnyPool;
use tracing::info;

use crate::StorageError;

/// Where a script applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    /// Once per shard database.
    Shard,
    /// Once per sharded table suffix (`{t}` in the script).
    ShardTable,
}

/// One versioned script for both dialects.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub scope: Scope,
    pub mysql: &'static str,
    pub sqlite: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        scope: Scope::Global,
        mysql: include_str!("../../../migrations/mysql/0001_global.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0001_global.sql"),
    },
    Migration {
        version: 1,
        scope: Scope::Shard,
        mysql: include_str!("../../../migrations/mysql/0001_shard.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0001_shard.sql"),
    },
    Migration {
        version: 1,
        scope: Scope::ShardTable,
        mysql: include_str!("../../../migrations/mysql/0001_shard_table.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0001_shard_table.sql"),
    },
    Migration {
        version: 2,
        scope: Scope::Global,
        mysql: include_str!("../../../migrations/mysql/0002_global.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_global.sql"),
    },
    Migration {
        version: 3,
        scope: Scope::Global,
        mysql: include_str!("../../../migrations/mysql/0003_global.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0003_global.sql"),
    },
    Migration {
        version: 2,
        scope: Scope::Shard,
        mysql: include_str!("../../../migrations/mysql/0002_shard.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_shard.sql"),
    },
];

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
  scope VARCHAR(16) NOT NULL,
  version BIGINT NOT NULL,
  applied_at BIGINT NOT NULL,
  PRIMARY KEY (scope, version)
)";

pub(crate) async fn run(router: &Router) -> Result<(), StorageError> {
    let dialect = router.dialect();
    apply(router.global(), dialect, Scope::Global, "global", "").await?;
    for db in router.routes().filter(|r| r.table == 0) {
        let pool = router.pool(&db)?;
        let label = format!("shard {}", db.db_label());
        apply(pool, dialect, Scope::Shard, &label, "").await?;
        for route in router.routes().filter(|r| r.db == db.db) {
            apply(
                pool,
                dialect,
                Scope::ShardTable,
                &label,
                &route.table_suffix(),
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply(
    pool: &AnyPool,
    dialect: Dialect,
    scope: Scope,
    database: &str,
    suffix: &str,
) -> Result<(), StorageError> {
    sqlx::query(VERSION_TABLE).execute(pool).await?;
    let scope_key = match scope {
        Scope::Global => "global".to_owned(),
        Scope::Shard => "shard".to_owned(),
        Scope::ShardTable => format!("table{suffix}"),
    };
    for m in MIGRATIONS.iter().filter(|m| m.scope == scope) {
        let done: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM schema_version WHERE scope = ? AND version = ?",
        )
        .bind(&scope_key)
        .bind(m.version)
        .fetch_optional(pool)
        .await?;
        if done.is_some() {
            continue;
        }
        let script = match dialect {
            Dialect::MySql => m.mysql,
            Dialect::Sqlite => m.sqlite,
        };
        let fail = |source| StorageError::Migration {
            database: database.to_owned(),
            scope: scope_key.clone(),
            version: m.version,
            source,
        };
        for statement in statements(script) {
            let sql = statement.replace("{t}", suffix);
            sqlx::query(&sql).execute(pool).await.map_err(fail)?;
        }
        let record = format!(
            "{} schema_version (scope, version, applied_at) VALUES (?, ?, ?)",
            dialect.insert_ignore_into()
        );
        sqlx::query(&record)
            .bind(&scope_key)
            .bind(m.version)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(pool)
            .await
            .map_err(fail)?;
        info!(
            database,
            scope = scope_key,
            version = m.version,
            "migration applied"
        );
    }
    Ok(())
}

/// Splits a script into statements: comments dropped, split at `;` ending a line.
fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let stmt = current.trim().trim_end_matches(';').to_owned();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements() {
        for m in MIGRATIONS {
            let (my, lite) = (statements(m.mysql), statements(m.sqlite));
            assert!(!my.is_empty() && !lite.is_empty());
            let tables = |s: &[String]| s.iter().filter(|x| x.starts_with("CREATE TABLE")).count();
            // Both dialects create the same tables.
            assert_eq!(
                tables(&my),
                tables(&lite),
                "version {} {:?}",
                m.version,
                m.scope
            );
            assert!(
                my.iter()
                    .chain(&lite)
                    .all(|s| !s.contains("--") && !s.ends_with(';'))
            );
        }
    }

    #[test]
    fn table_scripts_are_suffixed() {
        for m in MIGRATIONS.iter().filter(|m| m.scope == Scope::ShardTable) {
            for s in statements(m.mysql).iter().chain(&statements(m.sqlite)) {
                assert!(
                    s.contains("{t}"),
                    "unsuffixed statement in a per-table script: {s}"
                );
            }
        }
    }
}
