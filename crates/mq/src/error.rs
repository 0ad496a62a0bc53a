use std::time::Duration;

/// Failures of the adapter's own operations (connecting, declaring, inspecting). Publishing
/// reports through the port's [`lottery_activity::PublishError`] instead.
#[derive(Debug, thiserror::Error)]
pub enum MqError {
    /// A name does not fit AMQP's 255-byte short strings, or a setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The connection could not be opened.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The broker or the client library refused an operation.
    #[error("{context}: {source}")]
    Amqp {
        context: String,
        #[source]
        source: lapin::Error,
    },
    /// An operation got no answer in time.
    #[error("{context}: no answer within {after:?}")]
    Timeout { context: String, after: Duration },
    /// The broker cancelled the consumer (its queue was deleted).
    #[error("consumer on {queue} was cancelled by the broker")]
    Cancelled { queue: String },
}

impl MqError {
    pub(crate) fn amqp(context: impl Into<String>) -> impl FnOnce(lapin::Error) -> MqError {
        let context = context.into();
        move |source| MqError::Amqp { context, source }
    }
}
