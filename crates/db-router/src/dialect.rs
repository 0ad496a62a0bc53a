//! The few SQL differences between MariaDB/MySQL and SQLite that a
//! repository layer on top of the router has to care about.
//!
//! Things that do *not* differ and so have no helper here: both drivers take
//! `?` placeholders through `sqlx::Any`, and both accept the standard
//! `INSERT`, `UPDATE ... WHERE`, `SELECT ... LIMIT n` forms.

use std::fmt;

use crate::error::RouterError;

/// SQL dialect of the databases behind a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// MariaDB or MySQL (`mysql://` or `mariadb://` URLs).
    MySql,
    /// SQLite (`sqlite:` URLs).
    Sqlite,
}

impl Dialect {
    /// Detects the dialect from a database URL's scheme.
    ///
    /// # Errors
    /// [`RouterError::UnsupportedUrl`] for any other scheme.
    pub fn from_url(url: &str) -> Result<Self, RouterError> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => Err(RouterError::UnsupportedUrl {
                url: redact_url(url),
            }),
        }
    }

    /// Start of an insert that silently skips rows violating a unique key,
    /// followed by the table name: `format!("{} t (a, b) VALUES (?, ?)", d.insert_ignore_into())`.
    ///
    /// Note that MariaDB's `INSERT IGNORE` also downgrades some other errors
    /// (such as truncation) to warnings; SQLite's `OR IGNORE` only affects
    /// constraint violations.
    #[must_use]
    pub fn insert_ignore_into(self) -> &'static str {
        match self {
            Self::MySql => "INSERT IGNORE INTO",
            Self::Sqlite => "INSERT OR IGNORE INTO",
        }
    }

    /// Clause appended to `INSERT ... VALUES (...)` that turns it into an
    /// upsert: on a unique-key conflict, each column of `update_columns` is
    /// set to the value the insert tried to write.
    ///
    /// `conflict_columns` names the unique key SQLite must check; MariaDB
    /// ignores it and reacts to a conflict on *any* unique key, so the table
    /// should have only the one unique key the caller means.
    ///
    /// `rows_affected()` differs: SQLite reports 1 for insert or update,
    /// MariaDB 1 for an insert and 2 for an update. Only test for `> 0`.
    ///
    /// Column names are inserted verbatim: pass identifiers, never user input.
    #[must_use]
    pub fn upsert_clause(self, conflict_columns: &[&str], update_columns: &[&str]) -> String {
        match self {
            Self::MySql => {
                // `VALUES(col)` rather than the MySQL 8 `AS new` alias, which
                // MariaDB does not support.
                let sets: Vec<String> = update_columns
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect();
                format!("ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
            Self::Sqlite => {
                let sets: Vec<String> = update_columns
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect();
                format!(
                    "ON CONFLICT ({}) DO UPDATE SET {}",
                    conflict_columns.join(", "),
                    sets.join(", ")
                )
            }
        }
    }

    /// Suffix for a `SELECT` inside a transaction that must lock the rows it
    /// reads until commit: `" FOR UPDATE"` on MariaDB, `""` on SQLite, which
    /// has no row locks (a write transaction locks the whole database file).
    #[must_use]
    pub fn for_update(self) -> &'static str {
        match self {
            Self::MySql => " FOR UPDATE",
            Self::Sqlite => "",
        }
    }

    /// Whether `SELECT ... FOR UPDATE SKIP LOCKED` is available, e.g. for
    /// several workers claiming rows of a task table. MariaDB has it since
    /// 10.6 (MySQL since 8.0); SQLite has no equivalent, so callers need
    /// another way to avoid two workers taking the same row.
    #[must_use]
    pub fn supports_skip_locked(self) -> bool {
        match self {
            Self::MySql => true,
            Self::Sqlite => false,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
        })
    }
}

/// Replaces the password of `scheme://user:password@host` with `***` so that
/// URLs can go into errors and logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first '/', '?' or '#'; a '@' after that
    // belongs to the path or query, not to credentials.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_dialect_from_scheme() {
        assert_eq!(
            Dialect::from_url("mysql://root@127.0.0.1:3306/db").unwrap(),
            Dialect::MySql
        );
        assert_eq!(
            Dialect::from_url("mariadb://u:p@h/db").unwrap(),
            Dialect::MySql
        );
        assert_eq!(Dialect::from_url("MySQL://h/db").unwrap(), Dialect::MySql);
        assert_eq!(
            Dialect::from_url("sqlite://data/a.db").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(Dialect::from_url("sqlite:a.db").unwrap(), Dialect::Sqlite);
        assert_eq!(
            Dialect::from_url("sqlite::memory:").unwrap(),
            Dialect::Sqlite
        );
        for bad in ["postgres://h/db", "a.db", "", "mysqlx://h/db"] {
            assert!(
                matches!(
                    Dialect::from_url(bad),
                    Err(RouterError::UnsupportedUrl { .. })
                ),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn unsupported_url_error_hides_password() {
        let err = Dialect::from_url("postgres://app:s3cret@h/db").unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(msg.contains("postgres://app:***@h/db"), "{msg}");
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact_url("mysql://u:pw@h:3306/db?x=1"),
            "mysql://u:***@h:3306/db?x=1"
        );
        assert_eq!(redact_url("mysql://u:p@w@h/db"), "mysql://u:***@h/db");
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306"),
            "mysql://root@127.0.0.1:3306"
        );
        assert_eq!(redact_url("mysql://h/db?u=a@b"), "mysql://h/db?u=a@b");
        assert_eq!(redact_url("sqlite:a.db"), "sqlite:a.db");
    }

    #[test]
    fn fragments() {
        assert_eq!(Dialect::MySql.insert_ignore_into(), "INSERT IGNORE INTO");
        assert_eq!(
            Dialect::Sqlite.insert_ignore_into(),
            "INSERT OR IGNORE INTO"
        );
        assert_eq!(
            Dialect::MySql.upsert_clause(&["k"], &["a", "b"]),
            "ON DUPLICATE KEY UPDATE a = VALUES(a), b = VALUES(b)"
        );
        assert_eq!(
            Dialect::Sqlite.upsert_clause(&["k1", "k2"], &["a", "b"]),
            "ON CONFLICT (k1, k2) DO UPDATE SET a = excluded.a, b = excluded.b"
        );
        assert_eq!(Dialect::MySql.for_update(), " FOR UPDATE");
        assert_eq!(Dialect::Sqlite.for_update(), "");
        assert!(Dialect::MySql.supports_skip_locked());
        assert!(!Dialect::Sqlite.supports_skip_locked());
    }
}
