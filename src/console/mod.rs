//! The web console at `/ui`: server-rendered pages (maud) over the same store operations
//! and the same rules as the REST API. Reads call the store with the viewer's scope;
//! every change calls the API's own handler with the viewer's identity, so the console can
//! do nothing the identity could not do through the API. A small script (no framework)
//! adds local times, the schedule preview and live updates over server-sent events.

mod actions;
mod assets;
mod pages;
mod session;
mod view;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::api::{ApiError, AppState};
pub use session::Viewer;

/// What the console keeps besides the API's state.
pub struct Console {
    sessions: session::Sessions,
}

/// The most a console form may send (a cron's input and metadata included).
const MAX_FORM_BYTES: usize = 1024 * 1024;

pub fn router(state: &AppState) -> Router<AppState> {
    let console = Arc::new(Console {
        sessions: session::Sessions::new(state.config.console.session_ttl),
    });
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/crons", get(pages::crons))
        .route("/ui/crons/", get(pages::crons))
        .route(
            "/ui/crons/new",
            get(actions::new_form).post(actions::create),
        )
        .route("/ui/crons/{cron_id}", get(pages::cron))
        .route(
            "/ui/crons/{cron_id}/edit",
            get(actions::edit_form).post(actions::edit),
        )
        .route("/ui/crons/{cron_id}/pause", post(actions::pause))
        .route("/ui/crons/{cron_id}/resume", post(actions::resume))
        .route("/ui/crons/{cron_id}/trigger", post(actions::trigger))
        .route("/ui/crons/{cron_id}/delete", post(actions::delete))
        .route("/ui/deliveries", get(pages::deliveries))
        .route("/ui/deliveries/", get(pages::deliveries))
        .route("/ui/deliveries/{delivery_id}/retry", post(actions::retry))
        .route("/ui/preview", get(actions::preview))
        .route("/ui/stream", get(pages::stream))
        .route("/ui/login", get(actions::login_page).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(Extension(console))
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Not logged in"))
    }
}

/// Finds the viewer's session (or, without API keys, opens an anonymous one), sends
/// visitors without one to the login page, and refuses any request but GET or HEAD without
/// the CSRF token issued at login.
async fn guard(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/ui/assets/") || path == "/ui/login" {
        return secured(next.run(request).await);
    }
    let secure = session::is_https(request.headers(), request.uri());
    let (viewer, new_session) = match console.sessions.find(request.headers()) {
        Some(viewer) => (viewer, None),
        None if state.api_keys.is_empty() => {
            let (id, viewer) = console
                .sessions
                .start(crate::auth::Caller::anonymous(), false);
            (viewer, Some(id))
        }
        None if request.method() == Method::GET => {
            let target = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| path.clone());
            let login = format!(
                "/ui/login?{}",
                serde_urlencoded::to_string([("next", target)]).unwrap_or_default()
            );
            return secured(Redirect::to(&login).into_response());
        }
        None => {
            return secured(view::failure_page(
                StatusCode::UNAUTHORIZED,
                "Your console login has ended: log in again.",
            ));
        }
    };
    let request = if matches!(*request.method(), Method::GET | Method::HEAD) {
        request
    } else {
        match check_csrf(request, &viewer.csrf).await {
            Ok(request) => request,
            Err(response) => return secured(response),
        }
    };
    let mut request = request;
    tracing::Span::current().record("identity", viewer.caller.identity.as_deref());
    request.extensions_mut().insert(viewer);
    let mut response = next.run(request).await;
    if let Some(id) = new_session {
        response.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(Some(&id), console.sessions.ttl(), secure),
        );
    }
    secured(response)
}

/// The token comes in the `x-csrf-token` header or as the form's `csrf` field.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, Response> {
    let refused = || {
        view::failure_page(
            StatusCode::FORBIDDEN,
            "This form is out of date or came from another site (its CSRF token does not match): reload the page and try again.",
        )
    };
    let matches = |given: &str| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        ))
    };
    if let Some(given) = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return if matches(given) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(view::failure_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is larger than 1 MiB.",
            ));
        }
    };
    let given = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf"))
        .map(|(_, v)| v);
    match given {
        Some(given) if matches(&given) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(refused()),
    }
}

/// Pages are never cached, framed, or allowed to load anything from elsewhere.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
