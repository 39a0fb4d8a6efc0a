//! Cron schedules with the semantics of Python `croniter` 7, which LangGraph uses.
//!
//! The expression grammar is croniter's: five fields (`minute hour day-of-month month
//! day-of-week`) plus an optional sixth field for **seconds at the end** (croniter's
//! default `second_at_beginning=False`, so `* * * * * */10` fires every 10 seconds).
//! Names (`JAN`, `MON`), `L`, `W`, `#`, `?`, steps, ranges (including croniter's
//! wrap-around ranges such as `50-10` or `FRI-MON`) and the aliases `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` are
//! accepted exactly where croniter accepts them, and everything croniter rejects is
//! rejected.
//!
//! Matching of calendar fields is done by the [`croner`] crate. This module is the
//! adapter in front of it: it parses croniter's grammar itself, expands every field to
//! the set of values croniter would use, and hands croner canonical patterns (seconds
//! first, explicit value lists, `*` exactly where croniter treats a field as a
//! wildcard). Where croner's semantics differ from croniter's, the adapter bridges the
//! gap:
//!
//! * **Field order.** croner puts seconds first; the croniter 6-field form has them
//!   last. The adapter always renders six croner fields, seconds first (`0` for the
//!   5-field form).
//! * **Syntax croner rejects or reads differently.** `a/n` (start with step), `W15`,
//!   `L5` (croniter's spelling of "last Friday"), wrap-around ranges, equal ranges
//!   (`5-5`, which croniter widens to the whole field), `*` inside a list, `?` rules.
//!   All are expanded by the adapter into explicit lists.
//! * **Day-of-month / day-of-week.** When both are restricted croniter combines them
//!   with OR by computing the next date for each side and taking the earlier one; the
//!   adapter does the same with one croner pattern per side (croner is used with
//!   `dom_and_dow` = AND inside each pattern). When `W` or `#`/`L<n>` is involved
//!   croniter keeps them on *both* sides, so `15W * MON` fires on the 15W days only,
//!   `1 * 1#2` fires on the second Monday only, and croniter finds *no* date at all
//!   if the intersection of both sides is empty (e.g. `0 0 1 * 1#2`); the adapter
//!   reproduces that.
//! * **`W` past the end of a month.** croniter clamps `31W` to the month's last day
//!   (April → nearest weekday to the 30th); croner ignores such months. The adapter
//!   adds an `LW` pattern for the months concerned.
//! * **Time zones and DST.** croner's DST rules (OCPS) differ from croniter's, so
//!   croner is only asked for *wall-clock* (naive) matches and this module places them
//!   in the time zone with croniter's algorithm: a match in a spring-forward gap runs
//!   once, right after the gap, when the hour field is not `*` (America/New_York
//!   `30 2 * * *` fires at 03:00; croniter moves the time forward in whole minutes, so
//!   `30 2 * * * 15` fires at 03:00:15), and is skipped when the hour field is `*` or
//!   covers all 24 hours (`30 * * * *` fires at 01:30 and then 03:30). This is the
//!   default gap choice, [`DstGap::Shift`]; see *Daylight-saving choices* below.
//! * **Search window.** croniter gives up (raises `CroniterBadDateError`) when no match
//!   exists within 50 years; this module returns `None` then. A schedule that can never
//!   fire (`0 0 30 2 *`, `0 0 1 * 1#2`) is detected once, when it is parsed, by checking
//!   every day of one 28-year calendar cycle; croner alone would search up to year 5000
//!   on every query.
//! * **Autumn fold for interval schedules.** croner (OCPS rules) and croniter agree that
//!   interval / wildcard schedules run in both passes of a repeated hour; the adapter
//!   computes it with croniter's algorithm so the exact instants match croniter.
//!
//! Daylight-saving choices ([`Dst`], a cron's `dst_repeat` and `dst_gap`):
//!
//! * **Repeated hour, [`DstRepeat::Once`]** (the default). A *fixed-time* schedule (one
//!   value each in the second, minute and hour fields, e.g. `30 1 * * *`) whose time
//!   falls in the repeated hour of a DST fall-back runs **once**, at the first
//!   occurrence (01:30 EDT in America/New_York). This is the one DST rule where the
//!   default differs from croniter. Schedules with several or wildcard times
//!   (`*/15 1 * * *`, `0 * * * *`) run through both passes of the repeated hour, as in
//!   croniter.
//! * **Repeated hour, [`DstRepeat::Twice`]**: croniter's behaviour, a fixed-time
//!   schedule runs at both occurrences (01:30 EDT and 01:30 EST). With `Twice` and
//!   `Shift` every instant is croniter's.
//! * **Gap, [`DstGap::Shift`]** (the default): croniter's behaviour, described under
//!   *Time zones and DST* above.
//! * **Gap, [`DstGap::Skip`]**: a match in a spring-forward gap does not run at all;
//!   the schedule goes on with its next match that exists (`30 2 * * *` skips the day
//!   of the change, `0 1-3 * * *` runs at 01:00 and 03:00 that day, `30 2 * * * 15`
//!   skips the day too). Schedules whose hour field is `*` or covers all 24 hours
//!   behave the same under both choices.
//!
//! Deliberate differences from croniter: the default `Once` above, and **random `R`
//! fields** (croniter re-draws them every time it is constructed) and the **7-field
//! form with a year column**, which are rejected.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, Weekday};
use entity::states::{DstGap, DstRepeat};

pub mod jitter;
mod words;

/// Errors of schedule and time zone parsing. The `Display` strings start with LangGraph's
/// exact text; a bad schedule then says precisely what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "Invalid cron schedule: '{expr}'. Reason: Invalid cron schedule. Ensure the schedule uses the standard cron format (minute hour day_of_month month day_of_week). Example: '*/5 * * * *' for every 5 minutes. ({reason})"
    )]
    InvalidSchedule { expr: String, reason: String },
    #[error("Invalid timezone: '{0}'. Use IANA timezone format (e.g. 'America/New_York').")]
    InvalidTimezone(String),
}

/// A cron's daylight-saving choices (see the module documentation). The default is the
/// schedule's behaviour for crons that make no choice: `once` and `shift`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dst {
    /// A fixed-time schedule in a repeated (fall-back) hour: once or twice.
    pub repeat: DstRepeat,
    /// A match in a spring-forward gap: right after the gap, or not at all.
    pub gap: DstGap,
}

impl Dst {
    /// The choices stored with `cron`.
    pub fn of(cron: &entity::cron::Model) -> Dst {
        Dst {
            repeat: cron.dst_repeat,
            gap: cron.dst_gap,
        }
    }
}

/// Parses an IANA time zone name; `None` means UTC.
pub fn parse_timezone(name: Option<&str>) -> Result<Tz, ScheduleError> {
    match name {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| ScheduleError::InvalidTimezone(name.to_string())),
    }
}

/// A parsed cron schedule (croniter semantics, see the module documentation).
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    has_seconds: bool,
    /// croniter's `"*" in expanded[HOUR_FIELD]`: decides what happens in a DST gap.
    hour_star: bool,
    /// One value each in the second, minute and hour fields.
    fixed_time: bool,
    branches: Vec<Matcher>,
    combine: Combine,
    /// No branch combination can ever match (checked once, when parsed).
    never: bool,
    /// The fields as croniter expands them (minute, hour, day, month, weekday, second),
    /// for describing the schedule in words.
    fields: std::sync::Arc<Vec<Field>>,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expr", &self.expr)
            .field("has_seconds", &self.has_seconds)
            .field("hour_star", &self.hour_star)
            .field("fixed_time", &self.fixed_time)
            .field("branches", &self.branches)
            .field("combine", &self.combine)
            .field("never", &self.never)
            .finish()
    }
}

/// How the results of several branches are combined (croniter's day-of-month /
/// day-of-week split).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combine {
    /// The earliest branch result; none only if every branch has none.
    Earliest,
    /// The earliest branch result, but none if any branch has none.
    EarliestIfAll,
}

/// One branch: the union of a few croner patterns, matched on wall-clock time.
#[derive(Clone)]
struct Matcher {
    patterns: Vec<String>,
    crons: Vec<Cron>,
    never: bool,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("patterns", &self.patterns)
            .field("never", &self.never)
            .finish()
    }
}

/// croniter gives up when it finds no match within this many years.
const MAX_YEARS_BETWEEN_MATCHES: i32 = 50;
/// Bound on the DST retry loops (each step moves forward to the next match).
const MAX_DST_STEPS: usize = 1000;

impl Matcher {
    fn new(patterns: Vec<String>) -> Result<Matcher, String> {
        let parser = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .dom_and_dow(true)
            .build();
        let crons = patterns
            .iter()
            .map(|p| {
                parser
                    .parse(p)
                    .map_err(|e| format!("internal error: croner rejected '{p}': {e}"))
            })
            .collect::<Result<Vec<Cron>, String>>()?;
        let never = !crons.iter().any(matches_some_day);
        Ok(Matcher {
            patterns,
            crons,
            never,
        })
    }

    /// First wall-clock time at or after `from` that matches, within croniter's window.
    fn next_naive(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.never {
            return None;
        }
        let limit = from.year().saturating_add(MAX_YEARS_BETWEEN_MATCHES);
        self.crons
            .iter()
            .filter_map(|c| c.find_next_occurrence(&from, true).ok())
            .filter(|t| t.year() <= limit)
            .min()
    }
}

impl Schedule {
    /// Parses a cron expression as croniter 7 does (seconds, if given, last).
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        build(expr).map_err(|reason| ScheduleError::InvalidSchedule {
            expr: expr.to_string(),
            reason,
        })
    }

    /// The expression as given to [`Schedule::parse`].
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// Whether the expression has the 6th (seconds) field.
    pub fn has_seconds(&self) -> bool {
        self.has_seconds
    }

    /// First instant strictly after `after`, computed in `tz` with the daylight-saving
    /// choices `dst`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz, dst: Dst) -> Option<DateTime<Utc>> {
        if self.never {
            return None;
        }
        let mut now = after.with_timezone(&tz);
        for _ in 0..4 {
            let next = self.next_local(&now, dst.gap)?;
            // `once`: a fixed-time schedule runs once in a repeated (fall-back) hour, at
            // the first of the two instants (croniter, `twice`, runs at both).
            if dst.repeat == DstRepeat::Once && self.fixed_time && is_later_fold(&next) {
                now = next;
                continue;
            }
            return Some(next.with_timezone(&Utc));
        }
        None
    }

    /// Up to `count` instants strictly after `after`, stopping at `end` (inclusive bound:
    /// instants later than `end` are not returned).
    pub fn upcoming(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
        end: Option<DateTime<Utc>>,
        count: usize,
        dst: Dst,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cur = after;
        while out.len() < count {
            let Some(next) = self.next_after(cur, tz, dst) else {
                break;
            };
            if end.is_some_and(|end| next > end) {
                break;
            }
            out.push(next);
            cur = next;
        }
        out
    }

    /// croniter's `_calc_next`: run each branch, combine.
    fn next_local(&self, now: &DateTime<Tz>, gap: DstGap) -> Option<DateTime<Tz>> {
        let mut best: Option<DateTime<Tz>> = None;
        for branch in &self.branches {
            match self.calc(branch, now, gap) {
                Some(t) if best.as_ref().is_none_or(|b| t < *b) => best = Some(t),
                Some(_) => {}
                None if self.combine == Combine::EarliestIfAll => return None,
                None => {}
            }
        }
        best
    }

    /// The step croniter adds to "now" before searching, and the truncation after it.
    fn advance(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.has_seconds {
            t.checked_add_signed(TimeDelta::seconds(1))?
                .with_nanosecond(0)
        } else {
            t.checked_add_signed(TimeDelta::minutes(1))?
                .with_second(0)?
                .with_nanosecond(0)
        }
    }

    /// croniter's `_calc` for a time-zone-aware "now": next wall-clock match, placed in
    /// the zone with croniter's gap / fold / offset-change rules (`shift`), or with every
    /// match in a gap skipped (`skip`).
    fn calc(&self, m: &Matcher, now: &DateTime<Tz>, gap: DstGap) -> Option<DateTime<Tz>> {
        let tz = now.timezone();
        let naive_now = now.naive_local();
        let mut local = m.next_naive(self.advance(naive_now)?)?;
        let (mut aware, mut exists) = add_tzinfo(&tz, local, now)?;
        if !exists && (aware <= *now || self.hour_star || gap == DstGap::Skip) {
            // The match does not exist and moving forward to the end of the gap is not
            // wanted: take the next match that exists.
            let mut steps = 0;
            while !exists {
                steps += 1;
                if steps > MAX_DST_STEPS {
                    return None;
                }
                // croniter steps match by match; every match before the end of the gap
                // is skipped the same way, so start at the first existing time.
                let from = first_existing_at_or_after(&tz, self.advance(local)?)?;
                local = m.next_naive(from)?;
                (aware, exists) = add_tzinfo(&tz, local, now)?;
            }
        }
        let delta = offset_seconds(&aware) - offset_seconds(now);
        if delta == 0 {
            return Some(aware);
        }
        // The UTC offset changed: a match may exist under the other offset first
        // (e.g. the repeated hour after a fall-back).
        let alt_start = naive_now.checked_add_signed(TimeDelta::seconds(delta))?;
        let alt = m.next_naive(self.advance(alt_start)?)?;
        let (alt_aware, alt_exists) = add_tzinfo(&tz, alt, now)?;
        if !alt_exists || alt_aware <= *now {
            return Some(aware);
        }
        Some(if aware > alt_aware { alt_aware } else { aware })
    }
}

fn offset_seconds(t: &DateTime<Tz>) -> i64 {
    i64::from(t.offset().fix().local_minus_utc())
}

/// Whether the pattern matches on at least one day, ever. The time fields always hold
/// a value, so only the day can be impossible (`30 2`, `1 * 1#2` with AND, ...). Between
/// 1901 and 2099 the calendar repeats every 28 years, and 2000..=2027 holds every kind
/// of year (leap or not, starting on each weekday), so every possible month layout.
fn matches_some_day(cron: &Cron) -> bool {
    let pattern = &cron.pattern;
    for year in 2000..2028 {
        for month in 1..=12u32 {
            if !pattern.month_match(month).unwrap_or(false) {
                continue;
            }
            let mut date = chrono::NaiveDate::from_ymd_opt(year, month, 1);
            while let Some(d) = date.filter(|d| d.month() == month) {
                let weekday = Weekday::from_days_from_sunday(d.weekday().num_days_from_sunday());
                if pattern
                    .day_match(year, month, d.day(), weekday)
                    .unwrap_or(false)
                {
                    return true;
                }
                date = d.succ_opt();
            }
        }
    }
    false
}

/// croniter's `_add_tzinfo` (forward direction): the instant for wall-clock time
/// `local`, and whether that wall-clock time exists. A time in a gap moves forward a
/// minute at a time until it exists; an ambiguous time takes its first instant unless
/// that is not after `now`.
fn add_tzinfo(tz: &Tz, local: NaiveDateTime, now: &DateTime<Tz>) -> Option<(DateTime<Tz>, bool)> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some((t, true)),
        LocalResult::Ambiguous(a, b) => Some((if a > *now { a } else { b }, true)),
        LocalResult::None => {
            let mut shifted = local;
            for _ in 0..(48 * 60) {
                shifted = shifted.checked_add_signed(TimeDelta::minutes(1))?;
                match tz.from_local_datetime(&shifted) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                        return Some((t, false));
                    }
                    LocalResult::None => {}
                }
            }
            None
        }
    }
}

/// The earliest wall-clock time at or after `local` that exists in `tz` (the end of a
/// DST gap when `local` is inside one).
fn first_existing_at_or_after(tz: &Tz, local: NaiveDateTime) -> Option<NaiveDateTime> {
    let exists = |t: &NaiveDateTime| !matches!(tz.from_local_datetime(t), LocalResult::None);
    if exists(&local) {
        return Some(local);
    }
    let mut hi = local;
    let mut lo = local;
    for _ in 0..(48 * 60) {
        lo = hi;
        hi = hi.checked_add_signed(TimeDelta::minutes(1))?;
        if exists(&hi) {
            break;
        }
    }
    if !exists(&hi) {
        return None;
    }
    // `lo` does not exist, `hi` does: bisect to the second.
    while hi.signed_duration_since(lo) > TimeDelta::seconds(1) {
        let half = hi.signed_duration_since(lo).num_seconds() / 2;
        let mid = lo.checked_add_signed(TimeDelta::seconds(half))?;
        if exists(&mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Whether `t` is the second instant of a wall-clock time that occurs twice.
fn is_later_fold(t: &DateTime<Tz>) -> bool {
    match t.timezone().from_local_datetime(&t.naive_local()) {
        LocalResult::Ambiguous(a, b) => a != b && *t == b,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// Parsing: croniter's `_expand`, field by field.
// ---------------------------------------------------------------------------------

const MINUTE: usize = 0;
const HOUR: usize = 1;
const DOM: usize = 2;
const MONTH: usize = 3;
const DOW: usize = 4;
const SECOND: usize = 5;

const RANGES: [(u64, u64); 6] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6), (0, 59)];
const LEN_MEANS_ALL: [usize; 6] = [60, 24, 31, 12, 7, 60];

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DOW_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// `n`-th weekday of the month, or the last one (`L<n>` in croniter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Nth {
    Nth(u64),
    Last,
}

/// One field as croniter expands it.
#[derive(Debug, Default, Clone)]
struct Field {
    /// Integer values (bit `v` set for value `v`).
    values: u64,
    /// croniter's `expanded[i][0] == "*"`: the field does not restrict anything.
    star: bool,
    /// Day of month: `L`.
    last: bool,
    /// Day of month: `nW` / `Wn`.
    nearest_weekday: Option<u64>,
    /// Day of week: `d#n` / `Ln`, by weekday.
    nth: BTreeMap<u64, BTreeSet<Nth>>,
    /// croniter's expanded list is just `["*"]`.
    collapsed: bool,
    /// Number of entries in croniter's expanded list (for its `#` mixing check).
    expanded_len: usize,
}

impl Field {
    fn list(&self) -> Vec<u64> {
        (0..64).filter(|v| self.values & (1 << v) != 0).collect()
    }

    fn render(&self) -> String {
        if self.star {
            "*".to_string()
        } else {
            join(self.list())
        }
    }

    fn single_value(&self) -> bool {
        !self.star && self.values.count_ones() == 1 && !self.last
    }
}

fn join(values: impl IntoIterator<Item = u64>) -> String {
    values
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A value as croniter sees it before range checks.
enum Value {
    Int(u64),
    Star,
    Last,
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Decimal digits to a number, saturating (huge values are out of range anyway).
fn number(s: &str) -> u64 {
    s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

/// croniter's `ALPHACONV` lookup.
fn alphaconv(field: usize, key: &str, expr: &str) -> Result<Value, String> {
    let found = match field {
        DOM if key == "l" => Some(Value::Last),
        MONTH => MONTH_NAMES
            .iter()
            .position(|n| *n == key)
            .map(|i| Value::Int(i as u64 + 1)),
        DOW => DOW_NAMES
            .iter()
            .position(|n| *n == key)
            .map(|i| Value::Int(i as u64)),
        _ => None,
    };
    found.ok_or_else(|| format!("[{expr}] is not acceptable"))
}

/// croniter's `value_alias`: only day-of-week 7 becomes 0 (Sunday).
fn value_alias(field: usize, v: u64) -> u64 {
    if field == DOW && v == 7 { 0 } else { v }
}

/// croniter's `step_search_re`: `^([^-]+)-([^-/]+)(/(\d+))?$`.
fn step_search(t: &str) -> Option<(&str, &str, Option<&str>)> {
    let dash = t.find('-')?;
    let low = &t[..dash];
    if low.is_empty() {
        return None;
    }
    let rest = &t[dash + 1..];
    let high_len = rest.find(['-', '/']).unwrap_or(rest.len());
    let high = &rest[..high_len];
    if high.is_empty() {
        return None;
    }
    let tail = &rest[high_len..];
    if tail.is_empty() {
        return Some((low, high, None));
    }
    let step = tail.strip_prefix('/')?;
    is_digits(step).then_some((low, high, Some(step)))
}

/// croniter's `special_dow_re` on a day-of-week element: `he#n` or `l<n>`.
/// Returns the element to expand and its nth marker.
fn special_dow(e: &str) -> Option<(&str, &str, bool)> {
    if let Some((he, last)) = e.split_once('#') {
        if !is_digits(last) {
            return None;
        }
        let name_range = |names: &[&str]| match he.split_once('-') {
            Some((a, b)) => names.contains(&a) && names.contains(&b),
            None => names.contains(&he),
        };
        let word = !he.is_empty() && he.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if name_range(&DOW_NAMES) || name_range(&MONTH_NAMES) || word {
            return Some((he, last, false));
        }
        return None;
    }
    let last = e.strip_prefix('l')?;
    is_digits(last).then_some((last, last, true))
}

/// croniter's `nearest_weekday_re`: `^(?:(\d+)w|w(\d+))$`.
fn nearest_weekday(e: &str) -> Option<u64> {
    let digits = e
        .strip_suffix('w')
        .filter(|d| is_digits(d))
        .or_else(|| e.strip_prefix('w').filter(|d| is_digits(d)))?;
    Some(number(digits))
}

/// croniter's `hash_expression_re` on a whole field: `^(h|r)(\(\d+-\d+\))?(/\d+)?$`.
fn hash_expression(field: &str) -> Option<char> {
    let kind = field.chars().next().filter(|c| *c == 'h' || *c == 'r')?;
    let mut rest = &field[1..];
    if let Some(r) = rest.strip_prefix('(') {
        let close = r.find(')')?;
        let (a, b) = r[..close].split_once('-')?;
        if !is_digits(a) || !is_digits(b) {
            return None;
        }
        rest = &r[close + 1..];
    }
    if !rest.is_empty() {
        let step = rest.strip_prefix('/')?;
        if !is_digits(step) {
            return None;
        }
    }
    Some(kind)
}

/// Expands one field like croniter's `_expand` does.
fn expand_field(idx: usize, raw: &str, tokens: &[&str], expr: &str) -> Result<Field, String> {
    let (fmin, fmax) = RANGES[idx];
    match hash_expression(raw) {
        Some('h') => return Err("Hashed definitions must include hash_id".to_string()),
        Some(_) => {
            return Err(format!(
                "[{expr}] is not acceptable: random 'R' definitions are not supported"
            ));
        }
        None => {}
    }
    let mut text = raw;
    if raw.contains('?') {
        if raw != "?" {
            return Err(format!(
                "[{expr}] is not acceptable. Question mark can not used with other characters"
            ));
        }
        if idx != DOM && idx != DOW {
            return Err(format!(
                "[{expr}] is not acceptable. Question mark can only used in day_of_month or day_of_week"
            ));
        }
        text = "*";
    }

    let elements: Vec<&str> = text.split(',').collect();
    let mut field = Field::default();
    let mut star = false;
    let mut count_last = false;

    for element in &elements {
        let mut e: &str = element;
        let mut nth: Option<Nth> = None;

        let special = if idx == DOW { special_dow(e) } else { None };
        if let Some((inner, last, is_l)) = special {
            if is_l {
                nth = Some(Nth::Last);
            } else {
                let n = number(last);
                if !(1..=5).contains(&n) {
                    return Err(format!(
                        "[{expr}] is not acceptable. Invalid day_of_week value: '{last}'"
                    ));
                }
                nth = Some(Nth::Nth(n));
            }
            e = inner;
        }

        let nearest = if idx == DOM { nearest_weekday(e) } else { None };
        if let Some(day) = nearest {
            if !(1..=31).contains(&day) {
                return Err(format!(
                    "[{expr}] is not acceptable, nearest weekday day value '{day}' out of range"
                ));
            }
            if elements.len() > 1 {
                return Err(format!(
                    "[{expr}] is not acceptable. 'W' can only be used with a single day value, not in a list or range"
                ));
            }
            field.nearest_weekday = Some(day);
            field.values |= 1 << day;
            continue;
        }

        // "*/n" -> "min-max/n"
        let mut t: String = match e.strip_prefix('*') {
            Some(rest) if rest.starts_with('/') && rest.len() > 1 => format!("{fmin}-{fmax}{rest}"),
            _ => e.to_string(),
        };
        let mut start_with_step = false;
        let mut parts =
            step_search(&t).map(|(l, h, s)| (l.to_string(), h.to_string(), s.map(str::to_string)));
        if parts.is_none() {
            // "a/n" -> "a-max/n" (split at the last '/' with text on both sides)
            let slash = e
                .char_indices()
                .rev()
                .find(|&(i, c)| c == '/' && i > 0 && i + 1 < e.len())
                .map(|(i, _)| i);
            if let Some(i) = slash {
                t = format!("{}-{fmax}/{}", &e[..i], &e[i + 1..]);
            } else {
                t = e.to_string();
            }
            parts = step_search(&t)
                .map(|(l, h, s)| (l.to_string(), h.to_string(), s.map(str::to_string)));
            start_with_step = parts.is_some();
        }

        if let Some((low, mut high, step)) = parts {
            if idx == DOM && high == "l" {
                high = "31".to_string();
            }
            let low_v = if is_digits(&low) {
                Value::Int(number(&low))
            } else {
                alphaconv(idx, &low, expr)?
            };
            let high_v = if is_digits(&high) {
                Value::Int(number(&high))
            } else {
                alphaconv(idx, &high, expr)?
            };
            let step = step.as_deref().map(number).unwrap_or(1);
            if step == 0 {
                return Err(format!(
                    "[{expr}] step '0' in field {idx} is not acceptable"
                ));
            }
            let (Value::Int(low), Value::Int(high)) = (low_v, high_v) else {
                return Err(format!(
                    "[{expr}] bands '{low}-{high}' in field {idx} are not acceptable"
                ));
            };
            let (mut low, mut high) = (value_alias(idx, low), value_alias(idx, high));
            if low.max(high) > fmax {
                return Err(format!("{expr} is out of bands"));
            }
            let start_at_field_max = start_with_step && low == high;
            if low == high && !start_with_step {
                (low, high) = (fmin, fmax);
            }
            // Steps wider than any field behave alike; keep the arithmetic small.
            let step = step.min(1000);
            let items: Vec<u64> = if start_at_field_max {
                vec![low]
            } else if low > high {
                // Wrap-around range ("50-10", "FRI-MON"), with croniter's own rule for
                // where the second part starts.
                let mut rng: Vec<u64> = (low..=fmax).step_by(step as usize).collect();
                let mut to_skip = 0;
                if let Some(&last) = rng.last() {
                    let already_skipped = fmax - last;
                    let curpos = last - fmin;
                    if curpos + step > fmax - fmin + 1 && already_skipped < step {
                        to_skip = step - already_skipped;
                    }
                }
                rng.extend((fmin + to_skip..=high).step_by(step as usize));
                rng
            } else {
                (low..=high).step_by(step as usize).collect()
            };
            for item in items {
                if item < fmin || item > fmax {
                    return Err(format!("[{expr}] is not acceptable, out of range"));
                }
                field.values |= 1 << item;
                if let Some(n) = nth {
                    field.nth.entry(item).or_default().insert(n);
                }
            }
        } else {
            if t.starts_with('-') {
                return Err(format!(
                    "[{expr}] is not acceptable, negative numbers not allowed"
                ));
            }
            let value = if t == "*" {
                Value::Star
            } else if is_digits(&t) {
                Value::Int(number(&t))
            } else {
                alphaconv(idx, &t, expr)?
            };
            match value {
                Value::Star => star = true,
                Value::Last => count_last = true,
                Value::Int(v) => {
                    let v = value_alias(idx, v);
                    if v < fmin || v > fmax {
                        return Err(format!("[{expr}] is not acceptable, out of range"));
                    }
                    field.values |= 1 << v;
                    if let Some(n) = nth {
                        field.nth.entry(v).or_default().insert(n);
                    }
                }
            }
        }
    }

    field.last = count_last;
    let res_len = field.values.count_ones() as usize + usize::from(star) + usize::from(count_last);
    let mut collapse = res_len == 1 && star;
    if res_len == LEN_MEANS_ALL[idx] {
        // croniter keeps a full day-of-month (day-of-week) list when the other day
        // field has no '*', so that the OR of both fields still applies.
        let keep = (idx == DOM && !tokens[DOW].contains('*'))
            || (idx == DOW && !tokens[DOM].contains('*'));
        if !keep {
            collapse = true;
        }
    }
    field.star = collapse || star;
    field.collapsed = collapse;
    field.expanded_len = if collapse { 1 } else { res_len };
    Ok(field)
}

/// Day-of-month filter of one branch.
enum DomFilter<'a> {
    Any,
    Days(&'a Field),
    Nearest(u64),
}

/// Day-of-week filter of one branch.
enum DowFilter<'a> {
    Any,
    Days(&'a Field),
    Nth(&'a Field),
}

fn build(expr: &str) -> Result<Schedule, String> {
    let lowered = expr.to_lowercase();
    let aliased = match lowered.as_str() {
        "@midnight" | "@daily" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    // Python's `\S+` with re.ASCII: fields are separated by ASCII whitespace only.
    let tokens: Vec<&str> = aliased
        .split([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
        .filter(|s| !s.is_empty())
        .collect();
    match tokens.len() {
        5 | 6 => {}
        7 => {
            return Err(
                "The 7-field form (with a year column) is not supported; use 5 fields, or 6 with seconds last."
                    .to_string(),
            );
        }
        _ => {
            return Err(
                "Exactly 5 or 6 columns has to be specified for iterator expression.".to_string(),
            );
        }
    }
    let has_seconds = tokens.len() == 6;

    let mut fields = Vec::with_capacity(tokens.len());
    for (idx, raw) in tokens.iter().enumerate() {
        fields.push(expand_field(idx, raw, &tokens, expr)?);
    }

    let dow = &fields[DOW];
    if !dow.nth.is_empty() {
        let plain = !dow.collapsed
            && (0..7u64).any(|d| dow.values & (1 << d) != 0 && !dow.nth.contains_key(&d));
        if plain && dow.expanded_len != LEN_MEANS_ALL[DOW] {
            return Err(format!(
                "day-of-week field does not support mixing literal values and nth day of week syntax.  Cron: '{expr}'"
            ));
        }
    }

    let dom = &fields[DOM];
    let seconds = if has_seconds {
        fields[SECOND].render()
    } else {
        "0".to_string()
    };
    let minutes = fields[MINUTE].render();
    let hours = fields[HOUR].render();
    let months = &fields[MONTH];

    let dom_filter = match dom.nearest_weekday {
        Some(d) => DomFilter::Nearest(d),
        None if dom.star => DomFilter::Any,
        None => DomFilter::Days(dom),
    };
    let dow_filter = if !dow.nth.is_empty() {
        DowFilter::Nth(dow)
    } else if dow.star {
        DowFilter::Any
    } else {
        DowFilter::Days(dow)
    };

    // croniter's `_calc_next`: with both day fields restricted it runs one search with
    // day-of-week blanked and one with day-of-month blanked and takes the earlier. `W`
    // and `#`/`L<n>` are not blanked, so then each side still carries them.
    let (pairs, combine) = if dom.star || dow.star {
        (vec![(dom_filter, dow_filter)], Combine::Earliest)
    } else if dom.nearest_weekday.is_none() && dow.nth.is_empty() {
        (
            vec![(dom_filter, DowFilter::Any), (DomFilter::Any, dow_filter)],
            Combine::Earliest,
        )
    } else {
        let first_dow = if dow.nth.is_empty() {
            DowFilter::Any
        } else {
            DowFilter::Nth(dow)
        };
        let second_dom = match dom.nearest_weekday {
            Some(d) => DomFilter::Nearest(d),
            None => DomFilter::Any,
        };
        (
            vec![(dom_filter, first_dow), (second_dom, dow_filter)],
            Combine::EarliestIfAll,
        )
    };

    let mut branches = Vec::with_capacity(pairs.len());
    for (dom_f, dow_f) in pairs {
        let dow_text = match dow_f {
            DowFilter::Any => "*".to_string(),
            DowFilter::Days(f) => join(f.list()),
            DowFilter::Nth(f) => f
                .nth
                .iter()
                .flat_map(|(day, ns)| {
                    ns.iter().map(move |n| match n {
                        Nth::Nth(n) => format!("{day}#{n}"),
                        Nth::Last => format!("{day}L"),
                    })
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        let mut variants: Vec<(String, String)> = Vec::new();
        match dom_f {
            DomFilter::Any => variants.push(("*".to_string(), months.render())),
            DomFilter::Days(f) => {
                let mut parts: Vec<String> = f.list().iter().map(u64::to_string).collect();
                if f.last {
                    parts.push("L".to_string());
                }
                variants.push((parts.join(","), months.render()));
            }
            DomFilter::Nearest(d) => {
                let selected = |m: &u64| months.star || months.values & (1 << m) != 0;
                // `dW` only in months that can have day `d`: a pattern croner can never
                // match would make it search thousands of years on every call.
                let long: Vec<u64> = (1..=12u64)
                    .filter(|m| max_month_len(*m) >= d)
                    .filter(selected)
                    .collect();
                let all_selected = (1..=12u64).filter(selected).count();
                if long.len() == all_selected {
                    variants.push((format!("{d}W"), months.render()));
                } else if !long.is_empty() {
                    variants.push((format!("{d}W"), join(long)));
                }
                // croniter clamps `dW` to the last day in months shorter than `d`;
                // croner skips those months. The nearest weekday to the last day is `LW`.
                let short: Vec<u64> = (1..=12u64)
                    .filter(|m| min_month_len(*m) < d)
                    .filter(selected)
                    .collect();
                if !short.is_empty() {
                    variants.push(("LW".to_string(), join(short)));
                }
            }
        }
        let patterns = variants
            .into_iter()
            .map(|(dom_text, month_text)| {
                format!("{seconds} {minutes} {hours} {dom_text} {month_text} {dow_text}")
            })
            .collect();
        branches.push(Matcher::new(patterns)?);
    }

    let never = match combine {
        Combine::Earliest => branches.iter().all(|b| b.never),
        Combine::EarliestIfAll => branches.iter().any(|b| b.never),
    };
    let fixed_time = fields[MINUTE].single_value()
        && fields[HOUR].single_value()
        && (!has_seconds || fields[SECOND].single_value());

    Ok(Schedule {
        expr: expr.to_string(),
        has_seconds,
        hour_star: fields[HOUR].star,
        fixed_time,
        branches,
        combine,
        never,
        fields: std::sync::Arc::new(fields),
    })
}

/// The most days a month has (February in a leap year).
fn max_month_len(month: u64) -> u64 {
    match month {
        2 => 29,
        other => min_month_len(other),
    }
}

fn min_month_len(month: u64) -> u64 {
    match month {
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        parse_timezone(Some(name)).expect("test time zone")
    }

    fn next_n(expr: &str, zone: &str, start: &str, n: usize) -> Vec<String> {
        next_dst(expr, zone, start, n, Dst::default())
    }

    fn next_dst(expr: &str, zone: &str, start: &str, n: usize, dst: Dst) -> Vec<String> {
        let s = Schedule::parse(expr).expect("valid test expression");
        s.upcoming(utc(start), tz(zone), None, n, dst)
            .iter()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    fn reason(expr: &str) -> String {
        match Schedule::parse(expr) {
            Err(ScheduleError::InvalidSchedule { reason, .. }) => reason,
            other => panic!("expected InvalidSchedule for {expr:?}, got {other:?}"),
        }
    }

    #[test]
    fn error_messages_match_langgraph() {
        let err = Schedule::parse("* * *").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid cron schedule: '* * *'. Reason: Invalid cron schedule. Ensure the schedule uses the standard cron format (minute hour day_of_month month day_of_week). Example: '*/5 * * * *' for every 5 minutes. (Exactly 5 or 6 columns has to be specified for iterator expression.)"
        );
        let err = parse_timezone(Some("Mars/Base")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid timezone: 'Mars/Base'. Use IANA timezone format (e.g. 'America/New_York')."
        );
        assert_eq!(parse_timezone(None).unwrap(), Tz::UTC);
        assert_eq!(
            parse_timezone(Some("Europe/Paris")).unwrap(),
            Tz::Europe__Paris
        );
    }

    #[test]
    fn accessors() {
        let s = Schedule::parse("*/5 * * * * 30").unwrap();
        assert!(s.has_seconds());
        assert_eq!(s.expression(), "*/5 * * * * 30");
        assert!(!Schedule::parse("@daily").unwrap().has_seconds());
    }

    #[test]
    fn basic_next() {
        assert_eq!(
            next_n("*/15 9-10 * * *", "UTC", "2025-01-01T09:20:00Z", 4),
            [
                "2025-01-01T09:30:00Z",
                "2025-01-01T09:45:00Z",
                "2025-01-01T10:00:00Z",
                "2025-01-01T10:15:00Z"
            ]
        );
        // strictly after
        assert_eq!(
            next_n("0 12 * * *", "UTC", "2025-01-01T12:00:00Z", 1),
            ["2025-01-02T12:00:00Z"]
        );
        // sub-second start
        assert_eq!(
            next_n("0 12 * * *", "UTC", "2025-01-01T11:59:59.900Z", 1),
            ["2025-01-01T12:00:00Z"]
        );
    }

    #[test]
    fn seconds_field_is_last() {
        assert_eq!(
            next_n("* * * * * */10", "UTC", "2025-01-01T00:00:00Z", 3),
            [
                "2025-01-01T00:00:10Z",
                "2025-01-01T00:00:20Z",
                "2025-01-01T00:00:30Z"
            ]
        );
        assert_eq!(
            next_n("30 1 * * * 15", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T01:30:15Z", "2025-01-02T01:30:15Z"]
        );
    }

    #[test]
    fn dom_and_dow_are_ored() {
        // 2025-01-01 is a Wednesday.
        assert_eq!(
            next_n("0 0 1,15 * MON", "UTC", "2025-01-01T00:00:00Z", 4),
            [
                "2025-01-06T00:00:00Z",
                "2025-01-13T00:00:00Z",
                "2025-01-15T00:00:00Z",
                "2025-01-20T00:00:00Z"
            ]
        );
        // a restricted-but-full day-of-month list still ORs (croniter keeps the list)
        assert_eq!(
            next_n("0 0 1-31 * 1", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"]
        );
        // ... unless the other field has a '*', then croniter collapses it to '*'
        assert_eq!(
            next_n("0 0 1-31 * */3", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-04T00:00:00Z", "2025-01-05T00:00:00Z"]
        );
    }

    #[test]
    fn names_l_w_nth() {
        assert_eq!(
            next_n("0 0 L * *", "UTC", "2025-01-01T00:00:00Z", 3),
            [
                "2025-01-31T00:00:00Z",
                "2025-02-28T00:00:00Z",
                "2025-03-31T00:00:00Z"
            ]
        );
        // 2025-03-15 is a Saturday -> Friday 14th; 2025-06-15 a Sunday -> Monday 16th.
        assert_eq!(
            next_n("0 0 15W MAR,JUN *", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-03-14T00:00:00Z", "2025-06-16T00:00:00Z"]
        );
        // Months that cannot have the day get only the clamped pattern; found by the
        // schedule fuzzer, where `31W` in April searched for centuries on every call.
        let started = std::time::Instant::now();
        assert_eq!(
            next_n("0 4 31W 4 3", "UTC", "2106-02-07T00:00:00Z", 3).len(),
            3,
            "31W in April fires on the nearest weekday to the 30th"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // croniter clamps 31W to the last day of shorter months
        assert_eq!(
            next_n("0 0 W31 * *", "UTC", "2025-01-01T00:00:00Z", 4),
            [
                "2025-01-31T00:00:00Z",
                "2025-02-28T00:00:00Z",
                "2025-03-31T00:00:00Z",
                "2025-04-30T00:00:00Z"
            ]
        );
        assert_eq!(
            next_n("0 0 * * fri#2", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-10T00:00:00Z", "2025-02-14T00:00:00Z"]
        );
        assert_eq!(
            next_n("0 0 * * L5", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-31T00:00:00Z", "2025-02-28T00:00:00Z"]
        );
        assert_eq!(
            next_n("0 0 * * 7", "UTC", "2025-01-01T00:00:00Z", 1),
            ["2025-01-05T00:00:00Z"]
        );
        // W with a restricted weekday: croniter fires on the W days only ...
        assert_eq!(
            next_n("0 0 15W * 1", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-15T00:00:00Z", "2025-02-14T00:00:00Z"]
        );
        // ... and finds nothing if W and the weekday never meet
        assert!(
            Schedule::parse("0 0 15W * 0")
                .unwrap()
                .next_after(utc("2025-01-01T00:00:00Z"), Tz::UTC, Dst::default())
                .is_none()
        );
        // nth with a restricted day of month: the nth weekday only, if both ever meet
        assert_eq!(
            next_n("0 0 8 * 1#2", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-13T00:00:00Z", "2025-02-10T00:00:00Z"]
        );
        assert!(
            Schedule::parse("0 0 1 * 1#2")
                .unwrap()
                .next_after(utc("2025-01-01T00:00:00Z"), Tz::UTC, Dst::default())
                .is_none()
        );
    }

    #[test]
    fn croniter_range_quirks() {
        // wrap-around range
        assert_eq!(
            next_n("0 0 * * FRI-MON", "UTC", "2025-01-01T00:00:00Z", 4),
            [
                "2025-01-03T00:00:00Z",
                "2025-01-04T00:00:00Z",
                "2025-01-05T00:00:00Z",
                "2025-01-06T00:00:00Z"
            ]
        );
        // an equal range is the whole field
        assert_eq!(
            next_n("5-5 0 1 1 *", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T00:01:00Z", "2025-01-01T00:02:00Z"]
        );
        // "a/n" starts at a; "59/15" is just 59
        assert_eq!(
            next_n("40/10 0 1 1 *", "UTC", "2025-01-01T00:00:00Z", 3),
            [
                "2025-01-01T00:40:00Z",
                "2025-01-01T00:50:00Z",
                "2026-01-01T00:40:00Z"
            ]
        );
        assert_eq!(
            next_n("59/15 0 1 1 *", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T00:59:00Z", "2026-01-01T00:59:00Z"]
        );
    }

    #[test]
    fn aliases() {
        for (alias, expect) in [
            ("@yearly", "2026-01-01T00:00:00Z"),
            ("@annually", "2026-01-01T00:00:00Z"),
            ("@monthly", "2025-02-01T00:00:00Z"),
            ("@weekly", "2025-01-05T00:00:00Z"),
            ("@daily", "2025-01-02T00:00:00Z"),
            ("@MIDNIGHT", "2025-01-02T00:00:00Z"),
            ("@hourly", "2025-01-01T01:00:00Z"),
        ] {
            assert_eq!(
                next_n(alias, "UTC", "2025-01-01T00:00:00Z", 1),
                [expect],
                "{alias}"
            );
        }
        assert!(Schedule::parse("@reboot").is_err());
        assert!(Schedule::parse(" @daily").is_err());
    }

    #[test]
    fn rejects_what_croniter_rejects() {
        for expr in [
            "",
            "* * * *",
            "*/0 * * * *",
            "1-5/0 * * * *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 0 * *",
            "0 0 32 * *",
            "0 0 0-5 * *",
            "0 0 * 0 *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "0 0 1? * *",
            "? * * * *",
            "0 0 * * 5L",
            "0 0 * * L",
            "0 0 LW * *",
            "0 0 15W,1 * *",
            "0 0 0W * *",
            "0 0 32W * *",
            "0 0 * * 1#6",
            "0 0 * * 1#0",
            "0 0 * * 1#2,3",
            "-1 * * * *",
            "H * * * *",
            "0 0 * * MON-FOO",
            "0 0 * JAN * ",
            "0 0 * * JAN",
            "a * * * *",
            "1,,2 * * * *",
            "* * * * * 60",
            "0 0 L-3 * *",
        ] {
            if expr == "0 0 * JAN * " {
                // valid: trailing whitespace is fine
                assert!(Schedule::parse(expr).is_ok());
                continue;
            }
            assert!(
                Schedule::parse(expr).is_err(),
                "{expr:?} should be rejected"
            );
        }
        for expr in [
            "0 0 ? * ?",
            "0 0 * * 7",
            "0 0 * * 0-7",
            "0 0 1 jan-mar/2 *",
            "0 0 15-L * 1",
            "0 0 W15 * *",
            "0 0 * * mon-fri#2",
            "0 0 * * *,1#2",
            "*,5 * * * *",
            "07 0 * * *",
        ] {
            assert!(Schedule::parse(expr).is_ok(), "{expr:?} should be accepted");
        }
        assert!(reason("0 0 1 1 * 0 2030").contains("7-field"));
        assert!(reason("R * * * *").contains("random"));
    }

    #[test]
    fn never_firing_returns_none_quickly() {
        let start = std::time::Instant::now();
        for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"] {
            let s = Schedule::parse(expr).unwrap();
            assert!(
                s.next_after(utc("2025-01-01T00:00:00Z"), Tz::UTC, Dst::default())
                    .is_none()
            );
            assert!(
                s.upcoming(
                    utc("2025-01-01T00:00:00Z"),
                    Tz::UTC,
                    None,
                    10,
                    Dst::default()
                )
                .is_empty()
            );
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        // Feb 29 does exist
        assert_eq!(
            next_n("0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn upcoming_respects_end_and_count() {
        let s = Schedule::parse("0 * * * *").unwrap();
        let got = s.upcoming(
            utc("2025-01-01T00:00:00Z"),
            Tz::UTC,
            Some(utc("2025-01-01T03:00:00Z")),
            10,
            Dst::default(),
        );
        assert_eq!(got.len(), 3); // 01:00, 02:00, 03:00 (end is inclusive)
        assert_eq!(
            s.upcoming(
                utc("2025-01-01T00:00:00Z"),
                Tz::UTC,
                None,
                0,
                Dst::default()
            )
            .len(),
            0
        );
        assert_eq!(
            s.upcoming(
                utc("2025-01-01T00:00:00Z"),
                Tz::UTC,
                None,
                5,
                Dst::default()
            )
            .len(),
            5
        );
    }

    #[test]
    fn new_york_spring_gap_runs_once_after_the_gap() {
        // 2025-03-09: 02:00 EST jumps to 03:00 EDT.
        assert_eq!(
            next_n("30 2 * * *", "America/New_York", "2025-03-08T12:00:00Z", 3),
            // 03:00 EDT on the 9th, then 02:30 EDT
            [
                "2025-03-09T07:00:00Z",
                "2025-03-10T06:30:00Z",
                "2025-03-11T06:30:00Z"
            ]
        );
        // croniter moves a gap time forward in whole minutes: 02:30:15 -> 03:00:15
        assert_eq!(
            next_n(
                "30 2 * * * 15",
                "America/New_York",
                "2025-03-08T12:00:00Z",
                1
            ),
            ["2025-03-09T07:00:15Z"]
        );
        // several times inside the gap still fire once
        assert_eq!(
            next_n(
                "*/20 2 * * *",
                "America/New_York",
                "2025-03-08T12:00:00Z",
                2
            ),
            ["2025-03-09T07:00:00Z", "2025-03-10T06:00:00Z"]
        );
        // with a wildcard hour the gap is simply skipped
        assert_eq!(
            next_n("30 * * * *", "America/New_York", "2025-03-09T06:00:00Z", 2),
            // 01:30 EST, then 03:30 EDT
            ["2025-03-09T06:30:00Z", "2025-03-09T07:30:00Z"]
        );
    }

    #[test]
    fn new_york_autumn_repeat_runs_fixed_time_once() {
        // 2025-11-02: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        assert_eq!(
            next_n("30 1 * * *", "America/New_York", "2025-11-01T12:00:00Z", 3),
            // 01:30 EDT only (croniter also gives 06:30Z = 01:30 EST)
            [
                "2025-11-02T05:30:00Z",
                "2025-11-03T06:30:00Z",
                "2025-11-04T06:30:00Z"
            ]
        );
        // started between the two 01:30s: the next day
        assert_eq!(
            next_n("30 1 * * *", "America/New_York", "2025-11-02T05:45:00Z", 1),
            ["2025-11-03T06:30:00Z"]
        );
        // interval schedules run through both passes of the repeated hour
        assert_eq!(
            next_n(
                "*/30 * * * *",
                "America/New_York",
                "2025-11-02T04:50:00Z",
                6
            ),
            [
                "2025-11-02T05:00:00Z",
                "2025-11-02T05:30:00Z",
                "2025-11-02T06:00:00Z",
                "2025-11-02T06:30:00Z",
                "2025-11-02T07:00:00Z",
                "2025-11-02T07:30:00Z"
            ]
        );
    }

    #[test]
    fn paris_dst() {
        // 2025-03-30: 02:00 CET -> 03:00 CEST; 2025-10-26: 03:00 CEST -> 02:00 CET.
        assert_eq!(
            next_n("15 2 * * *", "Europe/Paris", "2025-03-29T12:00:00Z", 2),
            ["2025-03-30T01:00:00Z", "2025-03-31T00:15:00Z"]
        );
        // 02:15 happens twice on 2025-10-26; croniter also returns 01:15Z (02:15 CET).
        assert_eq!(
            next_n("15 2 * * *", "Europe/Paris", "2025-10-25T12:00:00Z", 2),
            ["2025-10-26T00:15:00Z", "2025-10-27T01:15:00Z"]
        );
        assert_eq!(
            next_n("0 * * * *", "Europe/Paris", "2025-10-25T23:30:00Z", 4),
            [
                "2025-10-26T00:00:00Z",
                "2025-10-26T01:00:00Z",
                "2025-10-26T02:00:00Z",
                "2025-10-26T03:00:00Z"
            ]
        );
    }

    /// The four daylight-saving combinations.
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

    /// Spring forward: the instants under `shift` and under `skip`, whatever `repeat` is.
    fn check_gap(zone: &str, start: &str, expr: &str, shift: &[&str], skip: &[&str]) {
        assert_eq!(shift.len(), skip.len(), "{expr}: same count for both");
        for dst in ALL_DST {
            let want = match dst.gap {
                DstGap::Shift => shift,
                DstGap::Skip => skip,
            };
            assert_eq!(
                next_dst(expr, zone, start, want.len(), dst),
                want,
                "{expr} in {zone} after {start} with {dst:?}"
            );
        }
    }

    /// Fall back: the instants under `once` and under `twice`, whatever `gap` is.
    fn check_repeat(zone: &str, start: &str, expr: &str, once: &[&str], twice: &[&str]) {
        assert_eq!(once.len(), twice.len(), "{expr}: same count for both");
        for dst in ALL_DST {
            let want = match dst.repeat {
                DstRepeat::Once => once,
                DstRepeat::Twice => twice,
            };
            assert_eq!(
                next_dst(expr, zone, start, want.len(), dst),
                want,
                "{expr} in {zone} after {start} with {dst:?}"
            );
        }
    }

    #[test]
    fn dst_default_is_once_and_shift() {
        assert_eq!(
            Dst::default(),
            Dst {
                repeat: DstRepeat::Once,
                gap: DstGap::Shift
            }
        );
    }

    #[test]
    fn dst_choices_new_york_spring_forward() {
        // 2026-03-08: 02:00 EST (UTC-5) jumps to 03:00 EDT (UTC-4).
        let (z, day_before) = ("America/New_York", "2026-03-07T12:00:00Z");
        // fixed time before the gap: unaffected
        let before = [
            "2026-03-08T06:30:00Z",
            "2026-03-09T05:30:00Z",
            "2026-03-10T05:30:00Z",
        ];
        check_gap(z, day_before, "30 1 * * *", &before, &before);
        // fixed time in the gap: 03:00 EDT, or not that day
        check_gap(
            z,
            day_before,
            "30 2 * * *",
            &[
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z",
            ],
            &[
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z",
                "2026-03-11T06:30:00Z",
            ],
        );
        // interval in the gap hour: once at 03:00 EDT, or none that day
        check_gap(
            z,
            day_before,
            "*/15 2 * * *",
            &[
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:00:00Z",
                "2026-03-09T06:15:00Z",
            ],
            &[
                "2026-03-09T06:00:00Z",
                "2026-03-09T06:15:00Z",
                "2026-03-09T06:30:00Z",
            ],
        );
        // interval in the hour before the gap: unaffected
        let one = [
            "2026-03-08T06:00:00Z",
            "2026-03-08T06:15:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T06:45:00Z",
            "2026-03-09T05:00:00Z",
        ];
        check_gap(z, day_before, "*/15 1 * * *", &one, &one);
        // an hour range across the gap: 01:00 EST and 03:00 EDT either way (`shift`
        // moves 02:00 onto 03:00, which then runs once; `skip` drops 02:00)
        let range = [
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T05:00:00Z",
        ];
        check_gap(z, day_before, "0 1-3 * * *", &range, &range);
        // hour `*`: the gap is skipped under both choices
        let star = [
            "2026-03-08T05:30:00Z",
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-08T08:30:00Z",
        ];
        check_gap(z, "2026-03-08T05:00:00Z", "30 * * * *", &star, &star);
        // seconds: shifted in whole minutes (03:00:15), or not that day
        check_gap(
            z,
            day_before,
            "30 2 * * * 15",
            &["2026-03-08T07:00:15Z", "2026-03-09T06:30:15Z"],
            &["2026-03-09T06:30:15Z", "2026-03-10T06:30:15Z"],
        );
        check_gap(
            z,
            day_before,
            "0 2 * * * */20",
            &[
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:00:00Z",
                "2026-03-09T06:00:20Z",
            ],
            &[
                "2026-03-09T06:00:00Z",
                "2026-03-09T06:00:20Z",
                "2026-03-09T06:00:40Z",
            ],
        );
        let every_30s = [
            "2026-03-08T06:59:30Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:30Z",
        ];
        check_gap(
            z,
            "2026-03-08T06:59:00Z",
            "* * * * * */30",
            &every_30s,
            &every_30s,
        );
    }

    #[test]
    fn dst_choices_new_york_fall_back() {
        // 2026-11-01: 02:00 EDT (UTC-4) falls back to 01:00 EST (UTC-5).
        let (z, day_before) = ("America/New_York", "2026-10-31T12:00:00Z");
        // fixed time in the repeated hour: 01:30 EDT, or 01:30 EDT and 01:30 EST
        check_repeat(
            z,
            day_before,
            "30 1 * * *",
            &[
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z",
            ],
            &[
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-02T06:30:00Z",
            ],
        );
        // started between the two 01:30s
        check_repeat(
            z,
            "2026-11-01T05:45:00Z",
            "30 1 * * *",
            &["2026-11-02T06:30:00Z"],
            &["2026-11-01T06:30:00Z"],
        );
        // fixed time after the repeated hour: unaffected
        let after = [
            "2026-11-01T07:30:00Z",
            "2026-11-02T07:30:00Z",
            "2026-11-03T07:30:00Z",
        ];
        check_repeat(z, day_before, "30 2 * * *", &after, &after);
        // interval in the repeated hour: both passes under both choices
        let both_passes = [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:15:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:45:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:15:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T06:45:00Z",
            "2026-11-02T06:00:00Z",
        ];
        check_repeat(z, day_before, "*/15 1 * * *", &both_passes, &both_passes);
        // hour `*`: both passes
        let star = [
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z",
        ];
        check_repeat(z, "2026-11-01T04:00:00Z", "30 * * * *", &star, &star);
        // seconds: a fixed time too
        check_repeat(
            z,
            day_before,
            "30 1 * * * 15",
            &[
                "2026-11-01T05:30:15Z",
                "2026-11-02T06:30:15Z",
                "2026-11-03T06:30:15Z",
            ],
            &[
                "2026-11-01T05:30:15Z",
                "2026-11-01T06:30:15Z",
                "2026-11-02T06:30:15Z",
            ],
        );
    }

    #[test]
    fn dst_choices_london_spring_forward() {
        // 2026-03-29: 01:00 GMT (UTC+0) jumps to 02:00 BST (UTC+1).
        let (z, day_before) = ("Europe/London", "2026-03-28T12:00:00Z");
        // fixed time in the gap: 02:00 BST, or not that day
        check_gap(
            z,
            day_before,
            "30 1 * * *",
            &[
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
                "2026-03-31T00:30:00Z",
            ],
            &[
                "2026-03-30T00:30:00Z",
                "2026-03-31T00:30:00Z",
                "2026-04-01T00:30:00Z",
            ],
        );
        // fixed time after the gap: unaffected
        let after = [
            "2026-03-29T01:30:00Z",
            "2026-03-30T01:30:00Z",
            "2026-03-31T01:30:00Z",
        ];
        check_gap(z, day_before, "30 2 * * *", &after, &after);
        // interval in the gap hour: once at 02:00 BST, or none that day
        check_gap(
            z,
            day_before,
            "*/15 1 * * *",
            &[
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:00:00Z",
                "2026-03-30T00:15:00Z",
                "2026-03-30T00:30:00Z",
            ],
            &[
                "2026-03-30T00:00:00Z",
                "2026-03-30T00:15:00Z",
                "2026-03-30T00:30:00Z",
                "2026-03-30T00:45:00Z",
            ],
        );
        // hour `*`: the gap is skipped under both choices
        let star = [
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:30:00Z",
        ];
        check_gap(z, "2026-03-29T00:00:00Z", "30 * * * *", &star, &star);
        // seconds
        check_gap(
            z,
            day_before,
            "30 1 * * * 15",
            &["2026-03-29T01:00:15Z", "2026-03-30T00:30:15Z"],
            &["2026-03-30T00:30:15Z", "2026-03-31T00:30:15Z"],
        );
        check_gap(
            z,
            day_before,
            "0 1 * * * */20",
            &[
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:00:00Z",
                "2026-03-30T00:00:20Z",
            ],
            &[
                "2026-03-30T00:00:00Z",
                "2026-03-30T00:00:20Z",
                "2026-03-30T00:00:40Z",
            ],
        );
    }

    #[test]
    fn dst_choices_london_fall_back() {
        // 2026-10-25: 02:00 BST (UTC+1) falls back to 01:00 GMT (UTC+0).
        let (z, day_before) = ("Europe/London", "2026-10-24T12:00:00Z");
        check_repeat(
            z,
            day_before,
            "30 1 * * *",
            &[
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
                "2026-10-27T01:30:00Z",
            ],
            &[
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-26T01:30:00Z",
            ],
        );
        let after = [
            "2026-10-25T02:30:00Z",
            "2026-10-26T02:30:00Z",
            "2026-10-27T02:30:00Z",
        ];
        check_repeat(z, day_before, "30 2 * * *", &after, &after);
        let both_passes = [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:15:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T00:45:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:15:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T01:45:00Z",
            "2026-10-26T01:00:00Z",
        ];
        check_repeat(z, day_before, "*/15 1 * * *", &both_passes, &both_passes);
        let star = [
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:30:00Z",
        ];
        check_repeat(z, "2026-10-24T23:00:00Z", "30 * * * *", &star, &star);
        check_repeat(
            z,
            day_before,
            "30 1 * * * 15",
            &[
                "2026-10-25T00:30:15Z",
                "2026-10-26T01:30:15Z",
                "2026-10-27T01:30:15Z",
            ],
            &[
                "2026-10-25T00:30:15Z",
                "2026-10-25T01:30:15Z",
                "2026-10-26T01:30:15Z",
            ],
        );
    }

    #[test]
    fn schedule_is_send_sync_clone_debug() {
        fn check<T: Send + Sync + Clone + fmt::Debug>() {}
        check::<Schedule>();
        let s = Schedule::parse("0 0 15W * 1").unwrap();
        assert!(format!("{s:?}").contains("15W"));
    }
}
