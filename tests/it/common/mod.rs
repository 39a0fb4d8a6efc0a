//! Test harness: the real `cronhook` binary on a random port, against a fresh SQLite file
//! or a fresh database in a throw-away PostgreSQL server started from the system binaries.

pub mod postgres;
pub mod receiver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each scenario `async fn name(backend: Backend)` once per backend, as the tests
/// `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Backend::Postgres).await })*
        }
    };
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where a daemon keeps its data: a temp dir plus, for PostgreSQL, its own database.
pub struct Storage {
    pub dir: tempfile::TempDir,
    pub database_url: String,
}

impl Storage {
    pub async fn new(backend: Backend) -> Storage {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("cronhook.db").display()
            ),
            Backend::Postgres => postgres::server().fresh_database().await,
        };
        Storage { dir, database_url }
    }
}

/// A fresh storage and a daemon on it with the echo graph `agent`, webhooks allowed to
/// loopback (tests point them at closed loopback ports: nothing leaves the machine).
pub async fn started_with_loopback_hooks(backend: Backend) -> (Storage, Daemon) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(
        &storage,
        "[graphs.agent]\nkind = \"echo\"\n[webhooks.url]\ndisable_loopback = false\n",
    )
    .await;
    (storage, daemon)
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub url: String,
    pub log: PathBuf,
    pub client: reqwest::Client,
}

impl Daemon {
    /// Starts the binary on `storage` and waits until `/ok` answers.
    pub async fn start(storage: &Storage) -> Daemon {
        Self::start_with(storage, &[]).await
    }

    /// Starts the binary with `config` (TOML) written to the storage's directory.
    pub async fn start_with_config(storage: &Storage, config: &str) -> Daemon {
        let path = storage.dir.path().join("cronhook.toml");
        std::fs::write(&path, config).expect("write config");
        Self::start_with(storage, &["--config", &path.display().to_string()]).await
    }

    pub async fn start_with(storage: &Storage, extra_args: &[&str]) -> Daemon {
        Self::start_with_env(storage, extra_args, &[]).await
    }

    /// Starts the binary with extra arguments and environment variables.
    pub async fn start_with_env(
        storage: &Storage,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let log = storage.dir.path().join(format!("daemon-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cronhook"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &storage.dir.path().display().to_string()])
            .args(["--database-url", &storage.database_url])
            .args(extra_args)
            .env("CRONHOOK_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn cronhook");
        let daemon = Daemon {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            log,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        };
        daemon.wait_ready().await;
        daemon
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = self.client.get(format!("{}/ok", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "daemon did not become ready; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(&self.child, libc::SIGTERM);
        let Some(status) = exit_within(&mut self.child, Duration::from_secs(20)) else {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "cronhook {} did not exit within 20 s of SIGTERM; its log ends:\n{}",
                self.child.id(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        };
        std::mem::forget(self);
        status
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        split(response).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.send_as(None, method, path, body).await
    }

    /// A request with an API key in `x-api-key` (none: no header).
    pub async fn send_as(
        &self,
        key: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        split(request.send().await.expect("request")).await
    }

    /// Creates an empty thread and returns its id.
    pub async fn new_thread(&self) -> String {
        let (status, thread) = self.post("/threads", &serde_json::json!({})).await;
        assert_eq!(status, 200, "{thread}");
        thread["thread_id"].as_str().expect("thread_id").to_string()
    }

    /// A raw body, for malformed JSON and size limits. Sent on a connection of its own: a
    /// server that refuses a large body closes the connection, which a pooled client would
    /// otherwise try to reuse.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let response = client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        split(response).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// A child process killed when the guard drops, so a failing assertion leaves no daemon behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    exit_within(child, timeout)
        .unwrap_or_else(|| panic!("process {} did not exit within {timeout:?}", child.id()))
}

/// The child's exit status once it exits, or None (and the child killed) after `timeout`.
fn exit_within(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Python with the pinned test packages (croniter, standardwebhooks):
/// `$CRONHOOK_TEST_PYTHON`, else `tests/sdk/.venv/bin/python` (made by `scripts/venv.sh`).
/// A missing interpreter fails the test: it never passes silently.
pub fn test_python() -> PathBuf {
    let python = std::env::var_os("CRONHOOK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/sdk/.venv/bin/python"));
    assert!(
        python.exists(),
        "no Python at {}: run scripts/venv.sh (creates tests/sdk/.venv from \
         tests/sdk/requirements.txt) or point CRONHOOK_TEST_PYTHON at a Python with \
         those packages",
        python.display()
    );
    python
}

/// The repository root (for fixtures and scripts).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
