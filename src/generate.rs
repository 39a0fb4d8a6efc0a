//! Man pages and shell completions, generated from the command-line definition in
//! `crate::cli`, so they say what `--help` says. `cronhook generate man|completions DIR`
//! writes them; the Debian package ships what it wrote at packaging time (scripts/deb.sh).

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenerateCommand};

/// The shells whose completions the package ships (their usual file names and places:
/// docs/operations.md).
const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes what `command` asks for; answers the files written. An error names the directory.
pub fn run(command: &GenerateCommand) -> io::Result<Vec<PathBuf>> {
    let (dir, written) = match command {
        GenerateCommand::Man { dir } => (dir, man_pages(dir)),
        GenerateCommand::Completions { dir } => (dir, completions(dir)),
    };
    written.map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", dir.display())))
}

/// `cronhook.1`, and `cronhook-crons.1`, `cronhook-crons-list.1`… for the subcommands.
fn man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

/// `cronhook.bash`, `_cronhook` and `cronhook.fish`.
fn completions(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut command = Cli::command();
    SHELLS
        .into_iter()
        .map(|shell| clap_complete::generate_to(shell, &mut command, "cronhook", dir))
        .collect()
}
