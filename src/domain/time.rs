//! Time as the rules see it: UTC milliseconds since the Unix epoch.
//!
//! API.md asks for RFC 3339 with millisecond precision and compares "least recently used"
//! at that precision, so milliseconds are the unit everywhere, in memory and in storage.

use std::fmt;
use std::time::Duration;

/// A moment in UTC, in whole milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating instead of overflowing for absurd durations.
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// `self - d`, saturating.
    pub fn minus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// Reads an RFC 3339 date-time with any offset (`2026-12-24T18:00:00Z`,
    /// `2026-12-24T19:00:00.5+01:00`); sub-millisecond digits are dropped. `None` for anything
    /// else, or a moment outside the years 0000–9999.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
        Some(Self(parsed.timestamp_millis()))
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-25T07:23:33.125Z`.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; RFC3339_LEN];
        self.write_rfc3339(&mut buf).to_owned()
    }

    /// Writes the RFC 3339 form into `buf` and returns it as text, without allocating.
    pub fn write_rfc3339(self, buf: &mut [u8; RFC3339_LEN]) -> &str {
        // Only ASCII digits and separators were written.
        std::str::from_utf8(self.rfc3339_bytes(buf)).unwrap_or("0000-01-01T00:00:00.000Z")
    }

    /// The RFC 3339 form as bytes, for writers that append bytes (the validation answer, which
    /// carries three timestamps and is the hot path: this skips the UTF-8 check and writes two
    /// digits at a time). Years outside 0000–9999 (which RFC 3339 cannot write) are clamped to
    /// the nearest end.
    pub fn rfc3339_bytes(self, buf: &mut [u8; RFC3339_LEN]) -> &[u8; RFC3339_LEN] {
        const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
        const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let ms = self.0.clamp(MIN, MAX);
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000) as u32;
        let (year, month, day) = civil_from_days(days);
        let year = year as u32; // 0..=9999 after the clamp
        let millis = in_day % 1000;
        let secs = in_day / 1000;
        *buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, two: u32| {
            let i = (two % 100) as usize * 2;
            buf[at..at + 2].copy_from_slice(&PAIRS[i..i + 2]);
        };
        put(0, year / 100);
        put(2, year);
        put(5, month);
        put(8, day);
        put(11, secs / 3600);
        put(14, secs / 60 % 60);
        put(17, secs % 60);
        put(20, millis / 10);
        buf[22] = b'0' + (millis % 10) as u8;
        buf
    }
}

/// "00" to "99", two bytes each.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                            2021222324252627282930313233343536373839\
                            4041424344454647484950515253545556575859\
                            6061626364656667686970717273747576777879\
                            8081828384858687888990919293949596979899";

/// Length of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub const RFC3339_LEN: usize = 24;

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The JSON form in the OpenAPI document (`GET /openapi.json`): what [`Timestamp::to_rfc3339`]
/// writes, always in UTC with milliseconds.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .pattern(Some(
                r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$",
            ))
            .description(Some("RFC 3339 in UTC with millisecond precision"))
            .examples(["2026-11-25T07:23:33.125Z"])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; RFC3339_LEN];
        s.serialize_str(self.write_rfc3339(&mut buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_any_offset() {
        let t = Timestamp::parse_rfc3339("2026-11-25T07:23:33.125Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T07:23:33.125Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-11-25T08:23:33.125+01:00"), Some(t));
        for bad in ["", "tomorrow", "2026-11-25", "2026-13-01T00:00:00Z", "1700000000"] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_rfc3339_with_millis_in_utc() {
        assert_eq!(
            Timestamp::from_millis(1_795_591_413_125).to_rfc3339(),
            "2026-11-25T07:23:33.125Z"
        );
        assert_eq!(Timestamp::from_millis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }

    proptest::proptest! {
        /// The hand-written formatter agrees with chrono's for every representable moment.
        #[test]
        fn formats_like_chrono(ms in -62_167_219_200_000i64..=253_402_300_799_999) {
            let ours = Timestamp::from_millis(ms).to_rfc3339();
            let chrono = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            proptest::prop_assert_eq!(ours, chrono);
        }
    }

    #[test]
    fn out_of_range_years_are_clamped() {
        assert_eq!(
            Timestamp::from_millis(i64::MIN).to_rfc3339(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(-1).to_rfc3339(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(i64::MAX - 1);
        assert_eq!(t.plus(Duration::from_secs(10)).as_millis(), i64::MAX);
        assert_eq!(
            Timestamp::from_millis(1000)
                .minus(Duration::from_millis(1))
                .as_millis(),
            999
        );
    }
}
