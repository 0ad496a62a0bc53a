//! Keyed draws running in this process, so that a replay arriving while its draw still runs
//! waits for that draw's outcome instead of drawing again (which could only find the user's
//! quota held by the first and answer `quota_exhausted`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use lottery_domain::UserId;
use tokio::sync::watch;

use crate::{AppError, DrawRequest, DrawResult};

/// The outcome of a draw, once known.
pub(crate) type Outcome = watch::Receiver<Option<Result<DrawResult, AppError>>>;
type Publish = watch::Sender<Option<Result<DrawResult, AppError>>>;
type Key = (UserId, String);
type Running = Arc<Mutex<HashMap<Key, Outcome>>>;

#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight {
    running: Running,
}

pub(crate) enum Joined {
    /// A draw with this user and key runs already: wait for its outcome.
    Running(Outcome),
    /// This draw is the first: run it, publish its outcome, then drop `done`.
    First {
        publish: Publish,
        outcome: Outcome,
        done: Done,
    },
}

/// Takes the key out of the running set when dropped.
pub(crate) struct Done {
    key: Option<Key>,
    running: Running,
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.running).remove(&key);
        }
    }
}

fn lock(running: &Running) -> std::sync::MutexGuard<'_, HashMap<Key, Outcome>> {
    // Plain data behind the lock: a panic elsewhere leaves it usable.
    running.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InFlight {
    /// Joins a running draw with the same user and key, or registers this one as running.
    /// Draws without a key never join.
    pub(crate) fn join(&self, req: &DrawRequest) -> Joined {
        let (publish, outcome) = watch::channel(None);
        let Some(key) = req.idempotency_key.clone() else {
            return Joined::First {
                publish,
                outcome,
                done: Done {
                    key: None,
                    running: self.running.clone(),
                },
            };
        };
        let key = (req.user.clone(), key);
        let mut running = lock(&self.running);
        if let Some(first) = running.get(&key) {
            return Joined::Running(first.clone());
        }
        running.insert(key.clone(), outcome.clone());
        Joined::First {
            publish,
            outcome,
            done: Done {
                key: Some(key),
                running: self.running.clone(),
            },
        }
    }
}
