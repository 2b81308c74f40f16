//! The JSON bodies of `POST /users` and `POST /auth`, and the rules applied to what they carry:
//! a value or a 400, never a panic.
#![no_main]

use killbill_auth::domain::{Password, PasswordPolicy, Username};
use killbill_auth::http::extract::parse_json;
use killbill_auth::http::routes::Credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = parse_json::<Credentials>(data) {
        let name = Username::parse(&body.username);
        if let Ok(password) = Password::normalise(&body.password) {
            let policy = PasswordPolicy { min_length: 12 };
            let _ = policy.check_new(&password, name.as_ref().map(|n| n.as_str()).unwrap_or(""));
        }
    }
});
