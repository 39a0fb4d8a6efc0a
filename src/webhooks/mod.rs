//! Webhooks: every finished run that asked for one gets its webhook delivered from the
//! durable outbox (written with the run's terminal status), signed, retried on a
//! schedule, and policed against SSRF before acceptance and before every attempt.
//!
//! This module never changes runs: it reads the outbox rows the runs layer wrote and
//! records attempts.

mod dispatcher;
pub mod policy;
mod retry;
mod sender;
mod signing;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

pub use dispatcher::{Dispatcher, Outbox};
pub use policy::UrlPolicy;
pub use retry::RetrySchedule;
pub use signing::Signer;

use crate::config::Config;

/// The key each attempt adds to a run webhook's stored payload: when it was sent.
pub const WEBHOOK_SENT_AT: &str = "webhook_sent_at";

/// The keys a webhook body can have; `allowed_fields` may name only these.
pub const PAYLOAD_FIELDS: [&str; 17] = [
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
    "cron_id",
    "scheduled_for",
    "run_started_at",
    "run_ended_at",
    WEBHOOK_SENT_AT,
    "values",
    "error",
];

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("header {header}: {reason}")]
    Header { header: String, reason: String },
    #[error("allowed_fields: unknown field '{0}' (known: {known})", known = PAYLOAD_FIELDS.join(", "))]
    UnknownField(String),
    #[error("signing.secrets[{index}]: {reason}")]
    Secret { index: usize, reason: String },
    #[error("retry.jitter must be between 0 and 1")]
    Jitter,
    #[error("timeout must be at least 1ms")]
    Timeout,
    #[error("alerts.routes[{index}].url refused: {reason}")]
    AlertRoute { index: usize, reason: String },
}

/// Webhook settings resolved at start-up: env templates filled in, secrets decoded.
#[derive(Clone)]
pub struct Settings {
    /// `[http] disable_webhooks`: no delivery is written or sent.
    pub disabled: bool,
    pub policy: Arc<UrlPolicy>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub allowed_fields: Option<HashSet<String>>,
    pub signer: Option<Signer>,
    pub retry: RetrySchedule,
    pub timeout: Duration,
    pub workers: usize,
    pub poll_interval: Duration,
}

/// Alert routes are called like webhooks: their URLs must pass the policy's checks that need
/// no DNS (names are vetted before every attempt, as for any webhook). A relative URL means
/// nothing in the config.
fn check_alert_routes(
    policy: &UrlPolicy,
    routes: &[crate::config::AlertRouteConfig],
) -> Result<(), SettingsError> {
    let base = url::Url::parse("http://127.0.0.1/").map_err(|err| SettingsError::AlertRoute {
        index: 0,
        reason: err.to_string(),
    })?;
    for (index, route) in routes.iter().enumerate() {
        let refused = |reason: String| SettingsError::AlertRoute { index, reason };
        if route.url.starts_with('/') {
            return Err(refused(
                "must be an absolute http:// or https:// URL".into(),
            ));
        }
        policy
            .check_form(&route.url, &base)
            .map_err(|err| refused(err.to_string()))?;
    }
    Ok(())
}

impl Settings {
    /// Builds the settings from the config, reading `${{ env.NAME }}` values through `env`.
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let webhooks = &config.webhooks;
        let headers = webhooks
            .headers
            .iter()
            .map(|(name, template)| {
                let invalid = |reason: String| SettingsError::Header {
                    header: name.clone(),
                    reason,
                };
                let value = fill_env(template, &webhooks.env_prefix, env).map_err(invalid)?;
                let name = HeaderName::try_from(name.as_str())
                    .map_err(|err| invalid(format!("invalid header name: {err}")))?;
                let value = HeaderValue::try_from(value)
                    .map_err(|err| invalid(format!("invalid header value: {err}")))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, SettingsError>>()?;
        let allowed_fields = match &webhooks.allowed_fields {
            None => None,
            Some(fields) => Some(
                fields
                    .iter()
                    .map(|field| {
                        if PAYLOAD_FIELDS.contains(&field.as_str()) {
                            Ok(field.clone())
                        } else {
                            Err(SettingsError::UnknownField(field.clone()))
                        }
                    })
                    .collect::<Result<HashSet<_>, _>>()?,
            ),
        };
        let signer = Signer::new(&webhooks.signing.secrets)?;
        if !(0.0..=1.0).contains(&webhooks.retry.jitter) {
            return Err(SettingsError::Jitter);
        }
        if webhooks.timeout.is_zero() {
            return Err(SettingsError::Timeout);
        }
        let policy = UrlPolicy::from(&webhooks.url);
        check_alert_routes(&policy, &config.alerts.routes)?;
        Ok(Settings {
            disabled: config.http.disable_webhooks,
            policy: Arc::new(policy),
            headers,
            allowed_fields,
            signer,
            retry: RetrySchedule::new(
                webhooks.retry.delays.iter().map(|d| **d).collect(),
                webhooks.retry.jitter,
            ),
            timeout: webhooks.timeout,
            workers: webhooks.workers,
            poll_interval: webhooks.poll_interval,
        })
    }
}

/// Replaces each `${{ env.NAME }}` in `template` with the variable's value; NAME must start
/// with `prefix` and be set.
fn fill_env(
    template: &str,
    prefix: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed '${{' in value".to_string())?;
        let expression = after[..end].trim();
        let name = expression
            .strip_prefix("env.")
            .ok_or_else(|| format!("'{expression}' is not of the form env.NAME"))?
            .trim();
        if !name.starts_with(prefix) {
            return Err(format!(
                "variable {name} does not start with env_prefix '{prefix}'"
            ));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "LG_WEBHOOK_TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn header_templates_fill_from_prefixed_variables_only() {
        assert_eq!(
            fill_env("Bearer ${{ env.LG_WEBHOOK_TOKEN }}!", "LG_WEBHOOK_", &env),
            Ok("Bearer s3cret!".to_string())
        );
        assert_eq!(
            fill_env("plain", "LG_WEBHOOK_", &env),
            Ok("plain".to_string())
        );
        let err = fill_env("${{ env.HOME }}", "LG_WEBHOOK_", &env).expect_err("prefix");
        assert!(err.contains("env_prefix"), "{err}");
        let err =
            fill_env("${{ env.LG_WEBHOOK_MISSING }}", "LG_WEBHOOK_", &env).expect_err("unset");
        assert!(err.contains("not set"), "{err}");
        assert!(fill_env("${{ env.LG_WEBHOOK_TOKEN", "LG_WEBHOOK_", &env).is_err());
        assert!(fill_env("${{ secrets.X }}", "LG_WEBHOOK_", &env).is_err());
    }

    #[test]
    fn settings_reject_unknown_fields_and_bad_secrets() {
        let mut config = Config::default();
        config.webhooks.allowed_fields = Some(vec!["run_id".into(), "valuez".into()]);
        let err = Settings::from_config(&config, &env)
            .err()
            .expect("unknown field");
        assert!(err.to_string().contains("valuez"), "{err}");

        let mut config = Config::default();
        config.webhooks.signing.secrets = vec!["whsec_not base64!".into()];
        assert!(Settings::from_config(&config, &env).is_err());

        let mut config = Config::default();
        config
            .webhooks
            .headers
            .insert("Authorization".into(), "${{ env.LG_WEBHOOK_TOKEN }}".into());
        let settings = Settings::from_config(&config, &env).expect("valid");
        assert_eq!(settings.headers[0].1, "s3cret");
    }
}
