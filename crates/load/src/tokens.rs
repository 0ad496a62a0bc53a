//! The lottery configuration and the tokens minted from it: the tool signs its own admin and
//! user tokens with the server's secret, exactly as `lottery token` does (configured in
//! cluster mode, kept under `data_dir` in embedded mode).

use std::path::Path;

use hyper::header::HeaderValue;
use lottery_server::auth::{Keys, TokenRole};
use lottery_server::config::Config;

use crate::error::LoadError;

/// Loads the configuration as `lottery` does: defaults, then `file`, then `LOTTERY_...`
/// variables; `data_dir` overrides the configured one (like `lottery --data-dir`).
pub fn load_config(file: Option<&Path>, data_dir: Option<&Path>) -> Result<Config, LoadError> {
    let mut config = Config::load(file).map_err(|e| LoadError::Config(e.to_string()))?;
    if let Some(dir) = data_dir {
        config.data_dir = dir.to_path_buf();
    }
    Ok(config)
}

/// The server's URL as the configuration says it listens: an unspecified address
/// (`0.0.0.0`, `::`) is reached on the loopback.
pub fn default_url(config: &Config) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        addr.set_ip(loopback);
    }
    format!("http://{addr}")
}

/// Mints `Authorization` header values with the server's secret.
#[derive(Debug, Clone)]
pub struct Tokens {
    keys: Keys,
}

impl Tokens {
    /// The secret of `config`: `auth.jwt_secret`, else the file under `data_dir`.
    pub fn from_config(config: &Config) -> Result<Self, LoadError> {
        // Key errors name the file and the cause themselves.
        let keys =
            lottery_server::compose::keys(config).map_err(|e| LoadError::Tokens(e.to_string()))?;
        Ok(Self { keys })
    }

    /// An admin's header; `name` is recorded as the creator of what it deploys.
    pub fn admin(&self, name: &str) -> Result<HeaderValue, LoadError> {
        self.header(name, TokenRole::Admin)
    }

    /// A user's header.
    pub fn user(&self, user_id: &str) -> Result<HeaderValue, LoadError> {
        self.header(user_id, TokenRole::User)
    }

    fn header(&self, subject: &str, role: TokenRole) -> Result<HeaderValue, LoadError> {
        let token = self
            .keys
            .mint(subject, role)
            .map_err(|e| LoadError::Tokens(e.to_string()))?;
        HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| LoadError::Tokens(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_the_loopback() {
        let mut config = Config {
            listen: "0.0.0.0:9000".parse().expect("addr"),
            ..Config::default()
        };
        assert_eq!(default_url(&config), "http://127.0.0.1:9000");
        config.listen = "[::]:9000".parse().expect("addr");
        assert_eq!(default_url(&config), "http://[::1]:9000");
    }

    #[test]
    fn tokens_are_signed_with_the_data_dir_secret() {
        let dir = tempfile::tempdir().expect("dir");
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let tokens = Tokens::from_config(&config).expect("keys");
        let header = tokens.user("alice").expect("token");
        let token = header
            .to_str()
            .expect("ascii")
            .strip_prefix("Bearer ")
            .expect("bearer");
        let keys = lottery_server::compose::keys(&config).expect("same secret");
        assert_eq!(keys.verify(token).expect("valid").sub, "alice");
    }
}
