//! cronhook: keeps recurring LangGraph runs on schedule and tells their callers when each
//! run is done.
//!
//! Data flows one way: `api` → `store` ← `scheduler` → `runs` → `webhooks`. Roles talk
//! through the store (plus in-process wake-ups), never by calling each other's internals.

pub(crate) mod api;
pub(crate) mod auth;
pub mod cli;
pub mod config;
pub(crate) mod console;
pub mod crontab;
pub mod daemon;
pub mod generate;
pub(crate) mod housekeeping;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod ops;
pub mod parts;
pub(crate) mod runs;
pub mod runtime;
pub mod schedule;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod time;
pub(crate) mod webhooks;

// What the fuzz targets drive: a search body's parsing and filter cap, and the store's
// filters behind it.
pub use api::check_filter;
pub use api::extract::parse_value;
pub use store::Store;
pub use store::assistants::AssistantFilter;
pub use store::crons::CronFilter;
pub use store::threads::ThreadFilter;

/// The layering docs/architecture.md describes, checked against the source's imports.
#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Which top-level modules each module's code (tests excluded) names as `crate::x`.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let relative = path.strip_prefix(&src).expect("under src");
                let module = relative
                    .components()
                    .next()
                    .and_then(|c| c.as_os_str().to_str())
                    .map(|name| name.trim_end_matches(".rs").to_string())
                    .expect("a module name");
                let text = std::fs::read_to_string(&path).expect("source");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    for (at, _) in line.match_indices("crate::") {
                        let name: String = line[at + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && name != module {
                            edges.entry(module.clone()).or_default().insert(name);
                        }
                    }
                }
            }
        }
        edges
    }

    #[test]
    fn modules_import_one_way() {
        let edges = imports();
        let none = BTreeSet::new();
        for (module, targets) in &edges {
            for target in targets {
                assert!(
                    !edges.get(target).unwrap_or(&none).contains(module),
                    "{module} and {target} import each other"
                );
            }
        }
        assert_eq!(
            edges.get("config"),
            None,
            "config depends on no other module"
        );
        for lower in ["store", "scheduler", "runs", "webhooks"] {
            assert!(
                !edges.get(lower).unwrap_or(&none).contains("api"),
                "{lower} imports api: data flows api → store ← scheduler → runs → webhooks"
            );
        }
        for (module, target) in [
            ("store", "scheduler"),
            ("store", "runs"),
            ("runs", "scheduler"),
            ("webhooks", "runs"),
        ] {
            assert!(
                !edges.get(module).unwrap_or(&none).contains(target),
                "{module} imports {target}"
            );
        }
        assert!(edges.len() >= 10, "too few modules seen: {edges:?}");
    }
}
