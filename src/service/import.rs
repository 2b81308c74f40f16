//! `admin import`: moves players in from another back end, streaming and in
//! batches, so that memory stays flat whatever the source's size and the running service keeps
//! answering between batches.
//!
//! Sources: a JSON lines file (`{"username", "password_hash", "created"?, "role"?}` a line), or
//! the original Kill Bill 2 back end's MySQL/MariaDB database (`Users`, `UserAuthDetails`, and
//! with `--keep-keys` the live rows of `UserKeys`). What each row becomes is decided by
//! `domain::import` and written by the store; refusals are handed to the caller's
//! [`ImportSink`] as they happen (never collected), and the counts come back in a [`Report`].

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use super::hasher::Hasher;
use super::keys::KeyService;
use crate::clock::Clock;
use crate::domain::import::{parse_line, ImportUser, Refusal, Run, Source, SourceRow, MAX_LINE_BYTES};
use crate::domain::{LegacyKey, Timestamp};
use crate::store::{ImportKey, KeyOutcome, Store, UserOutcome};

/// Rows per transaction.
pub const BATCH: usize = 1000;

/// Where to read from (`--from`): a file, or the original back end's database (its kind is
/// [`Location::source`]).
pub enum Location {
    Jsonl(PathBuf),
    /// `mysql://user:password@host:port/database` (the password may come from `MYSQL_PWD`).
    Mysql(SecretString),
}

impl Location {
    /// `mysql://…` (or `mariadb://…`) is the original back end's database; anything else a file.
    pub fn parse(text: &str) -> Self {
        for scheme in ["mysql://", "mariadb://"] {
            if let Some(rest) = text.strip_prefix(scheme) {
                return Self::Mysql(SecretString::from(format!("mysql://{rest}")));
            }
        }
        Self::Jsonl(PathBuf::from(text))
    }

    pub fn source(&self) -> Source {
        match self {
            Self::Jsonl(_) => Source::Jsonl,
            Self::Mysql(_) => Source::Mysql,
        }
    }
}

/// What an import was asked to do.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub dry_run: bool,
    /// Also the original back end's live keys (MySQL only).
    pub keep_keys: bool,
}

/// One row that was not imported, as the report lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Refused {
    /// Where it is in the source: `line 12`, `user <id>`, `key <id> of user <id>`.
    pub at: String,
    /// The name it has there, when it has one (even an invalid one).
    pub name: Option<String>,
    pub reason: String,
}

/// What the import is doing, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A JSON lines file: position and total in bytes.
    File,
    /// Accounts: rows of `Users`.
    Accounts,
    /// Keys: rows of live `UserKeys`.
    Keys,
}

/// Where refusals and progress go as the import runs.
pub trait ImportSink: Send {
    fn refused(&mut self, refused: Refused) -> anyhow::Result<()>;
    /// A phase begins; its total if known.
    fn phase(&mut self, phase: Phase, total: Option<u64>);
    fn progress(&mut self, position: u64);
}

/// The counts of accounts.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AccountCounts {
    /// Rows read (blank lines aside).
    pub read: u64,
    pub imported: u64,
    /// Imported by an earlier run.
    pub already_present: u64,
    /// Of those, how many had their hash brought up to date (changed at the source, never used
    /// here).
    pub hash_updated: u64,
    pub refused: u64,
}

/// The counts of keys (`--keep-keys`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct KeyCounts {
    /// Live rows of `UserKeys` read.
    pub read: u64,
    pub imported: u64,
    pub already_present: u64,
    /// Their owner was not imported (refused), was deleted here, or is suspended here.
    pub skipped: u64,
    /// Unreadable rows (ids that are not UUIDs): listed with the refusals.
    pub refused: u64,
    /// Imported earlier and no longer live at the source (signed out there): revoked here.
    /// `None` in a dry run, which does not check.
    pub revoked: Option<u64>,
}

/// What an import did (or, in a dry run, would do).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub source: &'static str,
    pub dry_run: bool,
    pub accounts: AccountCounts,
    pub keys: Option<KeyCounts>,
    pub seconds: f64,
}

/// Runs imports on the service's own store.
pub struct Importer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: Arc<Hasher>,
    keys: Arc<KeyService>,
}

/// A usage error in the source (`--keep-keys` with a file, a file that cannot be opened, a
/// URL that does not parse): exit 2 on the command line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl Importer {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<Hasher>,
        keys: Arc<KeyService>,
    ) -> Self {
        Self {
            store,
            clock,
            hasher,
            keys,
        }
    }

    pub async fn run(
        &self,
        from: &Location,
        options: Options,
        sink: &mut dyn ImportSink,
    ) -> anyhow::Result<Report> {
        let started = std::time::Instant::now();
        let run = Run {
            source: from.source(),
            started: self.clock.now(),
            dry_run: options.dry_run,
        };
        let mut batcher = Batcher::new(self, run, sink);
        let keys = match from {
            Location::Jsonl(path) => {
                if options.keep_keys {
                    return Err(SourceError(
                        "--keep-keys: only the original back end's database (--from mysql://…) has keys"
                            .into(),
                    )
                    .into());
                }
                read_jsonl(path, &mut batcher).await?;
                None
            }
            Location::Mysql(url) => Some(read_mysql(url, options, &mut batcher).await?),
        };
        let accounts = batcher.counts.clone();
        Ok(Report {
            source: run.source.as_str(),
            dry_run: run.dry_run,
            accounts,
            keys: keys.flatten(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Gathers checked rows into batches and writes them.
struct Batcher<'a> {
    importer: &'a Importer,
    run: Run,
    sink: &'a mut dyn ImportSink,
    rows: Vec<ImportUser>,
    counts: AccountCounts,
    /// A dry run writes nothing, so a later batch cannot see what an earlier one would have
    /// imported: the names it would have, canonical, with where they are. (Grows with the
    /// source, about 50 bytes a name: only in a dry run.)
    dry_names: HashMap<String, (String, String)>,
    /// MySQL: canonical names shared by several accounts of the source, and how many.
    collisions: HashMap<String, usize>,
    /// A dry run: the accounts it would have imported, by source id, with the ids they would
    /// have had, so that their keys are planned as the real run would plan them.
    dry_owners: HashMap<String, Uuid>,
}

impl<'a> Batcher<'a> {
    fn new(importer: &'a Importer, run: Run, sink: &'a mut dyn ImportSink) -> Self {
        Self {
            importer,
            run,
            sink,
            rows: Vec::with_capacity(BATCH),
            counts: AccountCounts::default(),
            dry_names: HashMap::new(),
            collisions: HashMap::new(),
            dry_owners: HashMap::new(),
        }
    }

    fn refuse(&mut self, at: String, name: Option<String>, why: &Refusal) -> anyhow::Result<()> {
        self.counts.refused += 1;
        self.sink.refused(Refused {
            at,
            name,
            reason: why.to_string(),
        })
    }

    /// Checks a row and queues it; writes the batch when full.
    async fn push(&mut self, row: SourceRow) -> anyhow::Result<()> {
        self.counts.read += 1;
        let name = row.name.clone();
        if let Some(n) = name
            .as_deref()
            .and_then(|n| self.collisions.get(&n.to_ascii_lowercase()))
        {
            let why = Refusal::SourceCollision(*n);
            return self.refuse(row.at, name, &why);
        }
        let hasher = self.importer.hasher.clone();
        match row.check(|class| hasher.allows(class), self.run.started) {
            Ok(user) => {
                self.rows.push(user);
                if self.rows.len() >= BATCH {
                    self.flush().await?;
                }
                Ok(())
            }
            Err((at, why)) => self.refuse(at, name, &why),
        }
    }

    /// Writes the queued rows as one batch.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.rows);
        if self.run.dry_run {
            let mut kept = Vec::with_capacity(rows.len());
            for row in rows {
                match self.dry_names.get(&row.name.canonical()).cloned() {
                    Some((earlier, name)) => {
                        let why = Refusal::Earlier { earlier, name };
                        self.refuse(row.at, Some(row.name.as_str().to_owned()), &why)?;
                    }
                    None => kept.push(row),
                }
            }
            rows = kept;
        }
        let outcomes = self.importer.store.import_users(&self.run, &rows).await?;
        for (row, outcome) in rows.into_iter().zip(outcomes) {
            match outcome {
                UserOutcome::Imported { id } => {
                    self.counts.imported += 1;
                    if self.run.dry_run {
                        self.dry_names.insert(
                            row.name.canonical(),
                            (row.at.clone(), row.name.as_str().to_owned()),
                        );
                        if let Some(source_id) = &row.source_id {
                            self.dry_owners.insert(source_id.clone(), id);
                        }
                    }
                }
                UserOutcome::Present { hash_updated, .. } => {
                    self.counts.already_present += 1;
                    self.counts.hash_updated += u64::from(hash_updated);
                }
                UserOutcome::Refused(why) => {
                    self.refuse(row.at, Some(row.name.as_str().to_owned()), &why)?;
                }
            }
        }
        Ok(())
    }
}

/// Reads a line of at most [`MAX_LINE_BYTES`] into `line` (without its newline); a longer one
/// is consumed to its end without being kept. `Ok(None)` at the end of the input; else the
/// bytes consumed and whether the line was too long.
fn read_capped_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Option<(u64, bool)>> {
    line.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed > 0).then_some((consumed, too_long)));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        consumed += used as u64;
        if done.is_some() {
            return Ok(Some((consumed, too_long)));
        }
    }
}

async fn read_jsonl(path: &Path, batcher: &mut Batcher<'_>) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let total = file.metadata().ok().map(|m| m.len());
    batcher.sink.phase(Phase::File, total);
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::with_capacity(1024);
    let mut number = 0u64;
    let mut position = 0u64;
    let mut since_progress = 0u32;
    while let Some((consumed, too_long)) = read_capped_line(&mut reader, &mut line)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
    {
        number += 1;
        position += consumed;
        if too_long {
            batcher.counts.read += 1;
            batcher.refuse(format!("line {number}"), None, &Refusal::TooLong(MAX_LINE_BYTES))?;
        } else {
            match parse_line(number, &line) {
                None => {}
                Some(Ok(row)) => batcher.push(row).await?,
                Some(Err((at, why))) => {
                    batcher.counts.read += 1;
                    batcher.refuse(at, None, &why)?;
                }
            }
        }
        since_progress += 1;
        if since_progress >= 1000 {
            since_progress = 0;
            batcher.sink.progress(position);
        }
    }
    batcher.flush().await?;
    batcher.sink.progress(position);
    Ok(())
}

/// The original back end's database.
mod mysql {
    pub use mysql_async::prelude::Queryable;
    pub use mysql_async::{Conn, Opts, OptsBuilder, Row};
}

async fn connect_mysql(url: &SecretString) -> anyhow::Result<mysql::Conn> {
    let opts = mysql::Opts::from_url(url.expose_secret()).map_err(|e| {
        SourceError(format!(
            "--from: not a MySQL URL (mysql://user:password@host:port/database): {e}"
        ))
    })?;
    let mut builder = mysql::OptsBuilder::from_opts(opts.clone());
    if opts.pass().is_none() {
        if let Ok(password) = std::env::var("MYSQL_PWD") {
            builder = builder.pass(Some(password));
        }
    }
    // Errors name the server, never the URL (it may hold the password).
    mysql::Conn::new(builder).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to the MySQL database at {}: {e}",
            opts.ip_or_hostname()
        )
    })
}

/// A column of a `Users`/`UserAuthDetails`/`UserKeys` row; a value of another type is `None`
/// (the row is then refused for that reason, as an absent one would be).
fn column<T: mysql_async::prelude::FromValue>(row: &mysql::Row, index: usize) -> Option<T> {
    row.get_opt::<Option<T>, usize>(index)
        .and_then(Result::ok)
        .flatten()
}

async fn read_mysql(
    url: &SecretString,
    options: Options,
    batcher: &mut Batcher<'_>,
) -> anyhow::Result<Option<KeyCounts>> {
    use mysql::Queryable;
    let mut conn = connect_mysql(url).await?;
    // The original compared names case-sensitively: accounts whose names differ only by case
    // are all refused (its sign-in needed exactly one match, so none of them could sign in).
    let shared: Vec<(Vec<u8>, i64)> = conn
        .query(
            "SELECT CAST(LOWER(name) AS BINARY), COUNT(*) FROM Users WHERE name IS NOT NULL \
             GROUP BY CAST(LOWER(name) AS BINARY) HAVING COUNT(*) > 1",
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading Users: {e}"))?;
    batcher.collisions = shared
        .into_iter()
        .filter_map(|(name, n)| {
            Some((
                String::from_utf8(name).ok()?.to_ascii_lowercase(),
                usize::try_from(n).ok()?,
            ))
        })
        .collect();
    let total: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM Users")
        .await
        .map_err(|e| anyhow::anyhow!("reading Users: {e}"))?;
    batcher
        .sink
        .phase(Phase::Accounts, total.and_then(|t| u64::try_from(t).ok()));
    {
        let mut rows = conn
            .query_iter(
                "SELECT u.id, u.created, u.name, u.role, a.password, a.updated \
                 FROM Users u LEFT JOIN UserAuthDetails a ON a.userId = u.id",
            )
            .await
            .map_err(|e| anyhow::anyhow!("reading Users: {e}"))?;
        let mut position = 0u64;
        while let Some(row) = rows
            .next()
            .await
            .map_err(|e| anyhow::anyhow!("reading Users: {e}"))?
        {
            let id: Option<String> = column(&row, 0);
            let source = SourceRow {
                at: format!("user {}", id.as_deref().unwrap_or("(no id)")),
                source_id: id,
                name: column(&row, 2),
                hash: column(&row, 4),
                created: column::<i64>(&row, 1).map(Timestamp::from_millis),
                role: column(&row, 3),
                hash_updated: column::<i64>(&row, 5).map(Timestamp::from_millis),
            };
            if source.source_id.is_none() {
                batcher.counts.read += 1;
                batcher.refuse(source.at, source.name, &Refusal::NoId)?;
            } else {
                batcher.push(source).await?;
            }
            position += 1;
            if position.is_multiple_of(1000) {
                batcher.sink.progress(position);
            }
        }
        batcher.flush().await?;
        batcher.sink.progress(position);
    }
    let counts = if options.keep_keys {
        Some(read_mysql_keys(&mut conn, batcher).await?)
    } else {
        None
    };
    if let Err(e) = conn.disconnect().await {
        tracing::debug!(error = %e, "closing the MySQL connection");
    }
    Ok(counts)
}

async fn read_mysql_keys(conn: &mut mysql::Conn, batcher: &mut Batcher<'_>) -> anyhow::Result<KeyCounts> {
    use mysql::Queryable;
    let run = batcher.run;
    let now = run.started;
    let mut counts = KeyCounts::default();
    let longest = now.plus(batcher.importer.keys.policy().lifetime);
    let total: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM UserKeys WHERE expires > ?",
            (now.as_millis(),),
        )
        .await
        .map_err(|e| anyhow::anyhow!("reading UserKeys: {e}"))?;
    batcher
        .sink
        .phase(Phase::Keys, total.and_then(|t| u64::try_from(t).ok()));
    let store = batcher.importer.store.clone();
    let dry_owners = std::mem::take(&mut batcher.dry_owners);
    let mut batch: Vec<ImportKey> = Vec::with_capacity(BATCH);
    {
        let mut rows = conn
            .exec_iter(
                "SELECT id, userId, created, expires FROM UserKeys WHERE expires > ?",
                (now.as_millis(),),
            )
            .await
            .map_err(|e| anyhow::anyhow!("reading UserKeys: {e}"))?;
        while let Some(row) = rows
            .next()
            .await
            .map_err(|e| anyhow::anyhow!("reading UserKeys: {e}"))?
        {
            counts.read += 1;
            let key_id: Option<String> = column(&row, 0);
            let user_id: Option<String> = column(&row, 1);
            let expires: Option<i64> = column(&row, 3);
            let pair = match (
                key_id.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
                user_id.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
                expires,
            ) {
                (Some(key_id), Some(owner), Some(expires)) => (
                    LegacyKey {
                        user_id: owner,
                        key_id,
                    },
                    expires,
                ),
                _ => {
                    counts.refused += 1;
                    // The key id is the key's secret: never shown.
                    batcher.sink.refused(Refused {
                        at: format!("a key of user {}", user_id.as_deref().unwrap_or("(none)")),
                        name: None,
                        reason: "key id or user id is not a UUID".into(),
                    })?;
                    continue;
                }
            };
            let (pair, expires) = pair;
            batch.push(ImportKey {
                at: format!("a key of user {}", pair.user_id),
                source_user_id: user_id.unwrap_or_default(),
                digest: pair.digest(),
                created: column::<i64>(&row, 2).map_or(now, Timestamp::from_millis),
                // Its original expiry, but never later than a key issued now would expire.
                expires: Timestamp::from_millis(expires).min(longest),
            });
            if batch.len() >= BATCH {
                write_keys(store.as_ref(), &run, &batch, &dry_owners, &mut counts).await?;
                batch.clear();
                batcher.sink.progress(counts.read);
            }
        }
    }
    write_keys(store.as_ref(), &run, &batch, &dry_owners, &mut counts).await?;
    batcher.sink.progress(counts.read);
    if run.dry_run {
        return Ok(counts);
    }
    // Keys imported by earlier runs that this one did not find live at the source.
    let mut revoked = 0u64;
    loop {
        let gone = store.revoke_keys_gone_from_source(&run, now, 1000).await?;
        if gone.is_empty() {
            break;
        }
        revoked += gone.len() as u64;
        let keys: Vec<_> = gone.iter().map(|(_, k)| *k).collect();
        batcher.importer.keys.forget(&keys);
        for (user, key) in &gone {
            batcher.importer.keys.record_revocation(*user, key, None);
        }
    }
    counts.revoked = Some(revoked);
    Ok(counts)
}

async fn write_keys(
    store: &dyn Store,
    run: &Run,
    batch: &[ImportKey],
    dry_owners: &HashMap<String, Uuid>,
    counts: &mut KeyCounts,
) -> anyhow::Result<()> {
    for outcome in store.import_keys(run, batch, dry_owners).await? {
        match outcome {
            KeyOutcome::Imported { .. } => counts.imported += 1,
            KeyOutcome::Present => counts.already_present += 1,
            KeyOutcome::NoOwner | KeyOutcome::OwnerSuspended => counts.skipped += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Vec<u8>, u64, bool)> {
        let mut reader = std::io::BufReader::with_capacity(7, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some((consumed, too_long)) = read_capped_line(&mut reader, &mut line).unwrap() {
            out.push((line.clone(), consumed, too_long));
        }
        out
    }

    #[test]
    fn lines_are_read_whole_or_skipped_when_too_long() {
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let mut input = b"first\n\nthird line\r\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast");
        let got = lines(&input);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], (b"first".to_vec(), 6, false));
        assert_eq!(got[1], (Vec::new(), 1, false));
        assert_eq!(got[2], (b"third line\r".to_vec(), 12, false));
        assert_eq!(got[3], (Vec::new(), MAX_LINE_BYTES as u64 + 2, true));
        assert_eq!(got[4], (b"last".to_vec(), 4, false), "no newline at the end");
        let exact = vec![b'y'; MAX_LINE_BYTES];
        assert!(!lines(&exact)[0].2);
    }

    #[test]
    fn from_tells_a_database_from_a_file() {
        assert!(matches!(Location::parse("players.jsonl"), Location::Jsonl(_)));
        assert!(matches!(Location::parse("/tmp/mysql://x"), Location::Jsonl(_)));
        match Location::parse("mariadb://root@127.0.0.1/kb2") {
            Location::Mysql(url) => assert_eq!(url.expose_secret(), "mysql://root@127.0.0.1/kb2"),
            Location::Jsonl(_) => panic!("a database"),
        }
        assert_eq!(Location::parse("mysql://u:p@h/d").source(), Source::Mysql);
    }
}
