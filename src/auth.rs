//! API keys: loaded once from `[[auth.api_keys]]` (inline, from a file, or from an
//! environment variable) and matched in constant time. A key is never logged: only its
//! identity is.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiKeyConfig, AuthConfig, LimitsConfig};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth.api_keys[{index}] ({identity}): {problem}")]
    Key {
        index: usize,
        identity: String,
        problem: String,
    },
}

/// Who is calling: the identity of the key presented, whether it may see everything, and
/// how many crons it may own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None` when no keys are configured (anyone on the bound address is trusted).
    pub identity: Option<String>,
    pub admin: bool,
    /// Crons this identity may own; `None`: no cap.
    pub max_crons: Option<u64>,
}

impl Caller {
    /// The caller of a daemon without keys: sees everything, owns nothing.
    pub fn anonymous() -> Caller {
        Caller {
            identity: None,
            admin: true,
            max_crons: None,
        }
    }

    /// What the caller may see.
    pub fn scope(&self) -> crate::store::Scope {
        match (&self.identity, self.admin) {
            (Some(identity), false) => crate::store::Scope::Owner(identity.clone()),
            _ => crate::store::Scope::All,
        }
    }

    /// The `user_id` recorded on what the caller creates.
    pub fn user_id(&self) -> Option<String> {
        self.identity.clone()
    }
}

struct Key {
    /// SHA-256 of the key: every comparison is of 32 bytes, whatever the key's length.
    digest: [u8; 32],
    caller: Caller,
    /// The key's request rate, when it has one.
    rate: Option<DefaultDirectRateLimiter>,
}

/// Why a presented key is not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No configured key matches.
    Unknown,
    /// The key is over its request rate; it may try again after this long.
    RateLimited(Duration),
}

/// The configured keys.
pub struct ApiKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let identities: Vec<_> = self.keys.iter().map(|k| &k.caller.identity).collect();
        f.debug_struct("ApiKeys")
            .field("identities", &identities)
            .finish()
    }
}

/// Shortest accepted key: guessing one must stay out of reach.
const MIN_KEY_LENGTH: usize = 16;

impl ApiKeys {
    /// Reads every key (files and variables resolved now, so a missing one stops start-up).
    pub fn from_config(
        config: &AuthConfig,
        limits: &LimitsConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ApiKeys, AuthError> {
        let mut keys: Vec<Key> = Vec::with_capacity(config.api_keys.len());
        for (index, entry) in config.api_keys.iter().enumerate() {
            let problem = |problem: String| AuthError::Key {
                index,
                identity: entry.identity.clone(),
                problem,
            };
            let secret = read_key(entry, env).map_err(problem)?;
            if entry.identity.trim().is_empty() {
                return Err(problem("`identity` must not be empty".into()));
            }
            if secret.len() < MIN_KEY_LENGTH {
                return Err(problem(format!(
                    "the key must be at least {MIN_KEY_LENGTH} characters"
                )));
            }
            let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            if keys.iter().any(|k| k.digest == digest) {
                return Err(problem("the same key is configured twice".into()));
            }
            let rate = quota(
                entry.requests_per_second.or(limits.requests_per_second),
                entry.burst.or(limits.burst),
            )
            .map_err(problem)?;
            keys.push(Key {
                digest,
                caller: Caller {
                    identity: Some(entry.identity.clone()),
                    admin: entry.admin,
                    max_crons: match (entry.max_crons, entry.admin) {
                        (Some(max), _) => Some(max),
                        (None, false) => Some(limits.max_crons),
                        (None, true) => None,
                    }
                    .filter(|max| *max > 0),
                },
                rate: rate.map(RateLimiter::direct),
            });
        }
        Ok(ApiKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller a presented key belongs to, if the key is within its request rate.
    pub fn admit(&self, presented: &str) -> Result<Caller, Refusal> {
        let key = self.find(presented).ok_or(Refusal::Unknown)?;
        if let Some(rate) = &key.rate
            && let Err(not_until) = rate.check()
        {
            return Err(Refusal::RateLimited(
                not_until.wait_time_from(DefaultClock::default().now()),
            ));
        }
        Ok(key.caller.clone())
    }

    /// The caller a presented key belongs to.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        self.find(presented).map(|key| key.caller.clone())
    }

    /// Every configured key is compared, in constant time, so timing tells nothing about
    /// which (or how much of one) matched.
    fn find(&self, presented: &str) -> Option<&Key> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found
    }
}

/// A key's quota from its rate and burst (burst defaults to the rate); none without a rate.
fn quota(per_second: Option<u32>, burst: Option<u32>) -> Result<Option<Quota>, String> {
    let Some(per_second) = per_second else {
        return Ok(None);
    };
    let per_second = NonZeroU32::new(per_second)
        .ok_or_else(|| "`requests_per_second` must be at least 1".to_string())?;
    let burst = match burst {
        Some(burst) => {
            NonZeroU32::new(burst).ok_or_else(|| "`burst` must be at least 1".to_string())?
        }
        None => per_second,
    };
    Ok(Some(Quota::per_second(per_second).allow_burst(burst)))
}

fn read_key(entry: &ApiKeyConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let sources = [
        entry.key.is_some(),
        entry.key_file.is_some(),
        entry.key_env.is_some(),
    ];
    if sources.iter().filter(|given| **given).count() != 1 {
        return Err("give exactly one of `key`, `key_file`, `key_env`".into());
    }
    if let Some(key) = &entry.key {
        return Ok(key.clone());
    }
    if let Some(path) = &entry.key_file {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read key_file {}: {err}", path.display()))?;
        // Files written with `echo` end with a newline that is not part of the key.
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    let name = entry.key_env.as_deref().unwrap_or_default();
    env(name).ok_or_else(|| format!("environment variable {name} (key_env) is not set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(identity: &str, key: &str, admin: bool) -> ApiKeyConfig {
        ApiKeyConfig {
            identity: identity.into(),
            key: Some(key.into()),
            key_file: None,
            key_env: None,
            admin,
            max_crons: None,
            requests_per_second: None,
            burst: None,
        }
    }

    fn keys(entries: Vec<ApiKeyConfig>) -> Result<ApiKeys, AuthError> {
        keys_with(entries, &LimitsConfig::default())
    }

    fn keys_with(entries: Vec<ApiKeyConfig>, limits: &LimitsConfig) -> Result<ApiKeys, AuthError> {
        ApiKeys::from_config(&AuthConfig { api_keys: entries }, limits, &|name| {
            (name == "KEY_FROM_ENV").then(|| "env-key-0123456789".to_string())
        })
    }

    #[test]
    fn cron_caps_default_for_non_admins_and_keys_override_them() {
        let limits = LimitsConfig {
            max_crons: 5,
            ..LimitsConfig::default()
        };
        let keys = keys_with(
            vec![
                entry("alice", "alice-key-0123456789", false),
                entry("ops", "ops-key-0123456789ab", true),
                ApiKeyConfig {
                    max_crons: Some(2),
                    ..entry("bob", "bob-key-0123456789ab", false)
                },
                ApiKeyConfig {
                    max_crons: Some(0),
                    ..entry("carol", "carol-key-0123456789", false)
                },
            ],
            &limits,
        )
        .expect("valid keys");
        let cap = |key: &str| keys.authenticate(key).expect("known").max_crons;
        assert_eq!(cap("alice-key-0123456789"), Some(5));
        assert_eq!(cap("ops-key-0123456789ab"), None);
        assert_eq!(cap("bob-key-0123456789ab"), Some(2));
        assert_eq!(cap("carol-key-0123456789"), None, "0 lifts the cap");
    }

    #[test]
    fn a_key_over_its_rate_is_refused_with_the_wait() {
        let keys = keys(vec![ApiKeyConfig {
            requests_per_second: Some(1),
            burst: Some(2),
            ..entry("alice", "alice-key-0123456789", false)
        }])
        .expect("valid keys");
        assert!(keys.admit("alice-key-0123456789").is_ok());
        assert!(keys.admit("alice-key-0123456789").is_ok());
        match keys.admit("alice-key-0123456789") {
            Err(Refusal::RateLimited(wait)) => {
                assert!(
                    wait > Duration::ZERO && wait <= Duration::from_secs(1),
                    "{wait:?}"
                )
            }
            other => panic!("expected a rate refusal, got {other:?}"),
        }
        assert_eq!(keys.admit("not-a-key-0123456789"), Err(Refusal::Unknown));
        let err = keys_with(
            vec![ApiKeyConfig {
                requests_per_second: Some(0),
                ..entry("a", "0123456789abcdefgh", false)
            }],
            &LimitsConfig::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("requests_per_second"), "{err}");
    }

    #[test]
    fn keys_identify_their_callers() {
        let keys = keys(vec![
            entry("alice", "alice-key-0123456789", false),
            entry("ops", "ops-key-0123456789ab", true),
            ApiKeyConfig {
                key: None,
                key_env: Some("KEY_FROM_ENV".into()),
                ..entry("bob", "", false)
            },
        ])
        .expect("valid keys");
        let alice = keys.authenticate("alice-key-0123456789").expect("alice");
        assert_eq!(alice.identity.as_deref(), Some("alice"));
        assert_eq!(alice.scope(), crate::store::Scope::Owner("alice".into()));
        let ops = keys.authenticate("ops-key-0123456789ab").expect("ops");
        assert_eq!(ops.scope(), crate::store::Scope::All);
        assert_eq!(ops.user_id().as_deref(), Some("ops"));
        let bob = keys.authenticate("env-key-0123456789").expect("bob");
        assert_eq!(bob.identity.as_deref(), Some("bob"));
        assert!(keys.authenticate("alice-key-012345678").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(!format!("{keys:?}").contains("alice-key"));
    }

    #[test]
    fn bad_key_entries_are_refused_with_the_reason() {
        let err = keys(vec![entry("a", "short", false)]).unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
        let err = keys(vec![ApiKeyConfig {
            key_env: Some("MISSING".into()),
            key: None,
            ..entry("a", "", false)
        }])
        .unwrap_err();
        assert!(err.to_string().contains("MISSING"), "{err}");
        let err = keys(vec![ApiKeyConfig {
            key_env: Some("KEY_FROM_ENV".into()),
            ..entry("a", "0123456789abcdefgh", false)
        }])
        .unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        let err = keys(vec![
            entry("a", "0123456789abcdefgh", false),
            entry("b", "0123456789abcdefgh", false),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "file-key-0123456789\n").expect("write key");
        let keys = keys(vec![ApiKeyConfig {
            key: None,
            key_file: Some(path),
            ..entry("f", "", false)
        }])
        .expect("key file");
        assert!(keys.authenticate("file-key-0123456789").is_some());
    }
}
