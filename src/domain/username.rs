//! `Username`: 3 to 20 characters of `A-Z a-z 0-9 _`, unique regardless of case.

use std::fmt;

use serde::Serialize;

const MIN_LEN: usize = 3;
const MAX_LEN: usize = 20;

/// A valid username, as the user typed it. Equality and uniqueness use [`Username::canonical`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsernameError {
    #[error("username must be 3 to 20 characters long")]
    Length,
    #[error("username may contain only the letters A-Z and a-z, the digits 0-9 and _")]
    Characters,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        // Check the characters first on at most MAX_LEN + 1 bytes so that a huge input costs nothing.
        if raw.len() < MIN_LEN || raw.len() > MAX_LEN {
            return Err(UsernameError::Length);
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(UsernameError::Characters);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The form used for uniqueness and sign-in: ASCII lowercase (`Bill` and `bill` are one name).
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a name read back from storage, where it was valid when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The JSON form in the OpenAPI document (`GET /openapi.json`).
impl utoipa::PartialSchema for Username {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^[A-Za-z0-9_]{{{MIN_LEN},{MAX_LEN}}}$")))
            .description(Some(format!(
                "{MIN_LEN} to {MAX_LEN} characters of A-Z a-z 0-9 _, unique regardless of case"
            )))
            .examples(["Bill"])
            .into()
    }
}

impl utoipa::ToSchema for Username {}

impl Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["Bill", "my_user", "abc", "A1234567890123456789", "___"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(""), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(21)), Err(UsernameError::Length));
        for bad in [
            "bil l",
            "bill\n",
            "bi\u{0}ll",
            "bïll",
            "bill-1",
            "x\u{202e}yz",
            "\u{1b}[2J",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn canonical_form_ignores_case() {
        let a = Username::parse("Bill").unwrap();
        let b = Username::parse("bILL").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.as_str(), "Bill");
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_rule(s in "\\PC{0,30}") {
            let valid = (3..=20).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            prop_assert_eq!(Username::parse(&s).is_ok(), valid);
        }
    }
}
