//! FreshSqlite: temporary SQLite databases.

use lottery_testkit::FreshSqlite;
use sqlx::{Connection, SqliteConnection};

#[tokio::test]
async fn fresh_sqlite_databases_are_separate_and_removed_on_drop() {
    let fresh = FreshSqlite::create("testkit sqlite", 2).expect("temp dir");
    assert_eq!(fresh.len(), 2);
    let dir = fresh.dir().to_path_buf();

    for (i, url) in fresh.urls().iter().enumerate() {
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with(".db?mode=rwc"), "{url}");
        let mut conn = SqliteConnection::connect(url).await.expect("open sqlite");
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .expect("create table");
        for id in 0..=i {
            sqlx::query("INSERT INTO t (id) VALUES (?)")
                .bind(id as i64)
                .execute(&mut conn)
                .await
                .expect("insert");
        }
        conn.close().await.expect("close");
    }
    for (i, url) in fresh.urls().iter().enumerate() {
        let mut conn = SqliteConnection::connect(url).await.expect("reopen");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(n, i as i64 + 1, "databases must not be shared");
        conn.close().await.expect("close");
    }
    assert!(fresh.paths().iter().all(|p| p.exists()));

    drop(fresh);
    assert!(!dir.exists(), "{} was not removed", dir.display());
}
