//! How the admin commands write: lines and JSON documents on standard output, the users table's
//! rows, what a command did to a user (`--json`), and service errors in words for the operator.

use std::io::Write;

use serde::Serialize;

use crate::domain::{Suspension, Timestamp, User};
use crate::service::ServiceError;

pub(super) fn table_row(u: &User) -> String {
    format!(
        "{:<36}  {:<20}  {:<7}  {}\n",
        u.id.to_string(),
        u.name.as_str(),
        u.role.as_str(),
        u.created
    )
}

pub(super) fn stdout_error(e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot write to standard output: {e}")
}

/// One line on standard output; an error (a closed pipe) is the command's failure, not a panic.
pub(super) fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// One JSON document, pretty-printed, on standard output.
pub(super) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    print_line(&serde_json::to_string_pretty(value)?)
}

/// What a command did to one user, as `--json` prints it: `{"user": User}` and what applies.
#[derive(Serialize)]
pub(super) struct Outcome<'a> {
    pub(super) user: &'a User,
    /// `create-service`: the key, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<String>,
    /// `revoke-keys`: how many keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) revoked: Option<usize>,
    /// `delete-user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) deleted: Option<bool>,
    /// `suspend`: the new suspension; `unsuspend`: the one lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) suspension: Option<&'a Suspension>,
    /// `reset-code`: the code, shown once, and when it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expires: Option<Timestamp>,
}

impl<'a> Outcome<'a> {
    pub(super) fn of(user: &'a User) -> Self {
        Self {
            user,
            key: None,
            revoked: None,
            deleted: None,
            suspension: None,
            code: None,
            expires: None,
        }
    }
}

/// A service error in words for the operator.
pub(super) fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such user"),
        ServiceError::UsernameTaken => anyhow::anyhow!("that username is already taken"),
        ServiceError::NoPassword => anyhow::anyhow!("refused: a service account has no password to reset"),
        ServiceError::LastAdmin => {
            anyhow::anyhow!("refused: that is the last administrator in force (create another first)")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    #[test]
    fn table_columns_line_up_whatever_the_name() {
        let row = |name: &str, role| {
            table_row(&User {
                id: uuid::Uuid::nil(),
                name: crate::domain::Username::parse(name).unwrap(),
                role,
                created: Timestamp::from_millis(0),
            })
        };
        let a = row("bob", Role::User);
        let b = row("a_name_of_twenty_chr", Role::Service);
        assert_eq!(a.find("1970"), b.find("1970"));
        assert_eq!(a.find("USER"), b.find("SERVICE"));
    }
}
