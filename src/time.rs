//! Instants as the store keeps them (epoch milliseconds, UTC) and as the API shows them
//! (ISO-8601 the way Python's `datetime.isoformat()` writes them, as LangGraph does).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, UTC: the unit of every `*_at` column.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// How far the wall clock is past instant `at`, to the microsecond (zero before it).
pub fn since(at: Millis) -> std::time::Duration {
    micros(micros_past(at))
}

/// How long until instant `at` by the wall clock, to the microsecond (zero once it is past).
pub fn until(at: Millis) -> std::time::Duration {
    micros(-micros_past(at))
}

/// Microseconds from instant `at` to now (negative before it).
fn micros_past(at: Millis) -> i64 {
    Utc::now().timestamp_micros() - at.saturating_mul(1000)
}

fn micros(count: i64) -> std::time::Duration {
    std::time::Duration::from_micros(count.max(0) as u64)
}

pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `2026-11-24T15:27:00+00:00`, or `…00.123000+00:00` when there is a fraction.
pub fn iso(ms: Millis) -> String {
    let dt = to_datetime(ms);
    let format = if ms.rem_euclid(1000) == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    dt.to_rfc3339_opts(format, false)
}

/// Parses an ISO-8601 / RFC 3339 instant. A value without an offset is taken as UTC,
/// as Python's SDK sends naive `datetime`s that way.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_and_since_count_microseconds_from_the_wall_clock() {
        let now = now_ms();
        let ahead = until(now + 60_000);
        assert!(
            ahead > std::time::Duration::from_secs(59)
                && ahead <= std::time::Duration::from_secs(60)
        );
        assert_eq!(until(now - 1_000), std::time::Duration::ZERO);
        let behind = since(now - 2_000);
        assert!(
            behind >= std::time::Duration::from_secs(2)
                && behind < std::time::Duration::from_secs(3)
        );
        assert_eq!(since(now + 60_000), std::time::Duration::ZERO);
    }

    #[test]
    fn iso_matches_python_isoformat() {
        assert_eq!(iso(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso(1_500), "1970-01-01T00:00:01.500000+00:00");
    }

    #[test]
    fn parses_offsets_naive_and_dates() {
        let expected = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single();
        assert_eq!(parse_instant("2026-01-02T03:04:05Z"), expected);
        assert_eq!(parse_instant("2026-01-02T04:04:05+01:00"), expected);
        assert_eq!(parse_instant("2026-01-02T03:04:05"), expected);
        assert_eq!(parse_instant("2026-01-02 03:04:05.000000+00:00"), expected);
        assert!(parse_instant("2026-01-02").is_some());
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant(""), None);
    }
}
