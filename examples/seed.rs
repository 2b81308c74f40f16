//! Fills a killbill-auth SQLite database with many users and live keys, directly (no HTTP, no
//! expensive Argon2), for the benchmarks of `bench/run.sh`.
//!
//! ```sh
//! cargo run --release --example seed -- --db /tmp/kb.db --keys 1000000 \
//!     --keys-file /tmp/keys.txt --file-limit 100000 [--prefix seed] [--offset 0]
//! ```
//!
//! The database is opened once through `SqliteStore::open`, which creates it and applies the
//! service's migrations; then one connection of our own with `synchronous=OFF` writes, in large
//! transactions and multi-row inserts, N users (`{prefix}{n:07}`, role `USER`, all sharing one
//! Argon2id PHC string made with m=64, t=1, p=1 for the password `SEED_PASSWORD`) and one key
//! each: 32 random bytes, stored as SHA-256 (32-byte BLOB), id a random UUID v4, issued from
//! 127.0.0.1 now. The first `--file-limit` keys are written to `--keys-file` in standard padded
//! base64, one a line, for wrk to send.

// A benchmark tool, not service code: failing loudly is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};
use uuid::Uuid;

use killbill_auth::clock::{Clock, SystemClock};
use killbill_auth::store::sqlite::SqliteStore;
use killbill_auth::store::Store;

#[path = "common/args.rs"]
mod args;

/// The password of every seeded user.
const SEED_PASSWORD: &str = "seeded bench password 4f1c";
/// Rows per INSERT statement (SQLite allows 32766 bound parameters; users take 5 per row).
const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows per transaction.
const ROWS_PER_TRANSACTION: usize = 100_000;

struct Row {
    user_id: Uuid,
    name: String,
    key_id: Uuid,
    digest: [u8; 32],
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let db = PathBuf::from(args::text("--db").expect("--db PATH"));
    let keys: usize = args::text("--keys").map_or(10_000, |v| v.parse().expect("--keys N"));
    let keys_file = PathBuf::from(args::text("--keys-file").expect("--keys-file FILE"));
    let file_limit: usize = args::text("--file-limit").map_or(keys, |v| v.parse().expect("--file-limit N"));
    let prefix = args::text("--prefix").unwrap_or_else(|| "seed".to_owned());
    let offset: usize = args::text("--offset").map_or(0, |v| v.parse().expect("--offset N"));
    assert!(
        prefix.len() + 7 <= 20 && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "--prefix: at most 13 characters of A-Z a-z 0-9 _"
    );

    let started = Instant::now();
    // Creates the file and applies the service's own migrations.
    let store = SqliteStore::open(&db).await?;
    store.close().await;

    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 1, 1, None)?)
        .hash_password(SEED_PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();

    let mut conn = SqliteConnectOptions::from_str("sqlite:")?
        .filename(&db)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(true)
        .connect()
        .await?;

    let now = SystemClock.now().as_millis();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&keys_file)?);
    let mut rng = OsRng;
    let mut done = 0usize;
    while done < keys {
        let mut tx = conn.begin().await?;
        let in_tx = ROWS_PER_TRANSACTION.min(keys - done);
        let mut written = 0;
        while written < in_tx {
            let n = ROWS_PER_STATEMENT.min(in_tx - written);
            let mut rows = Vec::with_capacity(n);
            for i in 0..n {
                let serial = offset + done + written + i;
                let mut key = [0u8; 32];
                rng.fill_bytes(&mut key);
                if done + written + i < file_limit {
                    writeln!(out, "{}", STANDARD.encode(key))?;
                }
                rows.push(Row {
                    user_id: Uuid::new_v4(),
                    name: format!("{prefix}{serial:07}"),
                    key_id: Uuid::new_v4(),
                    digest: Sha256::digest(key).into(),
                });
            }
            let mut users = QueryBuilder::<Sqlite>::new(
                "INSERT INTO users (id, username, username_canonical, role, created_ms) ",
            );
            users.push_values(&rows, |mut b, r| {
                b.push_bind(r.user_id)
                    .push_bind(r.name.clone())
                    .push_bind(r.name.to_ascii_lowercase())
                    .push_bind("USER")
                    .push_bind(now);
            });
            users.build().execute(&mut *tx).await?;
            let mut hashes =
                QueryBuilder::<Sqlite>::new("INSERT INTO password_hashes (user_id, phc, updated_ms) ");
            hashes.push_values(&rows, |mut b, r| {
                b.push_bind(r.user_id).push_bind(phc.clone()).push_bind(now);
            });
            hashes.build().execute(&mut *tx).await?;
            let mut key_rows = QueryBuilder::<Sqlite>::new(
                "INSERT INTO keys (id, user_id, digest, created_ms, created_ip) ",
            );
            key_rows.push_values(&rows, |mut b, r| {
                b.push_bind(r.key_id)
                    .push_bind(r.user_id)
                    .push_bind(r.digest.to_vec())
                    .push_bind(now)
                    .push_bind("127.0.0.1");
            });
            key_rows.build().execute(&mut *tx).await?;
            written += n;
        }
        tx.commit().await?;
        done += in_tx;
    }
    out.flush()?;
    // Fold the WAL into the main file so the service starts on a tidy database.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    println!(
        "seed users={keys} keys={keys} in_file={} seconds={:.2} db={}",
        file_limit.min(keys),
        started.elapsed().as_secs_f64(),
        db.display()
    );
    Ok(())
}
