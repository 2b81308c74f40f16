//! `AccessKey`: 32 random bytes, sent as standard base64 (44 characters) in
//! `Authorization: Bearer <key>`. Only its SHA-256 [`KeyDigest`] is ever stored.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Bytes of entropy in a key.
pub const KEY_BYTES: usize = 32;
/// Characters of a key in standard base64 with padding.
pub const KEY_CHARS: usize = 44;

/// A key in the clear. It exists only while a request is served; its `Debug` is redacted.
pub struct AccessKey([u8; KEY_BYTES]);

/// SHA-256 of a key's 32 bytes: what storage and caches know a key by.
/// A key has 256 bits of entropy, so an unsalted fast digest is enough to make a copy of the
/// database useless for replaying keys (no password-style stretching needed).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKey([REDACTED])")
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to correlate in a debugger; the digest is not secret but need not be noisy.
        write!(
            f,
            "KeyDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl AccessKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses the value of an `Authorization` header: `Bearer <44 characters of base64>`.
    /// The scheme is case-insensitive (RFC 7235); anything else is `None`.
    pub fn from_authorization(header: &[u8]) -> Option<Self> {
        const SCHEME: &[u8] = b"bearer ";
        if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
            return None;
        }
        let token = header[SCHEME.len()..].trim_ascii();
        Self::parse(token)
    }

    /// Parses the key itself: exactly 44 characters of standard, padded base64 for 32 bytes.
    pub fn parse(token: &[u8]) -> Option<Self> {
        if token.len() != KEY_CHARS {
            return None;
        }
        let mut bytes = [0u8; KEY_BYTES];
        match STANDARD.decode_slice(token, &mut bytes) {
            Ok(KEY_BYTES) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The key as the client receives it.
    pub fn encode(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest(Sha256::digest(self.0).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_are_44_chars_and_round_trip() {
        let key = AccessKey::generate();
        let text = key.encode();
        assert_eq!(text.len(), KEY_CHARS);
        assert!(text.ends_with('='));
        let header = format!("Bearer {text}");
        let parsed = AccessKey::from_authorization(header.as_bytes()).unwrap();
        assert_eq!(parsed.digest(), key.digest());
    }

    #[test]
    fn keys_are_distinct() {
        assert_ne!(AccessKey::generate().digest(), AccessKey::generate().digest());
    }

    #[test]
    fn scheme_is_case_insensitive_and_required() {
        let text = AccessKey::generate().encode();
        assert!(AccessKey::from_authorization(format!("bearer {text}").as_bytes()).is_some());
        assert!(AccessKey::from_authorization(format!("BEARER  {text} ").as_bytes()).is_some());
        assert!(AccessKey::from_authorization(text.as_bytes()).is_none());
        assert!(AccessKey::from_authorization(format!("Basic {text}").as_bytes()).is_none());
        assert!(AccessKey::from_authorization(b"Bearer").is_none());
        assert!(AccessKey::from_authorization(b"").is_none());
    }

    #[test]
    fn rejects_wrong_lengths_and_alphabets() {
        let text = AccessKey::generate().encode();
        assert!(AccessKey::parse(&text.as_bytes()[..43]).is_none());
        assert!(AccessKey::parse(format!("{text}=").as_bytes()).is_none());
        let url_safe = text.replace('+', "-").replace('/', "_");
        if url_safe != text {
            assert!(AccessKey::parse(url_safe.as_bytes()).is_none());
        }
        assert!(AccessKey::parse(&[0xff; 44]).is_none());
    }

    #[test]
    fn debug_is_redacted() {
        let key = AccessKey::generate();
        assert!(!format!("{key:?}").contains(&key.encode()));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = AccessKey::from_authorization(&bytes);
        }

        #[test]
        fn any_32_bytes_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let key = AccessKey(bytes);
            let parsed = AccessKey::parse(key.encode().as_bytes()).unwrap();
            prop_assert_eq!(parsed.0, bytes);
        }
    }
}
