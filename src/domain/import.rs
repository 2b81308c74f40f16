//! Moving players in (`admin import`): the rows an import reads, why one is refused,
//! and what a batch of rows does next to the accounts already stored. Plain rules: the sources
//! (a JSON lines file, the original back end's MySQL database) are read by `service::import`,
//! and the stores write what [`plan_batch`] decides.
//!
//! Identity: an account imported earlier is known by its source's id (the original back end's
//! user UUID) or, for a JSON lines file, which has no ids, by its exact name; such a row is
//! "already present" and nothing is imported twice. Any other account holding the name
//! regardless of case makes the row refused, never renamed.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use uuid::Uuid;

use super::legacy::HashFormatError;
use super::username::UsernameError;
use super::{HashClass, Role, Timestamp, Username};

/// Where an import reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The original Kill Bill 2 back end's MySQL/MariaDB database.
    Mysql,
    /// A file of JSON lines.
    Jsonl,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Jsonl => "jsonl",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mysql" => Some(Self::Mysql),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

/// One run of an import: its source and its start, which names it (rows imported by this run
/// carry it, so that a second row with the same name is told from one imported by an earlier
/// run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub source: Source,
    pub started: Timestamp,
    /// Nothing is kept: every batch is rolled back.
    pub dry_run: bool,
}

/// A row as a source gives it, not checked yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRow {
    /// Where it is in the source, for the report: `line 12`, `user 0f1e…`.
    pub at: String,
    /// The source's own id of the account (MySQL), kept to recognise it in later runs.
    pub source_id: Option<String>,
    pub name: Option<String>,
    pub hash: Option<String>,
    pub created: Option<Timestamp>,
    /// `USER` or `ADMIN`; none is `USER`.
    pub role: Option<String>,
    /// When the source last set the hash; none is the import's time.
    pub hash_updated: Option<Timestamp>,
}

/// An account to import: a row that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportUser {
    pub at: String,
    pub source_id: Option<String>,
    /// The source's id when it is a UUID (kept if no account here has it), else a fresh one.
    pub id: Uuid,
    pub name: Username,
    pub role: Role,
    pub created: Timestamp,
    /// As the source wrote it (see `domain::legacy`).
    pub hash: String,
    pub class: HashClass,
    pub hash_updated: Timestamp,
}

/// Why a row is not imported. Each is listed in the report with where the row is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a JSON object of the expected fields: {0}")]
    Json(String),
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("not UTF-8")]
    NotUtf8,
    #[error("no id")]
    NoId,
    #[error("no username")]
    NoName,
    #[error("invalid username: {0}")]
    Name(#[from] UsernameError),
    #[error("no password hash (the account cannot sign in)")]
    NoHash,
    #[error("{0}")]
    Hash(#[from] HashFormatError),
    #[error("password hash ({0}) costlier than this service verifies")]
    TooCostly(HashClass),
    #[error("role {0:?}: only USER and ADMIN are imported")]
    Role(String),
    #[error("created: {0}")]
    Created(String),
    /// MySQL: the original compared names case-sensitively (and signed in only with a name that
    /// matched one account), so `Bill` and `bill` may both be there; neither is imported.
    #[error("the name collides regardless of case with another account of the source ({0} accounts share it); neither is imported, rename one at the source")]
    SourceCollision(usize),
    #[error("the name {name:?} (regardless of case) appears earlier in the source, at {earlier}")]
    Earlier { earlier: String, name: String },
    #[error("the name is taken (regardless of case) by the account {0:?} here")]
    Taken(String),
}

/// The longest JSON line read; a longer one is refused (and skipped without being kept).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A line of a JSON lines file: exactly these fields (an unknown one is refused, so that nothing
/// is dropped silently).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    username: String,
    password_hash: String,
    #[serde(default)]
    created: Option<Created>,
    #[serde(default)]
    role: Option<String>,
}

/// `created`: RFC 3339 text or epoch milliseconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum Created {
    Millis(i64),
    Text(String),
}

/// Reads one line of a JSON lines file (`number` counts from 1). A blank line is `None`.
pub fn parse_line(number: u64, bytes: &[u8]) -> Option<Result<SourceRow, (String, Refusal)>> {
    let at = format!("line {number}");
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.trim(),
        Err(_) => return Some(Err((at, Refusal::NotUtf8))),
    };
    if text.is_empty() {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: Result<Line, String> = match serde_path_to_error::deserialize(&mut de) {
        Ok(line) => de.end().map(|()| line).map_err(|e| e.to_string()),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            Err(if path == "." {
                inner
            } else {
                format!("{path}: {inner}")
            })
        }
    };
    let line = match parsed {
        Ok(line) => line,
        Err(why) => return Some(Err((at, Refusal::Json(why)))),
    };
    let created = match line.created {
        None => None,
        Some(Created::Millis(ms)) => Some(Timestamp::from_millis(ms)),
        Some(Created::Text(text)) => match Timestamp::parse_rfc3339(&text) {
            Some(t) => Some(t),
            None => {
                return Some(Err((
                    at,
                    Refusal::Created(format!("{text:?} is not RFC 3339 nor epoch milliseconds")),
                )))
            }
        },
    };
    Some(Ok(SourceRow {
        at,
        source_id: None,
        name: Some(line.username),
        hash: Some(line.password_hash),
        created,
        role: line.role,
        hash_updated: None,
    }))
}

impl SourceRow {
    /// Checks a row: a valid name, a hash this service verifies (`verifiable` says whether its
    /// class is within the limits), a role of a player. `now` stands in for missing times.
    pub fn check(
        self,
        verifiable: impl Fn(&HashClass) -> bool,
        now: Timestamp,
    ) -> Result<ImportUser, (String, Refusal)> {
        let at = self.at;
        let refuse = |why: Refusal| Err((at.clone(), why));
        let name = match self.name.as_deref().map(Username::parse) {
            None => return refuse(Refusal::NoName),
            Some(Err(e)) => return refuse(e.into()),
            Some(Ok(name)) => name,
        };
        let hash = match self.hash {
            Some(hash) if !hash.is_empty() => hash,
            _ => return refuse(Refusal::NoHash),
        };
        let class = match HashClass::of(&hash) {
            Ok(class) => class,
            Err(e) => return refuse(e.into()),
        };
        if !verifiable(&class) {
            return refuse(Refusal::TooCostly(class));
        }
        let role = match self.role.as_deref() {
            None | Some("USER") => Role::User,
            Some("ADMIN") => Role::Admin,
            Some(other) => return refuse(Refusal::Role(other.to_owned())),
        };
        let id = self
            .source_id
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(Uuid::new_v4);
        Ok(ImportUser {
            at,
            source_id: self.source_id,
            id,
            name,
            role,
            created: self.created.unwrap_or(now),
            hash,
            class,
            hash_updated: self.hash_updated.unwrap_or(now),
        })
    }
}

/// How an account here was imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedAs {
    pub source: Source,
    pub source_id: Option<String>,
    /// Where its row was in its source.
    pub at: String,
    /// The run that imported it ([`Run::started`]).
    pub run: Timestamp,
}

/// An account already stored that a row may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub id: Uuid,
    pub name: String,
    pub imported: Option<ImportedAs>,
}

/// What a batch does with one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// A new account with this id.
    Insert {
        id: Uuid,
    },
    /// Imported by an earlier run: nothing new (its hash is brought up to date if it was never
    /// used here).
    Present {
        id: Uuid,
    },
    Refuse(Refusal),
}

/// Decides each row of a batch, in order, from what storage holds: `by_name` the accounts whose
/// canonical name a row has, `by_source_id` the accounts imported from this source with a row's
/// source id, `ids_taken` the rows' proposed ids that an account already has.
pub fn plan_batch(
    run: &Run,
    rows: &[ImportUser],
    by_name: &HashMap<String, Existing>,
    by_source_id: &HashMap<String, Existing>,
    ids_taken: &HashSet<Uuid>,
) -> Vec<Plan> {
    let mut claimed: HashMap<String, (String, String)> = HashMap::new();
    let mut ids: HashSet<Uuid> = HashSet::new();
    rows.iter()
        .map(|row| {
            if let Some(existing) = row.source_id.as_ref().and_then(|id| by_source_id.get(id)) {
                return Plan::Present { id: existing.id };
            }
            let canonical = row.name.canonical();
            if let Some((earlier, name)) = claimed.get(&canonical) {
                return Plan::Refuse(Refusal::Earlier {
                    earlier: earlier.clone(),
                    name: name.clone(),
                });
            }
            if let Some(existing) = by_name.get(&canonical) {
                return match &existing.imported {
                    Some(how) if how.run == run.started => Plan::Refuse(Refusal::Earlier {
                        earlier: how.at.clone(),
                        name: existing.name.clone(),
                    }),
                    Some(how)
                        if run.source == Source::Jsonl
                            && how.source == Source::Jsonl
                            && existing.name == row.name.as_str() =>
                    {
                        Plan::Present { id: existing.id }
                    }
                    _ => Plan::Refuse(Refusal::Taken(existing.name.clone())),
                };
            }
            let id = if ids_taken.contains(&row.id) || ids.contains(&row.id) {
                Uuid::new_v4()
            } else {
                row.id
            };
            ids.insert(id);
            claimed.insert(canonical, (row.at.clone(), row.name.as_str().to_owned()));
            Plan::Insert { id }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::legacy::Argon2Variant;

    const SPRING: &str =
        "$argon2id$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
    const BCRYPT: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

    fn now() -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000)
    }

    fn line(n: u64, text: &str) -> Result<ImportUser, (String, Refusal)> {
        parse_line(n, text.as_bytes())
            .expect("not blank")
            .and_then(|row| row.check(|_| true, now()))
    }

    fn why(n: u64, text: &str) -> Refusal {
        match line(n, text) {
            Ok(user) => panic!("imported: {user:?}"),
            Err((at, why)) => {
                assert_eq!(at, format!("line {n}"));
                why
            }
        }
    }

    #[test]
    fn reads_a_line_with_every_field_or_only_the_required_ones() {
        let user = line(
            3,
            &format!(
                r#"{{"username": "Bill", "password_hash": "{SPRING}", "created": "2024-02-03T04:05:06.007Z", "role": "ADMIN"}}"#
            ),
        )
        .unwrap();
        assert_eq!(user.at, "line 3");
        assert_eq!(user.name.as_str(), "Bill");
        assert_eq!(user.role, Role::Admin);
        assert_eq!(user.created.to_rfc3339(), "2024-02-03T04:05:06.007Z");
        assert_eq!(user.hash, SPRING);
        assert!(matches!(
            user.class,
            HashClass::Argon2 {
                variant: Argon2Variant::Id,
                m_kib: 16384,
                ..
            }
        ));
        let minimal = line(
            4,
            &format!(r#"{{"password_hash":"{BCRYPT}","username":"ted_2"}}"#),
        )
        .unwrap();
        assert_eq!(minimal.role, Role::User);
        assert_eq!(minimal.created, now(), "no creation time: the import's");
        assert_eq!(minimal.class, HashClass::Bcrypt { cost: 10 });
        let millis = line(
            5,
            &format!(
                r#"{{"username":"ann","password_hash":"{BCRYPT}","created":1700000000123,"role":null}}"#
            ),
        )
        .unwrap();
        assert_eq!(millis.created, Timestamp::from_millis(1_700_000_000_123));
        assert_eq!(parse_line(6, b"   \r"), None, "blank lines are skipped");
    }

    #[test]
    fn refuses_each_bad_row_with_its_reason() {
        assert!(matches!(why(1, "{not json"), Refusal::Json(_)));
        assert!(matches!(why(2, "[1, 2]"), Refusal::Json(_)));
        let missing = why(3, &format!(r#"{{"password_hash":"{BCRYPT}"}}"#));
        assert!(
            missing.to_string().contains("missing field `username`"),
            "{missing}"
        );
        let typed = why(4, &format!(r#"{{"username":5,"password_hash":"{BCRYPT}"}}"#));
        assert!(typed.to_string().contains("username: invalid type"), "{typed}");
        let unknown = why(
            5,
            &format!(r#"{{"username":"bob","password_hash":"{BCRYPT}","email":"x"}}"#),
        );
        assert!(unknown.to_string().contains("unknown field `email`"), "{unknown}");
        let trailing = why(
            6,
            &format!(r#"{{"username":"bob","password_hash":"{BCRYPT}"}} {{}}"#),
        );
        assert!(matches!(trailing, Refusal::Json(_)), "{trailing}");
        assert_eq!(
            why(7, &format!(r#"{{"username":"b@d","password_hash":"{BCRYPT}"}}"#)),
            Refusal::Name(UsernameError::Characters)
        );
        assert_eq!(
            why(8, &format!(r#"{{"username":"ab","password_hash":"{BCRYPT}"}}"#)),
            Refusal::Name(UsernameError::Length)
        );
        assert_eq!(
            why(9, r#"{"username":"bob","password_hash":"hunter2"}"#),
            Refusal::Hash(HashFormatError::Unknown)
        );
        assert_eq!(
            why(10, r#"{"username":"bob","password_hash":""}"#),
            Refusal::NoHash
        );
        assert_eq!(
            why(
                11,
                &format!(r#"{{"username":"bob","password_hash":"{BCRYPT}","role":"SERVICE"}}"#)
            ),
            Refusal::Role("SERVICE".into())
        );
        assert!(matches!(
            why(
                12,
                &format!(r#"{{"username":"bob","password_hash":"{BCRYPT}","created":"yesterday"}}"#)
            ),
            Refusal::Created(_)
        ));
        assert_eq!(
            parse_line(13, b"\xff\xfe").unwrap().unwrap_err(),
            ("line 13".to_owned(), Refusal::NotUtf8)
        );
        let costly = parse_line(
            14,
            format!(r#"{{"username":"bob","password_hash":"{BCRYPT}"}}"#).as_bytes(),
        )
        .unwrap()
        .unwrap()
        .check(|_| false, now());
        assert_eq!(
            costly.unwrap_err().1,
            Refusal::TooCostly(HashClass::Bcrypt { cost: 10 })
        );
    }

    #[test]
    fn a_source_uuid_is_kept_as_the_id() {
        let id = Uuid::new_v4();
        let row = SourceRow {
            at: format!("user {id}"),
            source_id: Some(id.to_string()),
            name: Some("Bill".into()),
            hash: Some(SPRING.into()),
            ..SourceRow::default()
        };
        assert_eq!(row.clone().check(|_| true, now()).unwrap().id, id);
        let odd = SourceRow {
            source_id: Some("not-a-uuid".into()),
            ..row
        };
        let user = odd.check(|_| true, now()).unwrap();
        assert_ne!(user.id, id);
        assert_eq!(user.source_id.as_deref(), Some("not-a-uuid"));
    }

    fn row(at: &str, name: &str, source_id: Option<&str>) -> ImportUser {
        SourceRow {
            at: at.into(),
            source_id: source_id.map(str::to_owned),
            name: Some(name.into()),
            hash: Some(BCRYPT.into()),
            ..SourceRow::default()
        }
        .check(|_| true, now())
        .unwrap()
    }

    fn existing(name: &str, imported: Option<(Source, Option<&str>, &str, i64)>) -> Existing {
        Existing {
            id: Uuid::new_v4(),
            name: name.into(),
            imported: imported.map(|(source, source_id, at, run)| ImportedAs {
                source,
                source_id: source_id.map(str::to_owned),
                at: at.into(),
                run: Timestamp::from_millis(run),
            }),
        }
    }

    #[test]
    fn a_batch_imports_new_names_and_refuses_collisions_regardless_of_case() {
        let run = Run {
            source: Source::Jsonl,
            started: Timestamp::from_millis(500),
            dry_run: false,
        };
        let native = existing("Ted", None);
        let earlier_run = existing("Ann", Some((Source::Jsonl, None, "line 1", 100)));
        let this_run = existing("Zed", Some((Source::Jsonl, None, "line 2", 500)));
        let from_mysql = existing("Max", Some((Source::Mysql, Some("m-1"), "user m-1", 100)));
        let by_name: HashMap<String, Existing> = [&native, &earlier_run, &this_run, &from_mysql]
            .into_iter()
            .map(|e| (e.name.to_ascii_lowercase(), e.clone()))
            .collect();
        let rows = [
            row("line 10", "Bill", None),
            row("line 11", "bill", None),
            row("line 12", "TED", None),
            row("line 13", "Ann", None),
            row("line 14", "ANN", None),
            row("line 15", "zed", None),
            row("line 16", "Max", None),
        ];
        let plans = plan_batch(&run, &rows, &by_name, &HashMap::new(), &HashSet::new());
        assert_eq!(plans[0], Plan::Insert { id: rows[0].id });
        assert_eq!(
            plans[1],
            Plan::Refuse(Refusal::Earlier {
                earlier: "line 10".into(),
                name: "Bill".into()
            })
        );
        assert_eq!(plans[2], Plan::Refuse(Refusal::Taken("Ted".into())));
        assert_eq!(
            plans[3],
            Plan::Present { id: earlier_run.id },
            "same name, an earlier run"
        );
        assert_eq!(
            plans[4],
            Plan::Refuse(Refusal::Taken("Ann".into())),
            "another spelling is not the same row"
        );
        assert_eq!(
            plans[5],
            Plan::Refuse(Refusal::Earlier {
                earlier: "line 2".into(),
                name: "Zed".into()
            }),
            "imported by this very run, from an earlier batch"
        );
        assert_eq!(
            plans[6],
            Plan::Refuse(Refusal::Taken("Max".into())),
            "a file row is not the MySQL account"
        );
    }

    #[test]
    fn mysql_rows_are_known_by_their_source_id_and_keep_it_as_id_when_free() {
        let run = Run {
            source: Source::Mysql,
            started: Timestamp::from_millis(900),
            dry_run: false,
        };
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let imported = existing(
            "Renamed",
            Some((Source::Mysql, Some(&a.to_string()), "user a", 100)),
        );
        let by_source: HashMap<String, Existing> = [(a.to_string(), imported.clone())].into();
        let rows = [
            row("user a", "Bill", Some(&a.to_string())),
            row("user b", "Bob", Some(&b.to_string())),
            row("user c", "Cid", Some(&c.to_string())),
        ];
        let taken: HashSet<Uuid> = [c].into();
        let plans = plan_batch(&run, &rows, &HashMap::new(), &by_source, &taken);
        assert_eq!(
            plans[0],
            Plan::Present { id: imported.id },
            "by id, whatever its name now"
        );
        assert_eq!(plans[1], Plan::Insert { id: b });
        match &plans[2] {
            Plan::Insert { id } => assert_ne!(*id, c, "the id is another account's: a fresh one"),
            other => panic!("{other:?}"),
        }
    }
}
