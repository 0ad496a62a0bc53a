use std::future::Future;
use std::time::Duration;

use lapin::{Channel, Connection, ConnectionProperties};

use crate::config::MqConfig;
use crate::error::MqError;

/// Opens a connection, bounded by the connect timeout so an unreachable or hung broker fails
/// the caller quickly. `name` shows in the broker's connection list.
pub(crate) async fn open(config: &MqConfig, name: &str) -> Result<Connection, MqError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let connect = Connection::connect(&config.url, properties);
    match tokio::time::timeout(config.connect_timeout(), connect).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(MqError::Connect {
            url: config.redacted_url(),
            reason: e.to_string(),
        }),
        Err(_) => Err(MqError::Connect {
            url: config.redacted_url(),
            reason: format!("no connection within {:?}", config.connect_timeout()),
        }),
    }
}

pub(crate) async fn channel(connection: &Connection) -> Result<Channel, MqError> {
    connection
        .create_channel()
        .await
        .map_err(MqError::amqp("open channel"))
}

/// Bounds a broker round trip; `context` names it in the error.
pub(crate) async fn bounded<T>(
    after: Duration,
    context: &str,
    operation: impl Future<Output = Result<T, MqError>>,
) -> Result<T, MqError> {
    tokio::time::timeout(after, operation)
        .await
        .unwrap_or_else(|_| {
            Err(MqError::Timeout {
                context: context.to_owned(),
                after,
            })
        })
}

/// Closes politely, bounded so a dead peer cannot hold the caller; errors only mean the
/// connection was already gone.
pub(crate) async fn close(connection: &Connection, after: Duration) {
    let closing = connection.close(200, "closing".into());
    match tokio::time::timeout(after, closing).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "connection was already closed"),
        Err(_) => tracing::debug!("connection close got no answer"),
    }
}
