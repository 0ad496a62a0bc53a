//! A Redis server of a test's own, for faults that must not touch the shared one (FLUSHALL,
//! restarts, eviction settings).

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::free_port;

/// A `redis-server` on a free loopback port, with no persistence, stopped when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts `redis-server` (from `PATH`) with `extra` arguments and waits until it answers.
    ///
    /// # Errors
    /// When the binary is missing or the server does not answer within 10 s.
    pub async fn start(extra: &[&str]) -> io::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        let redis = Self {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if redis
                .command(&["PING"])
                .await
                .is_ok_and(|r| r.contains("PONG"))
            {
                return Ok(redis);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "private redis-server did not answer within 10 s",
        ))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one command and returns the raw reply (enough for PING, FLUSHALL, CONFIG SET).
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn command(&self, args: &[&str]) -> io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply from redis"))??;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
