//! Unique identifiers and free ports.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest prefix kept by [`unique_name`], so that the result (plus a short
/// index suffix) stays well under MySQL's 64-character identifier limit.
pub const MAX_PREFIX_LEN: usize = 24;

/// A name that is unique across processes and runs: `{prefix}_{time}_{random}{n}`.
///
/// The prefix is lower-cased, every character outside `[a-z0-9_]` becomes `_`,
/// it is cut to [`MAX_PREFIX_LEN`] and prefixed with `t` if it would not start
/// with a letter, so the result is a valid unquoted SQL identifier, a valid
/// file name and at most 54 characters long.
pub fn unique_name(prefix: &str) -> String {
    // The counter separates names made in the same millisecond by one process;
    // the random part separates processes (parallel test binaries).
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let random: u32 = rand::random();
    format!("{}_{millis:x}_{random:08x}{n:x}", sanitize_prefix(prefix))
}

fn sanitize_prefix(prefix: &str) -> String {
    let mut out: String = prefix
        .chars()
        .take(MAX_PREFIX_LEN)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 't');
    }
    out
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Nothing keeps it reserved, so it is only good for "nothing listens here"
/// tests or for handing to a server that binds it right away.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_identifiers() {
        for prefix in ["", "9lives", "Draw-Test", "ünïcode", &"x".repeat(200)] {
            let name = unique_name(prefix);
            assert!(name.len() <= 54, "{name} too long");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name} has unsafe characters"
            );
            assert!(name.starts_with(|c: char| c.is_ascii_alphabetic()));
        }
    }

    #[test]
    fn names_differ() {
        let a = unique_name("p");
        let b = unique_name("p");
        assert_ne!(a, b);
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().expect("bind loopback"), 0);
    }
}
