//! One-time password reset codes (API.md, "Accounts and passwords"): players have no e-mail, so
//! an administrator issues a code and hands it over (support chat, in person); the player
//! redeems it once with a new password. Kanidm's credential-reset token is the model.
//!
//! A code is 80 bits from the operating system's CSPRNG, written as 16 characters of Crockford's
//! base32 in four groups (`7KQ2-M9XD-4HTR-VW3P`), because a person reads it out and types it:
//! case, the dashes and spaces do not matter, and `O`, `I` and `L` are read as `0`, `1` and `1`.
//! Only its SHA-256 digest is stored; issuing a new one for the user replaces the old one.

use std::time::Duration;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Timestamp;

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a code, without its dashes (5 bits each: 80 bits).
const CHARS: usize = 16;

/// How long a code lasts when the administrator does not say (API.md: `24h`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);
/// The longest a code may last (API.md: at most `7d`).
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// A code as issued: shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetCode(String);

impl std::fmt::Debug for ResetCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetCode(…)")
    }
}

/// The stored form of a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetCodeDigest(pub [u8; 32]);

impl ResetCode {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 10];
        OsRng.fill_bytes(&mut bytes);
        let mut bits: u128 = 0;
        for b in bytes {
            bits = (bits << 8) | u128::from(b);
        }
        let mut text = String::with_capacity(CHARS + 3);
        for i in 0..CHARS {
            if i > 0 && i % 4 == 0 {
                text.push('-');
            }
            let shift = 5 * (CHARS - 1 - i);
            let index = ((bits >> shift) & 0x1f) as usize;
            text.push(char::from(ALPHABET[index]));
        }
        Self(text)
    }

    /// The code as the player is given it (`XXXX-XXXX-XXXX-XXXX`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> ResetCodeDigest {
        digest_of(&self.0).unwrap_or(ResetCodeDigest([0; 32]))
    }
}

/// The digest of a code as a person typed it, `None` when it cannot be a code (wrong length or
/// characters): such input is answered like a wrong code.
pub fn digest_of(typed: &str) -> Option<ResetCodeDigest> {
    let mut canonical = String::with_capacity(CHARS);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        if canonical.len() == CHARS {
            return None;
        }
        canonical.push(c);
    }
    (canonical.len() == CHARS).then(|| ResetCodeDigest(Sha256::digest(canonical.as_bytes()).into()))
}

/// A code as stored for a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredCode {
    pub digest: ResetCodeDigest,
    pub expires: Timestamp,
}

/// Whether `typed` redeems `stored` at `now`. The comparison takes as long whatever `typed` is,
/// and is made against a fixed digest when there is no stored code (an unknown name, no code
/// issued): a wrong code, a spent or expired one and an unknown name cost the same.
pub fn redeems(stored: Option<&StoredCode>, typed: &str, now: Timestamp) -> bool {
    const NONE: ResetCodeDigest = ResetCodeDigest([0xa5; 32]);
    let typed = digest_of(typed);
    let against = stored.map_or(NONE, |s| s.digest);
    let presented = typed.unwrap_or(ResetCodeDigest([0x5a; 32]));
    let same: bool = presented.0.ct_eq(&against.0).into();
    same && typed.is_some() && stored.is_some_and(|s| now < s.expires)
}

/// The lifetime an administrator asked for, within API.md's bounds; `Err` says why not.
pub fn lifetime(asked: Option<Duration>) -> Result<Duration, String> {
    match asked {
        None => Ok(DEFAULT_LIFETIME),
        Some(d) if d.is_zero() => Err("lifetime: must be longer than 0s".into()),
        Some(d) if d > MAX_LIFETIME => Err("lifetime: must be at most 7d".into()),
        Some(d) => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_code_is_sixteen_crockford_characters_in_four_groups() {
        for _ in 0..100 {
            let code = ResetCode::generate();
            let text = code.as_str();
            assert_eq!(text.len(), 19, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(groups.len(), 4, "{text}");
            assert!(groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b))));
            assert_eq!(digest_of(text), Some(code.digest()));
        }
        assert_ne!(ResetCode::generate(), ResetCode::generate());
        assert_eq!(format!("{:?}", ResetCode::generate()), "ResetCode(…)");
    }

    #[test]
    fn typing_slips_are_forgiven_and_anything_else_is_no_code() {
        let code = ResetCode("7KQ2-M9XD-4HT0-VW31".into());
        let d = code.digest();
        for typed in [
            "7KQ2-M9XD-4HT0-VW31",
            "7kq2m9xd4ht0vw31",
            " 7kq2 m9xd 4hto vw3l ",
            "7KQ2-M9XD-4HTO-VW3I",
        ] {
            assert_eq!(digest_of(typed), Some(d), "{typed:?}");
        }
        for typed in [
            "",
            "7KQ2-M9XD-4HT0-VW3",
            "7KQ2-M9XD-4HT0-VW311",
            "7KQ2-M9XD-4HT0-VW3U",
            "7KQ2-M9XD-4HT0-VW3é",
        ] {
            assert_eq!(digest_of(typed), None, "{typed:?}");
        }
    }

    #[test]
    fn a_code_redeems_until_it_expires_and_nothing_else_does() {
        let code = ResetCode::generate();
        let stored = StoredCode {
            digest: code.digest(),
            expires: at(1_000),
        };
        assert!(redeems(Some(&stored), code.as_str(), at(999)));
        assert!(!redeems(Some(&stored), code.as_str(), at(1_000)), "expired");
        assert!(!redeems(Some(&stored), ResetCode::generate().as_str(), at(0)));
        assert!(!redeems(Some(&stored), "not a code", at(0)));
        assert!(!redeems(None, code.as_str(), at(0)), "no code issued");
    }

    #[test]
    fn lifetimes_default_to_a_day_and_stop_at_a_week() {
        assert_eq!(lifetime(None), Ok(DEFAULT_LIFETIME));
        assert_eq!(
            lifetime(Some(Duration::from_secs(3600))),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(lifetime(Some(MAX_LIFETIME)), Ok(MAX_LIFETIME));
        assert!(lifetime(Some(MAX_LIFETIME + Duration::from_secs(1))).is_err());
        assert!(lifetime(Some(Duration::ZERO)).is_err());
    }
}
