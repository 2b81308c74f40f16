//! Wiring. [`Services`] builds storage, the hashing pool and the services from settings (the
//! server and the admin command line share it); [`Application`] binds its own listener (so tests
//! can use port 0 and ask for the port), serves until told to stop, then drains requests and
//! flushes pending writes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use argon2::Params;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{DatabaseTarget, Settings};
use crate::domain::name_digest::NAME_KEY_BYTES;
use crate::domain::{HashClass, NameKey, RevocationReason};
use crate::http::connection::Connections;
use crate::http::routes::account::AccountPage;
use crate::http::server::{self, Limits};
use crate::http::{AppState, Shared};
use crate::metrics::Metrics;
use crate::service::accounts::KNOWN_NETWORK_FOR;
use crate::service::keys::REVOKED_LISTED_FOR;
use crate::service::throttle::Throttle;
use crate::service::tickets::TicketService;
use crate::service::{AccountService, Hasher, KeyService, RevocationHub};
use crate::store::drills::FaultDrills;
use crate::store::postgres::listen::{self, Revocations};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{PruneCutoffs, Store};

/// How often revocations made by other processes are picked up (API.md: a key revoked on one instance is refused everywhere within a second).
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the key usage that is due reaches the database, in ticks of [`FLUSH_EVERY`]: a new
/// network at the next flush, other changes every five minutes per key (`USAGE_WRITE_EVERY`). Every
/// written key is a row to update, the hot path's main cost after the request itself. A crash
/// loses at most 10 s of networks and 310 s of `last_used` and request counts, never an
/// acknowledged write; a graceful stop loses nothing. More often with a short idle timeout
/// ([`usage_flush_ticks`]).
const USAGE_FLUSH_TICKS: u32 = 10;

/// The flush period in ticks for keys written every `write_every`: [`USAGE_FLUSH_TICKS`], or
/// `write_every` in whole seconds (at least one) when that is shorter, so that a short
/// `keys.idle_timeout` stays exact to a tenth of itself.
fn usage_flush_ticks(write_every: Duration) -> u32 {
    let secs = write_every.as_secs() / FLUSH_EVERY.as_secs().max(1);
    u32::try_from(secs)
        .unwrap_or(u32::MAX)
        .clamp(1, USAGE_FLUSH_TICKS)
}
/// How often keys idle in the cache are dropped from it, in ticks of [`FLUSH_EVERY`].
const SWEEP_TICKS: u32 = 60;
/// How often old rows are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How far back the feed is read again when notifications may have been missed: far more
/// revocations than can commit out of order around one lost connection.
const FEED_RESCAN: i64 = 1_000;
/// How long the revocation feed keeps entries: other processes poll it every second (by `seq`,
/// so its size does not slow them), and `GET /revocations` resumes from it for 30 days (API.md).
const FEED_KEPT_FOR: Duration = Duration::from_secs(30 * 86_400);

/// Everything but HTTP.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<KeyService>,
    pub accounts: Arc<AccountService>,
    pub throttle: Arc<Throttle>,
    pub metrics: Arc<Metrics>,
    /// Join tickets.
    pub tickets: Arc<TicketService>,
    /// PostgreSQL: where revocations from every instance are listened for.
    pub revocations_url: Option<SecretString>,
    /// Security events are deleted after this (`events.retention`).
    pub events_retention: Duration,
    /// The revocation stream's hub (`GET /revocations`).
    pub revocations: Arc<RevocationHub>,
    /// The store's fault drills, for tests (SQLite only: `None` on PostgreSQL).
    pub fault_drills: Option<Arc<dyn FaultDrills>>,
}

impl Services {
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let (store, names, revocations_url, fault_drills): (Arc<dyn Store>, NameKey, _, _) = match settings
            .database_target()?
        {
            DatabaseTarget::Sqlite(path) => {
                let store = Arc::new(SqliteStore::open(&path).await?);
                guard_pepper(settings, store.as_ref()).await?;
                let drills: Arc<dyn FaultDrills> = store.clone();
                (store, name_key_beside(settings, &path)?, None, Some(drills))
            }
            DatabaseTarget::Postgres(pg) => {
                let store: Arc<dyn Store> = Arc::new(PgStore::connect(&pg.url, pg.max_connections).await?);
                guard_pepper(settings, store.as_ref()).await?;
                let names = name_key_shared(settings, store.as_ref()).await?;
                (store, names, Some(pg.listen_url), None)
            }
        };

        let p = &settings.password;
        let params = Params::new(
            p.argon2_memory_kib,
            p.argon2_iterations,
            p.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let metrics = Arc::new(Metrics::new());
        let hasher = Arc::new(Hasher::start(
            params,
            p.pepper.as_ref(),
            cores,
            metrics.hashes_refused(),
        )?);

        let keys = Arc::new(KeyService::new(
            store.clone(),
            clock.clone(),
            settings.key_policy(),
            settings.anomaly_policy(),
            metrics.clone(),
        ));
        keys.set_outage_grace(settings.database.outage_grace.0);
        let throttle = Arc::new(Throttle::new(
            settings.throttle_policy(),
            store.clone(),
            Arc::new(names),
        ));
        let accounts = Arc::new(AccountService::new(
            store.clone(),
            clock.clone(),
            hasher,
            keys.clone(),
            throttle.clone(),
            settings.password_policy(),
        ));
        let tickets = Arc::new(TicketService::new(
            store.clone(),
            clock.clone(),
            settings.key_policy(),
            settings.ticket_policy(),
            metrics.clone(),
        ));
        let revocations = RevocationHub::new(store.clone(), keys.revocation_signal());
        Ok(Self {
            store,
            clock,
            keys,
            accounts,
            throttle,
            metrics,
            tickets,
            revocations_url,
            events_retention: settings.events.retention.0,
            revocations,
            fault_drills,
        })
    }

    /// Writes all batched state (key usage and anomaly state): at shutdown and before
    /// housekeeping.
    pub async fn flush(&self) {
        if let Err(e) = self.keys.flush().await {
            tracing::warn!(error = %e, "could not write key usage; will retry");
        }
    }

    /// The periodic flush of key usage: only what is due (see `KeyService::flush_due`).
    async fn flush_usage(&self) {
        if let Err(e) = self.keys.flush_due().await {
            tracing::warn!(error = %e, "could not write key usage; will retry");
        }
    }

    /// Deletes feed entries, throttles and known networks past their use, and keys revoked
    /// longer ago than they are listed.
    pub async fn prune(&self) {
        let now = self.clock.now();
        let cutoffs = PruneCutoffs {
            feed: now.minus(FEED_KEPT_FOR),
            throttles: now.minus(self.throttle.policy().longest_window()),
            known_networks: now.minus(KNOWN_NETWORK_FOR),
            revoked_keys: now.minus(REVOKED_LISTED_FOR),
            shared_activity: now.minus(self.keys.shared_activity_kept_for()),
            events: now.minus(self.events_retention),
            tickets: now,
        };
        // Usage first, so that no key is judged idle on stale data; and a minute of margin, so
        // that a key this instance still holds as live has been refused here already.
        self.flush().await;
        match self
            .store
            .expire_keys(self.keys.policy(), now.minus(Duration::from_secs(60)))
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.keys_revoked(RevocationReason::Expired, n);
                tracing::info!(expired = n, "expired keys marked");
            }
            Err(e) => tracing::warn!(error = %e, "could not mark expired keys"),
        }
        if let Err(e) = self.store.prune(&cutoffs).await {
            tracing::warn!(error = %e, "could not prune old rows");
        }
    }

    pub async fn close(&self) {
        self.flush().await;
        self.store.close().await;
    }

    /// Measures the cost of each class of password hash in use on this machine (the configured
    /// one, and those imports recorded), so that a wrong password takes as long whatever the
    /// account's hash (`service::hasher::Timing`). At start, then again at each housekeeping
    /// (`again`), which also picks up the classes of an import run meanwhile.
    pub async fn measure_hash_classes(&self, again: bool) {
        let hasher = self.accounts.hasher();
        let mut classes = vec![hasher.native_class()];
        match self.store.hash_classes().await {
            Ok(stored) => classes.extend(stored.iter().filter_map(|c| HashClass::parse(c))),
            Err(e) => tracing::warn!(error = %e, "cannot read the classes of imported password hashes"),
        }
        if let Err(e) = hasher.calibrate(&classes, again).await {
            tracing::warn!(error = %e, "cannot measure the password hash classes now; will retry");
        }
    }
}

pub struct Application {
    listener: TcpListener,
    services: Services,
    limits: Limits,
    account_page: Arc<AccountPage>,
}

impl Application {
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        for warning in settings.warnings() {
            tracing::warn!("{warning}");
        }
        let open_files = server::raise_open_file_limit();
        let limits = Limits::new(&settings.server, open_files);
        tracing::info!(
            max_connections = limits.max_connections,
            max_connections_per_address = limits.max_connections_per_address,
            "connection limits"
        );
        let services = Services::build(settings, clock).await?;
        services.measure_hash_classes(false).await;
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.listen))?;
        Ok(Self {
            listener,
            services,
            limits,
            account_page: Arc::new(AccountPage::new(settings)),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The storage the application runs on (for tests and tools).
    pub fn store(&self) -> Arc<dyn Store> {
        self.services.store.clone()
    }

    /// The storage's fault drills, for tests: SQLite's, `None` on PostgreSQL.
    pub fn fault_drills(&self) -> Option<Arc<dyn FaultDrills>> {
        self.services.fault_drills.clone()
    }

    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes; then finishes in-flight requests, flushes batched
    /// writes and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self {
            listener,
            services,
            limits,
            account_page,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let background = tokio::spawn(maintain(services.clone(), stop_rx.clone()));
        let hub = services.revocations.clone();
        let hub_task = tokio::spawn(hub.clone().run());
        let follower = match services.revocations_url.clone() {
            None => None,
            Some(url) => {
                let keys = services.keys.clone();
                let hub = hub.clone();
                let metrics = services.metrics.clone();
                metrics.follow_listener();
                let (started_tx, started) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(listen::follow(
                    url,
                    move |event| match event {
                        // Forgetting wakes the revocation streams' hub too.
                        Revocations::Revoked(digest) => keys.forget_digests(&[digest]),
                        Revocations::Lost => keys.feed_suspect(),
                        Revocations::Disconnected => {
                            metrics.listener_failed();
                            hub.listener_lost();
                        }
                        Revocations::Listening => {
                            metrics.listener_connected();
                            hub.listener_back();
                        }
                    },
                    started_tx,
                    stop_rx,
                ));
                // Serve once listening (or once it failed: it keeps trying, dropping the cache).
                let _ = tokio::time::timeout(Duration::from_secs(10), started).await;
                Some(task)
            }
        };

        tracing::info!(address = %listener.local_addr()?, "killbill-auth listening");
        let state = AppState::new(Shared {
            accounts: services.accounts.clone(),
            keys: services.keys.clone(),
            store: services.store.clone(),
            trusted_proxies: limits.trusted_proxies.clone(),
            metrics: services.metrics.clone(),
            request_timeout: limits.request_timeout,
            tickets: services.tickets.clone(),
            revocations: hub.clone(),
            account_page,
        });
        // Revocation streams never end by themselves: they end when the drain begins (their
        // clients reconnect elsewhere with their position), so that they do not hold it up.
        let shutdown = async move {
            shutdown.await;
            hub.close();
        };
        server::serve(
            listener,
            Connections::new(state),
            limits,
            services.metrics.clone(),
            shutdown,
        )
        .await;

        let _ = stop_tx.send(true);
        let _ = hub_task.await;
        let _ = background.await;
        if let Some(follower) = follower {
            let _ = follower.await;
        }
        services.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The background work of a running server: batched writes, sharing with other instances,
/// pruning; and, as a task of its own ([`follow_feed`]), revocations made by other processes
/// (the admin command line, other instances).
async fn maintain(services: Services, mut stop: watch::Receiver<bool>) {
    let feed = tokio::spawn(follow_feed(services.clone(), stop.clone()));
    let mut ticks: u32 = 0;
    let usage_ticks = usage_flush_ticks(services.keys.usage_write_every());
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                // While writes fail (a full disk), a probe write each second, so that the
                // failure clears as soon as space is back even when no client writes.
                if services.store.writes_failing() {
                    if let Err(e) = services.store.check_writes().await {
                        tracing::debug!(error = %e, "database writes still fail");
                    }
                }
                // Several instances: what each saw of its keys adds up, every second.
                if services.revocations_url.is_some() {
                    if let Err(e) = services.keys.share_activity().await {
                        tracing::warn!(error = %e, "could not share key activity; will retry");
                    }
                }
                if ticks.is_multiple_of(usage_ticks) {
                    services.flush_usage().await;
                }
                if ticks.is_multiple_of(SWEEP_TICKS) {
                    let swept = services.keys.sweep_idle();
                    if swept > 0 {
                        tracing::debug!(swept, cached = services.keys.cached(), "idle keys left the cache");
                    }
                }
            }
            _ = prune.tick() => {
                services.prune().await;
                services.measure_hash_classes(true).await;
            }
            _ = stop.changed() => break,
        }
    }
    let _ = feed.await;
}

/// How long one read of the revocation feed may take before it counts as failed. A database
/// that stops answering (a partition that drops packets, a paused proxy) leaves a query waiting
/// until TCP gives up, a quarter of an hour: the grace of API.md's outages must run meanwhile.
const FEED_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads the revocation feed every second, on a task of its own so that nothing else the
/// background does (sharing, usage writes, pruning) can hold it up, each read bounded by
/// [`FEED_READ_TIMEOUT`]: a read that succeeds renews the trust in the cache, one that fails or
/// does not answer starts the outage grace (API.md, "Database outages and failovers").
async fn follow_feed(services: Services, mut stop: watch::Receiver<bool>) {
    let mut feed_seq =
        match tokio::time::timeout(FEED_READ_TIMEOUT, services.store.revocation_feed_head()).await {
            Ok(Ok(seq)) => seq,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the revocation feed");
                0
            }
            Err(_) => {
                tracing::warn!("cannot read the revocation feed: no answer within 2 s");
                0
            }
        };
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let failure = match tokio::time::timeout(FEED_READ_TIMEOUT, catch_up(&services, &mut feed_seq)).await {
                    Ok(Ok(())) => {
                        services.keys.feed_heard();
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => {
                        // Cut off half-way, perhaps between clearing the mark of missed
                        // notifications and reading past them: read back over them next time.
                        services.keys.feed_suspect();
                        format!("no answer within {} s", FEED_READ_TIMEOUT.as_secs())
                    }
                };
                services.keys.feed_failed();
                static SAMPLED: crate::telemetry::Sampled =
                    crate::telemetry::Sampled::new(Duration::from_secs(10));
                if let Some(suppressed) = SAMPLED.admit() {
                    tracing::warn!(error = %failure, suppressed, "cannot read the revocation feed; cached keys validate for database.outage_grace from the last read");
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Applies what the revocation feed gained after `feed_seq` to this instance's cache, page by
/// page to its head, before the cache is trusted again (API.md, "Database outages and
/// failovers"). When entries after `feed_seq` were pruned away (an outage longer than the feed
/// is kept), revocations may have been missed: the whole cache is dropped, never a hole trusted.
async fn catch_up(services: &Services, feed_seq: &mut i64) -> crate::store::StoreResult<()> {
    // Notifications may have been missed (PostgreSQL's listener was lost): the feed's latest
    // entries again, in case one committed after a later one was read.
    if services.keys.take_feed_suspect() {
        let from = feed_seq.saturating_sub(FEED_RESCAN);
        match services.store.revocations_since(from).await {
            Ok(revoked) => {
                let digests: Vec<_> = revoked.iter().map(|(_, d)| *d).collect();
                services.keys.forget_digests(&digests);
            }
            Err(e) => {
                services.keys.feed_suspect();
                return Err(e);
            }
        }
    }
    // A gap can only open while reads fail (housekeeping keeps the feed 30 days; it is read
    // every second): its bounds are read only then, not at every tick.
    if *feed_seq > 0 && services.keys.feed_is_failing() {
        let bounds = services.store.feed_bounds().await?;
        if bounds.oldest.is_some_and(|oldest| oldest > *feed_seq + 1) {
            tracing::warn!(from = *feed_seq, oldest = ?bounds.oldest, "the revocation feed has a gap since it was last read: every cached key is read again");
            services.keys.forget_everything();
            *feed_seq = bounds.head;
            return Ok(());
        }
    }
    loop {
        let revoked = services.store.revocations_since(*feed_seq).await?;
        let Some((last, _)) = revoked.last() else {
            return Ok(());
        };
        *feed_seq = *last;
        let digests: Vec<_> = revoked.iter().map(|(_, d)| *d).collect();
        services.keys.forget_digests(&digests);
        if revoked.len() < 10_000 {
            return Ok(());
        }
    }
}

/// Refuses to go on with a pepper (or none) that is not the database's: the first start keeps
/// the verifier of what it was given, every later one compares (`domain::pepper`). Before
/// anything else is read or made (the name digests' secret, an account): a mismatch changes
/// nothing. A [`PepperMismatch`](crate::domain::pepper::PepperMismatch) is the caller's error
/// (exit 2).
async fn guard_pepper(settings: &Settings, store: &dyn Store) -> anyhow::Result<()> {
    use crate::domain::pepper;
    let configured = settings
        .password
        .pepper
        .as_ref()
        .map(|p| p.expose_secret().as_bytes().to_vec());
    let candidate = pepper::verifier(configured.as_deref());
    let stored = store
        .service_secret(pepper::VERIFIER_NAME, &candidate)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the pepper's verifier: {e}"))?;
    pepper::check(&stored, configured.as_deref())?;
    Ok(())
}

/// The key of name digests ([`NameKey`]) for instances sharing a database server: derived from
/// the pepper when one is set, else a secret the first instance generates and keeps in the
/// database, where every instance finds it. (With the pepper, a copy of the database alone does
/// not hold the key; the README recommends one for PostgreSQL.)
async fn name_key_shared(settings: &Settings, store: &dyn Store) -> anyhow::Result<NameKey> {
    if let Some(pepper) = &settings.password.pepper {
        return Ok(NameKey::from_pepper(pepper.expose_secret().as_bytes()));
    }
    let mut fresh = [0u8; NAME_KEY_BYTES];
    OsRng.fill_bytes(&mut fresh);
    let kept = store
        .service_secret("name_digest_key", &fresh)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the service's secret: {e}"))?;
    let bytes: [u8; NAME_KEY_BYTES] = kept
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the service's secret in the database is not {NAME_KEY_BYTES} bytes"))?;
    Ok(NameKey::from_bytes(bytes))
}

/// The key of name digests ([`NameKey`]) on SQLite: derived from the pepper when one is set, else
/// a secret generated at first start and kept owner-only beside the database
/// (`killbill-auth.secret` next to `killbill-auth.db`), so that a copy of the database alone does
/// not hold it.
fn name_key_beside(settings: &Settings, database: &Path) -> anyhow::Result<NameKey> {
    if let Some(pepper) = &settings.password.pepper {
        return Ok(NameKey::from_pepper(pepper.expose_secret().as_bytes()));
    }
    let path = database.with_extension("secret");
    let hex = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; NAME_KEY_BYTES];
            OsRng.fill_bytes(&mut bytes);
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_owner_only(&path, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the secret for name digests");
            text
        }
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let hex = hex.trim();
    let mut bytes = [0u8; NAME_KEY_BYTES];
    if hex.len() != 2 * NAME_KEY_BYTES {
        anyhow::bail!(
            "{} is not a secret of {NAME_KEY_BYTES} bytes in hex",
            path.display()
        );
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
            .map_err(|_| anyhow::anyhow!("{} is not hex", path.display()))?;
    }
    Ok(NameKey::from_bytes(bytes))
}

/// Creates `path` (which must not exist) readable by its owner only, with `contents`, durably.
fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_flushed_every_ten_seconds_or_as_often_as_a_short_idle_timeout_needs() {
        assert_eq!(usage_flush_ticks(Duration::from_secs(300)), 10);
        assert_eq!(usage_flush_ticks(Duration::from_secs(3)), 3);
        assert_eq!(usage_flush_ticks(Duration::from_millis(500)), 1);
    }
}
