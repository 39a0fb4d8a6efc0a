//! Faults an operator meets: a second daemon pointed at a SQLite file that a running daemon
//! holds.

use std::process::Command;

use crate::common::{Backend, Daemon, Storage, free_port};

/// A second daemon on a SQLite file that a running daemon holds refuses to start, naming the
/// file and the holder's process and pointing to PostgreSQL; the first serves on, and once
/// it stops the file is free (no stale lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_one_sqlite_file_refuses_to_start() {
    let storage = Storage::new(Backend::Sqlite).await;
    let first = Daemon::start(&storage).await;
    let other_dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_cronhook"))
        .args(["--bind", &format!("127.0.0.1:{}", free_port())])
        .args(["--data-dir", &other_dir.path().display().to_string()])
        .args(["--database-url", &storage.database_url])
        .output()
        .expect("run cronhook");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let database = storage.dir.path().join("cronhook.db");
    let holder = format!(
        "{} is in use by another cronhook process (pid {})",
        database.display(),
        first.child.id()
    );
    assert!(stderr.contains(&holder), "{stderr}");
    assert!(stderr.contains("run replicas on PostgreSQL"), "{stderr}");
    let (status, _) = first.get("/ok").await;
    assert_eq!(status, 200, "the first daemon serves on");

    first.kill9();
    let second = Daemon::start(&storage).await;
    let (status, _) = second.get("/ok").await;
    assert_eq!(status, 200, "the lock went with the killed process");
}
