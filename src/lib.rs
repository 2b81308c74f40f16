//! killbill-auth: token-based authentication for Kill Bill 2.
//!
//! - `domain`: the rules (usernames, passwords, keys and their expiry), plain Rust;
//! - `service`: the use cases, the hashing pool and the key-validation hot path;
//! - `store`: persistence behind one trait (SQLite now);
//! - `http`: routes, envelope, error mapping, extractors;
//! - `metrics`: what the service counts, for `GET /metrics`;
//! - `cli`: the command line (`serve`, `admin …`);
//! - `config`, `telemetry`, `startup`, `clock`, `allocator`: wiring.

pub mod allocator;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
