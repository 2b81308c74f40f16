//! Integration tests: the real server on a real socket with a real database, one module per
//! route family.

// A failed expectation in a test should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The database of this test binary (`tests/postgres` runs the same tests on PostgreSQL).
pub const BACKEND: helpers::Backend = helpers::Backend::Sqlite;

mod abuse;
mod account_page;
mod admin;
mod anomaly;
mod bad_input;
mod book;
mod cli;
mod connections;
mod deploy_files;
mod events;
mod faults;
mod forward_auth;
mod game_server;
mod hashing;
mod helpers;
mod import;
mod keys;
mod logging;
mod meta;
mod metrics;
mod openapi;
mod pepper;
mod races;
mod readme_tour;
mod recovery;
mod revocations;
mod services;
mod sign_in;
mod storage;
mod suspensions;
mod tickets;
mod users;
