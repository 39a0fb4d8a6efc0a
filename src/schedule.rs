//! TEMPORARY stand-in until the croniter-compatible adapter lands (same interface).
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("Invalid cron schedule: '{expr}'. {reason}")]
    InvalidSchedule { expr: String, reason: String },
    #[error("Invalid timezone: '{0}'. Use IANA timezone format (e.g. 'America/New_York').")]
    InvalidTimezone(String),
}

#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError::InvalidSchedule {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Schedule {
            expr: expr.to_string(),
            cron,
        })
    }
    pub fn expression(&self) -> &str {
        &self.expr
    }
    pub fn has_seconds(&self) -> bool {
        self.expr.split_whitespace().count() == 6
    }
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
    pub fn upcoming(
        &self,
        after: DateTime<Utc>,
        tz: Tz,
        end: Option<DateTime<Utc>>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(cursor, tz) {
                Some(next) if end.is_none_or(|e| next <= e) => {
                    out.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        out
    }
}

pub fn parse_timezone(name: Option<&str>) -> Result<Tz, ScheduleError> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) => n
            .parse::<Tz>()
            .map_err(|_| ScheduleError::InvalidTimezone(n.to_string())),
    }
}
