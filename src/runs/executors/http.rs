//! `http` graphs: the run's JSON is POSTed to a URL; a 2xx JSON object is the output.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Emitter, Failure, RunInput};

#[derive(Debug, Clone)]
pub struct HttpGraph {
    pub client: reqwest::Client,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
}

impl HttpGraph {
    pub async fn run(&self, run: &RunInput<'_>, events: &Emitter) -> Result<Value, Failure> {
        let mut request = self.client.post(&self.url).json(&run.as_json());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(limit) = self.timeout {
            request = request.timeout(limit);
        }
        let response = request.send().await.map_err(|err| self.transport(err))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| self.transport(err))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
            return Err(Failure::error(
                "HttpError",
                format!("{} answered {status}: {text}", self.url),
            ));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(values @ Value::Object(_)) => {
                events.emit("values", values.clone());
                Ok(values)
            }
            _ => Err(Failure::error(
                "HttpError",
                format!("{} answered {status} without a JSON object", self.url),
            )),
        }
    }

    fn transport(&self, err: reqwest::Error) -> Failure {
        match (err.is_timeout(), self.timeout) {
            (true, Some(limit)) => Failure::timeout(limit),
            _ => Failure::error("HttpError", format!("{}: {err}", self.url)),
        }
    }
}
