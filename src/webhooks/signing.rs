//! Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`),
//! made with the `standardwebhooks` crate. Every configured secret signs, the first one
//! first, so receivers holding either the old or the new secret verify during a rotation.

use standardwebhooks::Webhook;

use super::SettingsError;

#[derive(Clone)]
pub struct Signer {
    keys: Vec<std::sync::Arc<Webhook>>,
}

impl Signer {
    /// None when no secret is configured (calls go unsigned, as LangGraph's).
    pub fn new(secrets: &[String]) -> Result<Option<Signer>, SettingsError> {
        if secrets.is_empty() {
            return Ok(None);
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                let invalid = |reason: &str| SettingsError::Secret {
                    index,
                    reason: reason.to_string(),
                };
                let encoded = secret
                    .strip_prefix("whsec_")
                    .ok_or_else(|| invalid("must start with whsec_"))?;
                use base64::Engine as _;
                let key = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| invalid("the part after whsec_ must be base64"))?;
                if !(24..=64).contains(&key.len()) {
                    return Err(invalid("the key must be 24 to 64 bytes"));
                }
                Ok(std::sync::Arc::new(
                    Webhook::from_bytes(key).map_err(|_| invalid("not a usable key"))?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Signer { keys }))
    }

    /// The `webhook-signature` value for one attempt: `v1,<base64>` per secret.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .filter_map(|key| key.sign(message_id, timestamp, body).ok())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn each_secret_verifies_a_rotated_signature() {
        let signer = Signer::new(&[NEW.into(), OLD.into()])
            .expect("valid")
            .expect("configured");
        let body = br#"{"run_id":"r"}"#;
        let signature = signer.sign("msg_1", 1_700_000_000, body);
        assert_eq!(signature.split(' ').count(), 2);
        assert!(signature.starts_with("v1,"));
        for secret in [NEW, OLD] {
            let expected = Webhook::new(secret)
                .expect("secret")
                .sign("msg_1", 1_700_000_000, body)
                .expect("sign");
            assert!(
                signature.split(' ').any(|part| part == expected),
                "{secret}"
            );
        }
        let first = signature.split(' ').next().expect("first");
        let by_new = Webhook::new(NEW)
            .expect("secret")
            .sign("msg_1", 1_700_000_000, body);
        assert_eq!(Some(first.to_string()), by_new.ok());
    }

    #[test]
    fn bad_secrets_are_named() {
        assert!(Signer::new(&[]).expect("none").is_none());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_***",
            "whsec_c2hvcnQ=",
        ] {
            assert!(Signer::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
