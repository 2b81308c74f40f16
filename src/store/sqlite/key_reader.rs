//! The one read on the validation path, a key by its digest, run on the calling thread.
//!
//! Every other query goes through sqlx, whose SQLite connections each live on a thread of their
//! own: a query is handed to that thread and its answer handed back, two context switches that
//! cost far more than the read itself (an indexed lookup in a file the OS has cached takes a few
//! microseconds). For the first use of each key after a start, which is every request until the
//! cache is warm, that hand-off was most of the request's CPU time (about 60 µs of 70). This
//! reader keeps a few plain SQLite connections and runs the lookup where the request already is.
//!
//! Blocking a request thread is bounded: in WAL mode a reader never waits for the writer, only,
//! rarely, for a WAL recovery or checkpoint by another process, and then for at most
//! [`READ_BUSY_TIMEOUT`] before the request is answered 503. The connections are opened with
//! `query_only`, like sqlx's readers (see `SqliteStore::open`), and read the file through a
//! memory map ([`MMAP_SIZE`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use uuid::Uuid;

use crate::domain::{KeyDigest, RevocationReason, Role, Timestamp, User, Username};
use crate::store::rows::KEY_COLUMNS;
use crate::store::{KeyRecord, StoreError, StoreResult};

/// How long a lookup waits for a lock before the request is answered 503.
const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// How much of the database file these connections read through a memory map instead of
/// `read` calls. A lookup touches about a dozen pages (two indexes and two tables) and, with a
/// million keys, most are outside SQLite's own page cache: mapped, each is a memory access to
/// the OS page cache instead of a system call and a 4 KiB copy. Measured with 1M keys, the
/// first 10,000 lookups after a start took 55–70 µs of CPU each without the map and 30–38 with
/// it (10,000 keys: 22–29). The pages touched then count in the process's resident memory
/// (`RssFile`), though they are the OS page cache, shared and reclaimable, that `read` would
/// fill as well. 2 GiB is SQLite's default upper bound; beyond it, pages are read as before.
/// The price, as SQLite documents it: a disk I/O error under a mapped read is a signal that
/// stops the process, not an error answered 503; and the file must not shrink under the map
/// (nothing here vacuums or truncates it).
const MMAP_SIZE: i64 = 2 << 30;

/// Idle connections kept; more are opened when more threads read at once, and closed after.
const IDLE_MAX: usize = 8;

pub(super) struct KeyReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl KeyReader {
    /// A reader of the database at `path`, which must exist (the store has opened and
    /// migrated it). One connection is opened now so that a wrong path fails at start-up.
    pub(super) fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let reader = Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        };
        let first = reader.connect()?;
        reader.give_back(first);
        Ok(reader)
    }

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(READ_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", "ON")?;
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push(conn);
        }
    }

    /// Closes the idle connections; later lookups fail with [`StoreError::Unavailable`].
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// The key with this digest and its owner, if stored.
    pub(super) fn find_key(&self, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.connect().map_err(map_err)?,
        };
        let found = lookup(&conn, digest);
        self.give_back(conn);
        found
    }
}

/// The lookup's SQL, built once: `prepare_cached` finds the statement by its text.
static LOOKUP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {KEY_COLUMNS}, u.username, u.role, u.created_ms \
         FROM keys k JOIN users u ON u.id = k.user_id WHERE k.digest = ?"
    )
});

fn lookup(conn: &Connection, digest: &KeyDigest) -> StoreResult<Option<(KeyRecord, User)>> {
    let mut statement = conn.prepare_cached(&LOOKUP_SQL).map_err(map_err)?;
    let row = statement
        .query_row([&digest.0[..]], |row| Ok(from_row(row)))
        .optional()
        .map_err(map_err)?;
    row.transpose()
}

/// Decodes the row: the columns of `KEY_COLUMNS`, in order, then the owner's name, role and creation.
fn from_row(row: &Row<'_>) -> StoreResult<(KeyRecord, User)> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let revoked_ms: Option<i64> = row.get(7).map_err(get)?;
    let reason: Option<String> = row.get(8).map_err(get)?;
    let revoked = match (revoked_ms, reason) {
        (Some(at), Some(r)) => Some((
            Timestamp::from_millis(at),
            RevocationReason::parse(&r).ok_or_else(|| StoreError::Corrupt(format!("reason {r:?}")))?,
        )),
        _ => None,
    };
    let digest: Vec<u8> = row.get(2).map_err(get)?;
    let key = KeyRecord {
        id: uuid(row, 0)?,
        user_id: uuid(row, 1)?,
        digest: crate::store::rows::digest_from(digest)?,
        created: Timestamp::from_millis(row.get(3).map_err(get)?),
        last_used: row
            .get::<_, Option<i64>>(4)
            .map_err(get)?
            .map(Timestamp::from_millis),
        last_ip: row.get(5).map_err(get)?,
        user_agent: row.get(6).map_err(get)?,
        revoked,
        revoked_network: row.get(9).map_err(get)?,
        created_ip: row.get(10).map_err(get)?,
        activity: row.get(11).map_err(get)?,
        deadline: row
            .get::<_, Option<i64>>(12)
            .map_err(get)?
            .map(Timestamp::from_millis),
    };
    let role: String = row.get(14).map_err(get)?;
    let user = User {
        id: key.user_id,
        name: Username::from_trusted(row.get(13).map_err(get)?),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        created: Timestamp::from_millis(row.get(15).map_err(get)?),
    };
    Ok((key, user))
}

/// A UUID as sqlx stores it in SQLite: 16 bytes.
fn uuid(row: &Row<'_>, index: usize) -> StoreResult<Uuid> {
    let bytes: Vec<u8> = row.get(index).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Uuid::from_slice(&bytes).map_err(|_| StoreError::Corrupt(format!("uuid in column {index}")))
}

/// As the sqlx side's `is_unavailable`: `sqlite_error_code` is the primary code of an extended
/// one (SQLITE_IOERR_READ is an I/O failure).
fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::FileLockingProtocolFailed,
        ) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Other(Box::new(e)),
    }
}
