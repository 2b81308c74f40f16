//! Fills a killbill-auth SQLite database, or a PostgreSQL one, with many users and live keys,
//! directly (no HTTP, no expensive Argon2), for the benchmarks of `bench/run.sh` and
//! `bench/postgres.sh`.
//!
//! ```sh
//! cargo run --release --example seed -- --db /tmp/kb.db --keys 1000000 \
//!     --keys-file /tmp/keys.txt --file-limit 100000 [--prefix seed] [--offset 0]
//! cargo run --release --example seed -- --postgres postgres://postgres@127.0.0.1/kb_bench \
//!     --keys 100000 --keys-file /tmp/keys.txt --file-limit 10000
//! ```
//!
//! With `--postgres URL` (instead of `--db`) the database must exist; it is migrated through
//! `PgStore::connect` (the service's own migrations), then the same rows are written with one
//! `INSERT … SELECT FROM unnest(…)` per table and batch (arrays bound as parameters: 100,000
//! keys take a few seconds), and the tables are `VACUUM ANALYZE`d and a `CHECKPOINT` taken, so
//! that the planner has statistics and no write-back runs during the measurements.
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
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};
use uuid::Uuid;

use killbill_auth::clock::{Clock, SystemClock};
use killbill_auth::store::postgres::PgStore;
use killbill_auth::store::sqlite::SqliteStore;
use killbill_auth::store::Health;

#[path = "common/args.rs"]
mod args;

/// The password of every seeded user.
const SEED_PASSWORD: &str = "seeded bench password 4f1c";
/// Rows per INSERT statement (SQLite allows 32766 bound parameters; users take 5 per row).
const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows per INSERT statement on PostgreSQL (arrays bound as parameters: one per column).
const PG_ROWS_PER_STATEMENT: usize = 10_000;
/// Rows per transaction.
const ROWS_PER_TRANSACTION: usize = 100_000;

struct Row {
    user_id: Uuid,
    name: String,
    key_id: Uuid,
    digest: [u8; 32],
}

/// Makes the rows, and writes the first `file_limit` keys to the keys file as it goes.
struct Generator {
    out: std::io::BufWriter<std::fs::File>,
    rng: OsRng,
    prefix: String,
    offset: usize,
    file_limit: usize,
    made: usize,
}

impl Generator {
    fn batch(&mut self, n: usize) -> std::io::Result<Vec<Row>> {
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let serial = self.offset + self.made;
            let mut key = [0u8; 32];
            self.rng.fill_bytes(&mut key);
            if self.made < self.file_limit {
                writeln!(self.out, "{}", STANDARD.encode(key))?;
            }
            self.made += 1;
            rows.push(Row {
                user_id: Uuid::new_v4(),
                name: format!("{}{serial:07}", self.prefix),
                key_id: Uuid::new_v4(),
                digest: Sha256::digest(key).into(),
            });
        }
        Ok(rows)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let db = args::text("--db").map(PathBuf::from);
    let postgres = args::text("--postgres");
    let keys: usize = args::text("--keys").map_or(10_000, |v| v.parse().expect("--keys N"));
    let keys_file = PathBuf::from(args::text("--keys-file").expect("--keys-file FILE"));
    let file_limit: usize = args::text("--file-limit").map_or(keys, |v| v.parse().expect("--file-limit N"));
    let prefix = args::text("--prefix").unwrap_or_else(|| "seed".to_owned());
    let offset: usize = args::text("--offset").map_or(0, |v| v.parse().expect("--offset N"));
    assert!(
        prefix.len() + 7 <= 20 && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "--prefix: at most 13 characters of A-Z a-z 0-9 _"
    );
    assert!(
        db.is_some() != postgres.is_some(),
        "one of --db PATH (SQLite) or --postgres URL"
    );

    let started = Instant::now();
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 1, 1, None)?)
        .hash_password(SEED_PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let now = SystemClock.now().as_millis();
    let mut rows = Generator {
        out: std::io::BufWriter::new(std::fs::File::create(&keys_file)?),
        rng: OsRng,
        prefix,
        offset,
        file_limit,
        made: 0,
    };
    let place = match (&db, &postgres) {
        (Some(db), _) => {
            seed_sqlite(db, keys, &mut rows, &phc, now).await?;
            db.display().to_string()
        }
        (None, Some(url)) => {
            seed_postgres(url, keys, &mut rows, &phc, now).await?;
            // The database's name, not the URL (it may hold a password).
            url.rsplit('/').next().unwrap_or("?").to_owned()
        }
        (None, None) => unreachable!(),
    };
    rows.out.flush()?;
    println!(
        "seed users={keys} keys={keys} in_file={} seconds={:.2} db={place}",
        file_limit.min(keys),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

async fn seed_sqlite(
    db: &PathBuf,
    keys: usize,
    gen: &mut Generator,
    phc: &str,
    now: i64,
) -> anyhow::Result<()> {
    // Creates the file and applies the service's own migrations.
    let store = SqliteStore::open(db).await?;
    store.close().await;

    let mut conn = SqliteConnectOptions::from_str("sqlite:")?
        .filename(db)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(true)
        .connect()
        .await?;

    let mut done = 0usize;
    while done < keys {
        let mut tx = conn.begin().await?;
        let in_tx = ROWS_PER_TRANSACTION.min(keys - done);
        let mut written = 0;
        while written < in_tx {
            let n = ROWS_PER_STATEMENT.min(in_tx - written);
            let rows = gen.batch(n)?;
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
                b.push_bind(r.user_id).push_bind(phc.to_owned()).push_bind(now);
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
    // Fold the WAL into the main file so the service starts on a tidy database.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

async fn seed_postgres(
    url: &str,
    keys: usize,
    gen: &mut Generator,
    phc: &str,
    now: i64,
) -> anyhow::Result<()> {
    // Applies the service's own migrations (the database must exist).
    let store = PgStore::connect(&SecretString::from(url.to_owned()), 1).await?;
    store.close().await;

    let mut conn = PgConnectOptions::from_str(url)?
        .application_name("killbill-auth seed")
        .connect()
        .await?;
    // Nothing here needs to survive a crash before the CHECKPOINT below.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    let mut done = 0usize;
    while done < keys {
        let mut tx = conn.begin().await?;
        let in_tx = ROWS_PER_TRANSACTION.min(keys - done);
        let mut written = 0;
        while written < in_tx {
            let n = PG_ROWS_PER_STATEMENT.min(in_tx - written);
            let rows = gen.batch(n)?;
            let user_ids: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
            let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
            let canonical: Vec<String> = rows.iter().map(|r| r.name.to_ascii_lowercase()).collect();
            let key_ids: Vec<Uuid> = rows.iter().map(|r| r.key_id).collect();
            let digests: Vec<Vec<u8>> = rows.iter().map(|r| r.digest.to_vec()).collect();
            sqlx::query(
                "INSERT INTO users (id, username, username_canonical, role, created_ms) \
                 SELECT id, name, canonical, 'USER', $4 FROM unnest($1::uuid[], $2::text[], $3::text[]) \
                 AS t(id, name, canonical)",
            )
            .bind(&user_ids)
            .bind(&names)
            .bind(&canonical)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO password_hashes (user_id, phc, updated_ms) \
                 SELECT id, $2, $3 FROM unnest($1::uuid[]) AS t(id)",
            )
            .bind(&user_ids)
            .bind(phc)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO keys (id, user_id, digest, created_ms, created_ip) \
                 SELECT id, user_id, digest, $4, '127.0.0.1' \
                 FROM unnest($1::uuid[], $2::uuid[], $3::bytea[]) AS t(id, user_id, digest)",
            )
            .bind(&key_ids)
            .bind(&user_ids)
            .bind(&digests)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            written += n;
        }
        tx.commit().await?;
        done += in_tx;
    }
    // Statistics for the planner, the visibility map set, and the new pages written out now
    // rather than by the checkpointer in the middle of a measurement.
    sqlx::query("VACUUM ANALYZE users, password_hashes, keys")
        .execute(&mut conn)
        .await?;
    if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut conn).await {
        // Superusers (and pg_checkpoint's members) only: then the checkpointer does it later.
        eprintln!("seed: no CHECKPOINT: {e}");
    }
    conn.close().await?;
    Ok(())
}
