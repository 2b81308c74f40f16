//! Start-up against a PostgreSQL server that is there but not as configured: the cause named in
//! one line, at once.

use std::process::{Command, Stdio};

use crate::helpers::postgres_admin_url;

/// A database that does not exist on a server that does: the line says which and what to do.
#[test]
fn a_missing_database_is_named_at_start_up() {
    let admin = postgres_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    let url = format!("{base}/kb_no_such_database");
    let hostport = base.rsplit_once('@').map_or(base, |(_, hp)| hp);
    let out = Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
        .args(["admin", "list-users"])
        .env("KILLBILL_AUTH_DATABASE_URL", &url)
        .env("KILLBILL_AUTH_PASSWORD_PEPPER", "sixteen+ bytes of pepper")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        format!(
            "killbill-auth: PostgreSQL at {hostport} has no database \"kb_no_such_database\": create it \
             (createdb kb_no_such_database) or correct database.url"
        ),
        "{stderr}"
    );
}
