//! Minimal URL surgery for service URLs such as `mysql://user:pw@host:3306/db?x=y`.
//!
//! Only the authority and path are touched; everything else is kept verbatim,
//! so credentials and driver options survive a redirect through a proxy.

use std::net::SocketAddr;

/// The pieces of a `scheme://[userinfo@]host[:port][/path][?query]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    pub scheme: &'a str,
    /// Includes the trailing `@` when present, so it can be glued back as is.
    pub userinfo: &'a str,
    /// Host without brackets for IPv6 literals.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Path without the leading `/` (may be empty).
    pub path: &'a str,
    /// Query including the leading `?` (may be empty).
    pub query: &'a str,
}

pub(crate) fn split(url: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let (before_query, query) = match rest.find('?') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    // Userinfo may itself contain '@' only percent-encoded, but split on the
    // last one to be lenient with hand-written URLs.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        let end = stripped.find(']')?;
        let host = &stripped[..end];
        let after = &stripped[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Parts {
        scheme,
        userinfo,
        host,
        port,
        path,
        query,
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "mysql" | "mariadb" => Some(3306),
        "redis" | "rediss" => Some(6379),
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        "postgres" | "postgresql" => Some(5432),
        _ => None,
    }
}

/// `host:port` of a service URL, with the scheme's default port filled in.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let p = split(url)?;
    let port = p.port.or_else(|| default_port(p.scheme))?;
    Some((p.host.to_owned(), port))
}

/// The same URL with its host and port replaced by `addr` (for example a
/// [`TcpProxy`](crate::TcpProxy) address). Returns `None` when `url` has no
/// `scheme://host` shape.
pub fn with_addr(url: &str, addr: SocketAddr) -> Option<String> {
    let p = split(url)?;
    let mut out = format!("{}://{}{}", p.scheme, p.userinfo, addr);
    if !p.path.is_empty() {
        out.push('/');
        out.push_str(p.path);
    }
    out.push_str(p.query);
    Some(out)
}

/// The same URL with its path replaced by `/{database}`, keeping the query.
pub fn with_database(url: &str, database: &str) -> Option<String> {
    let p = split(url)?;
    let mut out = format!("{}://{}", p.scheme, p.userinfo);
    if p.host.contains(':') {
        out.push('[');
        out.push_str(p.host);
        out.push(']');
    } else {
        out.push_str(p.host);
    }
    if let Some(port) = p.port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push('/');
    out.push_str(database);
    out.push_str(p.query);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_full_url() {
        let p = split("mysql://root:pw@127.0.0.1:3307/db?ssl-mode=disabled").expect("parses");
        assert_eq!(p.scheme, "mysql");
        assert_eq!(p.userinfo, "root:pw@");
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.port, Some(3307));
        assert_eq!(p.path, "db");
        assert_eq!(p.query, "?ssl-mode=disabled");
    }

    #[test]
    fn default_ports_apply() {
        assert_eq!(
            host_port("mysql://root@localhost"),
            Some(("localhost".into(), 3306))
        );
        assert_eq!(
            host_port("amqp://guest:guest@127.0.0.1/%2f"),
            Some(("127.0.0.1".into(), 5672))
        );
        assert_eq!(host_port("redis://[::1]:6380"), Some(("::1".into(), 6380)));
        assert_eq!(host_port("nonsense"), None);
    }

    #[test]
    fn redirects_keep_credentials_path_and_query() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert_eq!(
            with_addr("amqp://guest:guest@127.0.0.1:5672/%2f", addr).as_deref(),
            Some("amqp://guest:guest@127.0.0.1:4000/%2f")
        );
        assert_eq!(
            with_addr("mysql://root@127.0.0.1:3306/db?a=b", addr).as_deref(),
            Some("mysql://root@127.0.0.1:4000/db?a=b")
        );
        assert_eq!(
            with_addr("redis://127.0.0.1:6379", addr).as_deref(),
            Some("redis://127.0.0.1:4000")
        );
    }

    #[test]
    fn database_replaces_path() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x").as_deref(),
            Some("mysql://root@127.0.0.1:3306/x")
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/old?a=b", "x").as_deref(),
            Some("mysql://root@127.0.0.1:3306/x?a=b")
        );
        assert_eq!(
            with_database("mysql://u@[::1]/old", "x").as_deref(),
            Some("mysql://u@[::1]/x")
        );
    }
}
