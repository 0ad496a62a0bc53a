//! Conversions between stored columns and domain values.

use chrono::{DateTime, Utc};
use lottery_domain::RepoError;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{corrupt, repo};

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>, RepoError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| corrupt(format!("timestamp {ms} out of range")))
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64, RepoError> {
    row.try_get::<i64, _>(col).map_err(repo)
}

pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, RepoError> {
    row.try_get::<Option<i64>, _>(col).map_err(repo)
}

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String, RepoError> {
    row.try_get::<String, _>(col).map_err(repo)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, RepoError> {
    row.try_get::<Option<String>, _>(col).map_err(repo)
}

/// Parses a stored value through a domain constructor, reporting corruption with the column.
pub(crate) fn parse<T, E: std::fmt::Display>(col: &str, r: Result<T, E>) -> Result<T, RepoError> {
    r.map_err(|e| corrupt(format!("column {col}: {e}")))
}

pub(crate) fn u32_of(col: &str, v: i64) -> Result<u32, RepoError> {
    u32::try_from(v).map_err(|_| corrupt(format!("column {col}: {v} out of range")))
}

/// `?, ?, ?` for an IN list of `n` values.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Escapes a user-supplied substring for `LIKE ? ESCAPE '!'`, identically on both backends.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}
