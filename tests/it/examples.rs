//! Every configuration shipped or shown to users passes `check-config` as written: each
//! TOML block of README.md and docs/, and systemd/cronhook.toml both as shipped and with
//! its commented-out settings uncommented. The variables the examples name are set, as
//! the examples say they must be.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variables the examples read (`key_env`, `api_key_env`, `${{ env.… }}`).
const EXAMPLE_ENV: [(&str, &str); 5] = [
    ("CRONHOOK_KEY_OPS", "ops-example-key-0123456789"),
    ("CRONHOOK_KEY_TEAM_A", "team-a-example-key-0123456789"),
    ("UPSTREAM_API_KEY", "upstream-example-key"),
    ("LG_WEBHOOK_TOKEN", "example-token"),
    ("LG_WEBHOOK_SECRET", "example-secret"),
];

fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in markdown.lines().enumerate() {
        match &mut current {
            // Exactly `toml`: crons files (`toml crons`) are checked by `files`.
            None if line.trim() == "```toml" => {
                current = Some((number + 1, String::new()));
            }
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(current.take());
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// `# key = value` and `# [table]` lines uncommented; prose comments stay.
fn uncommented(toml: &str) -> String {
    toml.lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix("# ") else {
                return line.to_string();
            };
            let setting = rest.starts_with('[')
                || rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if setting {
                rest.to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(what: &str, toml: &str, dir: &Path) -> Option<String> {
    let path = dir.join("example.toml");
    std::fs::write(&path, toml).expect("write example");
    let output = Command::new(env!("CARGO_BIN_EXE_cronhook"))
        .args(["check-config", "--config", &path.display().to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(EXAMPLE_ENV)
        .output()
        .expect("run check-config");
    (!output.status.success()).then(|| {
        format!(
            "{what}: {}{}\n{toml}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn every_shipped_and_documented_config_passes_check_config() {
    let root = crate::common::repo_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut documents: Vec<PathBuf> = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);

    let mut checked = 0;
    let mut failures = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document).expect("read document");
        for (line, block) in toml_blocks(&text) {
            let what = format!("{}:{line}", document.display());
            checked += 1;
            failures.extend(check(&what, &block, dir.path()));
            if block.lines().any(|l| l.starts_with("# ")) {
                failures.extend(check(
                    &format!("{what} (uncommented)"),
                    &uncommented(&block),
                    dir.path(),
                ));
            }
        }
    }
    let shipped = std::fs::read_to_string(root.join("systemd/cronhook.toml")).expect("shipped");
    failures.extend(check("systemd/cronhook.toml", &shipped, dir.path()));
    let all_on = uncommented(&shipped);
    assert!(
        all_on.contains("\n[[auth.api_keys]]"),
        "the uncommented variant has the keys"
    );
    failures.extend(check(
        "systemd/cronhook.toml (uncommented)",
        &all_on,
        dir.path(),
    ));
    assert!(
        checked >= 10,
        "only {checked} TOML blocks found in README.md and docs/"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `check-config` refuses what `serve` refuses (an unset `api_key_env`), and warns about a
/// command graph whose working directory or program is missing on this machine.
#[test]
fn check_config_refuses_what_serve_refuses_and_names_what_is_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronhook.toml");
    let run = |toml: &str| {
        std::fs::write(&path, toml).expect("write config");
        Command::new(env!("CARGO_BIN_EXE_cronhook"))
            .args(["check-config", "--config", &path.display().to_string()])
            .env_remove("UNSET_UPSTREAM_KEY")
            .output()
            .expect("run check-config")
    };
    let output = run(
        "[graphs.up]\nkind = \"langgraph\"\nurl = \"http://127.0.0.1:2024\"\nassistant_id = \"agent\"\napi_key_env = \"UNSET_UPSTREAM_KEY\"\n",
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "graphs.up: environment variable UNSET_UPSTREAM_KEY (api_key_env) is not set"
        ),
        "{stderr}"
    );
    let output = run(
        "[graphs.report]\nkind = \"command\"\ncommand = [\"python3\", \"report.py\"]\ncwd = \"/nonexistent/report\"\n\
         [graphs.tool]\nkind = \"command\"\ncommand = [\"no-such-program-here\"]\n",
    );
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "warning: graphs.report: the working directory /nonexistent/report does not exist"
        ) && stdout
            .contains("warning: graphs.tool: the program `no-such-program-here` was not found")
            && stdout.contains("config ok: 2 graph(s)"),
        "{stdout}"
    );
}
