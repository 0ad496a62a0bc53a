//! Configuration changes announced over Redis pub/sub, so every instance's cache drops a
//! changed activity at once.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use futures::StreamExt;
use lottery_activity::{ChangeFeed, StockError};
use lottery_domain::ActivityId;
use tracing::{debug, warn};

/// Publishes and listens on one channel.
#[derive(Clone)]
pub struct RedisChangeFeed {
    client: redis::Client,
    channel: String,
}

impl std::fmt::Debug for RedisChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChangeFeed")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisChangeFeed {
    pub fn new(url: &str, prefix: &str) -> Result<Self, StockError> {
        let client =
            redis::Client::open(url).map_err(|e| StockError::Unavailable(e.to_string()))?;
        Ok(Self {
            client,
            channel: format!("{prefix}:config-changes"),
        })
    }

    /// Listens until the task is dropped: `changed(id)` for each announcement, and `resync()`
    /// after every (re)connection, since announcements made while disconnected are lost.
    pub fn listen(
        &self,
        changed: impl Fn(ActivityId) + Send + Sync + 'static,
        resync: impl Fn() + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        let channel = self.channel.clone();
        let changed = Arc::new(changed);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => {
                        if let Err(e) = pubsub.subscribe(&channel).await {
                            warn!(error = %e, "config change feed: subscribe failed");
                        } else {
                            resync();
                            delay = Duration::from_millis(200);
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                let payload: String = msg.get_payload().unwrap_or_default();
                                match payload.parse::<ActivityId>() {
                                    Ok(id) => {
                                        debug!(activity = %id, "configuration changed elsewhere");
                                        changed(id);
                                    }
                                    Err(_) => warn!(
                                        payload,
                                        "config change feed: ignoring a malformed message"
                                    ),
                                }
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "config change feed: cannot connect"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        })
    }
}

#[async_trait::async_trait]
impl ChangeFeed for RedisChangeFeed {
    async fn announce(&self, activity: ActivityId) -> Result<(), StockError> {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| StockError::Unavailable("Redis did not answer".into()))?
        .map_err(|e| StockError::Unavailable(e.to_string()))?;
        let _: i64 = conn
            .publish(&self.channel, activity.to_string())
            .await
            .map_err(|e| StockError::Unavailable(e.to_string()))?;
        Ok(())
    }
}
