//! The configuration parser: settings or an error naming the key, never a panic.
#![no_main]

use killbill_auth::config::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(settings) = Settings::from_toml_str(text) {
            // Whatever was accepted is usable.
            let _ = settings.key_policy();
            let _ = settings.anomaly_policy();
            let _ = settings.throttle_policy();
        }
    }
});
