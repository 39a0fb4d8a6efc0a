//! When to try again: the configured schedule (Svix-like by default), each wait spread by
//! ± jitter so a receiver that comes back is not hit by every delivery at once.

use std::time::Duration;

use reqwest::StatusCode;

#[derive(Debug, Clone)]
pub struct RetrySchedule {
    /// The wait before the 2nd, 3rd, … attempt.
    delays: Vec<Duration>,
    jitter: f64,
}

/// What an answer (or its absence) means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again; the receiver may say when (`Retry-After`).
    Retry(Option<Duration>),
    Failed,
}

/// The longest `Retry-After` honoured; longer asks are capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>, jitter: f64) -> RetrySchedule {
        RetrySchedule { delays, jitter }
    }

    /// The wait after attempt number `attempt` (1-based) failed, or None when it was the
    /// last one the schedule allows.
    pub fn delay_after(&self, attempt: i32, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let base = *self.delays.get(index)?;
        if let Some(asked) = retry_after {
            return Some(asked.min(MAX_RETRY_AFTER));
        }
        let spread = if self.jitter > 0.0 {
            1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0)
        } else {
            1.0
        };
        Some(base.mul_f64(spread))
    }
}

/// 2xx delivers; 408, 429 and 5xx are retried; anything else (other 4xx, and 3xx, since
/// redirects are not followed) fails the delivery.
pub fn verdict(status: StatusCode, retry_after: Option<Duration>) -> Verdict {
    if status.is_success() {
        Verdict::Delivered
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Verdict::Retry(retry_after)
    } else {
        Verdict::Failed
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_ends_after_its_last_delay() {
        let schedule =
            RetrySchedule::new(vec![Duration::from_secs(5), Duration::from_secs(300)], 0.0);
        assert_eq!(schedule.delay_after(1, None), Some(Duration::from_secs(5)));
        assert_eq!(
            schedule.delay_after(2, None),
            Some(Duration::from_secs(300))
        );
        assert_eq!(schedule.delay_after(3, None), None);
        assert_eq!(schedule.delay_after(0, None), None);
        assert_eq!(
            schedule.delay_after(1, Some(Duration::from_secs(42))),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            schedule.delay_after(1, Some(Duration::from_secs(10 * 24 * 3600))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            schedule.delay_after(2, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(100)], 0.2);
        let waits: Vec<Duration> = (0..1000)
            .filter_map(|_| schedule.delay_after(1, None))
            .collect();
        assert!(
            waits
                .iter()
                .all(|w| (80.0..=120.0).contains(&w.as_secs_f64()))
        );
        let min = waits.iter().min().expect("some");
        let max = waits.iter().max().expect("some");
        assert!(
            max.as_secs_f64() - min.as_secs_f64() > 20.0,
            "{min:?}..{max:?}"
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(StatusCode::NO_CONTENT, None), Verdict::Delivered);
        for code in [408, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(code).expect("code");
            assert_eq!(verdict(status, None), Verdict::Retry(None), "{code}");
        }
        for code in [301, 302, 400, 401, 404, 410, 422] {
            let status = StatusCode::from_u16(code).expect("code");
            assert_eq!(verdict(status, None), Verdict::Failed, "{code}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
