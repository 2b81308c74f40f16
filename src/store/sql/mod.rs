//! The Rust around the SQL both dialects share, written once: each file implements its
//! concern's contract (or the part of it that is the same on both), and `steps.rs` the steps that
//! several concerns' write transactions share. The SQL itself is in the contract's file
//! (`store/accounts.rs`, …).
//!
//! This folder is compiled twice, as `sqlite::sql` and as `postgres::sql`, each time with its
//! dialect's [`Store`] and [`Conn`] (and `dialect`, what really differs: the locks, the feed's
//! append). Why not functions generic over `sqlx::Database`: every one would restate a dozen sqlx
//! bounds (each bound value and row type's `Encode`/`Decode`, the connection's `Executor`), since
//! Rust does not let a trait of ours carry them for its users (rust-lang/rust#20671); compiled
//! once per dialect, the same code is checked against each with none.

pub(super) use super::{dialect, Conn, Store};

mod accounts;
mod events;
mod feed;
pub(super) mod housekeeping;
pub(super) mod imports;
mod keys;
mod reset_codes;
pub(super) mod steps;
mod suspensions;
pub(super) mod tickets;
