//! The first connection at start-up, said in words when it fails. The pool retries a failing
//! connection until its acquire timeout and then reports only "pool timed out"; one direct
//! attempt first keeps the cause: nothing listening, authentication refused, no such database.
//! The database password is never in these sentences.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgDatabaseError};
use sqlx::{ConnectOptions, Connection};

/// How long the first connection may take before start-up gives up.
const FIRST_CONNECTION: Duration = Duration::from_secs(10);

/// Opens (and closes) one connection with `options`; the reason in words when it cannot.
pub(super) async fn first_connection(options: &PgConnectOptions) -> anyhow::Result<()> {
    let at = format!("{}:{}", options.get_host(), options.get_port());
    match tokio::time::timeout(FIRST_CONNECTION, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(anyhow::anyhow!(explain(&e, &at, options))),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to PostgreSQL at {at}: no answer within {} s (a firewall, or the wrong host?)",
            FIRST_CONNECTION.as_secs()
        )),
    }
}

/// Why a connection failed, for an operator.
fn explain(e: &sqlx::Error, at: &str, options: &PgConnectOptions) -> String {
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => format!(
                "cannot connect to PostgreSQL at {at}: connection refused (is PostgreSQL running and \
                 listening there? check database.url)"
            ),
            std::io::ErrorKind::NotFound => {
                format!("cannot connect to PostgreSQL at {at}: no such host or socket (check database.url)")
            }
            _ => format!("cannot connect to PostgreSQL at {at}: {io}"),
        },
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>().map(|e| e.code()) {
            Some("28P01") | Some("28000") => format!(
                "PostgreSQL at {at} refused user {user:?}: authentication failed (check the user and \
                 password in database.url, and pg_hba.conf)"
            ),
            Some("3D000") => format!(
                "PostgreSQL at {at} has no database {database:?}: create it (createdb {database}) or \
                 correct database.url"
            ),
            Some("53300") => format!("PostgreSQL at {at} has too many connections already (max_connections)"),
            Some("57P03") => format!("PostgreSQL at {at} is starting up or shutting down: try again"),
            _ => format!("PostgreSQL at {at} refused the connection: {}", db.message()),
        },
        sqlx::Error::Tls(tls) => format!("cannot connect to PostgreSQL at {at}: TLS failed: {tls}"),
        other => format!("cannot connect to PostgreSQL at {at}: {other}"),
    }
}
