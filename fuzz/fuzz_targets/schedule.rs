//! The schedule parser and the next-instant search, as the API uses them (a cron's
//! `schedule` + `timezone`, `GET /runs/crons/{id}/next`).
//!
//! Input: 8 bytes of parameters (time zone, start instant, count), then the expression.
//! Checks that nothing panics and that the instants found are strictly increasing, after
//! the start, and agree between `next_after` and `upcoming`.
#![no_main]

use chrono::{DateTime, Utc};
use chrono_tz::TZ_VARIANTS;
use cronhook::schedule::{Schedule, parse_timezone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (params, expr) = data.split_at(8);
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(expr) else {
        return;
    };
    assert_eq!(schedule.expression(), expr);

    // A zone by index (0 = UTC through parse_timezone(None)), a start between 1970 and
    // about 2106, and 1 to 16 instants.
    let zone = u16::from_le_bytes([params[0], params[1]]) as usize % (TZ_VARIANTS.len() + 1);
    let tz = if zone == 0 {
        parse_timezone(None).expect("UTC")
    } else {
        let name = TZ_VARIANTS[zone - 1].name();
        parse_timezone(Some(name)).expect("a chrono-tz name parses")
    };
    let secs = u32::from_le_bytes([params[2], params[3], params[4], params[5]]);
    let after: DateTime<Utc> = DateTime::from_timestamp(i64::from(secs), 0).expect("in range");
    let count = usize::from(params[6] % 16) + 1;
    let end = (params[7] & 1 == 1).then(|| after + chrono::TimeDelta::days(400));

    let first = schedule.next_after(after, tz);
    let instants = schedule.upcoming(after, tz, end, count);
    if let Some(first_listed) = instants.first() {
        assert_eq!(
            first,
            Some(*first_listed),
            "next_after and upcoming disagree"
        );
    }
    let mut prev = after;
    for instant in &instants {
        assert!(
            *instant > prev,
            "instants not strictly increasing: {prev} then {instant}"
        );
        if let Some(end) = end {
            assert!(*instant <= end, "instant {instant} past end {end}");
        }
        prev = *instant;
    }
});
