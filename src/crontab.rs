//! `cronhook import-crontab`: a user crontab (as `crontab -l` prints it) converted into
//! `command` graphs for the daemon's config and a crons file for `apply`, calling nothing.
//! Commands stay configuration, never API input: no request can make the daemon run a
//! shell line.
//!
//! No maintained crate parses crontab files (`cronparse` and `crontab` were last released
//! in 2016-2017), so the line grammar is read here, as cron(8) reads it, and each schedule
//! is checked by [`Schedule::parse`], the daemon's own parser:
//!
//! * `# …` comments and blank lines; a comment line right above a schedule line names it.
//! * `NAME=value` lines (spaces around `=` allowed, a value in matching quotes has them
//!   removed) apply to the lines below them, as cron copies the environment into each
//!   entry when it reads it. `CRON_TZ` sets the zone of the schedules below it; `SHELL`
//!   the shell running their commands (default `/bin/sh`).
//! * Schedule lines: five fields or one of `@yearly @annually @monthly @weekly @daily
//!   @midnight @hourly`, then the command. An unescaped `%` ends the command and the rest
//!   is its standard input, each further unescaped `%` becoming a newline; `\%` is a
//!   literal `%` (other backslashes stay as written), as cron(8) does.
//!
//! Each graph runs `SHELL -c COMMAND` (stdin: the `%` text, else nothing) and prints `{}`
//! when it exits 0, which is the output a `command` graph must end with; a non-zero exit
//! ends the run `error`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::cli::ImportCrontabArgs;
use crate::config::GraphConfig;
use crate::ops::cronfile::{self, CronEntry, Label, ScheduleText, Zone};
use crate::schedule::{Schedule, parse_timezone};

/// The specials cron(8) knows, besides `@reboot` (spelled in lower case, as cron compares).
const SPECIALS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// The shell cron runs commands with when the crontab sets no `SHELL`.
const DEFAULT_SHELL: &str = "/bin/sh";

/// The script each graph runs with `/bin/sh -c`: `$0` is the crontab's shell, `$1` the
/// command and `$2` its standard input. `{}` is the output once the command succeeded.
const RUN: &str = "\"$0\" -c \"$1\" </dev/null && echo '{}'";
const RUN_WITH_INPUT: &str = "printf '%s' \"$2\" | \"$0\" -c \"$1\" && echo '{}'";

/// A crontab line that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

/// What a crontab converts to: the two files' text, and notes for the operator.
#[derive(Debug)]
pub struct Converted {
    pub graphs: String,
    pub crons: String,
    pub notes: Vec<String>,
    pub graph_count: usize,
    pub cron_count: usize,
}

/// Runs `import-crontab`: reads the crontab, writes both files (or nothing), and
/// returns the exit code: 0, 2 for a file that cannot be read or written, 5 for lines
/// that cannot be converted.
pub fn run(args: &ImportCrontabArgs) -> u8 {
    let source = args.crontab.display().to_string();
    let text = if source == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&args.crontab)
    };
    let text = match text {
        Ok(text) => text,
        Err(err) => {
            eprintln!("cronhook: {source}: cannot read: {err}");
            return 2;
        }
    };
    let set = match &args.set {
        Some(set) => set.clone(),
        None => args
            .crons_out
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("crontab")
            .to_string(),
    };
    if let Err(err) = Label::try_from(set.clone()) {
        eprintln!("cronhook: set \"{set}\": {err} (give --set)");
        return 2;
    }
    let converted = match convert(&text, args.timezone.as_deref(), &set) {
        Ok(converted) => converted,
        Err(errors) => {
            for error in &errors {
                match error.line {
                    0 => eprintln!("cronhook: {}", error.reason),
                    line => eprintln!("cronhook: {source}: line {line}: {}", error.reason),
                }
            }
            eprintln!("cronhook: {} problem(s): nothing written", errors.len());
            return 5;
        }
    };
    for (path, text) in [
        (&args.graphs_out, &converted.graphs),
        (&args.crons_out, &converted.crons),
    ] {
        if let Err(err) = std::fs::write(path, text) {
            eprintln!("cronhook: {}: cannot write: {err}", path.display());
            return 2;
        }
    }
    for note in &converted.notes {
        eprintln!("note: {note}");
    }
    println!(
        "{} graph(s) in {}, {} cron(s) of set {set} in {}",
        converted.graph_count,
        args.graphs_out.display(),
        converted.cron_count,
        args.crons_out.display()
    );
    0
}

/// One graph: the command with everything that decides how it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    shell: String,
    command: String,
    stdin: Option<String>,
    env: BTreeMap<String, String>,
}

impl Job {
    fn graph(&self) -> GraphConfig {
        let mut command = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            if self.stdin.is_some() {
                RUN_WITH_INPUT
            } else {
                RUN
            }
            .to_string(),
            self.shell.clone(),
            self.command.clone(),
        ];
        command.extend(self.stdin.clone());
        GraphConfig::Command {
            command,
            cwd: None,
            env: self.env.clone(),
            inherit_env: false,
            timeout: None,
        }
    }

    /// A readable, stable graph name: the program's name and a hash of the command, so
    /// that lines added or removed elsewhere in the crontab change no other name.
    fn base_name(&self) -> String {
        let program = self
            .command
            .split_whitespace()
            .next()
            .map(|word| word.rsplit('/').next().unwrap_or(word))
            .unwrap_or_default();
        let mut slug = slug(program, 24);
        if slug.is_empty() {
            slug = "job".into();
        }
        let mut hasher = Sha256::new();
        for part in [
            self.shell.as_str(),
            self.command.as_str(),
            self.stdin.as_deref().unwrap_or(""),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.update([u8::from(self.stdin.is_some())]);
        let digest = hasher.finalize();
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{slug}-{hex}")
    }
}

/// Lower-case ASCII letters and digits, other runs as one `-`, at most `max` characters.
fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// One schedule line.
struct Line {
    number: usize,
    text: String,
    comment: Option<String>,
    schedule: String,
    zone: Option<String>,
    job: Job,
}

/// Converts a crontab. `zone`: the zone of schedules with no `CRON_TZ` above them; `set`:
/// the crons file's set. Every line that cannot be converted is reported, in order.
pub fn convert(text: &str, zone: Option<&str>, set: &str) -> Result<Converted, Vec<LineError>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    if let Some(zone) = zone
        && let Err(err) = parse_timezone(Some(zone))
    {
        errors.push(LineError {
            line: 0,
            reason: format!("--timezone: {err}"),
        });
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut shell = DEFAULT_SHELL.to_string();
    let mut cron_tz: Option<String> = None;
    let mut comment: Option<String> = None;
    let mut lines: Vec<Line> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_start();
        if line.trim().is_empty() {
            comment = None;
            continue;
        }
        if let Some(text) = line.strip_prefix('#') {
            comment = Some(text.trim().to_string()).filter(|c| !c.is_empty());
            continue;
        }
        let above = comment.take();
        if let Some((name, value)) = assignment(line) {
            match name {
                "CRON_TZ" => match parse_timezone(Some(&value)) {
                    Ok(_) => cron_tz = Some(value),
                    Err(err) => errors.push(LineError {
                        line: number,
                        reason: format!("CRON_TZ: {err}"),
                    }),
                },
                _ => {
                    if name == "SHELL" {
                        shell = value.clone();
                    }
                    if name == "MAILTO" && !value.is_empty() {
                        notes.push(format!(
                            "line {number}: MAILTO has no effect here: a cron's `webhook`, or \
                             an [alerts] route in the config, tells about its runs"
                        ));
                    }
                    env.insert(name.to_string(), value);
                }
            }
            continue;
        }
        match schedule_line(line) {
            Ok((schedule, command)) => {
                let (command, stdin) = split_percent(command);
                if command.trim().is_empty() {
                    errors.push(LineError {
                        line: number,
                        reason: "no command after the schedule".into(),
                    });
                    continue;
                }
                lines.push(Line {
                    number,
                    text: raw.to_string(),
                    comment: above,
                    schedule,
                    zone: cron_tz.clone().or_else(|| zone.map(str::to_string)),
                    job: Job {
                        shell: shell.clone(),
                        command,
                        stdin,
                        env: env.clone(),
                    },
                });
            }
            Err(reason) => errors.push(LineError {
                line: number,
                reason,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if zone.is_none() && lines.iter().any(|line| line.zone.is_none()) {
        notes.push(
            "schedules without a CRON_TZ line above them are read in UTC: give --timezone \
             with the zone the crontab ran in if that is not UTC"
                .into(),
        );
    }
    render(set, &lines, notes).map_err(|reason| vec![LineError { line: 0, reason }])
}

/// `NAME=value` (cron's environment setting), or none when the line is not one.
fn assignment(line: &str) -> Option<(&str, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim_end();
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    let value = value.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| {
            value
                .strip_prefix(*q)
                .and_then(|rest| rest.strip_suffix(*q))
                .filter(|_| value.len() >= 2)
        })
        .unwrap_or(value);
    Some((name, unquoted.to_string()))
}

/// The schedule (five fields, or a special) and the rest of the line.
fn schedule_line(line: &str) -> Result<(String, &str), String> {
    if line.starts_with('@') {
        let (special, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if special == "@reboot" {
            return Err(
                "@reboot: cronhook has no \"at boot\"; run it from the host's boot instead \
                 (a systemd unit)"
                    .into(),
            );
        }
        if !SPECIALS.contains(&special) {
            return Err(format!(
                "unknown special '{special}' (known: @reboot and {})",
                SPECIALS.join(" ")
            ));
        }
        return Ok((special.to_string(), rest.trim_start()));
    }
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return Err(format!(
                "not a schedule line: {} field(s) before the end of the line, 5 and a \
                 command expected (or NAME=value, or a # comment)",
                fields.len()
            ));
        }
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let schedule = fields.join(" ");
    Schedule::parse(&schedule).map_err(|err| err.to_string())?;
    Ok((schedule, rest.trim_start()))
}

/// cron(8)'s `%`: the command up to the first unescaped `%` (`\%` → `%`), and the rest as
/// standard input (`%` → newline, `\%` → `%`); none when there is no rest.
fn split_percent(text: &str) -> (String, Option<String>) {
    let mut command = String::new();
    let mut chars = text.chars().peekable();
    let mut input = None;
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                command.push('%');
                chars.next();
            }
            '%' => {
                input = Some(chars.collect::<String>());
                break;
            }
            _ => command.push(c),
        }
    }
    let stdin = input.filter(|rest| !rest.is_empty()).map(|rest| {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'%') => {
                    out.push('%');
                    chars.next();
                }
                '%' => out.push('\n'),
                _ => out.push(c),
            }
        }
        out
    });
    (command, stdin)
}

/// The two files: graphs named per distinct job, crons named after their comment (else
/// their graph), `-2`, `-3`… where a name repeats, in line order.
fn render(set: &str, lines: &[Line], notes: Vec<String>) -> Result<Converted, String> {
    let mut graph_names: BTreeMap<&Job, String> = BTreeMap::new();
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut graph_lines: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut graph_order: Vec<(String, &Job)> = Vec::new();
    for line in lines {
        let name = match graph_names.get(&line.job) {
            Some(name) => name.clone(),
            None => {
                let name = unique(line.job.base_name(), &mut taken);
                graph_names.insert(&line.job, name.clone());
                graph_order.push((name.clone(), &line.job));
                name
            }
        };
        graph_lines.entry(name).or_default().push(line.number);
    }

    let mut graphs = String::from(
        "# Graphs converted from a crontab by `cronhook import-crontab`: add them to the\n\
         # daemon's config. Each runs its command with the crontab's shell.\n",
    );
    for (name, job) in &graph_order {
        let table = BTreeMap::from([("graphs", BTreeMap::from([(name.as_str(), job.graph())]))]);
        let text = toml::to_string(&table).map_err(|err| format!("graph {name}: {err}"))?;
        let numbers: Vec<String> = graph_lines
            .get(name)
            .into_iter()
            .flatten()
            .map(usize::to_string)
            .collect();
        let _ = write!(graphs, "\n# crontab line {}\n{text}", numbers.join(", "));
    }

    let mut cron_taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut comments = Vec::new();
    for line in lines {
        let graph = graph_names
            .get(&line.job)
            .cloned()
            .ok_or_else(|| format!("line {}: no graph", line.number))?;
        let wanted = line
            .comment
            .clone()
            .filter(|comment| Label::try_from(comment.clone()).is_ok())
            .unwrap_or_else(|| graph.clone());
        let name = unique(wanted, &mut cron_taken);
        entries.push(CronEntry {
            name: Label(name),
            assistant_id: Label(graph),
            schedule: ScheduleText(line.schedule.clone()),
            timezone: line.zone.clone().map(Zone),
            thread_id: None,
            enabled: None,
            end_time: None,
            webhook: None,
            on_run_completed: None,
            multitask_strategy: None,
            misfire_policy: None,
            catchup_window_seconds: None,
            pause_after_failures: None,
            overlap: None,
            jitter_seconds: None,
            dst_repeat: None,
            dst_gap: None,
            input: None,
            metadata: None,
            config: None,
            context: None,
        });
        comments.push(vec![format!(
            "crontab line {}: {}",
            line.number,
            line.text.trim()
        )]);
    }
    let mut crons = String::from(
        "# Crons converted from a crontab by `cronhook import-crontab`: `cronhook apply -f` this\n\
         # file once the graphs are in the daemon's config.\n",
    );
    crons.push_str(&cronfile::render(set, &entries, &comments)?);
    Ok(Converted {
        graphs,
        crons,
        notes,
        graph_count: graph_order.len(),
        cron_count: entries.len(),
    })
}

/// `wanted`, or `wanted-2`, `wanted-3`… when taken already.
fn unique(wanted: String, taken: &mut BTreeMap<String, usize>) -> String {
    let mut name = wanted.clone();
    let mut n = 1;
    while taken.contains_key(&name) {
        n += 1;
        name = format!("{wanted}-{n}");
    }
    taken.insert(name.clone(), n);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_ends_the_command_and_feeds_stdin() {
        assert_eq!(split_percent("echo hi"), ("echo hi".into(), None));
        assert_eq!(
            split_percent("mail -s x root%line one%line two"),
            ("mail -s x root".into(), Some("line one\nline two".into()))
        );
        assert_eq!(
            split_percent(r"date +\%Y-\%m-\%d > /tmp/d"),
            ("date +%Y-%m-%d > /tmp/d".into(), None)
        );
        assert_eq!(
            split_percent(r"cat%100\% sure%"),
            ("cat".into(), Some("100% sure\n".into()))
        );
        assert_eq!(
            split_percent(r"printf 'a\nb'"),
            (r"printf 'a\nb'".into(), None)
        );
        assert_eq!(split_percent("cmd %"), ("cmd ".into(), None));
    }

    #[test]
    fn environment_lines_are_told_from_schedule_lines() {
        assert_eq!(
            assignment("PATH=/usr/bin:/bin"),
            Some(("PATH", "/usr/bin:/bin".into()))
        );
        assert_eq!(
            assignment("MAILTO = \"ops@example.com\""),
            Some(("MAILTO", "ops@example.com".into()))
        );
        assert_eq!(
            assignment("GREETING='hello world'"),
            Some(("GREETING", "hello world".into()))
        );
        assert_eq!(assignment("EMPTY="), Some(("EMPTY", String::new())));
        assert_eq!(assignment("0 * * * * A=b cmd"), None);
        assert_eq!(assignment("@daily X=1 cmd"), None);
    }

    #[test]
    fn schedule_lines_take_five_fields_or_a_special() {
        assert_eq!(
            schedule_line("*/5  9-17 * * mon-fri   /bin/job --x"),
            Ok(("*/5 9-17 * * mon-fri".into(), "/bin/job --x"))
        );
        assert_eq!(
            schedule_line("@daily\tbackup"),
            Ok(("@daily".into(), "backup"))
        );
        assert!(
            schedule_line("@reboot start")
                .unwrap_err()
                .contains("@reboot")
        );
        assert!(
            schedule_line("@fortnightly x")
                .unwrap_err()
                .contains("unknown special")
        );
        assert!(
            schedule_line("@Daily x")
                .unwrap_err()
                .contains("unknown special")
        );
        assert!(schedule_line("0 2 * *").unwrap_err().contains("4 field(s)"));
        assert!(
            schedule_line("61 2 * * * x")
                .unwrap_err()
                .contains("Invalid cron schedule")
        );
    }

    const SAMPLE: &str = "\
SHELL=/bin/sh
MAILTO=\"\"
# Nightly backup
0 2 * * * /usr/local/bin/backup.sh --full
CRON_TZ=Europe/Paris
@daily /usr/local/bin/backup.sh --full
*/10 * * * * date +\\%s >> /tmp/ticks%not used
";

    #[test]
    fn a_crontab_converts_the_same_way_every_time() {
        let first = convert(SAMPLE, None, "host").expect("converts");
        let again = convert(SAMPLE, None, "host").expect("converts");
        assert_eq!(first.graphs, again.graphs);
        assert_eq!(first.crons, again.crons);
        assert_eq!(first.graph_count, 2, "{}", first.graphs);
        assert_eq!(first.cron_count, 3);
        let crons = cronfile::parse(&first.crons, None, "crons.toml").expect("a crons file");
        assert_eq!(crons.set, "host");
        let names: Vec<&str> = crons
            .entries
            .iter()
            .map(|(_, e)| e.name.0.as_str())
            .collect();
        assert_eq!(names[0], "Nightly backup");
        assert!(names[1].starts_with("backup-sh-"), "{names:?}");
        assert!(names[2].starts_with("date-"), "{names:?}");
        let zones: Vec<Option<&str>> = crons
            .entries
            .iter()
            .map(|(_, e)| e.timezone.as_ref().map(|z| z.0.as_str()))
            .collect();
        assert_eq!(zones, [None, Some("Europe/Paris"), Some("Europe/Paris")]);
        let config: crate::config::Config =
            toml::from_str(&first.graphs).expect("graphs the config reads");
        let GraphConfig::Command { command, env, .. } =
            &config.graphs[&crons.entries[2].1.assistant_id.0]
        else {
            panic!("a command graph");
        };
        assert_eq!(command[0..2], ["/bin/sh", "-c"]);
        assert_eq!(
            command[3..],
            ["/bin/sh", "date +%s >> /tmp/ticks", "not used"]
        );
        assert_eq!(env.get("MAILTO").map(String::as_str), Some(""));
        assert!(!env.contains_key("CRON_TZ"));
    }

    #[test]
    fn the_zone_option_applies_where_no_cron_tz_does() {
        let out = convert(SAMPLE, Some("America/New_York"), "host").expect("converts");
        let crons = cronfile::parse(&out.crons, None, "crons.toml").expect("a crons file");
        assert_eq!(
            crons.entries[0].1.timezone.as_ref().map(|z| z.0.as_str()),
            Some("America/New_York")
        );
        let errors = convert(SAMPLE, Some("Mars/Base"), "host").expect_err("bad zone");
        assert!(errors[0].reason.contains("--timezone"));
    }

    #[test]
    fn every_bad_line_is_listed() {
        let errors = convert(
            "# ok\n@reboot /bin/start\n0 0 * * * fine\nCRON_TZ=Nowhere/Land\n@every 5m x\n1 2 3\n* * * * *\n",
            None,
            "s",
        )
        .expect_err("bad lines");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4, 5, 6, 7], "{errors:?}");
    }

    #[test]
    fn the_same_command_with_other_variables_is_another_graph() {
        let out = convert("A=1\n0 1 * * * job\nA=2\n0 2 * * * job\n", None, "s").expect("ok");
        assert_eq!(out.graph_count, 2);
        let crons = cronfile::parse(&out.crons, None, "c.toml").expect("crons");
        let graphs: Vec<&str> = crons
            .entries
            .iter()
            .map(|(_, e)| e.assistant_id.0.as_str())
            .collect();
        assert!(
            graphs[1].starts_with(graphs[0]) && graphs[1].ends_with("-2"),
            "{graphs:?}"
        );
        assert_eq!(slug("Backup.SH", 24), "backup-sh");
        assert_eq!(slug("../x", 24), "x");
    }
}
