//! The lottery server: configuration, composition root, HTTP API, and the operator commands
//! behind the `lottery` binary.

pub mod api;
pub mod auth;
pub mod compose;
pub mod config;
pub mod error;
pub mod metrics;
pub mod request_id;
pub mod state;
pub mod telemetry;
pub mod web;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;

pub use compose::{Built, Role, StartError};
pub use config::Config;

/// A running server: its address and a way to stop it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Graceful stop: no new connections, in-flight requests finish, workers stop, batches
    /// flush, connections close.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }

    /// Waits until the server stopped (by its signal).
    pub async fn wait(self) {
        let _keep = self.stop;
        let _ = self.done.await;
    }
}

/// Binds `config.listen` (port 0 picks a free one) and serves until stopped or until
/// `signal` resolves.
pub async fn start(
    config: &Config,
    role: Role,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let built = compose::build(config, role).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Io {
            what: format!("cannot listen on {}", config.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Io {
        what: "cannot read the listening address".into(),
        source,
    })?;
    let app = match role {
        Role::Worker => api::ops_router(built.state.clone()),
        Role::Api | Role::All => api::router(built.state.clone(), &config.http),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // In-flight requests get the request timeout (plus a second for the answers to go out)
    // to finish; then the stop goes on without them.
    let drain = Duration::from_millis(config.http.request_timeout_ms) + Duration::from_secs(1);
    let done = tokio::spawn(async move {
        let (asked, asked_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            tokio::select! {
                _ = stopped => {}
                _ = signal => {}
            }
            info!("shutting down: finishing in-flight requests");
            let _ = asked.send(());
        };
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .into_future();
        let drained = async move {
            if asked_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            served = serve => {
                if let Err(e) = served {
                    tracing::error!(error = %e, "server error");
                }
            }
            () = drained => {
                tracing::warn!(bound = ?drain, "requests still open after the drain bound; stopping anyway");
            }
        }
        built.shutdown().await;
        info!("stopped");
    });
    Ok(Running { addr, stop, done })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
