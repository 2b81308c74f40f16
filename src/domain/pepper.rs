//! The pepper's guard (API.md, "Accounts and passwords"): at its first start the service keeps a
//! verifier of the configured pepper in the database, and every later start (`serve`, every
//! `admin` command) compares the pepper it was given against it. A forgotten variable would
//! otherwise turn every player's sign-in into a 401, or make an account that can never sign in.
//!
//! The verifier is an HMAC-SHA256 keyed with the pepper over a fixed string: it tells whether a
//! pepper is the one, and nothing about it (a guess still costs a full HMAC, and the pepper is at
//! least 16 bytes of secret). Without a pepper the verifier is a fixed marker, so that a pepper
//! configured later for a database made without one is refused too.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The name under which the verifier is kept (`service_secrets`).
pub const VERIFIER_NAME: &str = "pepper_verifier";

/// The verifier of a database made without a pepper.
const NO_PEPPER: &[u8] = b"killbill-auth pepper verifier v1: no pepper";
/// What the HMAC is taken over.
const MESSAGE: &[u8] = b"killbill-auth pepper verifier v1";
/// The prefix of a verifier of a pepper (before the 32 bytes of the HMAC).
const PEPPERED: &[u8] = b"hmac-sha256 v1:";

/// The verifier of `pepper` (or of its absence).
pub fn verifier(pepper: Option<&[u8]>) -> Vec<u8> {
    match pepper {
        None => NO_PEPPER.to_vec(),
        Some(pepper) => {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(pepper) {
                Ok(mac) => mac,
                Err(_) => return NO_PEPPER.to_vec(),
            };
            mac.update(MESSAGE);
            let mut out = PEPPERED.to_vec();
            out.extend_from_slice(&mac.finalize().into_bytes());
            out
        }
    }
}

/// Why the configured pepper is not the database's. Each says it in one line, naming what to do,
/// and never shows a pepper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PepperMismatch {
    #[error(
        "password.pepper is not set, but this database's passwords are peppered: set \
         KILLBILL_AUTH_PASSWORD_PEPPER (or KILLBILL_AUTH_PASSWORD_PEPPER_FILE) to the pepper it was created with"
    )]
    Missing,
    #[error(
        "password.pepper is set, but this database was created without a pepper: unset \
         KILLBILL_AUTH_PASSWORD_PEPPER (a pepper cannot be added to existing passwords)"
    )]
    Unexpected,
    #[error(
        "password.pepper is not the pepper this database was created with: set \
         KILLBILL_AUTH_PASSWORD_PEPPER (or KILLBILL_AUTH_PASSWORD_PEPPER_FILE) to that one"
    )]
    Different,
    #[error("the pepper verifier kept in this database is unreadable (service_secrets.pepper_verifier)")]
    Corrupt,
}

/// Compares the configured pepper with the verifier the database keeps.
pub fn check(stored: &[u8], configured: Option<&[u8]>) -> Result<(), PepperMismatch> {
    let stored_peppered = if stored == NO_PEPPER {
        false
    } else if stored.starts_with(PEPPERED) && stored.len() == PEPPERED.len() + 32 {
        true
    } else {
        return Err(PepperMismatch::Corrupt);
    };
    match (stored_peppered, configured) {
        (false, None) => Ok(()),
        (false, Some(_)) => Err(PepperMismatch::Unexpected),
        (true, None) => Err(PepperMismatch::Missing),
        (true, Some(pepper)) => {
            if bool::from(verifier(Some(pepper)).ct_eq(stored)) {
                Ok(())
            } else {
                Err(PepperMismatch::Different)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: &[u8] = b"a pepper of sixteen bytes or more";

    #[test]
    fn the_same_pepper_or_none_passes_and_every_mismatch_is_named() {
        let peppered = verifier(Some(PEPPER));
        let plain = verifier(None);
        assert_eq!(check(&peppered, Some(PEPPER)), Ok(()));
        assert_eq!(check(&plain, None), Ok(()));
        assert_eq!(check(&peppered, None), Err(PepperMismatch::Missing));
        assert_eq!(check(&plain, Some(PEPPER)), Err(PepperMismatch::Unexpected));
        assert_eq!(
            check(&peppered, Some(b"another pepper, as long")),
            Err(PepperMismatch::Different)
        );
        assert_eq!(check(b"garbage", None), Err(PepperMismatch::Corrupt));
        assert_eq!(check(b"", Some(PEPPER)), Err(PepperMismatch::Corrupt));
    }

    #[test]
    fn the_verifier_holds_no_pepper_and_messages_name_no_pepper() {
        let v = verifier(Some(PEPPER));
        assert!(!v.windows(PEPPER.len()).any(|w| w == PEPPER));
        assert_ne!(v, verifier(Some(b"a pepper of sixteen bytes or more!")));
        for e in [
            PepperMismatch::Missing,
            PepperMismatch::Unexpected,
            PepperMismatch::Different,
            PepperMismatch::Corrupt,
        ] {
            let line = e.to_string();
            assert!(!line.contains('\n') && line.contains("pepper"), "{line}");
        }
    }
}
