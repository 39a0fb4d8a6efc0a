//! A schedule in words ("at 09:00, Monday to Friday"), written from the fields as this
//! module's parser expanded them, so the words say what fires. (`cron-descriptor`, the
//! crate for this, reads Quartz's grammar: seconds first, weekdays from 1, no croniter OR.)

use super::{DOM, DOW, Field, HOUR, MINUTE, MONTH, Nth, SECOND, Schedule};

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Schedule {
    /// The schedule in English words, without its time zone.
    pub fn words(&self) -> String {
        let f = &self.fields;
        let second = self.has_seconds.then(|| &f[SECOND]);
        let mut parts = vec![time_words(second, &f[MINUTE], &f[HOUR])];
        if let Some(days) = day_words(&f[DOM], &f[DOW]) {
            parts.push(days);
        }
        if !f[MONTH].star {
            let months: Vec<u64> = f[MONTH].list();
            parts.push(format!(
                "in {}",
                ranges(&months, &|m| MONTHS[(m as usize).saturating_sub(1) % 12]
                    .to_string())
            ));
        }
        parts.join(", ")
    }
}

/// Steps of `k` from the field's start over its whole range (`*/k`), if the values are so.
fn step(field: &Field, start: u64, len: u64) -> Option<u64> {
    let values = field.list();
    if values.len() < 2 || values[0] != start {
        return None;
    }
    let k = values[1] - values[0];
    let regular = values.windows(2).all(|w| w[1] - w[0] == k);
    (regular && values.last().copied()? + k >= start + len).then_some(k)
}

fn single(field: &Field) -> Option<u64> {
    let values = field.list();
    (!field.star && values.len() == 1).then(|| values[0])
}

fn time_words(second: Option<&Field>, minute: &Field, hour: &Field) -> String {
    let second_value = match second {
        None => Some(0),
        Some(field) => single(field),
    };
    // One time of day, or a few: "at 09:00", "at 09:00 and 17:30".
    if let (Some(s), Some(m)) = (second_value, single(minute))
        && !hour.star
        && hour.list().len() <= 6
    {
        let times: Vec<String> = hour
            .list()
            .into_iter()
            .map(|h| match s {
                0 => format!("{h:02}:{m:02}"),
                s => format!("{h:02}:{m:02}:{s:02}"),
            })
            .collect();
        return format!("at {}", and_list(&times));
    }
    let mut words = Vec::new();
    match second {
        Some(field) if field.star => words.push("every second".to_string()),
        Some(field) => match step(field, 0, 60) {
            Some(k) => words.push(format!("every {k} seconds")),
            None => words.push(format!("at second {}", plain_list(&field.list()))),
        },
        None => {}
    }
    if minute.star {
        match second {
            None => words.push("every minute".to_string()),
            // "every second" and "every 10 seconds" already say every minute.
            Some(field) if field.star || step(field, 0, 60).is_some() => {}
            Some(_) => words.push("of every minute".to_string()),
        }
    } else {
        let of = if second.is_some() { "of " } else { "" };
        match step(minute, 0, 60) {
            Some(k) if of.is_empty() => words.push(format!("every {k} minutes")),
            Some(k) => words.push(format!("of every {} minute", ordinal(k))),
            None => words.push(format!(
                "{}minute {}",
                if of.is_empty() { "at " } else { of },
                plain_list(&minute.list())
            )),
        }
    }
    if !hour.star {
        let hours = hour.list();
        match step(hour, 0, 24) {
            Some(k) => words.push(format!("every {k} hours")),
            None if is_range(&hours) && hours.len() > 2 => words.push(format!(
                "from {:02}:00 to {:02}:59",
                hours[0],
                hours[hours.len() - 1]
            )),
            None => words.push(format!("during hour {}", plain_list(&hours))),
        }
    }
    words.join(" ")
}

fn day_words(dom: &Field, dow: &Field) -> Option<String> {
    let mut sides = Vec::new();
    if !dom.star || dom.last || dom.nearest_weekday.is_some() {
        let mut days = Vec::new();
        if let Some(d) = dom.nearest_weekday {
            days.push(format!("on the weekday nearest day {d} of the month"));
        } else {
            let values = dom.list();
            if !values.is_empty() {
                days.push(format!(
                    "on day {} of the month",
                    ranges(&values, &|d| d.to_string())
                ));
            }
            if dom.last {
                days.push("on the last day of the month".to_string());
            }
        }
        sides.push(days.join(" and "));
    }
    if !dow.nth.is_empty() {
        let nths: Vec<String> = dow
            .nth
            .iter()
            .flat_map(|(day, ns)| {
                ns.iter().map(move |n| {
                    let which = match n {
                        Nth::Nth(1) => "first".to_string(),
                        Nth::Nth(2) => "second".to_string(),
                        Nth::Nth(3) => "third".to_string(),
                        Nth::Nth(4) => "fourth".to_string(),
                        Nth::Nth(5) => "fifth".to_string(),
                        Nth::Nth(n) => format!("{n}th"),
                        Nth::Last => "last".to_string(),
                    };
                    format!("the {which} {}", DAYS[(*day as usize) % 7])
                })
            })
            .collect();
        sides.push(format!("on {} of the month", and_list(&nths)));
    } else if !dow.star {
        let days = dow.list();
        sides.push(ranges(&days, &|d| DAYS[(d as usize) % 7].to_string()));
    }
    (!sides.is_empty()).then(|| sides.join(" or "))
}

/// 2nd, 3rd, 5th, 21st…
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn is_range(values: &[u64]) -> bool {
    values.windows(2).all(|w| w[1] == w[0] + 1)
}

/// "Monday to Friday", "1, 15 and 20-25" style: runs of three or more become ranges.
fn ranges(values: &[u64], name: &dyn Fn(u64) -> String) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &v in values {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => runs.push((v, v)),
        }
    }
    let mut items = Vec::new();
    for (start, end) in runs {
        if end >= start + 2 {
            items.push(format!("{} to {}", name(start), name(end)));
        } else {
            for v in start..=end {
                items.push(name(v));
            }
        }
    }
    and_list(&items)
}

fn plain_list(values: &[u64]) -> String {
    and_list(&values.iter().map(u64::to_string).collect::<Vec<_>>())
}

fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(expr: &str) -> String {
        Schedule::parse(expr).expect("valid").words()
    }

    #[test]
    fn common_schedules_read_as_people_say_them() {
        assert_eq!(words("0 9 * * 1-5"), "at 09:00, Monday to Friday");
        assert_eq!(words("0 9 * * MON-FRI"), "at 09:00, Monday to Friday");
        assert_eq!(words("30 9,17 * * *"), "at 09:30 and 17:30");
        assert_eq!(words("* * * * *"), "every minute");
        assert_eq!(words("* * * * * *"), "every second");
        assert_eq!(words("* * * * * */10"), "every 10 seconds");
        assert_eq!(words("*/15 * * * *"), "every 15 minutes");
        assert_eq!(words("0 */2 * * *"), "at minute 0 every 2 hours");
        assert_eq!(
            words("*/5 9-17 * * *"),
            "every 5 minutes from 09:00 to 17:59"
        );
        assert_eq!(words("@monthly"), "at 00:00, on day 1 of the month");
        assert_eq!(words("0 0 L * *"), "at 00:00, on the last day of the month");
        assert_eq!(
            words("0 8 * * 1#2"),
            "at 08:00, on the second Monday of the month"
        );
        assert_eq!(
            words("0 8 1 * 1"),
            "at 08:00, on day 1 of the month or Monday"
        );
        assert_eq!(
            words("0 0 1 1,7 *"),
            "at 00:00, on day 1 of the month, in January and July"
        );
        assert_eq!(
            words("0 12 15W * *"),
            "at 12:00, on the weekday nearest day 15 of the month"
        );
        assert_eq!(words("0 0 * * 0,6"), "at 00:00, Sunday and Saturday");
        assert_eq!(words("15 10 * * * 30"), "at 10:15:30");
        assert_eq!(words("*/5 * * * * *"), "every second of every 5th minute");
        assert_eq!(words("30 * * * * */10"), "every 10 seconds of minute 30");
        assert_eq!(words("*/2 * * * * 0"), "at second 0 of every 2nd minute");
    }
}
