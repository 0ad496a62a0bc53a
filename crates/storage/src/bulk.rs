//! Statements over many rows at once: one `INSERT ... VALUES (..), (..)` instead of one per
//! row, split only where a backend's limit on bound values would be passed.

use sqlx::query_builder::Separated;
use sqlx::{Any, AnyConnection, QueryBuilder};

/// Values one statement may bind: SQLite's limit (32766 since 3.32; the bundled library is
/// newer), below MariaDB's 65535, so the same split serves both backends.
const MAX_BINDS: usize = 32_766;

/// Statements of at most this many rows stay in the connection's statement cache. Larger
/// ones are prepared for one use: their text changes with the batch size, and caching each
/// size would push out the statements every other query reuses.
const CACHED_ROWS: usize = 4;

/// How many rows of `binds_per_row` values one statement takes.
pub(crate) fn rows_per_statement(binds_per_row: usize) -> usize {
    (MAX_BINDS / binds_per_row.max(1)).max(1)
}

/// Whether a statement over `rows` rows should be kept prepared (see [`CACHED_ROWS`]).
pub(crate) fn cached(rows: usize) -> bool {
    rows <= CACHED_ROWS
}

/// `{head} VALUES (..), (..) {tail}` over `rows`, `push` binding each row's values (exactly
/// `binds_per_row` of them), in as few statements as the bind limit allows: one for a batch
/// of draws. Nothing is sent for no rows.
pub(crate) async fn insert_rows<'r, T>(
    conn: &mut AnyConnection,
    head: &str,
    tail: &str,
    binds_per_row: usize,
    rows: &'r [T],
    mut push: impl FnMut(Separated<'_, 'r, Any, &'static str>, &'r T),
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(rows_per_statement(binds_per_row)) {
        let mut query = QueryBuilder::<Any>::new(head);
        query.push_values(chunk, &mut push);
        query.push(tail);
        query
            .build()
            .persistent(cached(chunk.len()))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_stay_under_the_bind_limit() {
        assert_eq!(rows_per_statement(15), 2_184);
        assert!(rows_per_statement(15) * 15 <= MAX_BINDS);
        assert_eq!(rows_per_statement(0), MAX_BINDS);
        assert_eq!(rows_per_statement(MAX_BINDS * 2), 1);
    }
}
