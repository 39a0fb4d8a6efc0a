//! A webhook receiver for the tests: an HTTP server on a loopback port that records every
//! request and answers the status codes it is told to.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub uri: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }
}

pub struct ReceiverState {
    seen: Mutex<Vec<Received>>,
    /// Status codes to answer, in order; 200 once they run out.
    plan: Mutex<VecDeque<u16>>,
    /// While true, requests are recorded but not answered.
    held: tokio::sync::watch::Sender<bool>,
}

impl Default for ReceiverState {
    fn default() -> Self {
        ReceiverState {
            seen: Mutex::default(),
            plan: Mutex::default(),
            held: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// An HTTP receiver on a loopback port that records every request.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        Self::serve(listener).await
    }

    pub async fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state, task }
    }

    pub fn answer(&self, codes: &[u16]) {
        self.state
            .plan
            .lock()
            .expect("plan")
            .extend(codes.iter().copied());
    }

    /// Records requests from now on without answering them, until `release`.
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Answers the requests held and those to come.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Received> {
        self.state.seen.lock().expect("seen").clone()
    }

    /// Waits until `count` requests arrived, and returns them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.seen();
            if seen.len() >= count {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {count} requests in {timeout:?}: {seen:#?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    state.seen.lock().expect("seen").push(Received {
        uri: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let code = state.plan.lock().expect("plan").pop_front().unwrap_or(200);
    let _ = state.held.subscribe().wait_for(|held| !held).await;
    (
        StatusCode::from_u16(code).expect("status"),
        "receiver says hello",
    )
}
