//! `Application`: builds the state from settings, binds its own listener (so tests can use port
//! 0 and ask for the port), serves until told to stop, then drains requests and flushes pending
//! writes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::Params;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{DatabaseTarget, Settings};
use crate::http::{router, AppState};
use crate::service::{AccountService, Hasher, KeyService};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// How often batched key usage reaches the database.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let DatabaseTarget::Sqlite(path) = settings.database_target()?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await?);

        let p = &settings.password;
        let params = Params::new(
            p.argon2_memory_kib,
            p.argon2_iterations,
            p.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        if p.argon2_memory_kib < 19_456 || p.argon2_iterations < 2 {
            tracing::warn!("argon2 parameters are below OWASP's minimum (m=19456 KiB, t=2): for tests only");
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let hasher = Arc::new(Hasher::start(params, p.pepper.as_ref(), cores)?);

        let keys = Arc::new(KeyService::new(
            store.clone(),
            clock.clone(),
            settings.key_policy(),
            settings.anomaly_policy(),
        ));
        let accounts = Arc::new(AccountService::new(
            store.clone(),
            clock,
            hasher,
            keys.clone(),
            settings.password_policy(),
        ));
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.listen))?;
        let state = AppState {
            accounts,
            keys,
            store,
            trusted_proxies: settings.server.trusted_proxies.clone().into(),
        };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The storage the application runs on (for tests and tools).
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes; then finishes in-flight requests, flushes batched
    /// writes and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        let keys = state.keys.clone();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = keys.flush().await {
                            tracing::warn!(error = %e, "could not write key usage; will retry");
                        }
                    }
                    _ = stop_rx.changed() => break,
                }
            }
        });

        tracing::info!(address = %listener.local_addr()?, "killbill-auth listening");
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;

        let _ = stop_tx.send(true);
        let _ = flusher.await;
        match state.keys.flush().await {
            Ok(n) => tracing::info!(flushed = n, "pending key usage written"),
            Err(e) => tracing::error!(error = %e, "could not write pending key usage at shutdown"),
        }
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: draining requests");
}
