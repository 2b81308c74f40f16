//! The `Authorization` header and key parser: never panics, and a key it accepts round-trips.
#![no_main]

use killbill_auth::domain::AccessKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(key) = AccessKey::from_authorization(data) {
        let text = key.encode();
        assert_eq!(text.len(), 44);
        let again = AccessKey::parse(text.as_bytes()).map(|k| k.digest());
        assert_eq!(again, Some(key.digest()));
    }
});
