//! Search and count filters: an arbitrary request body through the API's parsing and key
//! cap, then, when the API accepts it, the thread, cron and assistant filters built and run
//! against a real SQLite store. A filter the API accepts must never fail in
//! the database: that would be a 500 (or, with the nested chains once built, a crash).
#![no_main]

use std::sync::OnceLock;

use cronhook::{AssistantFilter, CronFilter, Store, ThreadFilter, check_filter, parse_value};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The default `[limits] max_filter_keys`.
const MAX_FILTER_KEYS: usize = 64;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A fresh SQLite file per fuzzing process (the store reads and writes through separate
/// connections, which an in-memory database would not share).
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("cronhook-fuzz-filter-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let url = format!("sqlite://{}?mode=rwc", path.display());
        runtime().block_on(Store::open(&url, 1)).expect("SQLite store")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(body)) = parse_value(data) else {
        return;
    };
    let field = |name: &str| body.get(name).and_then(Value::as_object).cloned();
    let Ok(metadata) = check_filter("metadata", field("metadata"), MAX_FILTER_KEYS) else {
        return;
    };
    let Ok(values) = check_filter("values", field("values"), MAX_FILTER_KEYS) else {
        return;
    };
    let store = store();
    runtime().block_on(async {
        let threads = ThreadFilter {
            metadata: metadata.clone(),
            values,
            ..ThreadFilter::default()
        };
        store.count_threads(&threads).await.expect("thread filter runs");
        let crons = CronFilter {
            metadata: metadata.clone(),
            ..CronFilter::default()
        };
        store.count_crons(&crons).await.expect("cron filter runs");
        let assistants = AssistantFilter {
            metadata,
            graph_id: None,
            name: None,
        };
        store
            .count_assistants(&assistants)
            .await
            .expect("assistant filter runs");
    });
});
