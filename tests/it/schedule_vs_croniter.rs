//! Property test: `cronhook::schedule` against Python croniter 7 itself.
//!
//! A seeded generator makes cron expressions (numbers, ranges, wrap-around ranges,
//! steps, lists, month and weekday names, `L`, `W`, `#`, `?`, aliases, 5 and 6 fields,
//! and invalid ones), a time zone and a start instant (half of them within a day and a
//! half of a DST transition of that zone). Every case is sent to
//! `tests/oracle/croniter_oracle.py`, one long-running Python process, which answers
//! with croniter's verdict and next instants. The test asserts that
//!
//! * both accept or both reject the expression, except the two documented
//!   rejections of cronhook: the 7-field form (year column) and random `R` fields;
//! * the next instants agree under each of the four daylight-saving choices
//!   (`dst_repeat` `once` / `twice`, `dst_gap` `shift` / `skip`): with `twice` and `shift`
//!   (croniter's own) they are exactly croniter's, nothing excluded; the other three
//!   are croniter's minus the instants their choice drops, as follows.
//!
//! **`once` (the default), precisely.** For a *fixed-time* schedule (croniter expands
//! the second (6-field form), minute and hour fields to one value each; the oracle
//! reports this as `fixed`), every croniter instant `t` whose local wall time in the
//! case's zone is ambiguous and which is the *later* of that wall time's two instants
//! (e.g. 01:30 EST on the New York fall-back day) is removed from croniter's list before
//! comparing. cronhook never returns such an instant for a fixed-time schedule under
//! `once`, and returns every other instant croniter returns. Nothing else is excluded:
//! interval / wildcard schedules must match croniter through both passes of a repeated
//! hour.
//!
//! **`skip`, precisely.** croniter moves a match in a spring-forward gap to the end of
//! the gap; that instant's local wall time is then not a time the schedule matches
//! (`30 2 * * *` at 03:00), unless it also is a match of its own (`0 1-3 * * *` at
//! 03:00). Every croniter instant whose local wall time does not match the schedule is
//! removed from croniter's list before comparing (the match is checked with the same
//! schedule in UTC, where no wall time is skipped).
//!
//! Python: `$CRONHOOK_TEST_PYTHON`, else `tests/sdk/.venv/bin/python` under the crate
//! root (made by `scripts/venv.sh`; croniter is pinned in `tests/sdk/requirements.txt`).
//! A missing interpreter, or one without croniter 7, fails the test (it never passes
//! silently).
//! `CRONHOOK_PROPTEST_CASES` (default 5000) and `CRONHOOK_PROPTEST_SEED` change the run.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Duration, LocalResult, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cronhook::schedule::{Dst, Schedule, ScheduleError, parse_timezone};
use entity::states::{DstGap, DstRepeat};
use serde_json::{Value, json};

const ZONES: &[Option<&str>] = &[
    None,
    Some("UTC"),
    Some("America/New_York"),
    Some("Europe/Paris"),
    Some("Asia/Kolkata"),
    Some("Australia/Lord_Howe"),
    Some("Pacific/Chatham"),
    Some("America/Sao_Paulo"),
    Some("Europe/London"),
    Some("America/Santiago"),
];

/// Small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn mixed_case(rng: &mut Rng, s: &str) -> String {
    match rng.below(3) {
        0 => s.to_string(),
        1 => s.to_uppercase(),
        _ => {
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// Field bounds in croniter order: minute, hour, day, month, weekday, second.
const BOUNDS: [(u64, u64); 6] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6), (0, 59)];

fn value(rng: &mut Rng, idx: usize) -> u64 {
    let (lo, hi) = BOUNDS[idx];
    if rng.chance(3) {
        // just outside the range
        return if rng.chance(50) {
            lo.saturating_sub(1)
        } else {
            hi + 1
        };
    }
    match idx {
        // hours around DST transitions are the interesting ones
        1 if rng.chance(60) => *rng.pick(&[0, 1, 2, 3, 23]),
        0 if rng.chance(40) => *rng.pick(&[0, 15, 30, 45, 59]),
        2 if rng.chance(30) => *rng.pick(&[1, 28, 29, 30, 31]),
        4 if rng.chance(15) => 7,
        5 if rng.chance(40) => *rng.pick(&[0, 30, 59]),
        _ => rng.range(lo, hi),
    }
}

fn name_or_value(rng: &mut Rng, idx: usize) -> String {
    match idx {
        3 if rng.chance(35) => name(rng, &MONTHS),
        4 if rng.chance(35) => name(rng, &DAYS),
        _ => {
            let v = value(rng, idx);
            if rng.chance(5) {
                format!("0{v}")
            } else {
                v.to_string()
            }
        }
    }
}

fn name(rng: &mut Rng, items: &[&str]) -> String {
    let picked = items[rng.below(items.len() as u64) as usize];
    mixed_case(rng, picked)
}

fn step(rng: &mut Rng, idx: usize) -> u64 {
    if rng.chance(3) {
        return 0;
    }
    let (lo, hi) = BOUNDS[idx];
    if rng.chance(70) {
        rng.range(1, 6)
    } else {
        rng.range(1, hi - lo + 3)
    }
}

/// One list element of field `idx`.
fn element(rng: &mut Rng, idx: usize) -> String {
    let roll = rng.below(100);
    match roll {
        0..=29 => name_or_value(rng, idx),
        30..=44 => {
            // range, sometimes reversed (croniter wraps) or equal (whole field)
            let a = name_or_value(rng, idx);
            let b = if rng.chance(10) {
                a.clone()
            } else {
                name_or_value(rng, idx)
            };
            format!("{a}-{b}")
        }
        45..=56 => format!("*/{}", step(rng, idx)),
        57..=66 => {
            let a = name_or_value(rng, idx);
            let b = name_or_value(rng, idx);
            format!("{a}-{b}/{}", step(rng, idx))
        }
        67..=74 => format!("{}/{}", name_or_value(rng, idx), step(rng, idx)),
        75..=79 => "*".to_string(),
        _ => special(rng, idx),
    }
}

/// Special syntax, valid and invalid.
fn special(rng: &mut Rng, idx: usize) -> String {
    match idx {
        2 => match rng.below(9) {
            0 | 1 => "L".into(),
            2 => format!("{}W", rng.range(0, 32)),
            3 => format!("W{}", rng.range(1, 31)),
            4 => format!("{}W", *rng.pick(&[15, 29, 30, 31, 1])),
            5 => format!("{}-L", rng.range(1, 31)),
            6 => "LW".into(),
            7 => "?".into(),
            _ => "l".into(),
        },
        4 => match rng.below(10) {
            0..=2 => format!("{}#{}", rng.range(0, 7), rng.range(0, 6)),
            3 => format!("{}#{}", name(rng, &DAYS), rng.range(1, 5)),
            4 | 5 => format!("L{}", rng.range(0, 7)),
            6 => format!("{}L", rng.range(0, 6)),
            7 => "?".into(),
            8 => "mon-fri#2".into(),
            _ => "L".into(),
        },
        _ => match rng.below(13) {
            0 => "".into(),
            1 => "-1".into(),
            2 => "1-".into(),
            3 => "/5".into(),
            4 => "1/2/3".into(),
            5 => "?".into(),
            6 => "x".into(),
            7 => "H".into(),
            8 => "*/".into(),
            9 => "1--2".into(),
            10 => "**".into(),
            11 => "\u{ff11}".into(), // fullwidth digit one
            _ => "R".into(),
        },
    }
}

fn field(rng: &mut Rng, idx: usize) -> String {
    let star_chance = match idx {
        0 => 20,
        1 => 35,
        2 => 55,
        3 => 65,
        4 => 55,
        _ => 40,
    };
    if rng.chance(star_chance) {
        return "*".into();
    }
    let n = if rng.chance(75) { 1 } else { rng.range(2, 3) };
    (0..n)
        .map(|_| element(rng, idx))
        .collect::<Vec<_>>()
        .join(",")
}

fn expression(rng: &mut Rng) -> String {
    let roll = rng.below(100);
    if roll < 4 {
        let aliases = [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "@DAILY",
            "@reboot",
            "@every",
            " @daily",
        ];
        return rng.pick(&aliases).to_string();
    }
    if roll < 6 {
        let junk = [
            "",
            "* * * *",
            "* * * * * * *",
            "0 0 1 1 * 0 2030",
            "R * * * *",
            "* * * * * * * *",
        ];
        return rng.pick(&junk).to_string();
    }
    let n = if roll < 75 { 5 } else { 6 };
    let fields: Vec<String> = (0..n).map(|i| field(rng, i)).collect();
    let sep = *rng.pick(&[" ", " ", " ", " ", " ", " ", " ", " ", "  ", "\t", " \x0b"]);
    let mut expr = fields.join(sep);
    if rng.chance(5) {
        expr = format!(" {expr}\n");
    }
    expr
}

/// Time-of-day schedules aimed at DST transitions (used with starts just before one).
fn dst_expression(rng: &mut Rng) -> String {
    let minute = rng
        .pick(&[
            "0", "30", "45", "59", "*/15", "*/20", "0,30", "*", "15-45/15", "50-10",
        ])
        .to_string();
    let hour = rng
        .pick(&[
            "0", "1", "2", "3", "23", "*", "1-3", "*/2", "0,2", "2-1", "0-23",
        ])
        .to_string();
    let dow = rng
        .pick(&["*", "*", "*", "0", "6", "sun,sat", "L0", "0#1"])
        .to_string();
    let dom = rng.pick(&["*", "*", "*", "1-7", "L", "W1"]).to_string();
    let mut expr = format!("{minute} {hour} {dom} * {dow}");
    if rng.chance(30) {
        expr.push(' ');
        let seconds = *rng.pick(&["0", "30", "*/20", "59", "*"]);
        expr.push_str(seconds);
    }
    expr
}

/// Hand-picked cases: the module's own examples, DST edges, croniter quirks.
fn curated() -> Vec<(String, Option<&'static str>, &'static str, usize)> {
    let mut v = Vec::new();
    let ny_spring = "2025-03-08T12:00:00Z";
    let ny_autumn = "2025-11-01T12:00:00Z";
    for expr in [
        "30 2 * * *",
        "*/20 2 * * *",
        "30 * * * *",
        "0 2 * * *",
        "30 1 * * *",
        "*/30 * * * *",
        "*/15 1 * * *",
        "0 1-3 * * *",
        "30 2 * * * 15",
        "0 */2 * * *",
        "* 2 * * *",
        "30 1 * * 0",
        "0 0 * * *",
        "0 1,2 * * *",
        "59 1 * * * 59",
        "0 0-23 * * *",
    ] {
        v.push((expr.to_string(), Some("America/New_York"), ny_spring, 6));
        v.push((expr.to_string(), Some("America/New_York"), ny_autumn, 6));
        v.push((
            expr.to_string(),
            Some("Europe/Paris"),
            "2025-03-29T12:00:00Z",
            6,
        ));
        v.push((
            expr.to_string(),
            Some("Europe/Paris"),
            "2025-10-25T12:00:00Z",
            6,
        ));
        v.push((
            expr.to_string(),
            Some("Australia/Lord_Howe"),
            "2025-04-05T12:00:00Z",
            6,
        ));
        v.push((
            expr.to_string(),
            Some("Australia/Lord_Howe"),
            "2025-10-04T12:00:00Z",
            6,
        ));
        v.push((
            expr.to_string(),
            Some("Pacific/Chatham"),
            "2025-04-05T12:00:00Z",
            6,
        ));
        v.push((
            expr.to_string(),
            Some("America/Sao_Paulo"),
            "2018-11-03T12:00:00Z",
            6,
        ));
    }
    for expr in [
        "0 0 1,15 * MON",
        "0 0 1-31 * 1",
        "0 0 1-31 * */3",
        "0 0 L * *",
        "0 0 15W MAR,JUN *",
        "0 0 W31 * *",
        "0 0 30W * *",
        "0 0 29W 2 *",
        "0 0 * * fri#2",
        "0 0 * * L5",
        "0 0 * * 7",
        "0 0 15W * 1",
        "0 0 15W * 0",
        "0 0 8 * 1#2",
        "0 0 1 * 1#2",
        "0 0 * * FRI-MON",
        "5-5 0 1 1 *",
        "40/10 0 1 1 *",
        "59/15 0 1 1 *",
        "50-10/3 0 1 1 *",
        "52-10/3 * * * *",
        "0 0 * * 0-6,1#1",
        "0 0 1 * 0-6,1#1",
        "0 0 *,5 * 1",
        "0 0 * * *,1#2",
        "0 0 1 * *,1#2",
        "0 0 30 2 *",
        "0 0 29 2 *",
        "0 0 29 2 1",
        "0 0 31 * 5L",
        "0 0 L * L5",
        "0 0 15W * 1#3",
        "0 0 15-L * 1",
        "0 0 1 jan-mar/2 *",
        "0 0 ? * ?",
        "0 0 * * mon-fri#2",
        "0 0 1 2-1 *",
        "* * * * * */10",
        "*/7 * * * * */13",
        "0 0 1-30,L * 1",
        "0 0 1-30,L * *",
    ] {
        v.push((expr.to_string(), None, "2025-01-01T00:00:00Z", 8));
        v.push((
            expr.to_string(),
            Some("America/New_York"),
            "2025-02-20T00:00:00Z",
            8,
        ));
    }
    v
}

/// Starts of days on which `tz` changes its UTC offset, 2000..=2035.
fn transitions(tz: Tz) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = Utc.with_ymd_and_hms(2000, 1, 1, 12, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2036, 1, 1, 0, 0, 0).unwrap();
    let offset = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix().local_minus_utc();
    let mut prev = offset(t);
    while t < end {
        let next = t + Duration::days(1);
        let o = offset(next);
        if o != prev {
            out.push(t);
            prev = o;
        }
        t = next;
    }
    out
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Is `t` the later of the two instants of an ambiguous wall time in `tz`?
fn is_later_fold(t: DateTime<Utc>, tz: Tz) -> bool {
    let local = t.with_timezone(&tz).naive_local();
    match tz.from_local_datetime(&local) {
        LocalResult::Ambiguous(a, b) => a != b && b.with_timezone(&Utc) == t,
        _ => false,
    }
}

/// The four daylight-saving choices; `twice` with `shift` is croniter's own behaviour.
const ALL_DST: [Dst; 4] = [
    Dst {
        repeat: DstRepeat::Once,
        gap: DstGap::Shift,
    },
    Dst {
        repeat: DstRepeat::Once,
        gap: DstGap::Skip,
    },
    Dst {
        repeat: DstRepeat::Twice,
        gap: DstGap::Shift,
    },
    Dst {
        repeat: DstRepeat::Twice,
        gap: DstGap::Skip,
    },
];

/// Whether the local wall time of `t` in `tz` is a time `schedule` matches: the same
/// wall time taken as UTC (no gaps there) is the schedule's next instant after the
/// second before it.
fn wall_time_matches(schedule: &Schedule, t: DateTime<Utc>, tz: Tz) -> bool {
    let wall = t.with_timezone(&tz).naive_local().and_utc();
    schedule.next_after(wall - Duration::seconds(1), Tz::UTC, Dst::default()) == Some(wall)
}

struct Case {
    expr: String,
    tz: Option<&'static str>,
    start: DateTime<Utc>,
    count: usize,
}

fn oracle_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("CRONHOOK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/sdk/.venv/bin/python"));
    assert!(
        python.exists(),
        "croniter oracle: no Python at {} — run the venv setup first: scripts/venv.sh \
         (creates tests/sdk/.venv from tests/sdk/requirements.txt, which pins croniter==7.0.0), \
         or point CRONHOOK_TEST_PYTHON at a Python that has croniter 7 installed",
        python.display()
    );
    python
}

#[test]
fn schedule_matches_croniter() {
    let python = oracle_python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/croniter_oracle.py");
    let n_cases: usize = std::env::var("CRONHOOK_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let seed: u64 = std::env::var("CRONHOOK_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C0_FFEE_1234_5678);
    let started = Instant::now();

    // ---- cases
    // splitmix64 of the seed: nearby seeds give unrelated streams (and never 0)
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut rng = Rng((z ^ (z >> 31)) | 1);
    let zone_transitions: Vec<Vec<DateTime<Utc>>> = ZONES
        .iter()
        .map(|z| transitions(parse_timezone(*z).expect("zone")))
        .collect();
    let mut cases: Vec<Case> = curated()
        .into_iter()
        .map(|(expr, tz, start, count)| Case {
            expr,
            tz,
            start: DateTime::parse_from_rfc3339(start)
                .expect("start")
                .with_timezone(&Utc),
            count,
        })
        .collect();
    let base = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    while cases.len() < n_cases {
        let zi = rng.below(ZONES.len() as u64) as usize;
        let near = &zone_transitions[zi];
        let mut start = if !near.is_empty() && rng.chance(50) {
            *rng.pick(near) + Duration::seconds(rng.range(0, 3 * 86_400) as i64 - 36 * 3600)
        } else {
            base + Duration::seconds(rng.below(36 * 365 * 86_400) as i64)
        };
        match rng.below(10) {
            0 => start += Duration::milliseconds(rng.range(1, 999) as i64),
            1 | 2 => start -= Duration::seconds(i64::from(start.timestamp().rem_euclid(60) as i32)),
            _ => {}
        }
        let expr = if !near.is_empty() && rng.chance(25) {
            // just before a transition, with a time-of-day schedule
            start = *rng.pick(near) + Duration::seconds(rng.range(0, 30 * 3600) as i64 - 20 * 3600);
            dst_expression(&mut rng)
        } else {
            expression(&mut rng)
        };
        cases.push(Case {
            expr,
            tz: ZONES[zi],
            start,
            count: rng.range(3, 12) as usize,
        });
    }

    // ---- oracle
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let mut stdin = child.stdin.take().expect("stdin");
    let requests: Vec<String> = cases
        .iter()
        .map(|c| {
            json!({"expr": c.expr, "tz": c.tz, "start": iso(c.start), "count": c.count}).to_string()
        })
        .collect();
    let writer = std::thread::spawn(move || {
        for r in requests {
            if writeln!(stdin, "{r}").is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut read = || -> Value {
        let line = lines
            .next()
            .unwrap_or_else(|| {
                panic!(
                    "the croniter oracle ({}) stopped early; see its error above \
                     (is croniter 7 installed in that Python?)",
                    python.display()
                )
            })
            .expect("read oracle output");
        serde_json::from_str(&line).expect("oracle output is JSON")
    };
    let hello = read();
    let version = hello["croniter"].as_str().unwrap_or("").to_string();
    assert!(
        version.starts_with("7."),
        "oracle runs croniter {version:?}, expected 7.x"
    );

    // ---- compare
    let mut failures: Vec<String> = Vec::new();
    let (mut both_ok, mut both_err, mut documented_rejects) = (0, 0, 0);
    let (mut instants, mut autumn_excluded, mut exhausted) = (0usize, 0usize, 0usize);
    let mut gap_excluded = 0usize;
    for case in &cases {
        let resp = read();
        assert!(
            resp.get("oracle_error").is_none(),
            "oracle failed on {:?}: {resp}",
            case.expr
        );
        let tz = parse_timezone(case.tz).expect("zone");
        let ours = Schedule::parse(&case.expr);
        let ctx = format!(
            "expr={:?} tz={:?} start={}",
            case.expr,
            case.tz,
            iso(case.start)
        );
        let croniter_ok = resp["ok"].as_bool().unwrap_or(false);
        match (&ours, croniter_ok) {
            (Err(_), false) => both_err += 1,
            (Err(ScheduleError::InvalidSchedule { reason, .. }), true)
                if reason.contains("7-field") || reason.contains("random 'R'") =>
            {
                documented_rejects += 1
            }
            (Err(e), true) => failures.push(format!("{ctx}: croniter accepts, we reject: {e}")),
            (Ok(_), false) => failures.push(format!(
                "{ctx}: croniter rejects ({}: {}), we accept",
                resp["error"], resp["message"]
            )),
            (Ok(schedule), true) => {
                both_ok += 1;
                let fixed = resp["fixed"].as_bool().unwrap_or(false);
                let is_exhausted = resp["exhausted"].as_bool().unwrap_or(false);
                exhausted += usize::from(is_exhausted);
                let croniter: Vec<DateTime<Utc>> = resp["times"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        DateTime::parse_from_rfc3339(t.as_str().unwrap_or(""))
                            .expect("oracle time")
                            .with_timezone(&Utc)
                    })
                    .collect();
                let later_fold: Vec<bool> = croniter
                    .iter()
                    .map(|t| fixed && is_later_fold(*t, tz))
                    .collect();
                let moved: Vec<bool> = croniter
                    .iter()
                    .map(|t| !wall_time_matches(schedule, *t, tz))
                    .collect();
                autumn_excluded += later_fold.iter().filter(|x| **x).count();
                gap_excluded += moved.iter().filter(|x| **x).count();
                for dst in ALL_DST {
                    let expected: Vec<DateTime<Utc>> = croniter
                        .iter()
                        .zip(later_fold.iter().zip(&moved))
                        .filter(|(_, (later_fold, moved))| {
                            let dropped_by_once = dst.repeat == DstRepeat::Once && **later_fold;
                            let dropped_by_skip = dst.gap == DstGap::Skip && **moved;
                            !dropped_by_once && !dropped_by_skip
                        })
                        .map(|(t, _)| *t)
                        .collect();
                    let got = schedule.upcoming(case.start, tz, None, case.count, dst);
                    instants += expected.len();
                    let ok = if is_exhausted {
                        got == expected
                    } else {
                        got.len() == case.count && got[..expected.len()] == expected[..]
                    };
                    if !ok {
                        failures.push(format!(
                            "{ctx} {dst:?}: instants differ\n   croniter (less what this choice drops): {:?}{}\n   cronhook: {:?}",
                            expected.iter().map(|t| iso(*t)).collect::<Vec<_>>(),
                            if is_exhausted { " (then no more)" } else { "" },
                            got.iter().map(|t| iso(*t)).collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
    }
    writer.join().expect("writer thread");
    let _ = child.wait();

    eprintln!(
        "schedule_vs_croniter: {} cases (seed {seed}, croniter {version}) in {:.2?}: \
         {both_ok} accepted by both ({instants} instants compared under the four DST \
         choices, {exhausted} with no further date, {autumn_excluded} autumn-repeat instants \
         excluded under `once`, {gap_excluded} moved gap instants excluded under `skip`), \
         {both_err} rejected by both, \
         {documented_rejects} documented rejections",
        cases.len(),
        started.elapsed()
    );
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(40).collect();
        panic!(
            "{} of {} cases disagree with croniter:\n{}",
            failures.len(),
            cases.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
