//! A first install: `lottery migrate --create-databases` creates the databases the
//! configuration names, then the schema.

use lottery_testkit::{Service, unique_name, url};
use sqlx::Connection;
use tokio::process::Command;

#[tokio::test]
#[ignore = "needs MariaDB at 127.0.0.1:3306"]
async fn migrate_creates_missing_databases_on_request() {
    let server = Service::MariaDb.require().await;
    let base = unique_name("first");
    let names: Vec<String> = ["g", "s1", "s2"]
        .iter()
        .map(|s| format!("{base}_{s}"))
        .collect();
    let urls: Vec<String> = names
        .iter()
        .map(|n| url::with_database(&server, n).expect("url"))
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nglobal_url = {:?}\nshard_urls = [{:?}, {:?}]\ntables = 2\n\
             [redis]\nurl = \"redis://127.0.0.1:6379\"\n[amqp]\nurl = \"amqp://127.0.0.1\"\n\
             [auth]\njwt_secret = \"a-first-install-secret-of-enough-length\"\n",
            urls[0], urls[1], urls[2]
        ),
    )
    .expect("config");
    let migrate = |create: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lottery"));
        cmd.args(["migrate", "--config"]).arg(&config);
        if create {
            cmd.arg("--create-databases");
        }
        cmd.env("LOTTERY_LOG__LEVEL", "warn").output()
    };
    let without = migrate(false).await.expect("run migrate");
    assert!(!without.status.success(), "the databases do not exist yet");
    for _ in 0..2 {
        let out = migrate(true).await.expect("run migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut conn = sqlx::MySqlConnection::connect(&urls[0])
        .await
        .expect("global database exists");
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM worker_lease")
        .fetch_one(&mut conn)
        .await
        .expect("schema applied");
    assert_eq!(leases, 0);
    for name in &names {
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&mut conn)
            .await
            .expect("drop");
    }
}
