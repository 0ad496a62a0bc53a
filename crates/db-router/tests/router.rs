//! Router against real databases: SQLite files always, MariaDB when asked
//! for with `--ignored`. Both run the same `exercise_router` body.

// Shared helpers are not `#[test]` functions, which clippy's test exemption
// does not cover; in test code a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::{SystemTime, UNIX_EPOCH};

use db_router::{Dialect, Route, Router, RouterConfig, RouterError};
use futures::FutureExt;
use sqlx::{Connection, Executor, Row};

/// Base name of the sharded test table: `t_000` .. `t_003` in each shard.
const BASE: &str = "t";

fn test_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..200).map(|i| format!("user_{i:04}")).collect();
    // Non-ASCII keys check that hashing, binding and storage agree.
    keys.extend(
        [
            "xiaofuge",
            "fustack",
            "\u{5c0f}\u{5085}\u{54e5}",
            "user\u{1f600}",
        ]
        .map(String::from),
    );
    keys
}

async fn count_key(router: &Router, key: &str) -> i64 {
    let route = router.route(key);
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE user_id = ?",
        route.table(BASE)
    );
    sqlx::query_scalar(&sql)
        .bind(key)
        .fetch_one(router.pool(&route).unwrap())
        .await
        .unwrap()
}

async fn hits_of(router: &Router, key: &str) -> i32 {
    let route = router.route(key);
    let sql = format!("SELECT hits FROM {} WHERE user_id = ?", route.table(BASE));
    sqlx::query_scalar(&sql)
        .bind(key)
        .fetch_one(router.pool(&route).unwrap())
        .await
        .unwrap()
}

/// The shared body: expects a 2 x 4 router over empty databases.
async fn exercise_router(router: &Router) {
    let dialect = router.dialect();
    let all_routes: Vec<Route> = router.routes().collect();
    assert_eq!(all_routes.len(), 8);

    // Create t_000..t_003 in every shard, through fan_out itself.
    let created = router
        .fan_out(|route, pool| async move {
            let sql = format!(
                "CREATE TABLE {} (id BIGINT NOT NULL PRIMARY KEY, \
                 user_id VARCHAR(64) NOT NULL UNIQUE, hits INTEGER NOT NULL DEFAULT 0)",
                route.table(BASE)
            );
            pool.execute(sql.as_str()).await.map(|_| ())
        })
        .await
        .unwrap();
    let created_routes: Vec<Route> = created.iter().map(|(r, ())| *r).collect();
    assert_eq!(
        created_routes, all_routes,
        "fan_out reports results in routes() order"
    );

    // Insert every key into the table it routes to.
    let keys = test_keys();
    for (id, key) in keys.iter().enumerate() {
        let route = router.route(key);
        let sql = format!(
            "INSERT INTO {} (id, user_id) VALUES (?, ?)",
            route.table(BASE)
        );
        let id = i64::try_from(id).unwrap();
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(key.as_str())
            .execute(router.pool(&route).unwrap())
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }

    // Every row is seen exactly once over all 8 tables, in the table its key routes to.
    let listed = router
        .fan_out(|route, pool| async move {
            let sql = format!("SELECT user_id FROM {}", route.table(BASE));
            let rows = sqlx::query(&sql).fetch_all(&pool).await?;
            rows.iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap();
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for (route, table_keys) in &listed {
        assert!(
            !table_keys.is_empty(),
            "table {route} got no rows out of {}",
            keys.len()
        );
        for key in table_keys {
            assert_eq!(
                router.route(key),
                *route,
                "{key:?} stored in the wrong table"
            );
            let known = keys
                .iter()
                .find(|k| *k == key)
                .unwrap_or_else(|| panic!("unknown row {key:?}"));
            *seen.entry(known.as_str()).or_default() += 1;
        }
    }
    for key in &keys {
        assert_eq!(
            seen.get(key.as_str()),
            Some(&1),
            "{key:?} must be seen exactly once"
        );
    }

    let counts = router
        .fan_out(|route, pool| async move {
            let sql = format!("SELECT COUNT(*) FROM {}", route.table(BASE));
            sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await
        })
        .await
        .unwrap();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, i64::try_from(keys.len()).unwrap());

    // Insert-ignore skips a duplicate without error.
    let route = router.route("xiaofuge");
    let sql = format!(
        "{} {} (id, user_id) VALUES (?, ?)",
        dialect.insert_ignore_into(),
        route.table(BASE)
    );
    let done = sqlx::query(&sql)
        .bind(9_999_i64)
        .bind("xiaofuge")
        .execute(router.pool(&route).unwrap())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 0);
    assert_eq!(count_key(router, "xiaofuge").await, 1);

    // Upsert: updates the existing row, inserts a new one.
    for (id, key, hits) in [(0_i64, "user_0000", 7_i32), (5_000, "upserted_new", 3)] {
        let route = router.route(key);
        let sql = format!(
            "INSERT INTO {} (id, user_id, hits) VALUES (?, ?, ?) {}",
            route.table(BASE),
            dialect.upsert_clause(&["user_id"], &["hits"])
        );
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(key)
            .bind(hits)
            .execute(router.pool(&route).unwrap())
            .await
            .unwrap();
        assert!(done.rows_affected() > 0);
        assert_eq!(hits_of(router, key).await, hits);
    }

    // Committed transaction with a locking read.
    let route = router.route("user_0000");
    let mut tx = router.begin(&route).await.unwrap();
    let sql = format!(
        "SELECT hits FROM {} WHERE user_id = ?{}",
        route.table(BASE),
        dialect.for_update()
    );
    let hits: i32 = sqlx::query_scalar(&sql)
        .bind("user_0000")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let sql = format!(
        "UPDATE {} SET hits = ? WHERE user_id = ?",
        route.table(BASE)
    );
    sqlx::query(&sql)
        .bind(hits + 1)
        .bind("user_0000")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(hits_of(router, "user_0000").await, 8);

    // Rolled-back transaction leaves nothing behind.
    let key = "rolled_back";
    let route = router.route(key);
    let mut tx = router.begin(&route).await.unwrap();
    let sql = format!(
        "INSERT INTO {} (id, user_id) VALUES (?, ?)",
        route.table(BASE)
    );
    sqlx::query(&sql)
        .bind(6_000_i64)
        .bind(key)
        .execute(&mut *tx)
        .await
        .unwrap();
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE user_id = ?",
        route.table(BASE)
    );
    let inside: i64 = sqlx::query_scalar(&sql)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1, "the row is visible inside its transaction");
    tx.rollback().await.unwrap();
    assert_eq!(count_key(router, key).await, 0);

    // fan_out stops at an error.
    let failed = router
        .fan_out(|route, pool| async move {
            let table = if route.table == 2 {
                "no_such_table".to_owned()
            } else {
                route.table(BASE)
            };
            let sql = format!("SELECT COUNT(*) FROM {table}");
            sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await
        })
        .await;
    assert!(failed.is_err());

    // The global database is separate from the shards.
    router
        .global()
        .execute("CREATE TABLE g_marker (id BIGINT NOT NULL PRIMARY KEY)")
        .await
        .unwrap();
    sqlx::query("INSERT INTO g_marker (id) VALUES (?)")
        .bind(1_i64)
        .execute(router.global())
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM g_marker")
        .fetch_one(router.global())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let shard1 = router.pool(&Route { db: 1, table: 0 }).unwrap();
    assert!(
        shard1
            .execute("SELECT COUNT(*) FROM g_marker")
            .await
            .is_err()
    );

    // A route from another layout is refused, not mapped to some pool.
    assert!(matches!(
        router.pool(&Route { db: 3, table: 0 }),
        Err(RouterError::RouteOutOfRange { db: 3, .. })
    ));
    assert!(matches!(
        router.begin(&Route { db: 1, table: 4 }).await,
        Err(RouterError::RouteOutOfRange { table: 4, .. })
    ));
}

// ---------------------------------------------------------------- SQLite

#[tokio::test]
async fn sqlite_two_shards_four_tables() {
    let dir = tempfile::tempdir().unwrap();
    // A missing subdirectory: connect must create it and the files.
    let path = |name: &str| dir.path().join("data").join(name);
    let config = RouterConfig::new(
        format!("sqlite://{}", path("global.db").display()),
        vec![
            format!("sqlite://{}", path("db01.db").display()),
            format!("sqlite://{}", path("db02.db").display()),
        ],
        4,
    );
    let router = Router::connect(&config).await.unwrap();
    assert_eq!(router.dialect(), Dialect::Sqlite);
    for name in ["global.db", "db01.db", "db02.db"] {
        assert!(path(name).is_file(), "{name} must be created");
    }

    // The connection settings are applied.
    let pool = router.pool(&router.route("xiaofuge")).unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(busy, 5000);
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        sync, 2,
        "2 = FULL: a commit is on disk before it is acknowledged"
    );

    exercise_router(&router).await;
    router.close().await;
}

#[tokio::test]
async fn connect_rejects_invalid_config_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    let config = RouterConfig::new(url("g.db"), vec![url("a.db"), url("b.db"), url("c.db")], 4);
    let err = Router::connect(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            RouterError::NotPowerOfTwo {
                db_count: 3,
                tb_count: 4
            }
        ),
        "{err}"
    );
    assert!(!dir.path().join("g.db").exists());
}

#[tokio::test]
async fn connect_reports_unreachable_server() {
    // Port 1 on loopback refuses connections.
    let mut config = RouterConfig::new(
        "mysql://root:topsecret@127.0.0.1:1/g",
        vec!["mysql://root:topsecret@127.0.0.1:1/a".into()],
        1,
    );
    config.acquire_timeout_ms = 500;
    let err = Router::connect(&config).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RouterError::Connect { .. }), "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(
        !msg.contains("topsecret"),
        "password must be redacted: {msg}"
    );
    assert!(
        msg.to_lowercase().contains("refused"),
        "the cause must be named: {msg}"
    );
}

// --------------------------------------------------------------- MariaDB

fn mysql_server_url() -> String {
    std::env::var("LOTTERY_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// `server` with its path replaced by `/db`, keeping any query string.
fn with_database(server: &str, db: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    // Drop an existing database path, if any, after the authority.
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{db}?{query}"),
        None => format!("{base}/{db}"),
    }
}

#[test]
fn with_database_builds_urls() {
    assert_eq!(
        with_database("mysql://root@h:3306", "x"),
        "mysql://root@h:3306/x"
    );
    assert_eq!(
        with_database("mysql://root@h:3306/", "x"),
        "mysql://root@h:3306/x"
    );
    assert_eq!(
        with_database("mysql://u:p@h/old?ssl-mode=disabled", "x"),
        "mysql://u:p@h/x?ssl-mode=disabled"
    );
}

#[tokio::test]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn mariadb_two_shards_four_tables() {
    let server = mysql_server_url();
    let shown = db_router::redact_url(&server);
    let mut admin = sqlx::MySqlConnection::connect(&server)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach MariaDB at {shown} (set LOTTERY_TEST_MYSQL_URL): {e}")
        });

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let prefix = format!("dbr_test_{}_{nanos}", std::process::id());
    let names = [
        format!("{prefix}_g"),
        format!("{prefix}_1"),
        format!("{prefix}_2"),
    ];
    for name in &names {
        admin
            .execute(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name} on {shown}: {e}"));
    }

    // Run the body, then drop the databases whether or not it panicked.
    let outcome = AssertUnwindSafe(async {
        let config = RouterConfig::new(
            with_database(&server, &names[0]),
            vec![
                with_database(&server, &names[1]),
                with_database(&server, &names[2]),
            ],
            4,
        );
        let router = Router::connect(&config).await.unwrap();
        assert_eq!(router.dialect(), Dialect::MySql);
        // Every connection is bounded by the server: statements, lock waits, and
        // transactions left idle by a client that went away.
        let pool = router.pool(&router.route("xiaofuge")).unwrap();
        let (statement, lock_wait, idle_tx): (f64, i64, i64) = sqlx::query_as(
            "SELECT @@SESSION.max_statement_time, @@SESSION.innodb_lock_wait_timeout, \
             @@SESSION.idle_transaction_timeout",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!((statement, lock_wait, idle_tx), (2.5, 3, 10));
        exercise_router(&router).await;
        router.close().await;
    })
    .catch_unwind()
    .await;

    for name in &names {
        if let Err(e) = admin
            .execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
            .await
        {
            eprintln!("warning: could not drop test database {name}: {e}");
        }
    }
    let _ = admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
