//! What the Debian package takes from the binary (scripts/deb.sh): the man pages and shell
//! completions `cronhook generate` writes, and a start-up that names what the system lacks.
//! The package itself is tested under a real systemd by scripts/systemd-boot-test.sh.

use std::path::Path;
use std::process::{Command, Output};

fn cronhook(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cronhook"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CRONHOOK_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run cronhook")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn generate_man_writes_a_page_per_visible_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cronhook(&["generate", "man", &dir.path().display().to_string()], &[]);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8(out.stdout).expect("utf-8");
    for page in [
        "cronhook.1",
        "cronhook-serve.1",
        "cronhook-check-config.1",
        "cronhook-crons.1",
        "cronhook-crons-create.1",
        "cronhook-crons-history.1",
        "cronhook-runs-get.1",
        "cronhook-deliveries-retry.1",
    ] {
        let path = dir.path().join(page);
        assert!(
            listed.contains(&path.display().to_string()),
            "{page} not listed: {listed}"
        );
        assert!(read(&path).starts_with(".ie"), "{page} is not roff");
    }
    let main = read(&dir.path().join("cronhook.1"));
    assert!(main.contains(".TH cronhook 1"), "{main}");
    // The page says what --help says: the flags, and the exit codes after the options.
    for text in [
        "\\-\\-database\\-url",
        "CRONHOOK_URL",
        "cannot reach the daemon",
    ] {
        assert!(main.contains(text), "{text} not in cronhook.1:\n{main}");
    }
    // `generate` is packaging plumbing, hidden from --help and from the man pages.
    assert!(!dir.path().join("cronhook-generate.1").exists());
    assert!(!main.contains("generate"), "{main}");
}

#[test]
fn generate_completions_complete_subcommands_in_bash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = cronhook(
        &["generate", "completions", &dir.path().display().to_string()],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(read(&dir.path().join("_cronhook")).starts_with("#compdef cronhook"));
    assert!(read(&dir.path().join("cronhook.fish")).contains("complete -c cronhook"));
    // The bash file, sourced by a real bash, completes `cronhook crons pa` and a value enum.
    let script = format!(
        ". {}\n\
         COMP_WORDS=(cronhook crons pa); COMP_CWORD=2; COMP_LINE='cronhook crons pa'\n\
         COMP_POINT=${{#COMP_LINE}}; _cronhook cronhook pa crons; echo \"${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(cronhook crons create --misfire-policy f); COMP_CWORD=4\n\
         _cronhook cronhook f --misfire-policy; echo \"${{COMPREPLY[*]}}\"",
        dir.path().join("cronhook.bash").display()
    );
    let bash = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run bash");
    assert!(bash.status.success(), "{bash:?}");
    let lines: Vec<String> = String::from_utf8(bash.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, ["pause", "fire_once fire_all"], "{lines:?}");
}

#[test]
fn generate_into_an_unwritable_place_names_it() {
    let out = cronhook(&["generate", "man", "/proc/cronhook-man"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        stderr.starts_with("cronhook: generate: /proc/cronhook-man: "),
        "{stderr}"
    );
}

/// Found by the boot test: a system without CA certificates (no `ca-certificates`, which
/// the package depends on) cannot build the graphs' HTTP client; the error says why.
#[test]
fn no_ca_certificates_is_named_at_start_up() {
    let out = cronhook(
        &["check-config"],
        &[
            ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
            ("SSL_CERT_DIR", "/nonexistent/certs"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        stderr.contains("cannot build the HTTP client of the graphs: builder error: ")
            && stderr.contains("No CA certificates were loaded from the system"),
        "{stderr}"
    );
}
