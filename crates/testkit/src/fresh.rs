//! Throw-away databases: one set per test, removed when the guard drops.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::Connection;
use sqlx::mysql::MySqlConnection;
use tempfile::TempDir;

use crate::names::unique_name;
use crate::service::Service;
use crate::url;

/// Errors from creating or dropping fresh databases.
#[derive(Debug, thiserror::Error)]
pub enum FreshError {
    /// The server URL could not be parsed.
    #[error("invalid database URL {0:?}")]
    BadUrl(String),
    /// A generated name is not a usable identifier (prefix too long, ...).
    #[error("invalid database name {0:?}: {1}")]
    BadName(String, &'static str),
    /// Connecting to the server or running DDL failed.
    #[error("{context}: {source}")]
    Sql {
        /// What was being done, including the server address.
        context: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating the temporary directory failed.
    #[error("cannot create a temporary directory: {0}")]
    Io(#[from] std::io::Error),
}

/// MySQL allows at most 64 characters in a database name.
const MAX_DB_NAME: usize = 64;
/// Bounds the cleanup in `Drop`, which must never hang a test run.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// `count` freshly created, empty MariaDB databases, dropped again when this
/// guard is dropped (or explicitly with [`FreshMysql::drop_all`]).
///
/// Names are `{unique_name(prefix)}_{i}`, so parallel tests and test binaries
/// never share a database.
pub struct FreshMysql {
    server_url: String,
    names: Vec<String>,
    urls: Vec<String>,
}

impl FreshMysql {
    /// Creates the databases on the server of [`Service::MariaDb`]`.url()`.
    ///
    /// # Errors
    ///
    /// When the server is unreachable or refuses `CREATE DATABASE`; any
    /// databases already created by this call are dropped again.
    pub async fn create(prefix: &str, count: usize) -> Result<FreshMysql, FreshError> {
        FreshMysql::create_on(&Service::MariaDb.url(), prefix, count).await
    }

    /// Like [`FreshMysql::create`], on an explicit server URL (for example
    /// one that goes through a [`TcpProxy`](crate::TcpProxy)). The databases
    /// are dropped through the same URL.
    ///
    /// # Errors
    ///
    /// As [`FreshMysql::create`].
    pub async fn create_on(
        server_url: &str,
        prefix: &str,
        count: usize,
    ) -> Result<FreshMysql, FreshError> {
        let base = unique_name(prefix);
        let names: Vec<String> = (0..count).map(|i| format!("{base}_{i}")).collect();
        let mut urls = Vec::with_capacity(count);
        for name in &names {
            if name.len() > MAX_DB_NAME {
                return Err(FreshError::BadName(
                    name.clone(),
                    "longer than 64 characters",
                ));
            }
            urls.push(
                url::with_database(server_url, name)
                    .ok_or_else(|| FreshError::BadUrl(server_url.to_owned()))?,
            );
        }
        let mut conn = connect(server_url).await?;
        // Track what exists so a failure half-way leaves nothing behind.
        let mut guard = FreshMysql {
            server_url: server_url.to_owned(),
            names: Vec::with_capacity(count),
            urls: Vec::with_capacity(count),
        };
        for (name, db_url) in names.into_iter().zip(urls) {
            let ddl = format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            );
            sqlx::raw_sql(&ddl)
                .execute(&mut conn)
                .await
                .map_err(|source| FreshError::Sql {
                    context: format!("CREATE DATABASE {name} on {}", redact(server_url)),
                    source,
                })?;
            guard.names.push(name);
            guard.urls.push(db_url);
        }
        let _ = conn.close().await;
        tracing::debug!(names = ?guard.names, "created fresh MariaDB databases");
        Ok(guard)
    }

    /// Full URLs of the databases, in creation order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// URL of database `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// Database names, in creation order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of databases.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no databases.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The server URL the databases live on (without a database path).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// Drops every database now and reports failures, instead of the
    /// best-effort cleanup of `Drop`.
    ///
    /// # Errors
    ///
    /// The first failure; the remaining databases are still attempted.
    pub async fn drop_all(mut self) -> Result<(), FreshError> {
        let names = std::mem::take(&mut self.names);
        self.urls.clear();
        drop_databases(&self.server_url, &names).await
    }
}

impl Drop for FreshMysql {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.names);
        if names.is_empty() {
            return;
        }
        let server_url = self.server_url.clone();
        // Drop runs inside the test's runtime, where blocking on that runtime
        // is impossible; a separate thread with its own small runtime can do
        // the async cleanup, and joining it makes the drop synchronous.
        let spawned = std::thread::Builder::new()
            .name("fresh-mysql-drop".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return Err(format!("cannot build a runtime: {e}")),
                };
                runtime.block_on(async {
                    match tokio::time::timeout(DROP_TIMEOUT, drop_databases(&server_url, &names))
                        .await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("{e} (databases {names:?})")),
                        Err(_) => Err(format!("timed out dropping databases {names:?}")),
                    }
                })
            });
        let outcome = match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err("cleanup thread panicked".to_owned())),
            Err(e) => Err(format!("cannot spawn cleanup thread: {e}")),
        };
        if let Err(e) = outcome {
            // Never panic in Drop (it may run during unwinding); leave a trace.
            tracing::warn!("fresh MariaDB cleanup failed: {e}");
            eprintln!("warning: fresh MariaDB cleanup failed: {e}");
        }
    }
}

impl fmt::Debug for FreshMysql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreshMysql")
            .field("server", &redact(&self.server_url))
            .field("names", &self.names)
            .finish()
    }
}

async fn connect(server_url: &str) -> Result<MySqlConnection, FreshError> {
    MySqlConnection::connect(server_url)
        .await
        .map_err(|source| FreshError::Sql {
            context: format!(
                "cannot connect to MariaDB at {} (is it running? set {} to override)",
                redact(server_url),
                Service::MariaDb.env_var()
            ),
            source,
        })
}

async fn drop_databases(server_url: &str, names: &[String]) -> Result<(), FreshError> {
    if names.is_empty() {
        return Ok(());
    }
    let mut conn = connect(server_url).await?;
    let mut first_error = None;
    for name in names {
        let ddl = format!("DROP DATABASE IF EXISTS `{name}`");
        if let Err(source) = sqlx::raw_sql(&ddl).execute(&mut conn).await {
            first_error.get_or_insert(FreshError::Sql {
                context: format!("DROP DATABASE {name} on {}", redact(server_url)),
                source,
            });
        }
    }
    let _ = conn.close().await;
    first_error.map_or(Ok(()), Err)
}

/// The URL without its password, for messages.
fn redact(server_url: &str) -> String {
    match url::split(server_url) {
        Some(p) => {
            let user = p.userinfo.trim_end_matches('@');
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            let at = if user.is_empty() { "" } else { "@" };
            match p.port {
                Some(port) => format!("{}://{user}{at}{}:{port}", p.scheme, p.host),
                None => format!("{}://{user}{at}{}", p.scheme, p.host),
            }
        }
        None => "<unparsable URL>".to_owned(),
    }
}

/// A temporary directory with `count` SQLite database URLs in it
/// (`sqlite:///tmp/.../{name}.db?mode=rwc`); the files are created on first
/// connect and everything is removed when the guard drops.
pub struct FreshSqlite {
    dir: TempDir,
    paths: Vec<PathBuf>,
    urls: Vec<String>,
}

impl FreshSqlite {
    /// Makes the directory and the URLs (`{unique_name(prefix)}_{i}.db`).
    ///
    /// # Errors
    ///
    /// When the temporary directory cannot be created or its path is not
    /// UTF-8 (SQLite URLs must be strings).
    pub fn create(prefix: &str, count: usize) -> Result<FreshSqlite, FreshError> {
        let base = unique_name(prefix);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{base}-"))
            .tempdir()?;
        let mut paths = Vec::with_capacity(count);
        let mut urls = Vec::with_capacity(count);
        for i in 0..count {
            let path = dir.path().join(format!("{base}_{i}.db"));
            let text = path.to_str().ok_or_else(|| {
                FreshError::Io(std::io::Error::other(format!(
                    "temporary path {} is not UTF-8",
                    path.display()
                )))
            })?;
            urls.push(format!("sqlite://{}?mode=rwc", encode_path(text)));
            paths.push(path);
        }
        Ok(FreshSqlite { dir, paths, urls })
    }

    /// The directory holding the databases.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Database file paths, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Database URLs, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// URL of database `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// Number of databases.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether there are no databases.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

impl fmt::Debug for FreshSqlite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreshSqlite")
            .field("dir", &self.dir.path())
            .field("urls", &self.urls)
            .finish()
    }
}

/// sqlx percent-decodes the path of a SQLite URL, and cuts it at `?` / `#`.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password() {
        assert_eq!(
            redact("mysql://root:secret@127.0.0.1:3306/db?x=1"),
            "mysql://root@127.0.0.1:3306"
        );
        assert_eq!(redact("mysql://127.0.0.1"), "mysql://127.0.0.1");
    }

    #[test]
    fn sqlite_paths_are_encoded() {
        assert_eq!(encode_path("/tmp/a b%?#.db"), "/tmp/a%20b%25%3F%23.db");
    }
}
