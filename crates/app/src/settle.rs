//! Marks recorded claims settled in the stock store, in batches off the draw's path: one
//! round trip per activity and batch instead of one per draw. A claim whose mark is lost
//! (the process dies first, the store is unreachable) stays pending until the reconciler
//! reads its record back and settles it then.

use std::collections::HashMap;
use std::sync::Arc;

use lottery_activity::StockLedger;
use lottery_domain::{ActivityId, TakeId};
use tokio::sync::mpsc;
use tracing::debug;

/// Most claims settled in one batch.
const BATCH: usize = 2_048;

#[derive(Debug, Clone)]
pub(crate) struct Settler {
    tx: mpsc::UnboundedSender<(ActivityId, TakeId)>,
}

impl Settler {
    /// Starts the batching task (within a Tokio runtime); it ends when every clone is gone.
    pub(crate) fn start(stock: Arc<dyn StockLedger>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(stock, rx));
        Self { tx }
    }

    /// The claim's draw is recorded: it holds its stock for good.
    pub(crate) fn recorded(&self, activity: ActivityId, claim: TakeId) {
        // A closed channel only means the process is stopping; the reconciler settles it.
        let _ = self.tx.send((activity, claim));
    }
}

async fn run(stock: Arc<dyn StockLedger>, mut rx: mpsc::UnboundedReceiver<(ActivityId, TakeId)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut by_activity: HashMap<ActivityId, Vec<TakeId>> = HashMap::new();
        for (activity, claim) in batch.drain(..) {
            by_activity.entry(activity).or_default().push(claim);
        }
        for (activity, claims) in by_activity {
            if let Err(e) = stock.settle(activity, &claims).await {
                debug!(%activity, claims = claims.len(), error = %lottery_domain::Chain(&e),
                    "claims not marked settled; the reconciler will read them back");
            }
        }
    }
}
