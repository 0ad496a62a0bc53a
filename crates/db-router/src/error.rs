//! Errors of the router.

/// Everything that can go wrong configuring or using a [`crate::Router`].
///
/// URLs in messages have their password replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// `shard_urls` is empty (or a layout was asked for with `db_count = 0`).
    #[error("invalid router config: at least one shard database is required (db_count >= 1)")]
    NoShards,

    /// `tb_count = 0`.
    #[error("invalid router config: tb_count must be at least 1")]
    NoTables,

    /// `db_count * tb_count` is not a power of two (or overflows 32 bits).
    #[error(
        "invalid router config: db_count * tb_count must be a power of two, \
         got {db_count} * {tb_count}"
    )]
    NotPowerOfTwo {
        /// Configured number of databases.
        db_count: u32,
        /// Configured number of tables per database.
        tb_count: u32,
    },

    /// `max_connections = 0`.
    #[error("invalid router config: max_connections must be at least 1")]
    NoConnections,

    /// `read_timeout_ms = 0`: an operation could wait for ever on a dead connection.
    #[error("invalid router config: read_timeout_ms must be at least 1")]
    NoReadTimeout,

    /// A URL whose scheme is not `mysql`, `mariadb` or `sqlite`.
    #[error(
        "invalid router config: unsupported database URL `{url}` \
         (expected a mysql://, mariadb:// or sqlite: URL)"
    )]
    UnsupportedUrl {
        /// The offending URL, password redacted.
        url: String,
    },

    /// The global database and the shards do not all use the same dialect.
    #[error(
        "invalid router config: all database URLs must use the same dialect, \
         but `{first}` and `{other}` differ"
    )]
    MixedDialects {
        /// First URL (the global one), password redacted.
        first: String,
        /// A URL of another dialect, password redacted.
        other: String,
    },

    /// A [`crate::Route`] that does not belong to this router's layout.
    #[error("route db {db:02} table _{table:03} is outside the {db_count} x {tb_count} layout")]
    RouteOutOfRange {
        /// Route's 1-based database number.
        db: u32,
        /// Route's 0-based table number.
        table: u32,
        /// Router's number of databases.
        db_count: u32,
        /// Router's number of tables per database.
        tb_count: u32,
    },

    /// Could not prepare the directory of a SQLite database file.
    #[error("cannot create directory for SQLite database `{url}`: {source}")]
    SqliteDir {
        /// The SQLite URL.
        url: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Opening the pool for one database failed.
    #[error("cannot connect to database `{url}`: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// Underlying driver error.
        #[source]
        source: sqlx::Error,
    },

    /// Any other database error (for example starting a transaction).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
