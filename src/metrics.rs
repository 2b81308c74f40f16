//! What the service counts, served by `GET /metrics` in Prometheus's text format.
//!
//! One recorder per running service, not the `metrics` crate's global one, so that every
//! instance in a process (the tests start dozens) counts only its own work. Counters are
//! `metrics` handles (an atomic add each); the ones on the validation path are registered once,
//! so `GET /auth` counts without a registry lookup. Gauges (cached keys, the hashing queue) are
//! read when scraped. Nothing here carries a key, a password, a username or an address: labels
//! are routes as declared (`/auth/keys/{id}`, not the id), methods, statuses and reasons.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::domain::revocation_stream::ResetCause;
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
const STREAM_RESETS: &str = "killbill_auth_revocation_stream_resets_total";
const REQUEST_DURATION: &str = "killbill_auth_http_request_duration_seconds";
const DATABASE_STATUS: &str = "killbill_auth_database_status";
const LISTENER_CONNECTED: &str = "killbill_auth_revocation_listener_connected";
const LISTENER_FAILURES: &str = "killbill_auth_revocation_listener_failures_total";

/// Upper bounds of the request-duration buckets, in microseconds (Prometheus's `le`, in
/// seconds, when rendered): from half a millisecond (a validation) to the 30 s request timeout.
const DURATION_BUCKETS_MICROS: [u64; 15] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

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

/// What became of a join ticket.
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

/// The database as `GET /health` words it, read when scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseState {
    /// It answers, and writes are not failing.
    #[default]
    Ok,
    /// It did not answer a ping within a second.
    Unreachable,
    /// It answers, but a write failed as unavailable (a full disk, a read-only file) and no
    /// probe write has succeeded since.
    WritesFailing,
}

impl DatabaseState {
    pub const ALL: [DatabaseState; 3] = [Self::Ok, Self::Unreachable, Self::WritesFailing];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unreachable => "unreachable",
            Self::WritesFailing => "writes_failing",
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
    pub database: DatabaseState,
}

/// One route's request durations: a count per bucket (not cumulative: one atomic add per
/// request; the scrape adds them up) and the sum. Bounded memory whatever the traffic, and
/// nothing to drain between scrapes.
#[derive(Default)]
struct Durations {
    /// `DURATION_BUCKETS_MICROS`, then one for everything slower.
    buckets: [AtomicU64; DURATION_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl Durations {
    fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = DURATION_BUCKETS_MICROS.partition_point(|bound| *bound < micros);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Prometheus text of this route's histogram: cumulative buckets, `+Inf`, sum and count.
    fn render(&self, out: &mut String, labels: &str) {
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match DURATION_BUCKETS_MICROS.get(i) {
                Some(micros) => format_seconds(*micros),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                out,
                "{REQUEST_DURATION}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = format_seconds(self.sum_micros.load(Ordering::Relaxed));
        let _ = writeln!(out, "{REQUEST_DURATION}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{REQUEST_DURATION}_count{{{labels}}} {cumulative}");
    }
}

/// Microseconds as seconds, exactly (`0.0005`, `1`, `2.5`).
fn format_seconds(micros: u64) -> String {
    let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A label value with Prometheus's escapes.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// PostgreSQL only: the connection that listens for other instances' revocations.
struct Listener {
    connected: Gauge,
    failures: Counter,
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
    /// `event: reset` sent to revocation streams, in the order of [`ResetCause::ALL`].
    stream_resets: [Counter; ResetCause::ALL.len()],
    /// The database's state, one-hot, in the order of [`DatabaseState::ALL`].
    database: [Gauge; DatabaseState::ALL.len()],
    /// Request durations of `GET /auth` (registered at start-up, like its counts).
    validation_durations: Arc<Durations>,
    /// Request durations of every other route and method, made on first use (routes as
    /// declared and methods from a fixed set: bounded). By route, then method: a request finds
    /// its histogram by the route it has, without allocating a key.
    durations: Mutex<BTreeMap<String, BTreeMap<&'static str, Arc<Durations>>>>,
    /// Registered by [`Metrics::follow_listener`], on PostgreSQL only.
    listener: OnceLock<Listener>,
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
            (
                STREAM_RESETS,
                "event: reset sent to revocation streams, by cause (pruned, ahead_of_head, unproven).",
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
            (
                DATABASE_STATUS,
                "The database as GET /health says it, one-hot by state (ok, unreachable, writes_failing), read when scraped.",
            ),
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
        let stream_resets = ResetCause::ALL.map(|cause| {
            counter(
                STREAM_RESETS,
                vec![Label::from_static_parts("cause", cause.as_str())],
            )
        });
        let database = DatabaseState::ALL.map(|state| {
            gauge(
                DATABASE_STATUS,
                vec![Label::from_static_parts("state", state.as_str())],
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
            stream_resets,
            database,
            validation_durations: Arc::default(),
            durations: Mutex::default(),
            listener: OnceLock::new(),
            recorder,
            handle,
        }
    }

    /// One answered request and how long it took (from its head read to its answer's head).
    /// `route` is the route as declared, or [`UNMATCHED_ROUTE`].
    pub fn http_request_took(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_request(route, method, status);
        if route == "/auth" && method == "GET" {
            self.validation_durations.record(elapsed);
            return;
        }
        let method = known_method(method);
        let durations = {
            let mut map = self.durations.lock().unwrap_or_else(|p| p.into_inner());
            if !map.contains_key(route) {
                map.insert(route.to_owned(), BTreeMap::new());
            }
            map.get_mut(route)
                .map(|by_method| by_method.entry(method).or_default().clone())
        };
        let Some(durations) = durations else {
            return;
        };
        durations.record(elapsed);
    }

    /// An `event: reset` sent to a revocation stream.
    pub fn revocation_stream_reset(&self, cause: ResetCause) {
        if let Some(i) = ResetCause::ALL.iter().position(|c| *c == cause) {
            self.stream_resets[i].increment(1);
        }
    }

    /// PostgreSQL: from now on the listening connection is reported
    /// (`killbill_auth_revocation_listener_connected`, `…_failures_total`); not listening yet.
    pub fn follow_listener(&self) {
        self.listener.get_or_init(|| {
            self.recorder.describe_gauge(
                LISTENER_CONNECTED.into(),
                Some(Unit::Count),
                SharedString::const_str(
                    "PostgreSQL: 1 while this instance listens for other instances' revocations, else 0 (it then drops its key cache every second).",
                ),
            );
            self.recorder.describe_counter(
                LISTENER_FAILURES.into(),
                Some(Unit::Count),
                SharedString::const_str(
                    "PostgreSQL: listening connections lost, and attempts to listen again that failed (one a second while it cannot).",
                ),
            );
            let key = |name: &'static str| Key::from_parts(name, Vec::<Label>::new());
            Listener {
                connected: self.recorder.register_gauge(&key(LISTENER_CONNECTED), &metadata()),
                failures: self.recorder.register_counter(&key(LISTENER_FAILURES), &metadata()),
            }
        });
    }

    /// PostgreSQL: listening (again).
    pub fn listener_connected(&self) {
        if let Some(l) = self.listener.get() {
            l.connected.set(1.0);
        }
    }

    /// PostgreSQL: the listening connection was lost, or an attempt to listen failed.
    pub fn listener_failed(&self) {
        if let Some(l) = self.listener.get() {
            l.connected.set(0.0);
            l.failures.increment(1);
        }
    }

    /// One answered request (without its duration: see [`Metrics::http_request_took`]).
    /// `route` is the route as declared, or [`UNMATCHED_ROUTE`].
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
        for (gauge, state) in self.database.iter().zip(DatabaseState::ALL) {
            gauge.set(if state == now.database { 1.0 } else { 0.0 });
        }
        let mut text = self.handle.render();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        self.render_durations(&mut text);
        text
    }

    fn render_durations(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {REQUEST_DURATION} HTTP requests answered, by route and method: how long from the request's head to the answer's head."
        );
        let _ = writeln!(out, "# TYPE {REQUEST_DURATION} histogram");
        let labels =
            |route: &str, method: &str| format!("route=\"{}\",method=\"{method}\"", escape_label(route));
        self.validation_durations.render(out, &labels("/auth", "GET"));
        let routes: Vec<(String, &'static str, Arc<Durations>)> = {
            let map = self.durations.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .flat_map(|(route, by_method)| by_method.iter().map(|(m, d)| (route.clone(), *m, d.clone())))
                .collect()
        };
        for (route, method, durations) in routes {
            durations.render(out, &labels(&route, method));
        }
    }
}

/// Methods outside HTTP's registered set are one label value, as unknown routes are.
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

fn http_labels(route: &str, method: &str, status: u16) -> Vec<Label> {
    vec![
        Label::new("route", route.to_owned()),
        Label::from_static_parts("method", known_method(method)),
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
            database: DatabaseState::WritesFailing,
        });
        for line in [
            r#"killbill_auth_database_status{state="ok"} 0"#,
            r#"killbill_auth_database_status{state="writes_failing"} 1"#,
            r#"killbill_auth_revocation_stream_resets_total{cause="pruned"} 0"#,
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
    fn durations_render_as_a_prometheus_histogram() {
        let metrics = Metrics::new();
        metrics.http_request_took("/auth", "GET", 200, Duration::from_micros(300));
        metrics.http_request_took("/auth", "GET", 403, Duration::from_micros(700));
        metrics.http_request_took("/auth", "POST", 200, Duration::from_millis(40));
        metrics.http_request_took("/auth", "POST", 401, Duration::from_secs(40));
        metrics.http_request_took(UNMATCHED_ROUTE, "BREW", 404, Duration::from_micros(1));
        metrics.revocation_stream_reset(ResetCause::Unproven);
        let text = metrics.render(Gauges::default());
        for line in [
            "# TYPE killbill_auth_http_request_duration_seconds histogram",
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="GET",le="0.0005"} 1"#,
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="GET",le="0.001"} 2"#,
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="GET",le="+Inf"} 2"#,
            r#"killbill_auth_http_request_duration_seconds_sum{route="/auth",method="GET"} 0.001"#,
            r#"killbill_auth_http_request_duration_seconds_count{route="/auth",method="GET"} 2"#,
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="POST",le="0.025"} 0"#,
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="POST",le="0.05"} 1"#,
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="POST",le="30"} 1"#,
            r#"killbill_auth_http_request_duration_seconds_bucket{route="/auth",method="POST",le="+Inf"} 2"#,
            r#"killbill_auth_http_request_duration_seconds_sum{route="/auth",method="POST"} 40.04"#,
            r#"killbill_auth_http_request_duration_seconds_count{route="unmatched",method="other"} 1"#,
            r#"killbill_auth_http_requests_total{route="/auth",method="POST",status="401"} 1"#,
            r#"killbill_auth_database_status{state="ok"} 1"#,
            r#"killbill_auth_database_status{state="unreachable"} 0"#,
            r#"killbill_auth_revocation_stream_resets_total{cause="unproven"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("listener"), "PostgreSQL only: {text}");
        metrics.follow_listener();
        metrics.listener_failed();
        metrics.listener_connected();
        let text = metrics.render(Gauges::default());
        assert!(
            text.lines()
                .any(|l| l == "killbill_auth_revocation_listener_connected 1"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l == "killbill_auth_revocation_listener_failures_total 1"),
            "{text}"
        );
        assert_eq!(format_seconds(2_500_000), "2.5");
        assert_eq!(format_seconds(1), "0.000001");
        assert_eq!(format_seconds(0), "0");
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
