//! Faults an operator meets: a second daemon pointed at a SQLite file that a running daemon
//! holds, and PostgreSQL going away under a running daemon.

use std::process::Command;
use std::time::{Duration, Instant};

use entity::states::FireOutcome;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;

use crate::common::receiver::Receiver;
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

/// A TCP link on loopback between the daemon and PostgreSQL: `cut` closes every connection
/// through it and refuses new ones (the database is away, as in a restart or a partition),
/// `restore` lets connections through again on the same port; `stall` keeps every connection
/// open but carries nothing (packets dropped on the way, as in a partition that refuses
/// nothing), `resume` carries again what was held.
struct Link {
    port: u16,
    target: u16,
    task: Option<tokio::task::JoinHandle<()>>,
    stalled: tokio::sync::watch::Sender<bool>,
}

impl Link {
    async fn open(target: u16) -> Link {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind link");
        let port = listener.local_addr().expect("addr").port();
        let stalled = tokio::sync::watch::Sender::new(false);
        Link {
            port,
            target,
            task: Some(tokio::spawn(forward(listener, target, stalled.subscribe()))),
            stalled,
        }
    }

    fn stall(&self) {
        self.stalled.send_replace(true);
    }

    fn resume(&self) {
        self.stalled.send_replace(false);
    }

    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("rebinding the link: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("cannot rebind the link on {}: {err}", self.port),
            }
        };
        self.task = Some(tokio::spawn(forward(
            listener,
            self.target,
            self.stalled.subscribe(),
        )));
    }
}

/// Accepts and pipes each connection to `target`, holding every byte while `stalled`;
/// aborting it drops every pipe.
async fn forward(
    listener: tokio::net::TcpListener,
    target: u16,
    stalled: tokio::sync::watch::Receiver<bool>,
) {
    let mut pipes = tokio::task::JoinSet::new();
    while let Ok((inbound, _)) = listener.accept().await {
        let mut stalled = stalled.clone();
        pipes.spawn(async move {
            let _ = stalled.wait_for(|stalled| !stalled).await;
            if let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::join!(
                    pump(in_read, out_write, stalled.clone()),
                    pump(out_read, in_write, stalled)
                );
            }
        });
    }
}

/// Copies `from` to `to`, each read held back while the link is stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|stalled| !stalled).await.is_err()
            || to.write_all(&buf[..n]).await.is_err()
        {
            return;
        }
    }
}

/// PostgreSQL unreachable without a refusal (every byte to and from it held for 8 s, the
/// connections left open): `/ok` answers 503 with its JSON `detail` within its one-second
/// deadline instead of waiting on the database, and the daemon is ready within 5 s once the
/// link carries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_answers_503_at_once_and_recovers() {
    let real = Storage::new(Backend::Postgres).await;
    let server = crate::common::postgres::server();
    let link = Link::open(server.port).await;
    let through_link = Storage {
        dir: tempfile::tempdir().expect("temp dir"),
        database_url: real
            .database_url
            .replace(&format!(":{}/", server.port), &format!(":{}/", link.port)),
    };
    let mut daemon = Daemon::start(&through_link).await;
    let (status, _) = daemon.get("/ok").await;
    assert_eq!(status, 200);

    link.stall();
    let stalled_at = Instant::now();
    for _ in 0..3 {
        let asked = Instant::now();
        let (status, body) = daemon.get("/ok").await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("database")),
            "{body}"
        );
        assert!(
            asked.elapsed() < Duration::from_millis(1_800),
            "/ok took {:?} on a stalled database",
            asked.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(stalled_at.elapsed())).await;
    assert!(
        daemon.child.try_wait().expect("status").is_none(),
        "the daemon stays up while the database is stalled"
    );

    link.resume();
    let back_at = Instant::now();
    loop {
        let (status, body) = daemon.get("/ok").await;
        if status == 200 {
            break;
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(5),
            "not ready within 5 s of the link carrying again: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(daemon.stop().success());
}

/// PostgreSQL away for 10 s under a running daemon with per-second crons: the daemon stays
/// up, `/ok` and the API answer 503 with a JSON `detail` naming the database, it is ready
/// again within 5 s of the database's return, and every instant of every cron is covered by
/// exactly one history entry (fired, or missed under the cron's misfire policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_with_nothing_lost() {
    let real = Storage::new(Backend::Postgres).await;
    let server = crate::common::postgres::server();
    let mut link = Link::open(server.port).await;
    let through_link = Storage {
        dir: tempfile::tempdir().expect("temp dir"),
        database_url: real
            .database_url
            .replace(&format!(":{}/", server.port), &format!(":{}/", link.port)),
    };
    assert_ne!(through_link.database_url, real.database_url);
    let mut daemon = Daemon::start(&through_link).await;
    let thread_id = daemon.new_thread().await;
    let mut crons = Vec::new();
    for (path, body) in [
        (
            format!("/threads/{thread_id}/runs/crons"),
            json!({"assistant_id": "agent", "schedule": "* * * * * *"}),
        ),
        (
            "/runs/crons".to_string(),
            json!({"assistant_id": "agent", "schedule": "* * * * * *",
                   "on_run_completed": "keep", "misfire_policy": "fire_all"}),
        ),
    ] {
        let (status, cron) = daemon.post(&path, &body).await;
        assert_eq!(status, 200, "{cron}");
        crons.push(cron["cron_id"].as_str().expect("cron_id").to_string());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    link.cut();
    let cut_at = Instant::now();
    let (status, body) = loop {
        let (status, body) = daemon.get("/ok").await;
        if status != 200 || cut_at.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("database")),
        "{body}"
    );
    let (status, body) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "0 0 1 1 *"}),
        )
        .await;
    assert_eq!(status, 503, "a write while the database is away: {body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("database"))
    );
    let (status, body) = daemon.get(&format!("/runs/crons/{}", crons[0])).await;
    assert_eq!(status, 503, "a read while the database is away: {body}");
    let away = Duration::from_secs(10);
    tokio::time::sleep(away.saturating_sub(cut_at.elapsed())).await;
    assert!(
        daemon.child.try_wait().expect("status").is_none(),
        "the daemon stays up while the database is away; log: {}",
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );

    link.restore().await;
    let back_at = Instant::now();
    let back_ms = chrono::Utc::now().timestamp_millis();
    loop {
        let (status, body) = daemon.get("/ok").await;
        if status == 200 {
            break;
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(5),
            "not ready within 5 s of the database's return: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(daemon.stop().success());

    let db = sea_orm::Database::connect(real.database_url.as_str())
        .await
        .expect("connect");
    for cron_id in &crons {
        let fired_after_return = covered_once(&db, cron_id, back_ms).await;
        assert!(fired_after_return >= 2, "{cron_id} fires again");
    }
}

/// Unmounts the tmpfs when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` (e.g. "8m") on a fresh directory; `None` when this process may not
    /// mount (not root), which CI always is.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!(
            "cronhook-tmpfs-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        status.success().then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The SQLite daemon's disk fills up under per-second crons, a run that ends meanwhile and a
/// webhook answered meanwhile: writes answer 503 with a JSON `detail` naming the cause, the
/// daemon stays up, nothing accepted before is lost, the run's end and the webhook's
/// outcome are recorded once space is freed (neither run nor sent again), firing resumes,
/// and the database passes `PRAGMA integrity_check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_firing_resumes_when_space_frees() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let disk = Tmpfs::mount("16m").expect("mount a tmpfs (as root)");
    let storage = Storage {
        dir: tempfile::tempdir().expect("temp dir"),
        database_url: format!("sqlite://{}?mode=rwc", disk.0.join("cronhook.db").display()),
    };
    let mut daemon = Daemon::start_with_config(
        &storage,
        "[graphs.agent]\nkind = \"echo\"\n\
         [graphs.slow]\nkind = \"command\"\n\
         command = [\"sh\", \"-c\", \"cat >/dev/null; sleep 3; echo '{}'\"]\n\
         [webhooks.url]\ndisable_loopback = false\n",
    )
    .await;
    let receiver = Receiver::start().await;
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "* * * * * *",
                    "input": {"messages": [{"role": "user", "content": "tick"}]},
                    "on_run_completed": "keep", "misfire_policy": "fire_all"}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let cron_id = cron["cron_id"].as_str().expect("cron_id").to_string();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Started now, it ends while the disk is full.
    let (status, slow) = daemon
        .post(
            "/runs",
            &json!({"assistant_id": "slow", "input": {}, "on_completion": "keep"}),
        )
        .await;
    assert_eq!(status, 200, "{slow}");
    let slow_id = slow["run_id"].as_str().expect("run_id").to_string();
    let slow_ends = Instant::now() + Duration::from_secs(3);
    // Its webhook reaches the receiver now and is answered once the disk is full.
    receiver.hold();
    let (status, hooked) = daemon
        .post(
            "/runs",
            &json!({"assistant_id": "agent", "input": {"messages": []},
                    "on_completion": "keep", "webhook": receiver.url("/hook")}),
        )
        .await;
    assert_eq!(status, 200, "{hooked}");
    let hooked_id = hooked["run_id"].as_str().expect("run_id").to_string();
    receiver.wait_for(1, Duration::from_secs(5)).await;

    // Fill what is left of the disk, and again whenever SQLite frees some (a checkpoint
    // truncating its log), then write crons of 256 KiB until one is refused: a write that
    // fits in the log's room (left by transactions rolled back) is accepted, and kept.
    let filler = disk.0.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let mut fill = move || {
        use std::io::Write;
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.flush();
    };
    let full_at = Instant::now();
    let mut accepted = Vec::new();
    let (status, body) = loop {
        fill();
        let (status, body) = daemon
            .post(
                "/runs/crons",
                &json!({"assistant_id": "agent", "schedule": "0 0 1 1 *",
                        "metadata": {"pad": "x".repeat(256 * 1024)}}),
            )
            .await;
        if status != 200 || full_at.elapsed() > Duration::from_secs(20) {
            break (status, body);
        }
        accepted.push(body["cron_id"].as_str().expect("cron_id").to_string());
    };
    assert_eq!(
        status,
        503,
        "a write on a full disk: {body}; log: {}",
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("disk is full")),
        "{body}"
    );
    // Small writes too, until one is refused: no room is left for the webhook's outcome.
    for _ in 0..200 {
        fill();
        let (status, body) = daemon
            .post(
                "/runs/crons",
                &json!({"assistant_id": "agent", "schedule": "0 0 1 1 *"}),
            )
            .await;
        if status != 200 {
            break;
        }
        accepted.push(body["cron_id"].as_str().expect("cron_id").to_string());
    }
    receiver.release();
    tokio::time::sleep_until(
        (slow_ends + Duration::from_secs(2))
            .max(Instant::now() + Duration::from_secs(2))
            .into(),
    )
    .await;
    assert!(
        daemon.child.try_wait().expect("status").is_none(),
        "the daemon stays up on a full disk; log: {}",
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );

    drop(fill); // closes the filler: an open file keeps its space
    std::fs::remove_file(&filler).expect("free the space");
    let freed_ms = chrono::Utc::now().timestamp_millis();
    let freed_at = Instant::now();
    loop {
        let (status, body) = daemon
            .post(
                "/runs/crons",
                &json!({"assistant_id": "agent", "schedule": "0 0 1 1 *"}),
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(
            freed_at.elapsed() < Duration::from_secs(5),
            "writes resume within 5 s of space freed: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = daemon.log.clone();
    assert!(daemon.stop().success());
    let log = std::fs::read_to_string(log).unwrap_or_default();

    let db = sea_orm::Database::connect(storage.database_url.as_str())
        .await
        .expect("connect");
    let checked: Vec<String> = {
        use sea_orm::{ConnectionTrait, Statement};
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA integrity_check",
        ))
        .await
        .expect("integrity_check")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("text"))
        .collect()
    };
    assert_eq!(checked, ["ok"]);
    // Every cron the full disk accepted is kept.
    let kept = entity::cron::Entity::find()
        .filter(entity::cron::Column::CronId.is_in(accepted.clone()))
        .count(&db)
        .await
        .expect("count crons");
    assert_eq!(kept as usize, accepted.len(), "accepted: {accepted:?}");
    let fired_after = covered_once(&db, &cron_id, freed_ms).await;
    assert!(fired_after >= 2, "firing resumes; log: {log}");
    // A run that ended while the disk was full has its end recorded once space frees: none
    // is left running for its lease to re-queue, none ran twice.
    let runs = entity::run::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(entity::run::Column::CronId.eq(cron_id.clone()))
                .add(entity::run::Column::RunId.eq(slow_id.clone())),
        )
        .all(&db)
        .await
        .expect("read runs");
    let ran_again: Vec<_> = runs
        .iter()
        .filter(|run| run.attempt > 1 || run.status == entity::states::RunStatus::Running)
        .map(|run| (&run.run_id, run.attempt, run.status))
        .collect();
    assert!(ran_again.is_empty(), "{ran_again:?}; log: {log}");
    let slow = runs
        .iter()
        .find(|run| run.run_id == slow_id)
        .expect("the run is kept");
    assert_eq!(
        slow.status,
        entity::states::RunStatus::Success,
        "log: {log}"
    );
    // The webhook answered while the disk was full is recorded as delivered once, not
    // left to its lease to be sent again.
    let delivery = entity::delivery::Entity::find()
        .filter(entity::delivery::Column::RunId.eq(hooked_id.clone()))
        .one(&db)
        .await
        .expect("read the delivery")
        .expect("the run's delivery");
    assert_eq!(
        (delivery.status, delivery.attempts),
        (entity::states::DeliveryStatus::Delivered, 1),
        "{delivery:?}; log: {log}"
    );
    assert_eq!(receiver.seen().len(), 1);
}

/// Asserts that every instant of the per-second cron `cron_id`, from its first up to its
/// next, is covered by exactly one history entry (fired, or missed under its misfire
/// policy), and answers how many were fired at or after `since_ms`.
async fn covered_once(db: &sea_orm::DatabaseConnection, cron_id: &str, since_ms: i64) -> usize {
    let cron = entity::cron::Entity::find_by_id(cron_id.to_string())
        .one(db)
        .await
        .expect("read cron")
        .expect("the cron is kept");
    let entries = entity::cron_fire::Entity::find()
        .filter(entity::cron_fire::Column::CronId.eq(cron_id.to_string()))
        .order_by_asc(entity::cron_fire::Column::ScheduledFor)
        .all(db)
        .await
        .expect("history");
    let mut expected = entries.first().expect("fired").scheduled_for;
    for entry in &entries {
        assert_eq!(entry.scheduled_for, expected, "gap or overlap: {entry:?}");
        expected = entry.last_scheduled_for.unwrap_or(entry.scheduled_for) + 1_000;
    }
    assert_eq!(
        Some(expected),
        cron.next_run_at,
        "no gap up to the next instant"
    );
    entries
        .iter()
        .filter(|entry| entry.outcome == FireOutcome::Fired && entry.fired_at >= since_ms)
        .count()
}
