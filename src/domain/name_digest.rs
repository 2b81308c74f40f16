//! Names that match no account are kept only as a keyed digest: a password typed into the
//! username field must not reach the log or the throttle table in clear, and a plain hash of a
//! low-entropy name would be reversed by guessing. The key is a secret of the service (a file
//! it generates beside its data, or derived from the pepper when one is set), so a copy of the
//! database or of the logs alone reveals nothing.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

/// Bytes of key material.
pub const NAME_KEY_BYTES: usize = 32;
/// Hex characters of a digest (128 bits: collisions between names do not happen in practice).
const DIGEST_HEX: usize = 32;

/// The key of name digests. `Debug` shows nothing of it.
pub struct NameKey(SecretBox<[u8; NAME_KEY_BYTES]>);

impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameKey(redacted)")
    }
}

impl NameKey {
    pub fn from_bytes(bytes: [u8; NAME_KEY_BYTES]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A key derived from the pepper, so that every instance sharing the pepper shares it.
    pub fn from_pepper(pepper: &[u8]) -> Self {
        let mut mac = hmac_sha256(pepper);
        mac.update(b"killbill-auth name digests v1");
        Self::from_bytes(mac.finalize().into_bytes().into())
    }

    /// The keyed digest of a name as typed or canonical, as 32 hex characters.
    pub fn digest(&self, name: &str) -> String {
        let mut mac = hmac_sha256(self.0.expose_secret());
        mac.update(name.as_bytes());
        let bytes = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(DIGEST_HEX);
        for b in &bytes[..DIGEST_HEX / 2] {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
        }
        hex
    }
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_keyed_stable_and_hide_the_name() {
        let a = NameKey::from_bytes([1; NAME_KEY_BYTES]);
        let b = NameKey::from_bytes([2; NAME_KEY_BYTES]);
        let d = a.digest("hunter2hunter2");
        assert_eq!(d.len(), 32);
        assert_eq!(d, a.digest("hunter2hunter2"));
        assert_ne!(d, b.digest("hunter2hunter2"));
        assert_ne!(d, a.digest("hunter2hunter3"));
        assert!(!d.contains("hunter"));
        assert_eq!(format!("{a:?}"), "NameKey(redacted)");
    }

    #[test]
    fn the_pepper_gives_the_same_key_everywhere() {
        let p = b"a pepper of at least sixteen bytes";
        assert_eq!(
            NameKey::from_pepper(p).digest("bill"),
            NameKey::from_pepper(p).digest("bill")
        );
        assert_ne!(
            NameKey::from_pepper(p).digest("bill"),
            NameKey::from_pepper(b"another pepper, also long").digest("bill")
        );
    }
}
