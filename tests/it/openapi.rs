//! The served OpenAPI document and its viewer, against the real binary: the document lists
//! exactly cronhook's routes, every error is `ErrorBody`, real answers match their schemas,
//! and `/docs` works from cronhook alone (no other host).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, Daemon, Storage};

/// Every route the routers define (read from `src/api/*.rs`), as (method, path). A route
/// added without its description, or described without existing, fails
/// `document_lists_every_route`.
const ROUTES: &[(&str, &str)] = &[
    // meta.rs
    ("GET", "/ok"),
    ("GET", "/info"),
    ("GET", "/metrics"),
    // assistants.rs
    ("POST", "/assistants/search"),
    ("POST", "/assistants/count"),
    ("GET", "/assistants/{assistant_id}"),
    ("POST", "/assistants/{assistant_id}/versions"),
    // threads.rs
    ("POST", "/threads"),
    ("POST", "/threads/search"),
    ("POST", "/threads/count"),
    ("GET", "/threads/{thread_id}"),
    ("PATCH", "/threads/{thread_id}"),
    ("DELETE", "/threads/{thread_id}"),
    ("GET", "/threads/{thread_id}/state"),
    // crons.rs
    ("POST", "/runs/crons"),
    ("POST", "/threads/{thread_id}/runs/crons"),
    ("POST", "/thread/{thread_id}/runs/crons"),
    ("POST", "/runs/crons/search"),
    ("POST", "/runs/crons/count"),
    ("GET", "/runs/crons/{cron_id}"),
    ("PATCH", "/runs/crons/{cron_id}"),
    ("DELETE", "/runs/crons/{cron_id}"),
    ("POST", "/runs/crons/{cron_id}/trigger"),
    ("POST", "/runs/crons/{cron_id}/backfill"),
    ("GET", "/runs/crons/{cron_id}/next"),
    // history.rs
    ("GET", "/runs/crons/{cron_id}/history"),
    // runs.rs
    ("POST", "/threads/{thread_id}/runs"),
    ("GET", "/threads/{thread_id}/runs"),
    ("POST", "/threads/{thread_id}/runs/stream"),
    ("POST", "/threads/{thread_id}/runs/wait"),
    ("GET", "/threads/{thread_id}/runs/{run_id}"),
    ("DELETE", "/threads/{thread_id}/runs/{run_id}"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/join"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/stream"),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"),
    ("POST", "/runs"),
    ("POST", "/runs/stream"),
    ("POST", "/runs/wait"),
    ("POST", "/runs/batch"),
    ("POST", "/runs/cancel"),
    // webhooks.rs
    ("GET", "/webhooks/deliveries"),
    ("GET", "/webhooks/deliveries/{delivery_id}"),
    ("POST", "/webhooks/deliveries/{delivery_id}/retry"),
    // docs.rs
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/"),
    ("GET", "/docs/{file}"),
    ("GET", "/"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn started() -> (Storage, Daemon) {
    crate::common::started_with_loopback_hooks(Backend::Sqlite).await
}

async fn document(daemon: &Daemon) -> Value {
    let response = daemon
        .client
        .get(format!("{}/openapi.json", daemon.url))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"]
            .to_str()
            .expect("an ASCII content type"),
        "application/json"
    );
    response.json().await.expect("the document is JSON")
}

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                all.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_route() {
    let (_storage, daemon) = started().await;
    let doc = document(&daemon).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "cronhook");
    let (_, info) = daemon.get("/info").await;
    assert_eq!(doc["info"]["version"], info["version"]);

    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let defined: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(ROUTES.len(), defined.len(), "ROUTES has a duplicate");
    let undocumented: Vec<_> = defined.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&defined).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "routes without a description: {undocumented:?}; described but not in ROUTES: {unknown:?}"
    );

    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        assert!(
            operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        assert!(
            operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{method} {path} has no tag"
        );
        // Each `{name}` of the path is a declared path parameter; ids are UUIDs.
        let declared: Vec<&Value> = operation["parameters"]
            .as_array()
            .map(|p| p.iter().filter(|p| p["in"] == "path").collect())
            .unwrap_or_default();
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared.len(), names.len(), "{method} {path}");
        for name in names {
            let parameter = declared
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path}: {{{name}}} is not declared"));
            assert_eq!(parameter["required"], true);
            if name.ends_with("_id") {
                assert_eq!(parameter["schema"]["format"], "uuid", "{method} {path}");
            }
        }
        let responses = operation["responses"].as_object().expect("responses");
        // A success, or for the addresses a person types (`/`, `/docs/`), a redirect.
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with('2') || status.starts_with('3')),
            "{method} {path} has no success (or redirect) answer"
        );
    }
}

/// axum cannot list a router's routes, so the other direction is held in the source: the
/// API's routers register routes only with `routes!` (which takes the path and method from
/// the handler's `#[utoipa::path]`), never with axum's own `route`/`nest`/`*_service`.
#[test]
fn routes_are_only_registered_with_their_description() {
    let dir = crate::common::repo_root().join("src/api");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("src/api") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let source = std::fs::read_to_string(&path).expect("source");
        // Unit tests build routers of their own; they are not the API's routes.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for forbidden in [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                "routing::",
            ] {
                assert!(
                    !code.contains(forbidden),
                    "{}:{}: `{forbidden}` adds a route without a description; use \
                     `.routes(routes!(handler))` with `#[utoipa::path]` on the handler",
                    path.display(),
                    number + 1
                );
            }
        }
    }
    assert!(files >= 8, "only {files} files in {}", dir.display());
}

/// Each route of `ROUTES` exists in the daemon: none gets the fallback's 404 or a 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_route_is_served() {
    let (_storage, daemon) = started().await;
    for (method, path) in ROUTES {
        let concrete = path
            .split('/')
            .map(|segment| match segment {
                "{file}" => "index.css".to_string(),
                s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
                s => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        let (status, answer) = daemon.send(method.clone(), &concrete, body.as_ref()).await;
        assert_ne!(status, 405, "{method} {concrete}: {answer}");
        assert!(
            !(status == 404 && answer["detail"] == "Not Found"),
            "{method} {concrete} is not routed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_error_body_and_keys_are_described() {
    let (_storage, daemon) = started().await;
    let doc = document(&daemon).await;
    let schemas = &doc["components"]["schemas"];
    let error = &schemas["ErrorBody"];
    assert_eq!(error["type"], "object", "{error}");
    assert_eq!(error["properties"]["detail"]["type"], "string");
    assert_eq!(error["required"], json!(["detail"]));

    let mut error_answers = 0;
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
                error_answers += 1;
            }
        }
        // The layers' answers are there too.
        assert!(responses.contains_key("503"), "{method} {path}");
        if path != "/ok" {
            assert!(responses.contains_key("401"), "{method} {path}");
        }
        if operation.get("requestBody").is_some() {
            assert!(responses.contains_key("413"), "{method} {path}");
            assert!(responses.contains_key("422"), "{method} {path}");
        }
    }
    assert!(error_answers > 100, "only {error_answers} error answers");

    // Keys: x-api-key or a bearer token, everywhere but /ok.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["ApiKey"]["type"], "apiKey");
    assert_eq!(schemes["ApiKey"]["in"], "header");
    assert_eq!(schemes["ApiKey"]["name"], "x-api-key");
    assert_eq!(schemes["Bearer"]["type"], "http");
    assert_eq!(schemes["Bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"], json!([{"ApiKey": []}, {"Bearer": []}]));
    assert_eq!(doc["paths"]["/ok"]["get"]["security"], json!([]));
    for (method, path, operation) in operations(&doc) {
        if path != "/ok" {
            assert!(operation.get("security").is_none(), "{method} {path}");
        }
    }

    // Bodies that refuse unknown keys say so; their optional keys take no null but where
    // null means something.
    for name in [
        "CronCreateRequest",
        "CronPatchRequest",
        "CronSearchRequest",
        "RunCreateRequest",
        "RunCancelManyRequest",
        "ThreadCreateRequest",
        "ThreadSearchRequest",
        "AssistantSearchRequest",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    // Cron counts ignore keys they do not filter on.
    assert!(
        schemas["CronCountRequest"]
            .get("additionalProperties")
            .is_none()
    );
    let create = &schemas["CronCreateRequest"]["properties"];
    assert_eq!(create["timezone"]["type"], "string");
    assert_eq!(create["end_time"]["format"], "date-time");
    assert_eq!(
        schemas["CronPatchRequest"]["properties"]["end_time"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        schemas["RunCreateRequest"]["properties"]["multitask_strategy"]["$ref"],
        "#/components/schemas/MultitaskStrategy"
    );
    assert_eq!(
        schemas["MultitaskStrategy"]["enum"],
        json!(["reject", "rollback", "interrupt", "enqueue"])
    );
}

/// Answers of the real daemon match the document's schemas for their route and status, key
/// for key (an object with `properties` and no `additionalProperties` has no other keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_document() {
    let (_storage, daemon) = started().await;
    let doc = document(&daemon).await;
    let check = |method: &str, template: &str, status: u16, body: &Value| {
        let schema = &doc["paths"][template][method.to_lowercase()]["responses"]
            [status.to_string()]["content"]["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{method} {template} answered {status}, which the document does not describe: {body}"
        );
        if let Err(err) = validate(&doc, schema, body, "$") {
            panic!("{method} {template} {status}: {err}\n{body:#}");
        }
    };
    let get = |path: String| {
        let daemon = &daemon;
        async move { daemon.get(&path).await }
    };

    let (status, body) = get("/ok".into()).await;
    check("GET", "/ok", status, &body);
    let (status, body) = get("/info".into()).await;
    check("GET", "/info", status, &body);

    let (status, assistants) = daemon.post("/assistants/search", &json!({})).await;
    check("POST", "/assistants/search", status, &assistants);
    let assistant_id = assistants[0]["assistant_id"].as_str().expect("assistant");
    let (status, body) = get(format!("/assistants/{assistant_id}")).await;
    check("GET", "/assistants/{assistant_id}", status, &body);
    let (status, body) = daemon
        .post(&format!("/assistants/{assistant_id}/versions"), &json!({}))
        .await;
    check("POST", "/assistants/{assistant_id}/versions", status, &body);
    let (status, body) = daemon.post("/assistants/count", &json!({})).await;
    check("POST", "/assistants/count", status, &body);

    let (status, thread) = daemon
        .post("/threads", &json!({"metadata": {"team": "ops"}}))
        .await;
    check("POST", "/threads", status, &thread);
    let thread_id = thread["thread_id"].as_str().expect("thread_id").to_string();
    let (status, body) = get(format!("/threads/{thread_id}/state")).await;
    check("GET", "/threads/{thread_id}/state", status, &body);
    let (status, body) = daemon.post("/threads/search", &json!({})).await;
    check("POST", "/threads/search", status, &body);

    let webhook = format!("http://127.0.0.1:{}/hook", crate::common::free_port());
    let (status, cron) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/crons"),
            &json!({
                "assistant_id": "agent",
                "schedule": "27 15 * * *",
                "timezone": "Europe/Paris",
                "end_time": "2099-01-01T00:00:00Z",
                "input": {"x": 1},
                "webhook": webhook,
                "misfire_policy": "skip",
            }),
        )
        .await;
    check("POST", "/threads/{thread_id}/runs/crons", status, &cron);
    let cron_id = cron["cron_id"].as_str().expect("cron_id").to_string();
    let (status, stateless) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "*/5 * * * *"}),
        )
        .await;
    check("POST", "/runs/crons", status, &stateless);
    let (status, body) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"end_time": null, "enabled": false}),
        )
        .await;
    check("PATCH", "/runs/crons/{cron_id}", status, &body);
    let (status, body) = get(format!("/runs/crons/{cron_id}/next?count=3")).await;
    check("GET", "/runs/crons/{cron_id}/next", status, &body);
    let (status, body) = daemon
        .post(
            &format!("/runs/crons/{cron_id}/backfill"),
            &json!({"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:10:00Z",
                    "dry_run": true}),
        )
        .await;
    check("POST", "/runs/crons/{cron_id}/backfill", status, &body);
    let (status, body) = daemon.post("/runs/crons/search", &json!({})).await;
    check("POST", "/runs/crons/search", status, &body);
    let (status, body) = daemon.post("/runs/crons/count", &json!({})).await;
    check("POST", "/runs/crons/count", status, &body);

    // A fire whose webhook fails: a run, then a delivery that keeps retrying.
    let (status, run) = daemon
        .post(&format!("/runs/crons/{cron_id}/trigger"), &json!({}))
        .await;
    check("POST", "/runs/crons/{cron_id}/trigger", status, &run);
    let run_id = run["run_id"].as_str().expect("run_id").to_string();
    let (status, body) = get(format!("/threads/{thread_id}/runs/{run_id}/join")).await;
    check(
        "GET",
        "/threads/{thread_id}/runs/{run_id}/join",
        status,
        &body,
    );
    let (status, body) = get(format!("/threads/{thread_id}/runs/{run_id}")).await;
    check("GET", "/threads/{thread_id}/runs/{run_id}", status, &body);
    assert_eq!(body["status"], "success", "{body}");
    let (status, body) = get(format!("/threads/{thread_id}/runs")).await;
    check("GET", "/threads/{thread_id}/runs", status, &body);
    let (status, body) = get(format!("/threads/{thread_id}")).await;
    check("GET", "/threads/{thread_id}", status, &body);

    let deadline = Instant::now() + Duration::from_secs(20);
    let deliveries = loop {
        let (status, body) = get(format!("/webhooks/deliveries?run_id={run_id}")).await;
        check("GET", "/webhooks/deliveries", status, &body);
        if body.as_array().is_some_and(|d| !d.is_empty()) {
            break body;
        }
        assert!(Instant::now() < deadline, "no delivery for run {run_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delivery_id = deliveries[0]["delivery_id"].as_str().expect("delivery_id");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(format!("/webhooks/deliveries/{delivery_id}")).await;
        check("GET", "/webhooks/deliveries/{delivery_id}", status, &body);
        if body["attempt_log"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no attempt for {delivery_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = daemon
        .post(
            &format!("/webhooks/deliveries/{delivery_id}/retry"),
            &json!({}),
        )
        .await;
    check(
        "POST",
        "/webhooks/deliveries/{delivery_id}/retry",
        status,
        &body,
    );

    let (status, run) = daemon
        .post(
            &format!("/threads/{thread_id}/runs"),
            &json!({"assistant_id": "agent", "input": {"y": 2}, "after_seconds": 3600}),
        )
        .await;
    check("POST", "/threads/{thread_id}/runs", status, &run);
    let pending = run["run_id"].as_str().expect("run_id");
    let (status, body) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/{pending}/cancel?wait=false"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = daemon
        .post("/runs/batch", &json!([{"assistant_id": "agent"}]))
        .await;
    check("POST", "/runs/batch", status, &body);

    // Errors, from a handler and from the layers' fallback.
    let (status, body) = get(format!("/runs/crons/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(status, 404);
    check("GET", "/runs/crons/{cron_id}", status, &body);
    let (status, body) = get("/runs/crons/not-a-uuid".into()).await;
    assert_eq!(status, 422);
    check("GET", "/runs/crons/{cron_id}", status, &body);
    let (status, body) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedul": "x"}),
        )
        .await;
    assert_eq!(status, 422);
    check("POST", "/runs/crons", status, &body);
    let (status, body) = daemon.delete(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 204, "{body}");
}

/// A small JSON Schema check, enough for the document's schemas: `$ref`, `type`, `enum`,
/// `format` (uuid, date-time), `properties`/`required`/`additionalProperties`, `items`,
/// `oneOf` and `allOf`. An object schema with `properties` and no `additionalProperties`
/// is held to those keys: an answer with a key the document does not name fails.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    validate_with(doc, schema, value, at, true)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling $ref {reference}");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn validate_with(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    closed: bool,
) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["oneOf"].as_array() {
        let errors: Vec<String> = parts
            .iter()
            .filter_map(|part| validate_with(doc, part, value, at, closed).err())
            .collect();
        if errors.len() == parts.len() {
            return Err(format!("{at}: matches no oneOf: {errors:?}"));
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut names = BTreeSet::new();
        for part in parts {
            validate_with(doc, part, value, at, false)?;
            if let Some(properties) = resolve(doc, part)["properties"].as_object() {
                names.extend(properties.keys().cloned());
            }
        }
        if closed
            && let Some(object) = value.as_object()
            && let Some(extra) = object.keys().find(|k| !names.contains(*k))
        {
            return Err(format!("{at}: key `{extra}` is not in the schema"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            other => return Err(format!("{at}: odd type {other}")),
        };
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(choices) = schema["enum"].as_array()
        && !value.is_null()
        && !choices.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {choices:?}"));
    }
    if let (Some(format), Some(text)) = (schema["format"].as_str(), value.as_str()) {
        let fine = match format {
            "uuid" => uuid::Uuid::parse_str(text).is_ok(),
            "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            _ => true,
        };
        if !fine {
            return Err(format!("{at}: {text:?} is not a {format}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        if let Some(required) = schema["required"].as_array() {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    return Err(format!("{at}: required key `{key}` is missing"));
                }
            }
        }
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => validate_with(doc, property, item, &format!("{at}.{key}"), true)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: key `{key}` is not allowed"));
                    }
                    None if closed && properties.is_some() => {
                        return Err(format!("{at}: key `{key}` is not in the schema"));
                    }
                    Some(extra @ Value::Object(_)) => {
                        validate_with(doc, extra, item, &format!("{at}.{key}"), true)?
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (index, item) in list.iter().enumerate() {
            validate_with(doc, items, item, &format!("{at}[{index}]"), true)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_and_its_files_come_from_cronhook() {
    let (_storage, daemon) = started().await;
    let response = daemon
        .client
        .get(format!("{}/docs", daemon.url))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("html");
    assert!(html.contains("<div id=\"swagger-ui\">"), "{html}");

    let base = reqwest::Url::parse(&format!("{}/docs", daemon.url)).expect("url");
    let mut scripts = 0;
    let mut styles = 0;
    for reference in attribute_values(&html, "src").chain(attribute_values(&html, "href")) {
        let url = base.join(reference).expect("a URL");
        assert_eq!(
            url.origin(),
            base.origin(),
            "{reference} is loaded from another host"
        );
        let response = daemon
            .client
            .get(url.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.bytes().await.expect("body");
        assert!(!body.is_empty(), "{url} is empty");
        if reference.ends_with(".js") {
            assert!(content_type.contains("javascript"), "{url}: {content_type}");
            scripts += 1;
        } else if reference.ends_with(".css") {
            assert!(
                content_type.starts_with("text/css"),
                "{url}: {content_type}"
            );
            styles += 1;
        }
        if reference.ends_with("swagger-initializer.js") {
            // The page reads this daemon's document, and validates nothing online.
            let script = String::from_utf8_lossy(&body);
            assert!(script.contains("\"url\": \"/openapi.json\""), "{script}");
            assert!(script.contains("\"validatorUrl\": \"none\""), "{script}");
            assert!(
                !script.contains("http://") && !script.contains("https://"),
                "{script}"
            );
        }
    }
    assert!(scripts >= 2, "{html}");
    assert!(styles >= 1, "{html}");

    let (status, body) = daemon.get("/docs/no-such-file.js").await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "Not Found");
}

/// The values of `name="…"` attributes in `html`.
fn attribute_values<'a>(html: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let marker = format!(" {name}=\"");
    let values: Vec<&str> = html
        .match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect();
    values.into_iter()
}

/// With keys configured, the document and the page (no data) are served without one by
/// default, while the API calls made from the page still need one; `[docs] public = false`
/// puts them behind the key like every other route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_and_page_are_public_unless_configured_otherwise() {
    let keys = "[[auth.api_keys]]\nidentity = \"ops\"\nkey = \"openapi-test-key-7d41\"\n";
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, keys).await;
    for path in ["/openapi.json", "/docs", "/docs/swagger-ui.css"] {
        let (status, body) = daemon.send_as(None, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _) = daemon.send_as(None, Method::GET, "/docs/", None).await;
    assert_eq!(status, 200, "/docs/ redirects to the page (followed)");
    let (status, body) = daemon
        .send_as(
            None,
            Method::POST,
            "/runs/crons/search",
            Some(&serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 401, "the API still wants a key: {body}");
    drop(daemon);

    let storage = Storage::new(Backend::Sqlite).await;
    let daemon =
        Daemon::start_with_config(&storage, &format!("{keys}[docs]\npublic = false\n")).await;
    for path in ["/openapi.json", "/docs", "/docs/swagger-ui.css"] {
        let (status, body) = daemon.send_as(None, Method::GET, path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body["detail"].is_string(), "{body}");
        let (status, _) = daemon
            .send_as(Some("openapi-test-key-7d41"), Method::GET, path, None)
            .await;
        assert_eq!(status, 200, "{path}");
    }
    let response = daemon
        .client
        .get(format!("{}/openapi.json", daemon.url))
        .bearer_auth("openapi-test-key-7d41")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}
