//! The web console's access rules against the binary, over plain HTTP (the browser tests in
//! tests/ui drive the pages themselves): login and its cookie, CSRF, owner scoping, log
//! out, the assets' caching, `[console] enabled`.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{Backend, Daemon, Storage};

const OPS: &str = "console-ops-key-0123456789";
const ALICE: &str = "console-alice-key-0123456789";
const BOB: &str = "console-bob-key-0123456789";

fn keys() -> String {
    format!(
        "[graphs.agent]\nkind = \"echo\"\n\
         [[auth.api_keys]]\nidentity = \"ops\"\nkey = \"{OPS}\"\nadmin = true\n\
         [[auth.api_keys]]\nidentity = \"alice\"\nkey = \"{ALICE}\"\n\
         [[auth.api_keys]]\nidentity = \"bob\"\nkey = \"{BOB}\"\n"
    )
}

/// A browser's part: a session cookie, and no redirect followed (the tests look at them).
struct Visitor {
    url: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Visitor {
    fn new(daemon: &Daemon) -> Visitor {
        Visitor {
            url: daemon.url.clone(),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (StatusCode, header::HeaderMap, String) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !form.is_empty() {
            request = request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).expect("a form"));
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(set) = headers.get(header::SET_COOKIE) {
            let pair = set
                .to_str()
                .expect("ascii")
                .split(';')
                .next()
                .unwrap_or_default();
            self.cookie = (!pair.ends_with('=')).then(|| pair.to_string());
        }
        (status, headers, response.text().await.expect("body"))
    }

    async fn get(&mut self, path: &str) -> (StatusCode, header::HeaderMap, String) {
        self.send(Method::GET, path, &[], &[]).await
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, header::HeaderMap, String) {
        self.send(Method::POST, path, form, &[]).await
    }

    /// Logs in with `key`; returns the session's CSRF token (read from a page).
    async fn log_in(&mut self, key: &str) -> String {
        let (status, headers, _) = self
            .post("/ui/login", &[("key", key), ("next", "/ui/crons")])
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[header::LOCATION], "/ui/crons");
        self.csrf().await
    }

    async fn csrf(&mut self) -> String {
        let (status, _, page) = self.get("/ui/crons").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        csrf_of(&page)
    }
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf-token\" content=\"";
    let at = page.find(marker).expect("a csrf field") + marker.len();
    page[at..at + page[at..].find('"').expect("quote")].to_string()
}

async fn create(daemon: &Daemon, key: &str, schedule: &str) -> String {
    let (status, cron) = daemon
        .send_as(
            Some(key),
            Method::POST,
            "/runs/crons",
            Some(&json!({"assistant_id": "agent", "schedule": schedule, "input": {}})),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    cron["cron_id"].as_str().expect("cron_id").to_string()
}

async fn cron(daemon: &Daemon, key: &str, cron_id: &str) -> Value {
    let (status, cron) = daemon
        .send_as(
            Some(key),
            Method::GET,
            &format!("/runs/crons/{cron_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    cron
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_an_http_only_strict_cookie_and_a_wrong_key_gets_nothing() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, &keys()).await;
    let mut visitor = Visitor::new(&daemon);

    for path in ["/ui", "/ui/", "/ui/crons?status=paused"] {
        let (status, headers, _) = visitor.get(path).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        let location = headers[header::LOCATION].to_str().expect("ascii");
        assert!(location.starts_with("/ui/login?next=%2Fui"), "{location}");
    }
    let (status, _, page) = visitor.get("/ui/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(">API key</label>") && page.contains(">Log in</button>"),
        "{page}"
    );

    let wrong = "console-wrong-key-0123456789";
    let (status, headers, page) = visitor
        .post("/ui/login", &[("key", wrong), ("next", "/ui")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers.get(header::SET_COOKIE).is_none(),
        "no cookie for a wrong key"
    );
    assert!(page.contains("That API key is not valid."), "{page}");
    assert!(!page.contains(wrong), "the key is not echoed");

    let (status, headers, _) = visitor
        .post("/ui/login", &[("key", ALICE), ("next", "//evil.example/")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/ui",
        "no redirect off the console"
    );
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(ALICE), "the cookie is not the key");
    let (status, _, page) = visitor.get("/ui").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("alice") && page.contains(">Log out</button>"),
        "{page}"
    );

    // Behind a TLS proxy, the cookie is Secure.
    let mut proxied = Visitor::new(&daemon);
    let (_, headers, _) = proxied
        .send(
            Method::POST,
            "/ui/login",
            &[("key", OPS), ("next", "/ui")],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_csrf_token_and_stay_within_the_identity() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, &keys()).await;
    let alices = create(&daemon, ALICE, "0 9 * * *").await;
    let bobs = create(&daemon, BOB, "0 10 * * *").await;

    let mut alice = Visitor::new(&daemon);
    let csrf = alice.log_in(ALICE).await;
    let (_, _, list) = alice.get("/ui/crons").await;
    assert!(
        list.contains(&alices[alices.len() - 8..]),
        "her cron is listed"
    );
    assert!(
        !list.contains(&bobs[bobs.len() - 8..]),
        "bob's is not: {list}"
    );
    let (status, _, _) = alice.get(&format!("/ui/crons/{bobs}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = alice.get(&format!("/ui/crons/{bobs}/edit")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No token, a wrong one, or one in a header that does not match: refused, nothing changed.
    let pause = format!("/ui/crons/{alices}/pause");
    let zeros = "0".repeat(64);
    for form in [vec![("note", "x")], vec![("csrf", zeros.as_str())]] {
        let (status, _, page) = alice.post(&pause, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    }
    let (status, _, _) = alice
        .send(Method::POST, &pause, &[], &[("x-csrf-token", "nope")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(cron(&daemon, ALICE, &alices).await["enabled"], true);

    // With the token: her own cron changes, bob's is not found (as in the API).
    let (status, headers, _) = alice
        .post(&pause, &[("csrf", &csrf), ("note", "night")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        format!("/ui/crons/{alices}?done=paused")
    );
    let paused = cron(&daemon, ALICE, &alices).await;
    assert_eq!(
        (paused["enabled"].clone(), paused["pause_note"].clone()),
        (json!(false), json!("night"))
    );
    for action in ["pause", "resume", "trigger", "delete"] {
        let (status, _, _) = alice
            .post(&format!("/ui/crons/{bobs}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    let (status, _, _) = alice
        .post(
            &format!("/ui/crons/{bobs}/edit"),
            &[("csrf", &csrf), ("schedule", "* * * * *")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let untouched = cron(&daemon, BOB, &bobs).await;
    assert_eq!(untouched["enabled"], true);
    assert_eq!(untouched["schedule"], "0 10 * * *");

    // A form error is the API's detail, beside its field; nothing is created.
    let (status, _, page) = alice
        .post(
            "/ui/crons/new",
            &[
                ("csrf", &csrf),
                ("assistant", "agent"),
                ("schedule", "0 9 * *"),
                ("input", "{}"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"schedule-error\""), "{page}");
    assert!(
        page.contains("Invalid cron schedule: &#39;0 9 * *&#39;")
            || page.contains("Invalid cron schedule: '0 9 * *'"),
        "{page}"
    );
    let (_, count) = daemon
        .send_as(
            Some(ALICE),
            Method::POST,
            "/runs/crons/count",
            Some(&json!({})),
        )
        .await;
    assert_eq!(count, 1);
    // A cron made in the console is the identity's.
    let (status, headers, _) = alice
        .post(
            "/ui/crons/new",
            &[
                ("csrf", &csrf),
                ("assistant", "agent"),
                ("schedule", "0 9 * * 1-5"),
                ("timezone", "Europe/Paris"),
                ("input", "{\"a\": 1}"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().expect("ascii");
    let made = &location["/ui/crons/".len()..location.find('?').expect("query")];
    assert_eq!(cron(&daemon, ALICE, made).await["user_id"], "alice");
    // The scheduling controls go through the form; a bad one is shown beside its field.
    let (status, _, page) = alice
        .post(
            &format!("/ui/crons/{made}/edit"),
            &[
                ("csrf", &csrf),
                ("schedule", "0 9 * * 1-5"),
                ("jitter_seconds", "99999"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"jitter_seconds-error\""), "{page}");
    let (status, _, _) = alice
        .post(
            &format!("/ui/crons/{made}/edit"),
            &[
                ("csrf", &csrf),
                ("schedule", "0 9 * * 1-5"),
                ("timezone", "Europe/Paris"),
                ("overlap", "skip"),
                ("jitter_seconds", "30"),
                ("remaining_runs", "4"),
                ("dst_repeat", "twice"),
                ("dst_gap", "skip"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let edited = cron(&daemon, ALICE, made).await;
    assert_eq!(
        (
            &edited["overlap"],
            &edited["jitter_seconds"],
            &edited["remaining_runs"],
            &edited["dst_repeat"],
            &edited["dst_gap"]
        ),
        (
            &json!("skip"),
            &json!(30),
            &json!(4),
            &json!("twice"),
            &json!("skip")
        ),
        "{edited}"
    );
    let (_, _, page) = alice.get(&format!("/ui/crons/{made}")).await;
    assert!(
        page.contains("4 runs left") && page.contains("30 s"),
        "{page}"
    );
    let (status, _) = daemon
        .send_as(Some(BOB), Method::GET, &format!("/runs/crons/{made}"), None)
        .await;
    assert_eq!(status, 404);

    // Log out ends the session: the old cookie opens nothing.
    let old_cookie = alice.cookie.clone();
    let (status, headers, _) = alice.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    alice.cookie = old_cookie;
    let (status, _, _) = alice.get("/ui").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "back to the login page");
    let (status, _, _) = alice
        .post(&format!("/ui/crons/{alices}/resume"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cron(&daemon, ALICE, &alices).await["enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_the_console_is_open_but_forms_still_need_their_token() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, "[graphs.agent]\nkind = \"echo\"\n").await;
    let cron_id = create(&daemon, "unused-without-keys", "0 9 * * *").await;
    let mut visitor = Visitor::new(&daemon);
    let (status, headers, page) = visitor.get("/ui/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains(">Log out</button>"));
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert!(
            headers[name].to_str().expect("ascii").starts_with(value),
            "{name}"
        );
    }
    let (status, headers, _) = visitor.get("/ui/login").await;
    assert_eq!(
        (status, &headers[header::LOCATION]),
        (
            StatusCode::SEE_OTHER,
            &"/ui".parse::<header::HeaderValue>().expect("value")
        )
    );

    // A form posted from another site carries no cookie (SameSite=Strict), so no token.
    let mut stranger = Visitor::new(&daemon);
    let (status, _, _) = stranger
        .post(&format!("/ui/crons/{cron_id}/delete"), &[("csrf", "guess")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 200, "still there");
    let csrf = visitor.csrf().await;
    let (status, headers, _) = visitor
        .post(&format!("/ui/crons/{cron_id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/crons?done=deleted");
    let (status, _) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 404);

    // Assets: content-hashed names, cached for a year; other names are not found.
    let css = page
        .split("href=\"")
        .find_map(|rest| rest.split('"').next().filter(|href| href.ends_with(".css")))
        .expect("a stylesheet")
        .to_string();
    assert!(css.starts_with("/ui/assets/app-"), "{css}");
    let (status, headers, body) = visitor.get(&css).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(body.contains("prefers-color-scheme: dark"));
    let (status, _, _) = visitor.get("/ui/assets/app-000000000000.css").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The preview is the API's parser: its words, or its detail.
    let (status, _, body) = visitor
        .get("/ui/preview?schedule=0+9+*+*+1-5&timezone=Europe%2FParis")
        .await;
    assert_eq!(status, StatusCode::OK);
    let preview: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(preview["words"], "at 09:00, Monday to Friday, Europe/Paris");
    assert_eq!(preview["next"].as_array().map(Vec::len), Some(5));
    let (status, _, body) = visitor.get("/ui/preview?schedule=0+9&timezone=").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Invalid cron schedule"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_console_is_not_served() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, "[console]\nenabled = false\n").await;
    let (status, body) = daemon.get("/ui").await;
    assert_eq!(status, 404, "{body}");
}

/// The console's own queries (overview counts, text search, metadata and state filters)
/// on both backends, scoped to the identity.
async fn overview_and_search_on_the_backend(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &keys()).await;
    let mut ids = Vec::new();
    for (schedule, team) in [
        ("0 9 * * *", "blue"),
        ("0 10 * * *", "red"),
        ("0 11 * * *", "100%_x"),
    ] {
        let (status, cron) = daemon
            .send_as(
                Some(ALICE),
                Method::POST,
                "/runs/crons",
                Some(&json!({"assistant_id": "agent", "schedule": schedule, "input": {}, "metadata": {"team": team}})),
            )
            .await;
        assert_eq!(status, 200, "{cron}");
        ids.push(cron["cron_id"].as_str().expect("id").to_string());
    }
    let bobs = create(&daemon, BOB, "0 12 * * *").await;
    let (status, _) = daemon
        .send_as(
            Some(ALICE),
            Method::PATCH,
            &format!("/runs/crons/{}", ids[1]),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);

    let mut alice = Visitor::new(&daemon);
    alice.log_in(ALICE).await;
    let (_, _, overview) = alice.get("/ui").await;
    let count = |label: &str| {
        let marker = format!("</span><span class=\"l\">{label}</span>");
        let end = overview.find(&marker).expect("a count");
        let start = overview[..end].rfind('>').expect("tag") + 1;
        overview[start..end].to_string()
    };
    assert_eq!(
        (count("enabled"), count("paused"), count("failing")),
        ("2".into(), "1".into(), "0".into())
    );

    let listed = |page: &str| -> Vec<bool> {
        ids.iter()
            .chain([&bobs])
            .map(|id| page.contains(&id[id.len() - 8..]))
            .collect()
    };
    let (_, _, page) = alice.get("/ui/crons?q=RED").await;
    assert_eq!(
        listed(&page),
        [false, true, false, false],
        "case-insensitive, in metadata"
    );
    let (_, _, page) = alice.get("/ui/crons?q=0+11").await;
    assert_eq!(
        listed(&page),
        [false, false, true, false],
        "in the schedule"
    );
    let (_, _, page) = alice.get("/ui/crons?q=100%25_").await;
    assert_eq!(
        listed(&page),
        [false, false, true, false],
        "% and _ are literal"
    );
    let (_, _, page) = alice.get("/ui/crons?q=0+1").await;
    assert_eq!(
        listed(&page),
        [false, true, true, false],
        "never another identity's"
    );
    let (_, _, page) = alice.get("/ui/crons?status=paused").await;
    assert_eq!(listed(&page), [false, true, false, false]);
    let (_, _, page) = alice.get("/ui/crons?meta=team%3Dblue").await;
    assert_eq!(listed(&page), [true, false, false, false]);
    let (status, _, page) = alice.get("/ui/crons?meta=nokey").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("is not key=value"), "{page}");
}

on_both_backends!(overview_and_search_on_the_backend);
