//! The integration tests of `tests/api` again, each on a fresh database of the machine's real
//! PostgreSQL (`KILLBILL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`):
//! every behaviour a client sees must be the same on both databases. Left out: the modules about
//! SQLite's own files (`storage`, `faults`: file modes, page limits, a full tmpfs).

// A failed expectation in a test should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The database of this test binary.
pub const BACKEND: helpers::Backend = helpers::Backend::Postgres;

#[path = "../api/abuse.rs"]
mod abuse;
#[path = "../api/account_page.rs"]
mod account_page;
#[path = "../api/admin.rs"]
mod admin;
#[path = "../api/anomaly.rs"]
mod anomaly;
#[path = "../api/bad_input.rs"]
mod bad_input;
#[path = "../api/connections.rs"]
mod connections;
#[path = "../api/events.rs"]
mod events;
#[path = "../api/forward_auth.rs"]
mod forward_auth;
#[path = "../api/game_server.rs"]
mod game_server;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/import.rs"]
mod import;
#[path = "../api/keys.rs"]
mod keys;
#[path = "../api/logging.rs"]
mod logging;
#[path = "../api/meta.rs"]
mod meta;
#[path = "../api/metrics.rs"]
mod metrics;
#[path = "../api/openapi.rs"]
mod openapi;
#[path = "../api/pepper.rs"]
mod pepper;
#[path = "../api/races.rs"]
mod races;
#[path = "../api/readme_tour.rs"]
mod readme_tour;
#[path = "../api/recovery.rs"]
mod recovery;
#[path = "../api/revocations.rs"]
mod revocations;
#[path = "../api/services.rs"]
mod services;
#[path = "../api/sign_in.rs"]
mod sign_in;
#[path = "../api/suspensions.rs"]
mod suspensions;
#[path = "../api/tickets.rs"]
mod tickets;
#[path = "../api/users.rs"]
mod users;

// PostgreSQL only: several real server processes on one database.
mod instances;
mod outage;
mod startup;
mod streams;
mod ticket_races;
// ... and two of them behind a real nginx (deploy/demo.sh).
mod deploy;
