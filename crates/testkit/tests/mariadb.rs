//! FreshMysql and the proxy against the shared MariaDB.

use std::time::{Duration, Instant};

use lottery_testkit::{FreshMysql, Service, TcpProxy};
use sqlx::{Connection, MySqlConnection};

const SESSION_GONE_WAIT: Duration = Duration::from_secs(10);

async fn direct(url: &str) -> MySqlConnection {
    MySqlConnection::connect(url)
        .await
        .expect("direct MariaDB connection")
}

async fn database_names(conn: &mut MySqlConnection) -> Vec<String> {
    sqlx::query_scalar("SHOW DATABASES")
        .fetch_all(conn)
        .await
        .expect("SHOW DATABASES")
}

/// Waits until the server has ended session `id`, i.e. it noticed the cut and
/// finished rolling back; until then an uncommitted row is invisible anyway,
/// so checking the row alone would prove nothing.
async fn wait_session_gone(conn: &mut MySqlConnection, id: u64) {
    let deadline = Instant::now() + SESSION_GONE_WAIT;
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?")
                .bind(id)
                .fetch_one(&mut *conn)
                .await
                .expect("query processlist");
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server still has session {id} after the cut"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fresh database with table `t`, plus a connection to it through `proxy`
/// holding an open transaction that inserted row 1. Returns the fresh guard,
/// a direct connection, the proxied connection and its session id.
async fn open_transaction_through(
    proxy: &TcpProxy,
) -> (FreshMysql, MySqlConnection, MySqlConnection, u64) {
    let fresh = FreshMysql::create("testkit_tx", 1)
        .await
        .expect("fresh database");
    let mut db = direct(fresh.url(0)).await;
    sqlx::raw_sql("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .execute(&mut db)
        .await
        .expect("create table");

    let proxied_url = proxy.proxied_url(fresh.url(0)).expect("proxied url");
    let mut via = MySqlConnection::connect(&proxied_url)
        .await
        .expect("connect through proxy");
    let session: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut via)
        .await
        .expect("connection id");
    sqlx::raw_sql("BEGIN")
        .execute(&mut via)
        .await
        .expect("begin");
    sqlx::raw_sql("INSERT INTO t (id) VALUES (1)")
        .execute(&mut via)
        .await
        .expect("insert in transaction");
    let inside: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut via)
        .await
        .expect("count inside transaction");
    assert_eq!(inside, 1, "the transaction sees its own row");
    (fresh, db, via, session)
}

async fn assert_rolled_back(db: &mut MySqlConnection, session: u64) {
    wait_session_gone(db, session).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut *db)
        .await
        .expect("count directly");
    assert_eq!(rows, 0, "the cut transaction was committed");
    // No lock is left behind either: the same key can be inserted at once.
    sqlx::raw_sql("INSERT INTO t (id) VALUES (1)")
        .execute(&mut *db)
        .await
        .expect("row 1 is free again");
}

#[tokio::test]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn fresh_databases_exist_until_dropped() {
    let server = Service::MariaDb.require().await;
    let fresh = FreshMysql::create("testkit_fresh", 2)
        .await
        .expect("fresh databases");
    assert_eq!(fresh.len(), 2);
    let names = fresh.names().to_vec();
    assert_ne!(names[0], names[1]);

    for (i, url) in fresh.urls().iter().enumerate() {
        let mut conn = direct(url).await;
        let current: String = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .expect("current database");
        assert_eq!(current, names[i], "URL selects its own database");
        sqlx::raw_sql("CREATE TABLE draws (id INT PRIMARY KEY, name VARCHAR(32))")
            .execute(&mut conn)
            .await
            .expect("create table");
        sqlx::query("INSERT INTO draws VALUES (?, ?)")
            .bind(i as i32)
            .bind("draw")
            .execute(&mut conn)
            .await
            .expect("insert");
        conn.close().await.expect("close");
    }

    let mut admin = direct(&server).await;
    let before = database_names(&mut admin).await;
    assert!(names.iter().all(|n| before.contains(n)));

    drop(fresh);
    let after = database_names(&mut admin).await;
    for name in &names {
        assert!(!after.contains(name), "{name} survived the drop");
    }
}

#[tokio::test]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn drop_all_removes_databases_explicitly() {
    let server = Service::MariaDb.require().await;
    let fresh = FreshMysql::create("testkit_dropall", 3)
        .await
        .expect("fresh databases");
    let names = fresh.names().to_vec();
    fresh.drop_all().await.expect("drop_all");
    let mut admin = direct(&server).await;
    let after = database_names(&mut admin).await;
    assert!(names.iter().all(|n| !after.contains(n)));
}

#[tokio::test]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn cut_mid_transaction_rolls_back_on_the_server() {
    Service::MariaDb.require().await;
    let proxy = TcpProxy::for_service(Service::MariaDb)
        .await
        .expect("proxy for MariaDB");
    let (fresh, mut db, mut via, session) = open_transaction_through(&proxy).await;

    proxy.cut().await;
    let err = sqlx::raw_sql("COMMIT").execute(&mut via).await;
    assert!(err.is_err(), "COMMIT through a cut proxy succeeded");
    assert_rolled_back(&mut db, session).await;

    // New connections fail while cut and work again after restore.
    let proxied_url = proxy.proxied_url(fresh.url(0)).expect("proxied url");
    assert!(MySqlConnection::connect(&proxied_url).await.is_err());
    proxy.restore().await.expect("restore");
    let mut again = MySqlConnection::connect(&proxied_url)
        .await
        .expect("connect after restore");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut again)
        .await
        .expect("count through proxy");
    assert_eq!(rows, 1, "only the direct insert is there");
    again.close().await.expect("close");
    db.close().await.expect("close");
    fresh.drop_all().await.expect("drop_all");
}

#[tokio::test]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn torn_commit_packet_rolls_back_on_the_server() {
    Service::MariaDb.require().await;
    let proxy = TcpProxy::for_service(Service::MariaDb)
        .await
        .expect("proxy for MariaDB");
    let (fresh, mut db, mut via, session) = open_transaction_through(&proxy).await;

    // The COMMIT packet is 11 bytes (4 header + 1 command + "COMMIT"); let
    // only its first 3 reach the server.
    proxy.cut_after(3);
    let err = sqlx::raw_sql("COMMIT").execute(&mut via).await;
    assert!(err.is_err(), "torn COMMIT succeeded");
    assert!(proxy.is_cut());
    assert_rolled_back(&mut db, session).await;
    db.close().await.expect("close");
    fresh.drop_all().await.expect("drop_all");
}
