//! What a store's errors mean to its callers, decided in one place for every backend: each
//! store writes `?` on sqlx's errors, and this `From` says whether the database refused the
//! statement (`Conflict`, `Other`) or could not serve it now (`Unavailable`: answered 503 with
//! `Retry-After`, and noted as failing writes).

use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (a taken username).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// `keys.on_limit = "refuse"` and the user already holds `keys.max_per_user` live keys.
    #[error("too many active keys")]
    KeyLimit,
    /// The write would leave no administrator in force (suspending, demoting or deleting the
    /// last one).
    #[error("the last administrator")]
    LastAdmin,
    /// A key cannot be issued: the user is suspended.
    #[error("account suspended")]
    Suspended(crate::domain::Suspension),
    /// The password hash a write was conditional on is no longer the account's (a password
    /// change, a reset or another sign-in's upgrade committed in between).
    #[error("the password changed")]
    PasswordChanged,
    /// The row a write refers to is gone (the account was deleted in between): decided by the
    /// write itself or by a foreign key.
    #[error("gone")]
    Gone,
    /// The database is busy, locked, full or unreachable: worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("database error: {0}")]
    Other(#[source] BoxError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database library's own error, whichever library it came from.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db
                .try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|pg| pg.code() == READ_ONLY_TRANSACTION)
            {
                super::postgres::read_only::seen();
            }
        }
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict("unique constraint")
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Gone,
            _ if is_unavailable(&e) => StoreError::Unavailable(e.into()),
            _ => StoreError::Other(e.into()),
        }
    }
}

/// PostgreSQL's SQLSTATE for a write in a read-only transaction: the server is a standby.
const READ_ONLY_TRANSACTION: &str = "25006";

/// Whether the database is busy, full, read-only or unreachable (answered 503, worth retrying
/// later) rather than refusing the statement itself.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<SqliteError>().is_some() {
                db.code().is_some_and(|code| sqlite_unavailable(&code))
            } else if let Some(e) = db.try_downcast_ref::<PgDatabaseError>() {
                postgres_unavailable(e.code())
            } else {
                false
            }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// SQLite's primary result codes that mean "not now" rather than "wrong": SQLITE_BUSY,
/// SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL.
/// sqlx reports extended codes (SQLITE_IOERR_WRITE is 778), compared by their primary code.
const SQLITE_UNAVAILABLE: [i64; 7] = [5, 6, 8, 10, 13, 14, 15];

fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i64>()
        .is_ok_and(|c| SQLITE_UNAVAILABLE.contains(&(c & 0xff)))
}

/// PostgreSQL's SQLSTATEs that mean "not now": class 08 (connection exception), class 53
/// (insufficient resources: disk full, out of memory, too many connections), 57P01–57P03 (the
/// server shutting down, crashed, or not yet accepting connections), 40001 and 40P01
/// (serialization failure, deadlock: the transaction was rolled back and may be retried), 25006
/// (a read-only transaction: a standby, or a primary being demoted).
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || matches!(
            sqlstate,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "25006"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_by_their_primary_code() {
        for code in ["5", "6", "8", "10", "778", "13", "14", "15", "517"] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "787", "x"] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }

    #[test]
    fn postgres_sqlstates_that_mean_not_now() {
        for code in [
            "08000", "08006", "08001", "53100", "53200", "53300", "57P01", "57P02", "57P03", "40001",
            "40P01", "25006",
        ] {
            assert!(postgres_unavailable(code), "{code}");
        }
        for code in ["23505", "23503", "23514", "42P01", "57014", "22021", "40002"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn connection_failures_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(StoreError::from(io), StoreError::Unavailable(_)));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }
}
