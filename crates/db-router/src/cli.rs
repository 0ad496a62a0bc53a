//! The `route` command: prints where a key lives, without any database.
//!
//! Kept in the library so a server binary can offer it as a subcommand.

use std::ffi::OsString;

use crate::spread::{Route, Spread};

/// Usage text of the `route` command.
pub const ROUTE_USAGE: &str = "usage: route --db-count <N> --tb-count <M> [--] <user-id>\n\
     prints the database and table of <user-id>, e.g. `db 01 table _001`;\n\
     N * M must be a power of two";

/// Why the `route` command could not run. Its `Display` is the message to
/// print (the caller adds [`ROUTE_USAGE`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteCommandError {
    /// `-h` / `--help` was given: print usage, exit successfully.
    #[error("help requested")]
    Help,
    /// Bad or missing arguments, or an invalid layout.
    #[error("{0}")]
    Usage(String),
}

/// Parses the arguments of the `route` command (without the program name)
/// and routes the key.
///
/// # Errors
/// [`RouteCommandError::Help`] for `-h`/`--help`, otherwise
/// [`RouteCommandError::Usage`] with a message naming the problem.
pub fn route_command<I>(args: I) -> Result<Route, RouteCommandError>
where
    I: IntoIterator<Item = OsString>,
{
    let usage = |msg: String| RouteCommandError::Usage(msg);
    let mut db_count = None;
    let mut tb_count = None;
    let mut key: Option<String> = None;
    let mut only_positional = false;
    let mut args = args.into_iter();

    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|raw| usage(format!("argument {raw:?} is not valid UTF-8")))?;
        let flag = if only_positional {
            None
        } else {
            Some(arg.as_str())
        };
        match flag {
            Some("-h" | "--help") => return Err(RouteCommandError::Help),
            Some("--") => only_positional = true,
            Some("--db-count" | "--tb-count") => {
                let value = args
                    .next()
                    .ok_or_else(|| usage(format!("{arg} needs a value")))?
                    .into_string()
                    .map_err(|raw| usage(format!("value {raw:?} of {arg} is not valid UTF-8")))?;
                let n: u32 = value.parse().map_err(|_| {
                    usage(format!("{arg} must be a positive integer, got {value:?}"))
                })?;
                let slot = if arg == "--db-count" {
                    &mut db_count
                } else {
                    &mut tb_count
                };
                *slot = Some(n);
            }
            Some(other) if other.starts_with('-') && other.len() > 1 => {
                return Err(usage(format!("unknown option {other:?}")));
            }
            _ => {
                if key.is_some() {
                    return Err(usage(format!("unexpected extra argument {arg:?}")));
                }
                key = Some(arg);
            }
        }
    }

    let db_count = db_count.ok_or_else(|| usage("--db-count is required".into()))?;
    let tb_count = tb_count.ok_or_else(|| usage("--tb-count is required".into()))?;
    let key = key.ok_or_else(|| usage("<user-id> is required".into()))?;
    let spread = Spread::new(db_count, tb_count).map_err(|e| usage(e.to_string()))?;
    Ok(spread.route(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Route, RouteCommandError> {
        route_command(args.iter().map(OsString::from))
    }

    #[test]
    fn routes_reference_examples() {
        let r = run(&["--db-count", "2", "--tb-count", "4", "xiaofuge"]).unwrap();
        assert_eq!(r.to_string(), "db 01 table _001");
        let r = run(&["fustack", "--tb-count", "4", "--db-count", "2"]).unwrap();
        assert_eq!(r.to_string(), "db 02 table _000");
    }

    #[test]
    fn double_dash_allows_keys_starting_with_a_dash() {
        let r = run(&["--db-count", "1", "--tb-count", "1", "--", "-x"]).unwrap();
        assert_eq!(r, Route { db: 1, table: 0 });
        assert!(matches!(
            run(&["--db-count", "1", "--tb-count", "1", "-x"]),
            Err(RouteCommandError::Usage(m)) if m.contains("unknown option")
        ));
    }

    #[test]
    fn reports_bad_input() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--db-count is required"),
            (&["--db-count", "2", "k"], "--tb-count is required"),
            (
                &["--db-count", "2", "--tb-count", "4"],
                "<user-id> is required",
            ),
            (&["--db-count"], "needs a value"),
            (
                &["--db-count", "two", "--tb-count", "4", "k"],
                "positive integer",
            ),
            (
                &["--db-count", "-1", "--tb-count", "4", "k"],
                "positive integer",
            ),
            (&["--db-count", "3", "--tb-count", "4", "k"], "power of two"),
            (
                &["--db-count", "0", "--tb-count", "4", "k"],
                "at least one shard",
            ),
            (
                &["--db-count", "2", "--tb-count", "4", "a", "b"],
                "extra argument",
            ),
        ];
        for (args, needle) in cases {
            match run(args) {
                Err(RouteCommandError::Usage(msg)) => {
                    assert!(msg.contains(needle), "{args:?}: {msg:?} lacks {needle:?}");
                }
                other => panic!("{args:?}: expected usage error, got {other:?}"),
            }
        }
        assert_eq!(run(&["--help"]), Err(RouteCommandError::Help));
    }

    #[cfg(unix)]
    #[test]
    fn rejects_non_utf8_without_panicking() {
        use std::os::unix::ffi::OsStringExt;
        let args = vec![
            OsString::from("--db-count"),
            OsString::from("1"),
            OsString::from("--tb-count"),
            OsString::from("1"),
            OsString::from_vec(vec![0xff, 0xfe]),
        ];
        assert!(matches!(
            route_command(args),
            Err(RouteCommandError::Usage(_))
        ));
    }
}
