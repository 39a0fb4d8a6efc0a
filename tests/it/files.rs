//! Schedules as files: `import-crontab` on real crontab samples (tests/fixtures/crontab),
//! its graphs through `check-config` and on a real daemon that runs them, and `apply` /
//! `export` against real daemons on SQLite and PostgreSQL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Backend, Daemon, Storage, repo_root};

/// What one CLI invocation did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cronhook ARGS` with a clean environment (no CRONHOOK_* leaking in), against
/// `url` when given.
async fn cronhook(url: Option<&str>, args: &[&str]) -> Out {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cronhook"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CRONHOOK_") {
            command.env_remove(key);
        }
    }
    if let Some(url) = url {
        command.env("CRONHOOK_URL", url);
    }
    let output = command.args(args).output().await.expect("run cronhook");
    Out {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/crontab")
        .join(name)
        .display()
        .to_string()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Converts `crontab` into `dir/graphs.toml` and `dir/crons.toml`.
async fn import(crontab: &str, dir: &Path, extra: &[&str]) -> Out {
    let graphs = path(dir, "graphs.toml");
    let crons = path(dir, "crons.toml");
    let mut args = vec![
        "import-crontab",
        crontab,
        "--graphs-out",
        &graphs,
        "--crons-out",
        &crons,
    ];
    args.extend_from_slice(extra);
    cronhook(None, &args).await
}

/// The crons of a set, by name, as the daemon has them.
async fn set_crons(daemon: &Daemon, set: &str) -> serde_json::Map<String, Value> {
    let (status, crons) = daemon
        .post(
            "/runs/crons/search",
            &json!({"metadata": {"cronhook.set": set}, "limit": 1000}),
        )
        .await;
    assert_eq!(status, 200, "{crons}");
    crons
        .as_array()
        .expect("a list")
        .iter()
        .map(|cron| {
            let name = cron["metadata"]["cronhook.name"]
                .as_str()
                .expect("a name")
                .to_string();
            (name, cron.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crontab_converts_deterministically_into_graphs_check_config_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = import(&fixture("host.crontab"), dir.path(), &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("4 graph(s)") && out.stdout.contains("5 cron(s) of set crons"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("read in UTC"),
        "a note on the zone: {out:?}"
    );
    let graphs = std::fs::read_to_string(dir.path().join("graphs.toml")).expect("graphs");
    let crons = std::fs::read_to_string(dir.path().join("crons.toml")).expect("crons");

    // The same crontab again (from stdin this time): byte for byte the same files.
    let again = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read(fixture("host.crontab")).expect("fixture");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cronhook"))
        .args([
            "import-crontab",
            "-",
            "--graphs-out",
            &path(again.path(), "graphs.toml"),
            "--crons-out",
            &path(again.path(), "crons.toml"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&text).await.expect("write");
    }
    assert!(child.wait().await.expect("waits").success());
    assert_eq!(
        std::fs::read_to_string(again.path().join("graphs.toml")).expect("graphs"),
        graphs
    );
    assert_eq!(
        std::fs::read_to_string(again.path().join("crons.toml")).expect("crons"),
        crons
    );

    // What the crons file says: comment names, graph names, CRON_TZ, specials.
    let file: toml::Table = toml::from_str(&crons).expect("TOML");
    assert_eq!(file["set"].as_str(), Some("crons"));
    let entries = file["crons"].as_array().expect("crons");
    let get = |i: usize, key: &str| entries[i].get(key).and_then(|v| v.as_str());
    assert_eq!(get(0, "name"), Some("Nightly stamp"));
    assert_eq!(get(1, "name"), Some("Morning letter"));
    assert_eq!(get(2, "schedule"), Some("@daily"), "specials are kept");
    assert_eq!(
        get(2, "name"),
        get(2, "assistant_id"),
        "no comment: the graph's name"
    );
    assert_eq!(get(3, "name"), Some("Paris report"));
    assert_eq!(
        get(3, "timezone"),
        Some("Europe/Paris"),
        "CRON_TZ applies below it"
    );
    assert_eq!(get(0, "timezone"), None);
    assert_eq!(
        get(0, "assistant_id"),
        get(3, "assistant_id"),
        "one graph per command"
    );

    // The graphs: the command as cron(8) runs it, the crontab's variables as env.
    let graphs_table: toml::Table = toml::from_str(&graphs).expect("TOML");
    let letter = &graphs_table["graphs"][get(1, "assistant_id").expect("graph")];
    let argv: Vec<&str> = letter["command"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(argv[..2], ["/bin/sh", "-c"]);
    assert_eq!(
        argv[3..],
        [
            "/bin/sh",
            "cat > \"$HOME/letter\" ",
            "Dear ops,\nall is well."
        ],
        "% ends the command, the rest is stdin with % as newlines"
    );
    assert_eq!(letter["env"]["GREETING"].as_str(), Some("hello from cron"));
    assert!(letter["env"].get("CRON_TZ").is_none());
    let days = &graphs_table["graphs"][get(2, "assistant_id").expect("graph")];
    assert_eq!(
        days["command"][4].as_str(),
        Some("date +%Y-%m-%d >> \"$HOME/days\""),
        "\\% is a literal %"
    );

    // check-config takes the graphs once merged into a config.
    let config = dir.path().join("cronhook.toml");
    std::fs::write(
        &config,
        format!("[graphs.agent]\nkind = \"echo\"\n\n{graphs}"),
    )
    .expect("config");
    let checked = cronhook(
        None,
        &["check-config", "--config", &config.display().to_string()],
    )
    .await;
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(
        checked.stdout.contains("config ok: 5 graph(s)"),
        "{checked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crontab_lines_are_listed_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = import(&fixture("bad.crontab"), dir.path(), &[]).await;
    assert_eq!(out.code, 5, "{out:?}");
    for (line, what) in [
        (2, "@reboot"),
        (4, "unknown special '@fortnightly'"),
        (5, "Invalid cron schedule"),
        (6, "'61 * * * *'"),
        (7, "CRON_TZ"),
        (8, "no command"),
    ] {
        let wanted = format!("bad.crontab: line {line}: ");
        let found = out
            .stderr
            .lines()
            .find(|l| l.contains(&wanted))
            .unwrap_or_else(|| panic!("line {line} not listed: {}", out.stderr));
        assert!(found.contains(what), "line {line}: {found}");
    }
    assert!(
        !out.stderr.contains("line 3:"),
        "a good line is not listed: {}",
        out.stderr
    );
    assert!(!dir.path().join("graphs.toml").exists());
    assert!(!dir.path().join("crons.toml").exists());

    let zone = import(
        &fixture("host.crontab"),
        dir.path(),
        &["--timezone", "Mars/Olympus"],
    )
    .await;
    assert_eq!(zone.code, 5, "{zone:?}");
    assert!(zone.stderr.contains("--timezone"), "{zone:?}");
    assert!(!dir.path().join("crons.toml").exists());
}

/// The converted crontab on a real daemon: applied, one cron triggered, its command ran
/// (its stdin from the crontab's `%` text), and a second apply changes nothing.
async fn converted_crons_run_on_a_daemon(backend: Backend) {
    let storage = Storage::new(backend).await;
    let home = tempfile::tempdir().expect("temp dir");
    let dir = storage.dir.path();
    let out = import(
        &fixture("host.crontab"),
        dir,
        &["--timezone", "America/New_York"],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let graphs = std::fs::read_to_string(dir.join("graphs.toml")).expect("graphs");
    let config = dir.join("cronhook.toml");
    std::fs::write(
        &config,
        format!("[graphs.agent]\nkind = \"echo\"\n\n{graphs}"),
    )
    .expect("config");
    let home_dir = home.path().display().to_string();
    let daemon = Daemon::start_with_env(
        &storage,
        &["--config", &config.display().to_string()],
        &[("HOME", &home_dir)],
    )
    .await;
    let url = Some(daemon.url.as_str());
    let crons_file = path(dir, "crons.toml");

    let applied = cronhook(url, &["apply", "-f", &crons_file]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("5 to create")
            && applied.stdout.contains("+ create Morning letter"),
        "{applied:?}"
    );
    let crons = set_crons(&daemon, "crons").await;
    assert_eq!(crons.len(), 5, "{crons:?}");
    assert_eq!(crons["Nightly stamp"]["timezone"], "America/New_York");
    assert_eq!(crons["Paris report"]["timezone"], "Europe/Paris");
    assert_eq!(crons["date-0e46c125"]["schedule"], "@daily");

    let again = cronhook(url, &["apply", "-f", &crons_file, "--dry-run"]).await;
    assert_eq!(
        again.code, 0,
        "converting and applying again changes nothing: {again:?}"
    );
    assert!(again.stdout.contains("no changes"), "{again:?}");

    let letter = crons["Morning letter"]["cron_id"].as_str().expect("id");
    let triggered = cronhook(url, &["crons", "trigger", letter, "--json"]).await;
    assert_eq!(triggered.code, 0, "{triggered:?}");
    let written = home.path().join("letter");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, cron) = daemon.get(&format!("/runs/crons/{letter}")).await;
        if cron["last_run_status"].is_string() {
            assert_eq!(cron["last_run_status"], "success", "{cron}");
            break;
        }
        assert!(Instant::now() < deadline, "the run did not end: {cron}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&written).expect("the command wrote its file"),
        "Dear ops,\nall is well.",
        "the command got the crontab's % text on stdin"
    );

    let stamp = crons["Nightly stamp"]["cron_id"].as_str().expect("id");
    let triggered = cronhook(url, &["crons", "trigger", stamp]).await;
    assert_eq!(triggered.code, 0, "{triggered:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !home.path().join("stamp").exists() {
        assert!(Instant::now() < deadline, "no stamp written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        std::fs::read_to_string(home.path().join("stamp")).expect("stamp"),
        "hello from cron\n",
        "the crontab's variables are the command's environment"
    );
}

const TEAM_V1: &str = r#"
set = "team"

[[crons]]
name = "digest"
assistant_id = "agent"
schedule = "0 8 * * *"
timezone = "Europe/Paris"
input = { messages = [{ role = "user", content = "digest" }] }
metadata = { owner = "ops" }

[[crons]]
name = "report"
assistant_id = "agent"
schedule = "@hourly"
misfire_policy = "skip"
pause_after_failures = 3
input = { kind = "report" }

[[crons]]
name = "ping"
assistant_id = "agent"
schedule = "*/5 * * * *"
thread_id = "THREAD_ID"
multitask_strategy = "enqueue"

[[crons]]
name = "cleanup"
assistant_id = "agent"
schedule = "*/30 * * * *"
enabled = false
end_time = "2031-01-01T00:00:00Z"
config = { configurable = { depth = 2 } }
"#;

/// apply → edit → apply (only what changed) → prune → dry-run exit codes → export round
/// trip, with an API-made cron and another set's cron that apply must leave alone.
async fn apply_edit_prune_and_export(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, "[graphs.agent]\nkind = \"echo\"\n").await;
    let url = Some(daemon.url.as_str());
    let dir = storage.dir.path();
    let file: PathBuf = dir.join("team.toml");
    let file_arg = file.display().to_string();
    let thread = daemon.new_thread().await;
    let team_v1 = TEAM_V1.replace("THREAD_ID", &thread);
    std::fs::write(&file, &team_v1).expect("file");

    // A dry run of a new set: exit 2, nothing made.
    let planned = cronhook(url, &["apply", "-f", &file_arg, "--dry-run"]).await;
    assert_eq!(planned.code, 2, "{planned:?}");
    assert!(planned.stdout.contains("4 to create"), "{planned:?}");
    assert!(
        set_crons(&daemon, "team").await.is_empty(),
        "a dry run changes nothing"
    );

    let applied = cronhook(url, &["apply", "-f", &file_arg]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    let v1 = set_crons(&daemon, "team").await;
    assert_eq!(v1.len(), 4);
    assert_eq!(v1["ping"]["thread_id"], thread.as_str(), "a thread cron");
    assert_eq!(
        v1["digest"]["metadata"],
        json!({"owner": "ops", "cronhook.set": "team", "cronhook.name": "digest"})
    );
    assert_eq!(v1["cleanup"]["enabled"], false);
    assert_eq!(v1["report"]["pause_after_failures"], 3);

    // Crons apply must never touch: one made through the API, one of another set.
    let (status, api_made) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "@daily"}),
        )
        .await;
    assert_eq!(status, 200, "{api_made}");
    let other = dir.join("other.toml");
    std::fs::write(
        &other,
        "[[crons]]\nname = \"digest\"\nassistant_id = \"agent\"\nschedule = \"@weekly\"\n",
    )
    .expect("file");
    let out = cronhook(url, &["apply", "-f", &other.display().to_string()]).await;
    assert_eq!(out.code, 0, "the set defaults to the file's name: {out:?}");
    assert_eq!(set_crons(&daemon, "other").await.len(), 1);

    // Applying the same file again: no change, nothing written.
    let same = cronhook(url, &["apply", "-f", &file_arg, "--dry-run"]).await;
    assert_eq!(
        (same.code, same.stdout.contains("no changes")),
        (0, true),
        "{same:?}"
    );

    // Edit one cron: only its changed fields are sent; the others keep their updated_at.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2_text = team_v1
        .replace("schedule = \"@hourly\"", "schedule = \"@daily\"")
        .replace(
            "input = { kind = \"report\" }",
            "input = { kind = \"weekly report\" }",
        );
    std::fs::write(&file, &v2_text).expect("file");
    let planned = cronhook(url, &["apply", "-f", &file_arg, "--dry-run"]).await;
    assert_eq!(planned.code, 2, "{planned:?}");
    assert!(
        planned
            .stdout
            .contains("~ update report: schedule, input\n"),
        "{planned:?}"
    );
    assert!(planned.stdout.contains("1 to update") && planned.stdout.contains("3 unchanged"));
    let applied = cronhook(url, &["apply", "-f", &file_arg]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    let v2 = set_crons(&daemon, "team").await;
    assert_eq!(v2["report"]["schedule"], "@daily");
    assert_eq!(
        v2["report"]["payload"]["input"],
        json!({"kind": "weekly report"})
    );
    assert_eq!(
        v2["report"]["cron_id"], v1["report"]["cron_id"],
        "updated in place"
    );
    assert_ne!(v2["report"]["updated_at"], v1["report"]["updated_at"]);
    for untouched in ["digest", "ping", "cleanup"] {
        assert_eq!(
            v2[untouched]["updated_at"], v1[untouched]["updated_at"],
            "{untouched} was not sent a PATCH"
        );
    }

    // A change PATCH cannot make is refused without --replace, nothing applied.
    let v3_text = v2_text.replace(
        "name = \"digest\"",
        "name = \"digest\"\nmultitask_strategy = \"reject\"",
    );
    std::fs::write(&file, &v3_text).expect("file");
    let refused = cronhook(url, &["apply", "-f", &file_arg]).await;
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(
        refused
            .stdout
            .contains("-/+ replace digest: multitask_strategy"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("--replace"), "{refused:?}");
    assert_eq!(
        set_crons(&daemon, "team").await["digest"]["cron_id"],
        v1["digest"]["cron_id"]
    );
    let replaced = cronhook(url, &["apply", "-f", &file_arg, "--replace"]).await;
    assert_eq!(replaced.code, 0, "{replaced:?}");
    let v3 = set_crons(&daemon, "team").await;
    assert_ne!(
        v3["digest"]["cron_id"], v1["digest"]["cron_id"],
        "a new cron"
    );
    assert_eq!(v3["digest"]["payload"]["multitask_strategy"], "reject");

    // Remove a cron from the file: kept without --prune, deleted with it; the API-made
    // cron and the other set's are still there.
    let v4_text = v3_text
        .split("[[crons]]\nname = \"cleanup\"")
        .next()
        .expect("text")
        .to_string();
    std::fs::write(&file, &v4_text).expect("file");
    let kept = cronhook(url, &["apply", "-f", &file_arg, "--dry-run"]).await;
    assert_eq!(kept.code, 0, "nothing to do without --prune: {kept:?}");
    assert!(
        kept.stdout
            .contains("kept (--prune deletes them): \"cleanup\""),
        "{kept:?}"
    );
    let plan = cronhook(url, &["apply", "-f", &file_arg, "--dry-run", "--prune"]).await;
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains("- delete cleanup"), "{plan:?}");
    let pruned = cronhook(url, &["apply", "-f", &file_arg, "--prune"]).await;
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let v4 = set_crons(&daemon, "team").await;
    assert_eq!(v4.keys().collect::<Vec<_>>(), ["digest", "ping", "report"]);
    let api_id = api_made["cron_id"].as_str().expect("id");
    assert_eq!(
        daemon.get(&format!("/runs/crons/{api_id}")).await.0,
        200,
        "API-made cron kept"
    );
    assert_eq!(
        set_crons(&daemon, "other").await.len(),
        1,
        "the other set's cron kept"
    );
    let done = cronhook(url, &["apply", "-f", &file_arg, "--dry-run", "--prune"]).await;
    assert_eq!(done.code, 0, "{done:?}");

    // Export, then apply the export: no change; stdout and --output agree.
    let exported = dir.join("exported.toml");
    let out = cronhook(
        url,
        &[
            "export",
            "--set",
            "team",
            "-o",
            &exported.display().to_string(),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&exported).expect("export");
    assert!(text.contains("set = \"team\""), "{text}");
    assert!(
        text.contains("assistant_id = \"agent\""),
        "graph names, not ids: {text}"
    );
    let round = cronhook(
        url,
        &[
            "apply",
            "-f",
            &exported.display().to_string(),
            "--dry-run",
            "--prune",
        ],
    )
    .await;
    assert_eq!(round.code, 0, "the round trip is exact: {round:?}\n{text}");
    let stdout = cronhook(url, &["export", "--set", "team"]).await;
    assert_eq!(stdout.code, 0, "{stdout:?}");
    assert_eq!(stdout.stdout, text);
}

/// Bad files name their line and key; references the daemon lacks stop apply before
/// any change.
async fn bad_files_change_nothing(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, "[graphs.agent]\nkind = \"echo\"\n").await;
    let url = Some(daemon.url.as_str());
    let dir = storage.dir.path();
    let write = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).expect("file");
        file.display().to_string()
    };
    let bad = write(
        "bad.toml",
        "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n\n\
         [[crons]]\nname = \"b\"\nassistant_id = \"agent\"\nschedule = \"0 25 * * *\"\n",
    );
    let out = cronhook(url, &["apply", "-f", &bad]).await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains("line 9") && out.stderr.contains("0 25 * * *"),
        "{out:?}"
    );
    let unknown = write(
        "unknown.toml",
        "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n\n\
         [[crons]]\nname = \"b\"\nassistant_id = \"nightly\"\nschedule = \"@daily\"\n",
    );
    let out = cronhook(url, &["apply", "-f", &unknown]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("assistant \"nightly\""), "{out:?}");
    assert!(out.stderr.contains("nothing applied"), "{out:?}");
    let no_thread = write(
        "thread.toml",
        "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n\
         thread_id = \"0190a4b8-0000-7000-8000-000000000001\"\n",
    );
    let out = cronhook(url, &["apply", "-f", &no_thread]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("thread 0190a4b8-0000-7000-8000-000000000001 does not exist"),
        "{out:?}"
    );
    let missing = cronhook(url, &["apply", "-f", &path(dir, "absent.toml")]).await;
    assert_eq!(missing.code, 5, "{missing:?}");
    assert!(missing.stderr.contains("cannot read"), "{missing:?}");
    let (_, count) = daemon.post("/runs/crons/count", &json!({})).await;
    assert_eq!(count, 0, "nothing was created");
}

/// apply works with the API key's rights: two identities applying the same set each
/// manage their own crons, and one's prune never reaches the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_acts_with_the_api_keys_rights() {
    const ALICE: &str = "files-alice-key-0a1b2c3d";
    const BOB: &str = "files-bob-key-4e5f6a7b8c";
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(
        &storage,
        &format!(
            "[graphs.agent]\nkind = \"echo\"\n\
             [[auth.api_keys]]\nidentity = \"alice\"\nkey = \"{ALICE}\"\n\
             [[auth.api_keys]]\nidentity = \"bob\"\nkey = \"{BOB}\"\n"
        ),
    )
    .await;
    let url = Some(daemon.url.as_str());
    let dir = storage.dir.path();
    let one = dir.join("shared.toml");
    std::fs::write(
        &one,
        "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n",
    )
    .expect("file");
    let one = one.display().to_string();
    let none = cronhook(url, &["apply", "-f", &one]).await;
    assert_eq!(none.code, 4, "no key: {none:?}");
    let alice = cronhook(url, &["--api-key", ALICE, "apply", "-f", &one]).await;
    assert_eq!(alice.code, 0, "{alice:?}");
    let bob = cronhook(url, &["--api-key", BOB, "apply", "-f", &one, "--dry-run"]).await;
    assert_eq!(bob.code, 2, "bob does not see alice's cron: {bob:?}");
    assert!(bob.stdout.contains("+ create a"), "{bob:?}");

    let empty = dir.join("shared-empty.toml");
    std::fs::write(&empty, "set = \"shared\"\n").expect("file");
    let empty = empty.display().to_string();
    let pruned = cronhook(url, &["--api-key", BOB, "apply", "-f", &empty, "--prune"]).await;
    assert_eq!(pruned.code, 0, "{pruned:?}");
    assert!(pruned.stdout.contains("0 to delete"), "{pruned:?}");
    let kept = cronhook(url, &["--api-key", ALICE, "export", "--set", "shared"]).await;
    assert_eq!(kept.code, 0, "{kept:?}");
    assert!(
        kept.stdout.contains("name = \"a\""),
        "alice's cron is still there: {kept:?}"
    );
}

/// Every crons file docs/files.md shows (```toml crons) applies as written: a dry run
/// against a daemon with the `agent` graph plans its creates and refuses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_crons_files_apply() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, "[graphs.agent]\nkind = \"echo\"\n").await;
    let docs = std::fs::read_to_string(repo_root().join("docs/files.md")).expect("docs");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in docs.lines() {
        match &mut current {
            None if line.trim() == "```toml crons" => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(!blocks.is_empty(), "docs/files.md shows a crons file");
    for (index, block) in blocks.iter().enumerate() {
        let file = storage.dir.path().join(format!("example-{index}.toml"));
        std::fs::write(&file, block).expect("file");
        let out = cronhook(
            Some(&daemon.url),
            &["apply", "-f", &file.display().to_string(), "--dry-run"],
        )
        .await;
        assert_eq!(out.code, 2, "{block}\n{out:?}");
        assert!(out.stdout.contains("+ create"), "{out:?}");
    }
}

on_both_backends!(
    converted_crons_run_on_a_daemon,
    apply_edit_prune_and_export,
    bad_files_change_nothing
);
