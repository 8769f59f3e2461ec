//! The JSON form of a timestamp column, for `#[serde(serialize_with)]`.
//!
//! It writes exactly what chrono's own `Serialize` for `DateTime<Utc>`
//! writes (RFC 3339 in UTC with a `Z`, and a fraction of 0, 3, 6 or 9 digits,
//! the fewest that keep the value: `2026-12-02T18:52:05.123456Z`), so clients
//! see no difference. chrono writes its form through `collect_str` in about
//! fifteen fragments, and serde_json escapes and appends each on its own;
//! here the text is put together in a buffer on the stack and handed over as
//! one string. A page of 20 devices carries 60 timestamps, and chrono's way
//! cost about a tenth of the api's CPU for that request (BENCHMARKS.md).
//!
//! ```ignore
//! #[serde(serialize_with = "ferro_db::timestamp::serialize")]
//! created_at: DateTime<Utc>,
//! #[serde(serialize_with = "ferro_db::timestamp::option")]
//! finished_at: Option<DateTime<Utc>>,
//! ```

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Longest text written here: `9999-12-31T23:59:60.999999999Z`.
const MAX_LEN: usize = 30;

/// Serializes a timestamp as chrono would, faster.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write_rfc3339(t, &mut buf) {
        Some(len) => {
            let text = std::str::from_utf8(&buf[..len]).expect("only ASCII digits and separators");
            serializer.serialize_str(text)
        }
        // Years before 0 or after 9999 carry a sign and more digits; chrono
        // writes those (no column here holds one).
        None => t.serialize(serializer),
    }
}

/// [`serialize`] for a nullable timestamp: `null` or the same text.
pub fn option<S: Serializer>(t: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    struct Fast<'a>(&'a DateTime<Utc>);
    impl Serialize for Fast<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, serializer)
        }
    }
    match t {
        Some(t) => serializer.serialize_some(&Fast(t)),
        None => serializer.serialize_none(),
    }
}

/// Writes the text into `buf` and returns its length, or `None` for a year
/// outside 0..=9999.
fn write_rfc3339(t: &DateTime<Utc>, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let n = t.naive_utc();
    let year = n.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (mut second, mut nano) = (n.second(), n.nanosecond());
    // chrono keeps a leap second as a nanosecond count past one second.
    if nano >= 1_000_000_000 {
        second += 1;
        nano -= 1_000_000_000;
    }
    let year = year as u32;
    put2(buf, 0, year / 100);
    put2(buf, 2, year % 100);
    buf[4] = b'-';
    put2(buf, 5, n.month());
    buf[7] = b'-';
    put2(buf, 8, n.day());
    buf[10] = b'T';
    put2(buf, 11, n.hour());
    buf[13] = b':';
    put2(buf, 14, n.minute());
    buf[16] = b':';
    put2(buf, 17, second);
    let mut len = 19;
    let (digits, fraction) = if nano == 0 {
        (0, 0)
    } else if nano % 1_000_000 == 0 {
        (3, nano / 1_000_000)
    } else if nano % 1_000 == 0 {
        (6, nano / 1_000)
    } else {
        (9, nano)
    };
    if digits > 0 {
        buf[len] = b'.';
        let mut rest = fraction;
        for i in (0..digits).rev() {
            buf[len + 1 + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        len += 1 + digits;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

/// Two decimal digits of `v` (below 100) at `buf[at..at + 2]`.
fn put2(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use serde::Serialize;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "super::serialize")]
        t: DateTime<Utc>,
        #[serde(serialize_with = "super::option")]
        o: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chrono {
        t: DateTime<Utc>,
        o: Option<DateTime<Utc>>,
    }

    fn same_as_chrono(t: DateTime<Utc>) {
        let ours = serde_json::to_string(&Ours { t, o: Some(t) }).unwrap();
        let chrono = serde_json::to_string(&Chrono { t, o: Some(t) }).unwrap();
        assert_eq!(ours, chrono, "for {t:?}");
    }

    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 12, 2, 18, 52, 5).unwrap();
        // Every width of fraction, and values at the edges of each.
        for nanos in [
            0,
            1,
            9,
            10,
            999,
            1_000,
            1_001,
            123_456,
            999_999,
            1_000_000,
            1_000_001,
            120_000_000,
            123_000_000,
            123_456_000,
            123_456_789,
            999_999_999,
        ] {
            same_as_chrono(base + chrono::Duration::nanoseconds(nanos));
        }
        // Dates and times across a range of years, months and hours.
        let mut t = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        for step in 0..5_000i64 {
            same_as_chrono(t);
            t += chrono::Duration::seconds(6_311_371 + step * 7)
                + chrono::Duration::microseconds(step * 13);
        }
        for (y, m, d) in [
            (0, 1, 1),
            (9, 9, 9),
            (999, 12, 31),
            (9999, 12, 31),
            (2000, 2, 29),
        ] {
            same_as_chrono(Utc.with_ymd_and_hms(y, m, d, 23, 59, 59).unwrap());
        }
    }

    #[test]
    fn leap_seconds_and_years_beyond_four_digits_too() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        same_as_chrono(leap);
        same_as_chrono(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap());
        same_as_chrono(Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn a_missing_timestamp_is_null() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            serde_json::to_string(&Ours { t, o: None }).unwrap(),
            r#"{"t":"2026-01-02T03:04:05Z","o":null}"#
        );
    }
}
