//! Durations as the configuration writes them.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like `180d`, `24h`, `90s`, `500ms` (humantime's syntax).
///
/// Parsing is humantime's. Kept our own rather than `humantime-serde`: that crate writes a
/// duration back as humantime formats it (`1day`, `4h 30m`, `1s 500ms`), while
/// `serve --check-config` prints the configuration as API.md and the book write it (`24h`,
/// `270m`, `1500ms`: the largest unit that is exact), and the printed file must load back to
/// the same settings (`config::tests::the_effective_configuration_loads_back_less_its_secrets`).
/// Errors name the forms to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const ZERO: Self = Self(Duration::ZERO);

    pub(super) const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub(super) const fn hours(h: u64) -> Self {
        Self(Duration::from_secs(h * 3600))
    }

    pub(super) const fn days(d: u64) -> Self {
        Self(Duration::from_secs(d * 86_400))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. 180d, 24h, 90s, 500ms"
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The largest of `d`, `h`, `m`, `s`, `ms` that writes the duration exactly (`180d`, `15m`,
/// `1500ms`), as the configuration is written; below a millisecond, humantime's own form.
impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(
                f,
                "{}",
                humantime::format_duration(d).to_string().replace(' ', "")
            );
        }
        let ms = d.as_millis();
        // As the documentation writes them: one day as 24h, one minute as 60s.
        match ms {
            0 => return f.write_str("0s"),
            86_400_000 => return f.write_str("24h"),
            60_000 => return f.write_str("60s"),
            _ => {}
        }
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}
