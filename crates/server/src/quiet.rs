//! Log lines for repeated failures, rate-limited: the first of a kind is written at once,
//! then at most one a second, carrying how many were held back. A dependency that is down
//! writes one line a second, not one per request.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Kind {
    last: Instant,
    held_back: u64,
}

fn kinds() -> &'static Mutex<HashMap<&'static str, Kind>> {
    static KINDS: OnceLock<Mutex<HashMap<&'static str, Kind>>> = OnceLock::new();
    KINDS.get_or_init(Mutex::default)
}

/// Whether a line of `kind` may be written now; `Some(n)` with the number of lines held back
/// since the last one written.
pub fn may_log(kind: &'static str) -> Option<u64> {
    let mut kinds = kinds().lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    match kinds.get_mut(kind) {
        None => {
            kinds.insert(
                kind,
                Kind {
                    last: now,
                    held_back: 0,
                },
            );
            Some(0)
        }
        Some(k) if now.duration_since(k.last) >= EVERY => {
            let held = k.held_back;
            k.last = now;
            k.held_back = 0;
            Some(held)
        }
        Some(k) => {
            k.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_a_second_are_held_back_and_counted() {
        assert_eq!(may_log("test-kind"), Some(0));
        for _ in 0..5 {
            assert_eq!(may_log("test-kind"), None);
        }
        std::thread::sleep(EVERY);
        assert_eq!(may_log("test-kind"), Some(5));
        assert_eq!(may_log("another-kind"), Some(0));
    }
}
