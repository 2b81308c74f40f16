//! `Password`: what a user types, normalised (NFKC) and checked against API.md's rules.
//!
//! The text is kept in a [`SecretString`] so it never shows in `Debug` output or logs.

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;
use zxcvbn::Score;

/// The most bytes a password may have (as received, before normalisation).
pub const MAX_BYTES: usize = 1024;

/// How many code points the strength estimator looks at. zxcvbn's cost grows faster than
/// linearly with length; a password whose first 100 characters are guessable is weak anyway.
const ESTIMATE_CHARS: usize = 100;

/// A password in NFKC form, so `café` typed precomposed or decomposed is the same password;
/// and, when it differs, as typed: a hash imported from another back end (`admin import`) is
/// verified against the bytes the player typed, as that back end hashed them.
#[derive(Clone)]
pub struct Password {
    normalised: SecretString,
    /// The password as typed, when its NFKC form differs.
    typed: Option<SecretString>,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("password must be at least {0} characters long")]
    TooShort(usize),
    #[error("password must be at most 1024 bytes long")]
    TooLong,
    #[error("password must not contain control characters")]
    ControlCharacter,
    #[error("password is too easy to guess: {0}")]
    TooGuessable(String),
}

impl Password {
    /// Normalises a password for hashing, checking only what every password must satisfy
    /// (size and characters). Used for sign-in, where the length rule of the day must not
    /// lock out a password set under an older rule.
    pub fn normalise(raw: &str) -> Result<Self, PasswordError> {
        if raw.len() > MAX_BYTES {
            return Err(PasswordError::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(PasswordError::ControlCharacter);
        }
        let normalised: String = raw.nfkc().collect();
        let typed = (normalised != raw).then(|| SecretString::from(raw));
        Ok(Self {
            normalised: SecretString::from(normalised),
            typed,
        })
    }

    /// The NFKC form: what hashes made here are made of.
    pub fn expose(&self) -> &str {
        self.normalised.expose_secret()
    }

    /// The password exactly as it was typed (its UTF-8 bytes): what an imported hash was made of.
    pub fn expose_typed(&self) -> &str {
        self.typed
            .as_ref()
            .map_or_else(|| self.expose(), |typed| typed.expose_secret())
    }

    /// Length in Unicode code points after normalisation.
    pub fn chars(&self) -> usize {
        self.expose().chars().count()
    }
}

/// The rules a new password must pass (sign-up, password change).
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl PasswordPolicy {
    /// Checks a new password: length, then guessability by a maintained estimator (zxcvbn),
    /// with the username and the service's own name as words an attacker would try first.
    pub fn check_new(&self, password: &Password, username: &str) -> Result<(), PasswordError> {
        if password.chars() < self.min_length {
            return Err(PasswordError::TooShort(self.min_length));
        }
        let head: String = password.expose().chars().take(ESTIMATE_CHARS).collect();
        let estimate = zxcvbn::zxcvbn(&head, &[username, "killbill", "kill bill", "killbill2"]);
        if estimate.score() < Score::Three {
            let why = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| w.to_string())
                .unwrap_or_else(|| "it follows a common pattern".to_owned());
            return Err(PasswordError::TooGuessable(why.trim_end_matches('.').to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy { min_length: 12 }
    }

    fn check(p: &str, user: &str) -> Result<(), PasswordError> {
        policy().check_new(&Password::normalise(p)?, user)
    }

    #[test]
    fn keeps_the_typed_form_when_it_differs_from_nfkc() {
        let decomposed = "cafe\u{301} au lait, s'il vous pla\u{131}t";
        let p = Password::normalise(decomposed).unwrap();
        assert_eq!(p.expose_typed(), decomposed);
        assert_ne!(p.expose(), decomposed);
        assert!(p.expose().contains('\u{e9}'));
        let plain = Password::normalise("plain ascii password").unwrap();
        assert_eq!(plain.expose_typed(), "plain ascii password");
        assert!(plain.typed.is_none(), "no second copy when the forms agree");
    }

    #[test]
    fn accepts_long_passphrases_without_composition_rules() {
        assert_eq!(check("correct horse battery staple", "alice"), Ok(()));
        assert_eq!(check("  correct horse 🐎 ステープル  ", "alice"), Ok(()));
    }

    #[test]
    fn refuses_short_passwords_counting_code_points() {
        assert_eq!(check("Zq9#fT2!xL", "alice"), Err(PasswordError::TooShort(12)));
        // 11 emoji are 44 bytes but 11 characters.
        assert_eq!(check(&"🐎".repeat(11), "alice"), Err(PasswordError::TooShort(12)));
    }

    #[test]
    fn refuses_common_and_guessable_passwords_with_a_reason() {
        for weak in [
            "passwordpassword",
            "123456789012345",
            "qwertyuiopasdfgh",
            "aaaaaaaaaaaaaaaa",
        ] {
            match check(weak, "alice") {
                Err(PasswordError::TooGuessable(why)) => assert!(!why.is_empty()),
                other => panic!("{weak}: {other:?}"),
            }
        }
        assert!(matches!(
            check("dolphin42dolphin42", "dolphin42"),
            Err(PasswordError::TooGuessable(_))
        ));
        assert!(matches!(
            check("killbillkillbill", "alice"),
            Err(PasswordError::TooGuessable(_))
        ));
    }

    #[test]
    fn refuses_oversized_and_control_characters() {
        assert_eq!(
            Password::normalise(&"a".repeat(1025)).err(),
            Some(PasswordError::TooLong)
        );
        assert!(Password::normalise(&"a".repeat(1024)).is_ok());
        assert_eq!(
            Password::normalise("abc\u{0}defghijklmn").err(),
            Some(PasswordError::ControlCharacter)
        );
    }

    #[test]
    fn normalises_with_nfkc() {
        let composed = Password::normalise("caf\u{e9} au lait!").unwrap();
        let decomposed = Password::normalise("cafe\u{301} au lait!").unwrap();
        assert_eq!(composed.expose(), decomposed.expose());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::normalise("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn normalise_is_idempotent(s in "\\PC{0,64}") {
            if let Ok(p) = Password::normalise(&s) {
                let again = Password::normalise(p.expose()).unwrap();
                prop_assert_eq!(p.expose(), again.expose());
            }
        }
    }
}
