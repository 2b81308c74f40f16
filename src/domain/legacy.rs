//! What the service keeps of another back end's players (`admin import`): their
//! password hashes as the source wrote them, and the original Kill Bill 2 back end's keys.
//!
//! - A stored hash is a [`StoredHash`]: a PHC string made here (Argon2id, of the NFKC form of
//!   the password, with the pepper when one is set), or one kept from an import (`legacy`):
//!   Argon2 in any variant as Spring Security writes it, or bcrypt. [`HashClass`] names its kind
//!   and cost, read from the string itself.
//! - A [`LegacyKey`] is the original back end's bearer: base64 of
//!   `{"userId":"<uuid>","keyId":"<uuid>"}`. Its secret is the key id (a random UUID, 122 bits);
//!   the service keeps only its [`KeyDigest`], bound to the user id.

use std::fmt;

use argon2::password_hash::PasswordHash;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::KeyDigest;

/// The costliest bcrypt hash that is verified: 2^14 rounds, about a second of a server core. An
/// import refuses costlier ones (as `StoredLimits` refuses costly Argon2 hashes at sign-in).
pub const MAX_BCRYPT_COST: u32 = 14;
/// The cheapest bcrypt cost the format allows.
const MIN_BCRYPT_COST: u32 = 4;

/// A password hash as stored for an account.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    /// A PHC string (Argon2) or a modular crypt string (bcrypt).
    pub phc: String,
    /// Kept from an import: verified as its source made it (the password's own UTF-8 bytes, no
    /// pepper), and replaced by the configured Argon2id at the next successful sign-in.
    pub legacy: bool,
}

impl StoredHash {
    /// A hash made here.
    pub fn native(phc: impl Into<String>) -> Self {
        Self {
            phc: phc.into(),
            legacy: false,
        }
    }

    /// A hash kept from an import.
    pub fn legacy(phc: impl Into<String>) -> Self {
        Self {
            phc: phc.into(),
            legacy: true,
        }
    }
}

impl fmt::Debug for StoredHash {
    /// A hash is not a secret the way a password is, but it is what an offline attack starts
    /// from: only its class is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = HashClass::of(&self.phc).map_or_else(|e| format!("unusable: {e}"), |c| c.to_string());
        write!(f, "StoredHash({class}, legacy: {})", self.legacy)
    }
}

/// The Argon2 variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Argon2Variant {
    D,
    I,
    Id,
}

impl Argon2Variant {
    pub fn ident(self) -> &'static str {
        match self {
            Self::D => "argon2d",
            Self::I => "argon2i",
            Self::Id => "argon2id",
        }
    }

    fn parse(ident: &str) -> Option<Self> {
        match ident {
            "argon2d" => Some(Self::D),
            "argon2i" => Some(Self::I),
            "argon2id" => Some(Self::Id),
            _ => None,
        }
    }
}

/// The kind and cost of a stored hash: what it takes to verify a password against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashClass {
    Argon2 {
        variant: Argon2Variant,
        /// 0x10 or 0x13, written `v=16` or `v=19`.
        version: u32,
        m_kib: u32,
        t: u32,
        p: u32,
        /// Bytes of output.
        output_len: usize,
    },
    Bcrypt {
        cost: u32,
    },
}

/// Why a string is not a hash this service can verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    #[error("not a recognised password hash (Argon2 PHC `$argon2id$`, `$argon2i$`, `$argon2d$`, or bcrypt `$2a$`, `$2b$`, `$2y$`)")]
    Unknown,
    #[error("malformed Argon2 PHC string: {0}")]
    Argon2(String),
    #[error("malformed bcrypt hash: {0}")]
    Bcrypt(&'static str),
}

impl HashClass {
    /// Recognises a stored hash by its prefix and reads its parameters; the string must be
    /// well formed (salt and output present and decodable), whatever its cost.
    pub fn of(stored: &str) -> Result<Self, HashFormatError> {
        if stored.starts_with("$argon2") {
            Self::argon2(stored)
        } else if stored.starts_with("$2") {
            Self::bcrypt(stored)
        } else {
            Err(HashFormatError::Unknown)
        }
    }

    fn argon2(stored: &str) -> Result<Self, HashFormatError> {
        let bad = |what: String| HashFormatError::Argon2(what);
        let parsed = PasswordHash::new(stored).map_err(|e| bad(e.to_string()))?;
        let variant = Argon2Variant::parse(parsed.algorithm.as_str()).ok_or(HashFormatError::Unknown)?;
        let version = match parsed.version {
            Some(v @ (0x10 | 0x13)) => v,
            Some(v) => return Err(bad(format!("version {v}"))),
            None => return Err(bad("no version (v=19)".into())),
        };
        let param = |name: &str| -> Result<u32, HashFormatError> {
            parsed
                .params
                .get_decimal(name)
                .ok_or_else(|| bad(format!("no parameter {name}")))
        };
        let (m_kib, t, p) = (param("m")?, param("t")?, param("p")?);
        if parsed.params.iter().count() != 3 {
            return Err(bad("parameters other than m, t, p".into()));
        }
        if t == 0 || p == 0 || m_kib < 8 * p {
            return Err(bad(format!("parameters m={m_kib}, t={t}, p={p}")));
        }
        let mut buf = [0u8; 64];
        let salt = parsed.salt.ok_or_else(|| bad("no salt".into()))?;
        let salt_len = salt
            .decode_b64(&mut buf)
            .map_err(|e| bad(format!("salt: {e}")))?
            .len();
        if salt_len < 8 {
            return Err(bad("salt shorter than 8 bytes".into()));
        }
        let output = parsed.hash.ok_or_else(|| bad("no hash".into()))?;
        let output_len = output.len();
        if !(4..=64).contains(&output_len) {
            return Err(bad(format!("{output_len}-byte output")));
        }
        Ok(Self::Argon2 {
            variant,
            version,
            m_kib,
            t,
            p,
            output_len,
        })
    }

    /// `$2a$`, `$2b$` or `$2y$`, two digits of cost, 22 characters of salt and 31 of hash in
    /// bcrypt's base64 alphabet: 60 characters.
    fn bcrypt(stored: &str) -> Result<Self, HashFormatError> {
        let bytes = stored.as_bytes();
        if !(stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$")) {
            return Err(HashFormatError::Unknown);
        }
        if bytes.len() != 60 || bytes[6] != b'$' {
            return Err(HashFormatError::Bcrypt(
                "not 60 characters `$2b$NN$` + salt and hash",
            ));
        }
        let cost = std::str::from_utf8(&bytes[4..6])
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or(HashFormatError::Bcrypt("cost is not two digits"))?;
        if !(MIN_BCRYPT_COST..=31).contains(&cost) {
            return Err(HashFormatError::Bcrypt("cost outside 4 to 31"));
        }
        if !bytes[7..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/')
        {
            return Err(HashFormatError::Bcrypt("characters outside bcrypt's alphabet"));
        }
        // The salt and hash must decode as the verifier will read them.
        <bcrypt::HashParts as std::str::FromStr>::from_str(stored)
            .map_err(|_| HashFormatError::Bcrypt("salt or hash does not decode"))?;
        Ok(Self::Bcrypt { cost })
    }

    /// Parses the form [`fmt::Display`] writes (`password_hash_classes`).
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        match words.next()? {
            "bcrypt" => {
                let cost = words.next()?.parse().ok()?;
                words
                    .next()
                    .is_none()
                    .then_some(Self::Bcrypt { cost })
                    .filter(|_| (MIN_BCRYPT_COST..=31).contains(&cost))
            }
            ident => {
                let variant = Argon2Variant::parse(ident)?;
                let mut field =
                    |prefix: &str| -> Option<u32> { words.next()?.strip_prefix(prefix)?.parse().ok() };
                let class = Self::Argon2 {
                    variant,
                    version: field("v=")?,
                    m_kib: field("m=")?,
                    t: field("t=")?,
                    p: field("p=")?,
                    output_len: usize::try_from(field("len=")?).ok()?,
                };
                words.next().is_none().then_some(class)
            }
        }
    }
}

impl fmt::Display for HashClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Argon2 {
                variant,
                version,
                m_kib,
                t,
                p,
                output_len,
            } => write!(
                f,
                "{} v={version} m={m_kib} t={t} p={p} len={output_len}",
                variant.ident()
            ),
            Self::Bcrypt { cost } => write!(f, "bcrypt {cost}"),
        }
    }
}

/// A key of the original Kill Bill 2 back end: the pair its `UserKeys` table held.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LegacyKey {
    pub user_id: Uuid,
    /// The secret part.
    pub key_id: Uuid,
}

impl fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LegacyKey({}, [REDACTED])", self.user_id)
    }
}

/// The longest bearer read as a legacy key: the JSON is about 90 bytes, 120 in base64; room for
/// whitespace a tolerant writer may have put in.
const LEGACY_TOKEN_MAX: usize = 512;

/// Standard base64, padding optional (Java's decoder, which the original used, accepts both).
const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(serde::Deserialize)]
struct Body<'a> {
    #[serde(rename = "userId", borrow)]
    user_id: std::borrow::Cow<'a, str>,
    #[serde(rename = "keyId", borrow)]
    key_id: std::borrow::Cow<'a, str>,
}

impl LegacyKey {
    /// Reads the value of an `Authorization` header (`Bearer <token>`, the scheme in any case)
    /// as a legacy key; `None` when it is not one.
    pub fn from_authorization(header: &[u8]) -> Option<Self> {
        const SCHEME: &[u8] = b"bearer ";
        if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
            return None;
        }
        Self::parse(header[SCHEME.len()..].trim_ascii())
    }

    /// Reads a bearer token: base64 (standard alphabet, padded or not) of a JSON object with the
    /// string fields `userId` and `keyId`, two UUIDs, in any order and spacing; other fields are
    /// ignored, as the original's reader did.
    pub fn parse(token: &[u8]) -> Option<Self> {
        if token.is_empty() || token.len() > LEGACY_TOKEN_MAX {
            return None;
        }
        let json = STANDARD_ANY_PADDING.decode(token).ok()?;
        // An object, as the original read it (serde would take an array for a struct too).
        if json.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let body: Body<'_> = serde_json::from_slice(&json).ok()?;
        Some(Self {
            user_id: Uuid::parse_str(&body.user_id).ok()?,
            key_id: Uuid::parse_str(&body.key_id).ok()?,
        })
    }

    /// The bearer as the original back end handed it out (Jackson's field order, padded base64).
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!(
            r#"{{"userId":"{}","keyId":"{}"}}"#,
            self.user_id, self.key_id
        ))
    }

    /// What storage and caches know the key by: SHA-256 over a label of its own (so that it can
    /// never equal a native key's digest, SHA-256 of 32 bytes) and the pair's 32 bytes. The key id
    /// is a random UUID (122 bits), so an unsalted fast digest is enough, as for native keys.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest(
            Sha256::new()
                .chain_update(b"killbill-auth legacy key v1\0")
                .chain_update(self.user_id.as_bytes())
                .chain_update(self.key_id.as_bytes())
                .finalize()
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccessKey;
    use proptest::prelude::*;

    /// Spring Security's `Argon2PasswordEncoder.defaultsForSpringSecurity_v5_8()` output shape.
    const SPRING: &str =
        "$argon2id$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
    const BCRYPT: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

    #[test]
    fn recognises_the_classes_by_prefix_and_reads_their_cost() {
        assert_eq!(
            HashClass::of(SPRING),
            Ok(HashClass::Argon2 {
                variant: Argon2Variant::Id,
                version: 0x13,
                m_kib: 16384,
                t: 2,
                p: 1,
                output_len: 32
            })
        );
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = BCRYPT.replacen("$2b$", prefix, 1);
            assert_eq!(HashClass::of(&hash), Ok(HashClass::Bcrypt { cost: 10 }), "{hash}");
        }
        let argon2i = SPRING.replacen("argon2id", "argon2i", 1);
        assert!(matches!(
            HashClass::of(&argon2i),
            Ok(HashClass::Argon2 {
                variant: Argon2Variant::I,
                ..
            })
        ));
        let argon2d = SPRING.replacen("argon2id", "argon2d", 1);
        assert!(matches!(
            HashClass::of(&argon2d),
            Ok(HashClass::Argon2 {
                variant: Argon2Variant::D,
                ..
            })
        ));
    }

    #[test]
    fn refuses_what_it_cannot_verify() {
        for bad in [
            "",
            "plaintext password",
            "5f4dcc3b5aa765d61d8327deb882cf99",
            "$1$salt$hash",
            "$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA",
            "$argon2x$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA",
            "$argon2id$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=18$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=16384,t=0,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=16384,t=2,p=1,keyid=AAAA$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$2x$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhW",
            "$2b$1x$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$2b$03$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lh!y",
        ] {
            assert!(HashClass::of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn classes_round_trip_through_their_text() {
        for class in [
            HashClass::of(SPRING).unwrap(),
            HashClass::of(BCRYPT).unwrap(),
            HashClass::Argon2 {
                variant: Argon2Variant::I,
                version: 0x10,
                m_kib: 4096,
                t: 3,
                p: 2,
                output_len: 16,
            },
        ] {
            assert_eq!(HashClass::parse(&class.to_string()), Some(class), "{class}");
        }
        assert_eq!(HashClass::of(BCRYPT).unwrap().to_string(), "bcrypt 10");
        assert_eq!(
            HashClass::of(SPRING).unwrap().to_string(),
            "argon2id v=19 m=16384 t=2 p=1 len=32"
        );
        for bad in [
            "",
            "bcrypt",
            "bcrypt 99",
            "bcrypt 10 x",
            "argon2id v=19 m=1 t=1 p=1",
            "md5 1",
        ] {
            assert_eq!(HashClass::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_shows_the_class_never_the_hash() {
        let text = format!("{:?}", StoredHash::legacy(BCRYPT));
        assert_eq!(text, "StoredHash(bcrypt 10, legacy: true)");
    }

    fn pair() -> LegacyKey {
        LegacyKey {
            user_id: Uuid::parse_str("0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f").unwrap(),
            key_id: Uuid::parse_str("9d8c7b6a-5f4e-4d3c-8b2a-190817263544").unwrap(),
        }
    }

    #[test]
    fn reads_the_original_bearer_and_tolerant_variants() {
        let key = pair();
        let jackson = key.encode();
        assert_eq!(
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(&jackson)
                    .unwrap()
            )
            .unwrap(),
            r#"{"userId":"0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f","keyId":"9d8c7b6a-5f4e-4d3c-8b2a-190817263544"}"#
        );
        assert_eq!(LegacyKey::parse(jackson.as_bytes()), Some(key));
        assert_eq!(
            LegacyKey::from_authorization(format!("Bearer {jackson}").as_bytes()),
            Some(key)
        );
        assert_eq!(
            LegacyKey::from_authorization(format!("bearer  {jackson} ").as_bytes()),
            Some(key)
        );
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        // Any order, any spacing, upper-case UUIDs, other fields, no padding.
        let reordered = b64(
            "{ \"keyId\" : \"9D8C7B6A-5F4E-4D3C-8B2A-190817263544\",\n \"userId\": \"0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f\", \"v\": 1 }",
        );
        assert_eq!(LegacyKey::parse(reordered.as_bytes()), Some(key));
        assert_eq!(
            LegacyKey::parse(jackson.trim_end_matches('=').as_bytes()),
            Some(key)
        );
        // Same digest whatever the spelling: the pair decides.
        assert_eq!(
            LegacyKey::parse(reordered.as_bytes()).unwrap().digest(),
            key.digest()
        );
    }

    #[test]
    fn refuses_what_is_not_a_legacy_key() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let native = AccessKey::generate().encode();
        for bad in [
            native,
            String::new(),
            b64("{}"),
            b64(r#"{"userId":"0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f"}"#),
            b64(r#"{"userId":"0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f","keyId":"not a uuid"}"#),
            b64(r#"{"userId":1,"keyId":"9d8c7b6a-5f4e-4d3c-8b2a-190817263544"}"#),
            b64(r#"["0f1e2d3c-4b5a-4697-8879-6a5b4c3d2e1f","9d8c7b6a-5f4e-4d3c-8b2a-190817263544"]"#),
            "not base64 at all!".to_owned(),
            "A".repeat(LEGACY_TOKEN_MAX + 1),
        ] {
            assert_eq!(LegacyKey::parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(
            LegacyKey::from_authorization(pair().encode().as_bytes()),
            None,
            "no scheme"
        );
    }

    #[test]
    fn digests_differ_from_native_ones_and_between_pairs() {
        let key = pair();
        let other = LegacyKey {
            key_id: Uuid::new_v4(),
            ..key
        };
        assert_ne!(key.digest(), other.digest());
        let swapped = LegacyKey {
            user_id: key.key_id,
            key_id: key.user_id,
        };
        assert_ne!(key.digest(), swapped.digest(), "bound to the user id");
        assert!(!format!("{key:?}").contains(&key.key_id.to_string()));
    }

    proptest! {
        #[test]
        fn the_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = LegacyKey::from_authorization(&bytes);
            let _ = LegacyKey::parse(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = HashClass::of(text);
                let _ = HashClass::parse(text);
            }
        }

        #[test]
        fn any_pair_round_trips(a in any::<u128>(), b in any::<u128>()) {
            let key = LegacyKey { user_id: Uuid::from_u128(a), key_id: Uuid::from_u128(b) };
            prop_assert_eq!(LegacyKey::parse(key.encode().as_bytes()), Some(key));
        }
    }
}
