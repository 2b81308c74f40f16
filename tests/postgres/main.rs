//! The integration tests of `tests/api` again, each on a fresh database of the machine's real
//! PostgreSQL (`KILLBILL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`):
//! every behaviour a client sees must be the same on both databases. Left out: the modules about
//! SQLite's own files (`storage`, `faults`: file modes, page limits, a full tmpfs).

// A failed expectation in a test should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The database of this test binary.
#[cfg(feature = "external")]
pub const BACKEND: helpers::Backend = helpers::Backend::Postgres;

#[cfg(feature = "external")]
#[path = "../api/abuse.rs"]
mod abuse;
#[cfg(feature = "external")]
#[path = "../api/account_page.rs"]
mod account_page;
#[cfg(feature = "external")]
#[path = "../api/admin.rs"]
mod admin;
#[cfg(feature = "external")]
#[path = "../api/anomaly.rs"]
mod anomaly;
#[cfg(feature = "external")]
#[path = "../api/bad_input.rs"]
mod bad_input;
#[cfg(feature = "external")]
#[path = "../api/connections.rs"]
mod connections;
#[cfg(feature = "external")]
#[path = "../api/events.rs"]
mod events;
#[cfg(feature = "external")]
#[path = "../api/forward_auth.rs"]
mod forward_auth;
#[cfg(feature = "external")]
#[path = "../api/game_server.rs"]
mod game_server;
#[cfg(feature = "external")]
#[path = "../api/helpers.rs"]
mod helpers;
#[cfg(feature = "external")]
#[path = "../api/import.rs"]
mod import;
#[cfg(feature = "external")]
#[path = "../api/keys.rs"]
mod keys;
#[cfg(feature = "external")]
#[path = "../api/logging.rs"]
mod logging;
#[cfg(feature = "external")]
#[path = "../api/meta.rs"]
mod meta;
#[cfg(feature = "external")]
#[path = "../api/metrics.rs"]
mod metrics;
#[cfg(feature = "external")]
#[path = "../api/openapi.rs"]
mod openapi;
#[cfg(feature = "external")]
#[path = "../api/pepper.rs"]
mod pepper;
#[cfg(feature = "external")]
#[path = "../api/races.rs"]
mod races;
#[cfg(feature = "external")]
#[path = "../api/readme_tour.rs"]
mod readme_tour;
#[cfg(feature = "external")]
#[path = "../api/recovery.rs"]
mod recovery;
#[cfg(feature = "external")]
#[path = "../api/revocations.rs"]
mod revocations;
#[cfg(feature = "external")]
#[path = "../api/services.rs"]
mod services;
#[cfg(feature = "external")]
#[path = "../api/sign_in.rs"]
mod sign_in;
#[cfg(feature = "external")]
#[path = "../api/suspensions.rs"]
mod suspensions;
#[cfg(feature = "external")]
#[path = "../api/tickets.rs"]
mod tickets;
#[cfg(feature = "external")]
#[path = "../api/users.rs"]
mod users;

// PostgreSQL only: several real server processes on one database.
#[cfg(feature = "external")]
mod failover;
#[cfg(feature = "external")]
mod instances;
#[cfg(feature = "external")]
mod outage;
#[cfg(feature = "external")]
mod sharing;
#[cfg(feature = "external")]
mod startup;
#[cfg(feature = "external")]
mod streams;
#[cfg(feature = "external")]
mod ticket_races;
// ... and two of them behind a real nginx (deploy/demo.sh).
#[cfg(feature = "external")]
mod deploy;

/// Without the `external` feature (plain `cargo test`) this binary holds no test but this one,
/// which says what was left out and how to run it.
#[cfg(not(feature = "external"))]
#[test]
#[ignore = "the HTTP suite again on PostgreSQL, and several instances on one database: needs PostgreSQL; ./test runs it"]
fn the_http_suite_on_postgresql() {}
