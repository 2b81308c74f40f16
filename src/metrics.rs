//! What the service counts, served by `GET /metrics` in Prometheus's text format.
//!
//! One recorder per running service, not the `metrics` crate's global one, so that every
//! instance in a process (the tests start dozens) counts only its own work. Counters are
//! `metrics` handles (an atomic add each); the ones on the validation path are registered once,
//! so `GET /auth` counts without a registry lookup. Gauges (cached keys, the hashing queue) are
//! read when scraped. Nothing here carries a key, a password, a username or an address: labels
//! are routes as declared (`/auth/keys/{id}`, not the id), methods, statuses and reasons.

use metrics::{Counter, Gauge, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::domain::RevocationReason;

const HTTP_REQUESTS: &str = "killbill_auth_http_requests_total";
const KEYS_REVOKED: &str = "killbill_auth_keys_revoked_total";
const HASHES_REFUSED: &str = "killbill_auth_password_hashes_refused_total";
const CACHED_KEYS: &str = "killbill_auth_cached_keys";
const PENDING_USAGE: &str = "killbill_auth_pending_usage_writes";
const HASH_QUEUE: &str = "killbill_auth_hash_queue";
const BUILD_INFO: &str = "killbill_auth_build_info";
const OPEN_CONNECTIONS: &str = "killbill_auth_open_connections";
const CONNECTIONS_REFUSED: &str = "killbill_auth_connections_refused_total";
const TICKETS: &str = "killbill_auth_tickets_total";
const REVOCATION_STREAMS: &str = "killbill_auth_revocation_streams";

/// The route label of a request that matched no route: unknown paths stay out of the labels,
/// so a scanner cannot grow the metrics without bound.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The statuses `GET /auth` answers, in the order of [`Metrics::validations`].
const VALIDATION_STATUSES: [u16; 4] = [200, 403, 429, 503];

/// Why a connection was closed as soon as it was accepted (`crate::http::server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already had `server.max_connections_per_address` open.
    PerAddress,
    /// `server.max_connections` were open.
    MaxConnections,
}

impl Refusal {
    pub const ALL: [Refusal; 2] = [Refusal::PerAddress, Refusal::MaxConnections];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_address",
            Refusal::MaxConnections => "max_connections",
        }
    }
}

/// What became of a join ticket (issue 14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketOutcome {
    /// Asked for by a player's key and stored.
    Issued,
    /// Redeemed by a game server.
    Redeemed,
    /// A redemption refused (`Invalid ticket`): unknown, malformed, expired, already redeemed, or
    /// its key no longer live.
    Refused,
}

impl TicketOutcome {
    pub const ALL: [TicketOutcome; 3] = [Self::Issued, Self::Redeemed, Self::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Redeemed => "redeemed",
            Self::Refused => "refused",
        }
    }
}

/// What the scrape reads at that moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub cached_keys: usize,
    pub pending_usage_writes: usize,
    pub hash_queued: usize,
    pub hash_waiting: usize,
}

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `GET /auth` by status ([`VALIDATION_STATUSES`]).
    validations: [Counter; VALIDATION_STATUSES.len()],
    /// Revocations by reason, in the order of [`RevocationReason::ALL`].
    revoked: [Counter; RevocationReason::ALL.len()],
    /// Stored password hashes refused as too costly (counted by the hashing workers).
    hashes_refused: Counter,
    cached_keys: Gauge,
    pending_usage: Gauge,
    hash_queued: Gauge,
    hash_waiting: Gauge,
    /// Open HTTP connections, moved as they open and close.
    open_connections: Gauge,
    /// Connections refused, in the order of [`Refusal::ALL`].
    refused: [Counter; Refusal::ALL.len()],
    /// Join tickets, in the order of [`TicketOutcome::ALL`].
    tickets: [Counter; TicketOutcome::ALL.len()],
    /// Open revocation streams, moved as they open and close.
    revocation_streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        for (name, help) in [
            (
                HTTP_REQUESTS,
                "HTTP requests answered, by route, method and status.",
            ),
            (
                KEYS_REVOKED,
                "Access keys revoked, by reason (expired keys marked by housekeeping included).",
            ),
            (
                HASHES_REFUSED,
                "Stored password hashes refused without verifying: far costlier than the configured parameters.",
            ),
            (
                CONNECTIONS_REFUSED,
                "TCP connections closed as soon as accepted, by reason: the per-address or the global cap.",
            ),
            (
                TICKETS,
                "Join tickets, by outcome: issued to players, redeemed by game servers, refused at redemption.",
            ),
        ] {
            recorder.describe_counter(name.into(), Some(Unit::Count), SharedString::const_str(help));
        }
        for (name, help) in [
            (CACHED_KEYS, "Access keys held in the validation cache."),
            (
                PENDING_USAGE,
                "Keys whose use is not yet written to the database (written in batches).",
            ),
            (
                HASH_QUEUE,
                "Password hashing jobs: queued for the Argon2 workers, or waiting for room in the queue.",
            ),
            (BUILD_INFO, "Always 1; the version is a label."),
            (OPEN_CONNECTIONS, "Open HTTP connections."),
            (REVOCATION_STREAMS, "Open revocation streams (GET /revocations)."),
        ] {
            recorder.describe_gauge(name.into(), Some(Unit::Count), SharedString::const_str(help));
        }
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &metadata())
        };
        let gauge = |name: &'static str, labels: Vec<Label>| {
            recorder.register_gauge(&Key::from_parts(name, labels), &metadata())
        };
        let validations =
            VALIDATION_STATUSES.map(|status| counter(HTTP_REQUESTS, http_labels("/auth", "GET", status)));
        let revoked = RevocationReason::ALL.map(|reason| {
            counter(
                KEYS_REVOKED,
                vec![Label::from_static_parts("reason", reason.as_str())],
            )
        });
        let refused = Refusal::ALL.map(|reason| {
            counter(
                CONNECTIONS_REFUSED,
                vec![Label::from_static_parts("reason", reason.as_str())],
            )
        });
        let tickets = TicketOutcome::ALL.map(|outcome| {
            counter(
                TICKETS,
                vec![Label::from_static_parts("outcome", outcome.as_str())],
            )
        });
        gauge(
            BUILD_INFO,
            vec![Label::from_static_parts("version", env!("CARGO_PKG_VERSION"))],
        )
        .set(1.0);
        Self {
            validations,
            revoked,
            hashes_refused: counter(HASHES_REFUSED, Vec::new()),
            cached_keys: gauge(CACHED_KEYS, Vec::new()),
            pending_usage: gauge(PENDING_USAGE, Vec::new()),
            hash_queued: gauge(HASH_QUEUE, vec![Label::from_static_parts("state", "queued")]),
            hash_waiting: gauge(HASH_QUEUE, vec![Label::from_static_parts("state", "waiting")]),
            open_connections: gauge(OPEN_CONNECTIONS, Vec::new()),
            refused,
            tickets,
            revocation_streams: gauge(REVOCATION_STREAMS, Vec::new()),
            recorder,
            handle,
        }
    }

    /// One answered request. `route` is the route as declared, or [`UNMATCHED_ROUTE`].
    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        if route == "/auth" && method == "GET" {
            if let Some(i) = VALIDATION_STATUSES.iter().position(|s| *s == status) {
                self.validations[i].increment(1);
                return;
            }
        }
        let key = Key::from_parts(HTTP_REQUESTS, http_labels(route, method, status));
        self.recorder.register_counter(&key, &metadata()).increment(1);
    }

    /// `GET /auth` answered with `status` (the validation fast path, which knows its route).
    pub fn validation(&self, status: u16) {
        self.http_request("/auth", "GET", status);
    }

    pub fn keys_revoked(&self, reason: RevocationReason, count: u64) {
        if let Some(i) = RevocationReason::ALL.iter().position(|r| *r == reason) {
            self.revoked[i].increment(count);
        }
    }

    /// The counter of stored password hashes refused as too costly, for the hashing workers.
    pub fn hashes_refused(&self) -> Counter {
        self.hashes_refused.clone()
    }

    pub fn connection_opened(&self) {
        self.open_connections.increment(1.0);
    }

    pub fn connection_closed(&self) {
        self.open_connections.decrement(1.0);
    }

    pub fn connection_refused(&self, reason: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == reason) {
            self.refused[i].increment(1);
        }
    }

    pub fn ticket(&self, outcome: TicketOutcome) {
        if let Some(i) = TicketOutcome::ALL.iter().position(|o| *o == outcome) {
            self.tickets[i].increment(1);
        }
    }

    pub fn revocation_stream_opened(&self) {
        self.revocation_streams.increment(1.0);
    }

    pub fn revocation_stream_closed(&self) {
        self.revocation_streams.decrement(1.0);
    }

    /// The metrics as Prometheus text, with the gauges set to `now`.
    pub fn render(&self, now: Gauges) -> String {
        // A gauge holds an f64; these counts stay far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let as_f64 = |n: usize| n as f64;
        self.cached_keys.set(as_f64(now.cached_keys));
        self.pending_usage.set(as_f64(now.pending_usage_writes));
        self.hash_queued.set(as_f64(now.hash_queued));
        self.hash_waiting.set(as_f64(now.hash_waiting));
        self.handle.render()
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

fn http_labels(route: &str, method: &str, status: u16) -> Vec<Label> {
    // Methods outside HTTP's registered set are one label value, as unknown routes are.
    let method = match method {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "TRACE" | "CONNECT" => method,
        _ => "other",
    };
    vec![
        Label::new("route", route.to_owned()),
        Label::new("method", method.to_owned()),
        Label::new("status", itoa::Buffer::new().format(status).to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text() {
        let metrics = Metrics::new();
        metrics.validation(200);
        metrics.validation(200);
        metrics.validation(403);
        metrics.validation(500);
        metrics.http_request("/auth/keys/{id}", "DELETE", 404);
        metrics.http_request(UNMATCHED_ROUTE, "BREW", 404);
        metrics.keys_revoked(RevocationReason::IpChanges, 3);
        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.connection_refused(Refusal::PerAddress);
        metrics.ticket(TicketOutcome::Issued);
        metrics.ticket(TicketOutcome::Issued);
        metrics.ticket(TicketOutcome::Refused);
        metrics.revocation_stream_opened();
        metrics.revocation_stream_opened();
        metrics.revocation_stream_closed();
        let text = metrics.render(Gauges {
            cached_keys: 7,
            pending_usage_writes: 2,
            hash_queued: 1,
            hash_waiting: 0,
        });
        for line in [
            r#"killbill_auth_http_requests_total{route="/auth",method="GET",status="200"} 2"#,
            r#"killbill_auth_http_requests_total{route="/auth",method="GET",status="403"} 1"#,
            r#"killbill_auth_http_requests_total{route="/auth",method="GET",status="500"} 1"#,
            r#"killbill_auth_http_requests_total{route="/auth/keys/{id}",method="DELETE",status="404"} 1"#,
            r#"killbill_auth_http_requests_total{route="unmatched",method="other",status="404"} 1"#,
            r#"killbill_auth_keys_revoked_total{reason="ip_changes"} 3"#,
            r#"killbill_auth_keys_revoked_total{reason="admin"} 0"#,
            "killbill_auth_cached_keys 7",
            "killbill_auth_open_connections 1",
            "killbill_auth_revocation_streams 1",
            r#"killbill_auth_connections_refused_total{reason="per_address"} 1"#,
            r#"killbill_auth_connections_refused_total{reason="max_connections"} 0"#,
            r#"killbill_auth_tickets_total{outcome="issued"} 2"#,
            r#"killbill_auth_tickets_total{outcome="redeemed"} 0"#,
            r#"killbill_auth_tickets_total{outcome="refused"} 1"#,
            "killbill_auth_pending_usage_writes 2",
            r#"killbill_auth_hash_queue{state="queued"} 1"#,
            "# TYPE killbill_auth_http_requests_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn each_instance_counts_alone() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.validation(200);
        let text = b.render(Gauges::default());
        assert!(
            text.lines()
                .any(|l| l
                    == r#"killbill_auth_http_requests_total{route="/auth",method="GET",status="200"} 0"#),
            "{text}"
        );
    }
}
