//! A small migration runner. sqlx's own migrator cannot stamp one script onto every sharded
//! table (`user_take_000`, `user_take_001`, ...), so scripts are embedded here and applied per
//! scope: the global database, each shard database, and each table suffix of each shard.
//! Every statement is `IF NOT EXISTS` (or, like widening a column, the same when run twice)
//! and versions are recorded with an insert-ignore, so two instances migrating at once do no
//! harm.

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
        version: 4,
        scope: Scope::Global,
        mysql: include_str!("../../../migrations/mysql/0004_global.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0004_global.sql"),
    },
    Migration {
        version: 2,
        scope: Scope::Shard,
        mysql: include_str!("../../../migrations/mysql/0002_shard.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_shard.sql"),
    },
    Migration {
        version: 2,
        scope: Scope::ShardTable,
        mysql: include_str!("../../../migrations/mysql/0002_shard_table.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_shard_table.sql"),
    },
    Migration {
        version: 3,
        scope: Scope::Shard,
        mysql: include_str!("../../../migrations/mysql/0003_shard.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0003_shard.sql"),
    },
    Migration {
        version: 3,
        scope: Scope::ShardTable,
        mysql: include_str!("../../../migrations/mysql/0003_shard_table.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0003_shard_table.sql"),
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

/// Creates the MariaDB/MySQL databases the URLs name, when missing (a first install); SQLite
/// files are created on connect anyway. Returns the databases created or found.
pub async fn create_databases(urls: &[String]) -> Result<Vec<String>, StorageError> {
    use sqlx::Connection;
    let mut names = Vec::new();
    for url in urls {
        if Dialect::from_url(url)? != Dialect::MySql {
            continue;
        }
        let (server, name) = split_database(url).ok_or_else(|| {
            StorageError::Invalid(format!("{} names no database", db_router::redact_url(url)))
        })?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
        {
            return Err(StorageError::Invalid(format!(
                "database name {name:?} has characters that need quoting; create it by hand"
            )));
        }
        let mut conn = sqlx::MySqlConnection::connect(&server).await?;
        sqlx::query(&format!(
            "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        info!(database = %name, "database present");
        names.push(name);
    }
    Ok(names)
}

/// `mysql://u:p@host:3306/name?x=y` -> (`mysql://u:p@host:3306/?x=y`, `name`).
fn split_database(url: &str) -> Option<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://")? + 3;
    let slash = scheme_end + base[scheme_end..].find('/')?;
    let name = &base[slash + 1..];
    if name.is_empty() {
        return None;
    }
    let server = match query {
        Some(q) => format!("{}/?{q}", &base[..slash]),
        None => format!("{}/", &base[..slash]),
    };
    Some((server, name.to_owned()))
}

#[cfg(test)]
mod url_tests {
    use super::split_database;

    #[test]
    fn the_database_is_split_from_the_server_url() {
        assert_eq!(
            split_database("mysql://root:pw@127.0.0.1:3306/lottery_01?ssl-mode=disabled"),
            Some((
                "mysql://root:pw@127.0.0.1:3306/?ssl-mode=disabled".into(),
                "lottery_01".into()
            ))
        );
        assert_eq!(
            split_database("mysql://root@db/g"),
            Some(("mysql://root@db/".into(), "g".into()))
        );
        assert_eq!(split_database("mysql://root@db/"), None);
        assert_eq!(split_database("mysql://root@db"), None);
    }
}
