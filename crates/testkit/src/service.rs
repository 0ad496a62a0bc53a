//! The shared local services that adapter and end-to-end tests talk to.
//!
//! Tests that need one are marked `#[ignore = "needs ..."]` and run with
//! `--run-ignored all` (or `-- --ignored`), and they call [`Service::require`]
//! first: a missing service must fail the run loudly, never let it pass.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::url;

/// How long [`Service::require`] waits for a TCP connection.
pub const REQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A local service a test may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// MariaDB (MySQL protocol); `LOTTERY_TEST_MYSQL_URL`.
    MariaDb,
    /// Redis; `LOTTERY_TEST_REDIS_URL`.
    Redis,
    /// RabbitMQ (AMQP 0-9-1); `LOTTERY_TEST_AMQP_URL`.
    RabbitMq,
}

/// Why a service could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    /// The service that was checked.
    pub service: Service,
    /// `host:port` (or the raw URL when it could not be parsed).
    pub target: String,
    /// What went wrong, e.g. `connection refused`.
    pub reason: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "needs {} at {}: {}; start it with `{}` or set {}",
            self.service.name(),
            self.target,
            self.reason,
            self.service.start_hint(),
            self.service.env_var(),
        )
    }
}

impl std::error::Error for Unreachable {}

impl Service {
    /// Every service, for "needs everything" end-to-end suites.
    pub const ALL: [Service; 3] = [Service::MariaDb, Service::Redis, Service::RabbitMq];

    /// Human-readable name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::MariaDb => "MariaDB",
            Service::Redis => "Redis",
            Service::RabbitMq => "RabbitMQ",
        }
    }

    /// Environment variable that overrides [`Service::default_url`].
    pub fn env_var(self) -> &'static str {
        match self {
            Service::MariaDb => "LOTTERY_TEST_MYSQL_URL",
            Service::Redis => "LOTTERY_TEST_REDIS_URL",
            Service::RabbitMq => "LOTTERY_TEST_AMQP_URL",
        }
    }

    /// URL used when the environment variable is unset or empty.
    pub fn default_url(self) -> &'static str {
        match self {
            Service::MariaDb => "mysql://root@127.0.0.1:3306",
            Service::Redis => "redis://127.0.0.1:6379",
            Service::RabbitMq => "amqp://guest:guest@127.0.0.1:5672/%2f",
        }
    }

    /// How to start the service on a development machine or in CI.
    pub fn start_hint(self) -> &'static str {
        match self {
            Service::MariaDb => {
                "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
            }
            Service::Redis => {
                "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no"
            }
            Service::RabbitMq => "rabbitmq-server -detached",
        }
    }

    /// The service URL: the environment variable if set, else the default.
    pub fn url(self) -> String {
        match std::env::var(self.env_var()) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
            _ => self.default_url().to_owned(),
        }
    }

    /// `(host, port)` of [`Service::url`].
    pub fn host_port(self) -> Result<(String, u16), Unreachable> {
        self.host_port_of(&self.url())
    }

    fn host_port_of(self, url: &str) -> Result<(String, u16), Unreachable> {
        url::host_port(url).ok_or_else(|| Unreachable {
            service: self,
            target: url.to_owned(),
            reason: "cannot parse host and port from the URL".to_owned(),
        })
    }

    /// Resolves [`Service::url`] to a socket address (first match), e.g. to
    /// point a [`TcpProxy`](crate::TcpProxy) at it.
    pub async fn socket_addr(self) -> Result<SocketAddr, Unreachable> {
        let (host, port) = self.host_port()?;
        let target = format!("{host}:{port}");
        let mut addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Unreachable {
                service: self,
                target: target.clone(),
                reason: format!("cannot resolve: {e}"),
            })?;
        addrs.next().ok_or_else(|| Unreachable {
            service: self,
            target,
            reason: "host resolves to no address".to_owned(),
        })
    }

    /// Checks that `url` accepts TCP connections within [`REQUIRE_TIMEOUT`].
    pub async fn check_url(self, url: &str) -> Result<(), Unreachable> {
        let (host, port) = self.host_port_of(url)?;
        let target = format!("{host}:{port}");
        let fail = |reason: String| Unreachable {
            service: self,
            target: target.clone(),
            reason,
        };
        match tokio::time::timeout(REQUIRE_TIMEOUT, TcpStream::connect((host.as_str(), port))).await
        {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(e)) => Err(fail(describe_io(&e))),
            Err(_) => Err(fail(format!(
                "no TCP connection within {} s",
                REQUIRE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Non-panicking [`Service::require`].
    pub async fn check(self) -> Result<(), Unreachable> {
        self.check_url(&self.url()).await
    }

    /// Returns [`Service::url`] if the service is reachable, otherwise panics
    /// with a message naming the service, the address, the cause and how to
    /// fix it.
    ///
    /// # Panics
    ///
    /// When the service does not accept a TCP connection within
    /// [`REQUIRE_TIMEOUT`]. That is deliberate: tests that need a service must
    /// fail, never pass silently, when it is missing.
    pub async fn require(self) -> String {
        let url = self.url();
        self.require_url(&url).await;
        url
    }

    /// [`Service::require`] for an explicit URL.
    ///
    /// # Panics
    ///
    /// When `url` does not accept a TCP connection within [`REQUIRE_TIMEOUT`].
    pub async fn require_url(self, url: &str) {
        if let Err(e) = self.check_url(url).await {
            panic!("{e}");
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn describe_io(e: &std::io::Error) -> String {
    // The kind reads better in a panic message than the OS text with errno.
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_service_address_cause_and_fix() {
        let e = Unreachable {
            service: Service::MariaDb,
            target: "127.0.0.1:3306".into(),
            reason: "connection refused".into(),
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("needs MariaDB at 127.0.0.1:3306: connection refused; start it with `"),
            "{msg}"
        );
        assert!(msg.ends_with("or set LOTTERY_TEST_MYSQL_URL"), "{msg}");
    }

    #[test]
    fn default_urls_parse() {
        for s in Service::ALL {
            assert!(url::host_port(s.default_url()).is_some(), "{s}");
        }
    }
}
