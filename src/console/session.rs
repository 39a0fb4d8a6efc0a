//! Console logins: an API key presented once on the login page becomes a server-side
//! session. The browser holds only an opaque random token in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` over HTTPS); each session has its CSRF token, which
//! every state-changing request must send back. Without API keys the console is open, and
//! a session (anonymous, admin as the API sees it) still carries the CSRF token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};

use crate::auth::Caller;

/// The cookie holding the session token.
pub const COOKIE: &str = "cronhook_console";
/// The most sessions kept; past it, the ones closest to expiry go first.
const MAX_SESSIONS: usize = 10_000;

/// Who is looking at the console, and the token their forms must send back.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub csrf: String,
    /// Keys are configured (a login exists, so a "Log out" does).
    pub logged_in: bool,
}

struct Session {
    viewer: Viewer,
    expires: Instant,
}

pub struct Sessions {
    ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
}

/// 244 random bits from the operating system's generator (two version-4 UUIDs).
fn token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for `caller`; returns its token.
    pub fn start(&self, caller: Caller, logged_in: bool) -> (String, Viewer) {
        let id = token();
        let viewer = Viewer {
            caller,
            csrf: token(),
            logged_in,
        };
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock poisoned");
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
            while sessions.len() >= MAX_SESSIONS {
                let soonest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(id, _)| id.clone());
                match soonest {
                    Some(id) => sessions.remove(&id),
                    None => break,
                };
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                viewer: viewer.clone(),
                expires: now + self.ttl,
            },
        );
        (id, viewer)
    }

    /// The live session the request's cookie names.
    pub fn find(&self, headers: &HeaderMap) -> Option<Viewer> {
        let id = session_cookie(headers)?;
        let mut sessions = self.sessions.lock().expect("sessions lock poisoned");
        match sessions.get(&id) {
            Some(session) if session.expires > Instant::now() => Some(session.viewer.clone()),
            Some(_) => {
                sessions.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Ends the request's session, if any.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions
                .lock()
                .expect("sessions lock poisoned")
                .remove(&id);
        }
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

/// The request came over HTTPS (directly, or through a proxy that says so).
pub fn is_https(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value of a session token (or of its removal, with `None`).
pub fn set_cookie(token: Option<&str>, ttl: Duration, secure: bool) -> HeaderValue {
    let mut cookie = cookie::Cookie::build((COOKIE, token.unwrap_or_default().to_string()))
        .path("/ui")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    cookie = match token {
        Some(_) => cookie.max_age(cookie::time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        )),
        None => cookie.max_age(cookie::time::Duration::ZERO),
    };
    HeaderValue::from_str(&cookie.build().to_string())
        .expect("a cookie of hex digits is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_cookie_and_end() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (id, viewer) = sessions.start(Caller::anonymous(), false);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).expect("header"),
        );
        assert_eq!(sessions.find(&headers).expect("found").csrf, viewer.csrf);
        sessions.end(&headers);
        assert!(sessions.find(&headers).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let value = set_cookie(Some("abc"), Duration::from_secs(60), true);
        let text = value.to_str().expect("ascii");
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/ui",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{text}");
        }
        let plain = set_cookie(Some("abc"), Duration::from_secs(60), false);
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }
}
