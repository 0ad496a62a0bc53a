//! A MariaDB server of a test's own, for limits that must not be set on the shared one
//! (`max_connections`) and faults that would disturb other tests.

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, MySqlConnection};

use crate::free_port;

/// A `mariadbd` on a free loopback port with its own data directory, stopped when dropped.
#[derive(Debug)]
pub struct PrivateMariaDb {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateMariaDb {
    /// Initialises a data directory (`mariadb-install-db`), starts `mariadbd` with `extra`
    /// server options (e.g. `--max-connections=151`) and waits until it accepts a login as
    /// `root` with no password.
    ///
    /// # Errors
    /// When the binaries are missing or the server does not answer within 30 s.
    pub async fn start(extra: &[&str]) -> io::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let status = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display()))
            .args(["--skip-test-db", "--user=root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run mariadb-install-db: {e}")))?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "mariadb-install-db failed: {status}"
            )));
        }
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .args([
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=16M",
            ])
            .arg(format!("--port={port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start mariadbd: {e}")))?;
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if server.scalar("SELECT 1").await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "private mariadbd did not answer within 30 s",
        ))
    }

    /// `mysql://root@127.0.0.1:<port>/<database>`.
    #[must_use]
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs a query returning one integer (a status value, a count) on a new connection.
    ///
    /// # Errors
    /// When the server cannot be reached or the query fails.
    pub async fn scalar(&self, sql: &str) -> Result<i64, sqlx::Error> {
        let mut conn = MySqlConnection::connect(&self.url("")).await?;
        let value: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        Ok(value)
    }

    /// A global status counter (`SHOW GLOBAL STATUS LIKE name`).
    ///
    /// # Errors
    /// As [`scalar`](Self::scalar); a missing counter reads as a decode error.
    pub async fn status(&self, name: &str) -> Result<i64, sqlx::Error> {
        let mut conn = MySqlConnection::connect(&self.url("")).await?;
        // SHOW takes no placeholders; the name is the caller's constant.
        let row: (String, String) = sqlx::query_as(&format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        row.1
            .parse()
            .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
