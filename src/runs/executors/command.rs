//! `command` graphs: a local program. The run's JSON goes to stdin; the last line of stdout,
//! which must be a JSON object, is the output values (they replace the thread's), and the
//! lines before it stream as `custom` events; stderr is
//! kept (its tail) for the error message. The program runs in its own process group, which
//! is killed whole on timeout or cancel, so no orphan survives it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::{Emitter, Failure, RunInput};

/// How much of stderr is kept for the error message.
const STDERR_TAIL: usize = 4096;

#[derive(Debug, Clone)]
pub struct CommandGraph {
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// The program's environment: with `inherit_env` added to the daemon's, otherwise all
    /// of it (see `clean_env`).
    pub env: BTreeMap<String, String>,
    pub inherit_env: bool,
    pub timeout: Option<Duration>,
}

/// Variables a program started from a clean environment still gets from the daemon's:
/// what locates programs and sets the locale, time zone and home. Secrets the daemon holds
/// (API keys, webhook header values, database passwords) are not among them.
fn passed_through(name: &str) -> bool {
    matches!(name, "PATH" | "LANG" | "LANGUAGE" | "TZ" | "HOME") || name.starts_with("LC_")
}

/// The environment of a graph's program: the daemon's pass-through variables (all of its
/// variables with `inherit_env`), then the graph's own `env`, which wins.
fn program_env(
    daemon: impl IntoIterator<Item = (String, String)>,
    graph: &BTreeMap<String, String>,
    inherit_env: bool,
) -> BTreeMap<String, String> {
    if inherit_env {
        return graph.clone();
    }
    let mut env: BTreeMap<String, String> = daemon
        .into_iter()
        .filter(|(name, _)| passed_through(name))
        .collect();
    env.extend(graph.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Kills the whole process group when the run ends or is abandoned (timeout, cancel).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: killpg on the group we created for this child; ESRCH if it is gone.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl CommandGraph {
    pub fn new(
        argv: Vec<String>,
        cwd: Option<PathBuf>,
        env: &BTreeMap<String, String>,
        inherit_env: bool,
        timeout: Option<Duration>,
    ) -> CommandGraph {
        CommandGraph {
            argv,
            cwd,
            env: program_env(std::env::vars(), env, inherit_env),
            inherit_env,
            timeout,
        }
    }

    /// Which of the working directory and the program is missing, if one is: a program
    /// named with a `/` is looked for from the working directory, any other on the `PATH`
    /// the program gets.
    pub fn cannot_start(&self) -> Option<String> {
        if let Some(cwd) = &self.cwd
            && !cwd.is_dir()
        {
            return Some(format!(
                "the working directory {} does not exist",
                cwd.display()
            ));
        }
        let program = self.argv.first()?;
        let found = if program.contains('/') {
            let path = std::path::Path::new(program);
            match &self.cwd {
                Some(cwd) if path.is_relative() => cwd.join(path).is_file(),
                _ => path.is_file(),
            }
        } else {
            let path = match (self.inherit_env, self.env.get("PATH")) {
                (_, Some(path)) => Some(path.clone()),
                (true, None) => std::env::var("PATH").ok(),
                (false, None) => None,
            };
            path.is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        };
        (!found).then(|| format!("the program `{program}` was not found"))
    }

    pub async fn run(&self, run: &RunInput<'_>, events: &Emitter) -> Result<Value, Failure> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(Failure::error("CommandError", "the graph has no command"));
        };
        let mut command = Command::new(program);
        if !self.inherit_env {
            command.env_clear();
        }
        command
            .args(args)
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|err| {
            let why = self.cannot_start().unwrap_or_else(|| err.to_string());
            Failure::error("CommandError", format!("cannot start `{program}`: {why}"))
        })?;
        let _group = GroupGuard(child.id().map(|pid| pid as i32));

        let mut stdin = child.stdin.take();
        let body = run.as_json().to_string();
        let writer = async move {
            if let Some(stdin) = stdin.as_mut() {
                // A program that ignores stdin closes it early: not an error of the run.
                let _ = stdin.write_all(body.as_bytes()).await;
                let _ = stdin.shutdown().await;
            }
            drop(stdin);
        };
        let mut stderr = child.stderr.take();
        let stderr_reader = async move {
            let mut buffer = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.read_to_end(&mut buffer).await;
            }
            let start = buffer.len().saturating_sub(STDERR_TAIL);
            String::from_utf8_lossy(&buffer[start..]).trim().to_string()
        };
        let stdout = child.stdout.take();
        let stdout_reader = async move {
            let mut output: Option<Value> = None;
            if let Some(stdout) = stdout {
                let mut lines = BufReader::new(stdout).lines();
                // A line is known not to be the last JSON object only when another follows.
                let mut held: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(previous) = held.take() {
                        events.emit("custom", as_event(&previous));
                    }
                    if line.trim().is_empty() {
                        continue;
                    }
                    held = Some(line);
                }
                if let Some(last) = held {
                    match serde_json::from_str::<Value>(&last) {
                        Ok(value @ Value::Object(_)) => output = Some(value),
                        _ => events.emit("custom", as_event(&last)),
                    }
                }
            }
            output
        };
        let work = async {
            let ((), tail, output) = tokio::join!(writer, stderr_reader, stdout_reader);
            let status = child.wait().await;
            (status, tail, output)
        };
        let (status, tail, output) = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .map_err(|_| Failure::timeout(limit))?,
            None => work.await,
        };
        let status = status.map_err(|err| {
            Failure::error("CommandError", format!("waiting for `{program}`: {err}"))
        })?;
        if !status.success() {
            let code = status.code().map_or_else(
                || "killed by a signal".to_string(),
                |c| format!("exit code {c}"),
            );
            let message = if tail.is_empty() {
                format!("`{program}` failed with {code}")
            } else {
                format!("`{program}` failed with {code}: {tail}")
            };
            return Err(Failure::error("CommandError", message));
        }
        let values = output.ok_or_else(|| {
            Failure::error(
                "CommandError",
                format!("`{program}` printed no JSON object on its last line of output"),
            )
        })?;
        events.emit("values", values.clone());
        Ok(values)
    }
}

fn as_event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_clean_environment_keeps_only_the_pass_through_variables_and_the_graphs() {
        let daemon = vars(&[
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("HOME", "/var/lib/cronhook"),
            ("CRONHOOK_KEY_OPS", "secret"),
            ("LG_WEBHOOK_TOKEN", "secret"),
            ("MODE", "daemon"),
        ]);
        let graph = BTreeMap::from([("MODE".to_string(), "nightly".to_string())]);
        let env = program_env(daemon, &graph, false);
        assert_eq!(
            env.keys().map(String::as_str).collect::<Vec<_>>(),
            ["HOME", "LC_ALL", "MODE", "PATH"]
        );
        assert_eq!(env["MODE"], "nightly", "the graph's value wins");
    }

    #[test]
    fn a_missing_program_or_working_directory_is_named() {
        let graph = |argv: &[&str], cwd: Option<&str>| {
            CommandGraph::new(
                argv.iter().map(|a| a.to_string()).collect(),
                cwd.map(PathBuf::from),
                &BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
                false,
                None,
            )
        };
        assert_eq!(graph(&["sh", "-c", "true"], None).cannot_start(), None);
        assert_eq!(graph(&["/bin/sh"], Some("/")).cannot_start(), None);
        assert_eq!(
            graph(&["sh"], Some("/nonexistent/dir"))
                .cannot_start()
                .as_deref(),
            Some("the working directory /nonexistent/dir does not exist")
        );
        assert_eq!(
            graph(&["no-such-program-here"], None)
                .cannot_start()
                .as_deref(),
            Some("the program `no-such-program-here` was not found")
        );
        assert_eq!(
            graph(&["./report.py"], Some("/")).cannot_start().as_deref(),
            Some("the program `./report.py` was not found")
        );
    }

    #[test]
    fn inherit_env_adds_only_the_graphs_variables_to_the_daemons() {
        let graph = BTreeMap::from([("MODE".to_string(), "nightly".to_string())]);
        let env = program_env(vars(&[("CRONHOOK_KEY_OPS", "secret")]), &graph, true);
        assert_eq!(env, graph);
    }
}
