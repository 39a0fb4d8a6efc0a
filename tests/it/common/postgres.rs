//! A throw-away PostgreSQL server shared by all the tests of the process (each test makes a
//! database of its own): `initdb` + `postgres` on a temp dir and a free port, run as the
//! `postgres` OS user when the tests run as root. The server dies with the test process
//! (PR_SET_PDEATHSIG), so nothing outlives a run.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};

pub struct PgServer {
    pub port: u16,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The server of this test process, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(PgServer::start)
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|dir| dir.join("initdb").exists())
        .expect("PostgreSQL binaries not found under /usr/lib/postgresql: run scripts/test.sh, which installs the postgresql package")
}

/// (uid, gid) of the `postgres` user when we are root (initdb refuses to run as root).
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let output = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    let output = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some((uid, gid))
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command.env_remove("PGDATA").env_remove("PGPORT");
    command
}

/// Data dirs of earlier test processes that are gone (their servers died with them).
fn remove_stale_servers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("cronhook-pg-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl PgServer {
    fn start() -> PgServer {
        let bin = bin_dir();
        let user = run_as();
        remove_stale_servers();
        let root = std::env::temp_dir().join(format!("cronhook-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("pg temp dir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).expect("chown pg dir");
        }
        let data = root.join("data");
        let status = command(&bin.join("initdb"), user)
            .args(["-D", &data.display().to_string()])
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");

        let port = super::free_port();
        let log = std::fs::File::create(root.join("postgres.log")).expect("pg log");
        if let Some((uid, gid)) = user {
            let _ = std::os::unix::fs::chown(root.join("postgres.log"), Some(uid), Some(gid));
        }
        // Spawned from a thread that lives as long as the process: PDEATHSIG follows the
        // spawning thread, and the server must outlive every individual test thread.
        let postgres = bin.join("postgres");
        let data_arg = data.display().to_string();
        let socket_dir = root.display().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut cmd = command(&postgres, user);
            cmd.args(["-D", &data_arg, "-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", &format!("unix_socket_directories={socket_dir}")])
                .args(["-c", "fsync=off", "-c", "max_connections=300"])
                .stdout(Stdio::null())
                .stderr(log);
            // SAFETY: prctl in the child before exec; async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                    Ok(())
                });
            }
            let child = cmd.spawn();
            let _ = tx.send(child.map(|c| c.id()));
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("pg spawn thread").expect("spawn postgres");

        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(root.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PgServer { port }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Database::connect(self.url("postgres")).await {
                Ok(admin) => {
                    admin
                        .execute_unprepared(&format!("CREATE DATABASE {name}"))
                        .await
                        .expect("create database");
                    let _ = admin.close().await;
                    return self.url(&name);
                }
                Err(err) if Instant::now() > deadline => panic!("cannot reach postgres: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}
