//! Revocations from every instance, within a second: each transaction that revokes or deletes
//! keys also sends one notification per key (`pg_notify` on [`REVOCATIONS_CHANNEL`], payload the
//! key's digest in hex; see `insert_feed`), which PostgreSQL delivers when, and only if, the
//! transaction commits. Every instance listens on a session connection of its own
//! (`database.listen_url`, for deployments where `database.url` goes through a transaction
//! pooler) and drops each notified key from its cache.
//!
//! A notification sent while an instance was not listening is lost for it. So whenever the
//! listening connection is (re)established, after it was lost or could not be made, the
//! instance is told [`Revocations::Lost`]: its next read of the revocation feed (every second,
//! `startup::catch_up`) then goes back over the feed's latest entries, which also covers an entry
//! that committed after a later one was read (sequence numbers are taken at insert). The cache is
//! not dropped: through a database outage, cached keys validate for `database.outage_grace`
//! after the feed was last read (API.md, "Database outages and failovers").

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio::sync::watch;

use crate::domain::KeyDigest;
use crate::telemetry::Sampled;

/// The notification channel of revocations.
pub const REVOCATIONS_CHANNEL: &str = "killbill_auth_revocations";

/// How long to wait before trying to listen again after a failure.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long one attempt to listen may take. sqlx's own connection attempt retries for up to
/// 30 s while the server refuses connections; bounded here, a failure is told (and the cache
/// dropped) every few seconds at most while PostgreSQL is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the follower reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocations {
    /// The key with this digest was revoked or deleted by some instance.
    Revoked(KeyDigest),
    /// Notifications may have been missed: read the revocation feed's latest entries again.
    Lost,
    /// The listening connection was lost, or listening failed (told at each failed attempt;
    /// [`Revocations::Lost`] is told too). The revocation stream resets its clients once per
    /// such outage (`service::revocations`).
    Disconnected,
    /// Listening (again), after the [`Revocations::Lost`] that says what may have been missed.
    Listening,
}

/// Follows revocations until `stop` turns true, calling `on` for each event (from this task).
/// `started` is told once the first attempt to listen is over (listening, or not able to): the
/// server waits for it before it serves, so that the first [`Revocations::Lost`] finds an empty
/// cache instead of dropping the fresh in-memory state of keys already in use.
pub async fn follow(
    url: SecretString,
    mut on: impl FnMut(Revocations) + Send,
    started: tokio::sync::oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut started = Some(started);
    static FAILURES: Sampled = Sampled::new(Duration::from_secs(10));
    if let Err(e) = PgConnectOptions::from_str(url.expose_secret()) {
        tracing::error!(error = %e, "invalid database.listen_url: revocations from other instances are not followed");
        return;
    }
    loop {
        let listened = async {
            let attempt = async {
                let mut listener = PgListener::connect(url.expose_secret()).await?;
                // On a lost connection, tell us at once (`Ok(None)`) instead of reconnecting
                // inside `try_recv` (which waits up to 30 s while PostgreSQL is down, telling
                // nobody): this loop reconnects, and says `Lost` when it has.
                listener.eager_reconnect(false);
                listener.listen(REVOCATIONS_CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(listened) => listened,
                Err(_) => Err(sqlx::Error::PoolTimedOut),
            }
        };
        let listened = tokio::select! {
            listened = listened => listened,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut listener = match listened {
            Ok(listener) => listener,
            Err(e) => {
                if let Some(suppressed) = FAILURES.admit() {
                    tracing::warn!(error = %e, suppressed, "cannot listen for revocations; the revocation feed is read every second meanwhile");
                }
                on(Revocations::Disconnected);
                on(Revocations::Lost);
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_EVERY) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        // Anything revoked before this point may have gone unnoticed.
        on(Revocations::Lost);
        on(Revocations::Listening);
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
        tracing::info!("listening for revocations from every instance");
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => match parse_digest(notification.payload()) {
                        Some(digest) => on(Revocations::Revoked(digest)),
                        None => {
                            tracing::warn!("unreadable revocation notification; the revocation feed is read again");
                            on(Revocations::Lost);
                        }
                    },
                    // The connection was lost: we may have missed some. Listen again on a new
                    // connection (sqlx would reconnect by itself, but then nobody would know from
                    // when on nothing can have been missed: the `Lost` after `listen` says so).
                    Ok(None) => {
                        tracing::warn!("lost the connection that listens for revocations; the revocation feed is read again");
                        on(Revocations::Disconnected);
                        on(Revocations::Lost);
                        break;
                    }
                    Err(e) => {
                        if let Some(suppressed) = FAILURES.admit() {
                            tracing::warn!(error = %e, suppressed, "listening for revocations failed; the revocation feed is read again");
                        }
                        on(Revocations::Disconnected);
                        on(Revocations::Lost);
                        break;
                    }
                },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A digest from its 64 hex digits.
fn parse_digest(hex: &str) -> Option<KeyDigest> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        digest[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(KeyDigest(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_come_back_from_hex() {
        let digest = KeyDigest([0xab; 32]);
        let hex: String = digest.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_digest(&hex), Some(digest));
        assert_eq!(parse_digest(&hex[..62]), None);
        assert_eq!(parse_digest(&"zz".repeat(32)), None);
        assert_eq!(parse_digest(&"é".repeat(32)), None);
    }
}
