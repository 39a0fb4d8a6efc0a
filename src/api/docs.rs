//! The API's description of itself: `GET /openapi.json`, an OpenAPI 3.1 document that the
//! routers build from their handlers' `#[utoipa::path]` annotations (a route is registered
//! with `routes!`, which takes its path and methods from the annotation, so a route cannot
//! exist without its description), and `GET /docs`, Swagger UI to read and try it. Swagger
//! UI's files are compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature): the
//! page loads nothing from any other host.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{ArrayItems, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{ApiError, ApiResult, AppState};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
        .routes(routes!(site_root))
        .routes(routes!(docs_slash))
        .routes(routes!(docs_file))
}

/// The document's root: what no handler says (info, security, tags, shared schemas).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "cronhook",
        description = "Recurring LangGraph runs on schedule, with webhooks when each run is done: \
            the cron, thread, run and assistant endpoints of the LangGraph Platform API (the \
            official SDKs work against it), plus cronhook's own (webhook delivery log, next \
            fire times, manual triggers, health and metrics).\n\n\
            When API keys are configured, every endpoint but `/ok` needs one, sent as \
            `x-api-key` or `Authorization: Bearer` (`/metrics` too unless configured public; \
            this document and `/docs` only with `[docs] public = false`); \
            without keys configured the daemon only listens on loopback and asks for none. \
            Every error is `{\"detail\": \"…\"}`.",
    ),
    modifiers(&SecuritySchemes),
    security(("ApiKey" = []), ("Bearer" = [])),
    components(schemas(ErrorBody, crate::store::alerts::Alert, crate::store::alerts::AlertCron)),
    tags(
        (name = "assistants", description = "The configured graphs, one assistant each (read-only)"),
        (name = "threads", description = "Threads, their state and metadata"),
        (name = "runs", description = "Runs on a thread or stateless: create, stream, wait, join, cancel"),
        (name = "crons", description = "Recurring runs: create, search, update, delete, trigger, next fire times"),
        (name = "webhooks", description = "The delivery log of run webhooks and alerts (cronhook's own); the `Alert` schema is an alert route's JSON body"),
        (name = "meta", description = "Readiness, information and metrics"),
        (name = "docs", description = "This document and its viewer"),
    )
)]
struct ApiDoc;

/// The two ways of presenting a key (`crate::api::auth` takes either).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "ApiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "An API key from `[[auth.api_keys]]` (what the official SDKs send)",
            ))),
        );
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("The same key as `Authorization: Bearer KEY`".into());
        components.add_security_scheme("Bearer", SecurityScheme::Http(bearer));
    }
}

/// The root the routers' paths are merged into.
pub fn root() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Top-level keys of request bodies that take `null` (see `reject_nulls` in the handlers):
/// every other top-level `null` is refused, whatever the field's Rust type.
const NULLABLE_BODY_KEYS: &[(&str, &str)] = &[("CronPatchRequest", "end_time")];

/// Adds what the layers around the handlers do (no handler says it), so that the document
/// tells every answer a route can give:
/// - routes declared with `security(())` are open: `security: []`;
/// - 401 where a key is needed, 408 where the request timeout applies (all but streams,
///   waits and joins, as in `time_limit`), 413 where there is a body, 503 while draining;
/// - request bodies refuse top-level `null`s (`JsonBody`, `reject_nulls`), so their
///   optional keys are not nullable.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    let mut request_schemas = Vec::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let open = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
            if open {
                operation.security = Some(Vec::new());
            } else {
                add_error(
                    operation,
                    StatusCode::UNAUTHORIZED,
                    "Missing or invalid API key (when keys are configured)",
                );
            }
            let exempt = ["/stream", "/wait", "/join"]
                .iter()
                .any(|suffix| path.ends_with(suffix));
            if !exempt {
                add_error(
                    operation,
                    StatusCode::REQUEST_TIMEOUT,
                    "The request took longer than `server.request_timeout`",
                );
            }
            if let Some(RefOr::T(body)) = &operation.request_body {
                request_schemas.extend(body_schema_names(body));
                add_error(
                    operation,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The body is larger than `server.max_body_bytes`",
                );
            }
            add_error(
                operation,
                StatusCode::SERVICE_UNAVAILABLE,
                "cronhook is shutting down (`Retry-After` says when to retry)",
            );
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in request_schemas {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
            for (key, property) in object.properties.iter_mut() {
                if !NULLABLE_BODY_KEYS.contains(&(name.as_str(), key.as_str())) {
                    not_null(property);
                }
            }
        }
    }
}

/// An error answer with the `ErrorBody` schema, unless the operation tells its own.
fn add_error(operation: &mut Operation, status: StatusCode, description: &str) {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .entry(status.as_u16().to_string())
        .or_insert(RefOr::T(response));
}

/// The component names a request body refers to (itself, or its items).
fn body_schema_names(body: &RequestBody) -> Vec<String> {
    let name = |reference: &Ref| {
        reference
            .ref_location
            .strip_prefix("#/components/schemas/")
            .map(str::to_string)
    };
    body.content
        .values()
        .filter_map(|content| match content {
            RefOr::T(content) => content.schema.as_ref(),
            RefOr::Ref(_) => None,
        })
        .filter_map(|schema| match schema {
            RefOr::Ref(reference) => name(reference),
            RefOr::T(Schema::Array(array)) => match &array.items {
                ArrayItems::RefOrSchema(item) => match item.as_ref() {
                    RefOr::Ref(reference) => name(reference),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Removes `null` from a schema's accepted types.
fn not_null(schema: &mut RefOr<Schema>) {
    fn drop_null(types: &mut SchemaType) {
        if let SchemaType::Array(list) = types {
            list.retain(|t| *t != Type::Null);
            if let [only] = list.as_slice() {
                *types = SchemaType::Type(only.clone());
            }
        }
    }
    fn is_null(schema: &RefOr<Schema>) -> bool {
        matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
    }
    match schema {
        RefOr::T(Schema::Object(object)) => drop_null(&mut object.schema_type),
        RefOr::T(Schema::Array(array)) => drop_null(&mut array.schema_type),
        RefOr::T(Schema::OneOf(one_of)) => {
            one_of.items.retain(|item| !is_null(item));
            // `Option<Enum>` is `oneOf: [null, $ref]`: what is left is the reference.
            if let [RefOr::Ref(reference)] = one_of.items.as_slice() {
                let mut reference = reference.clone();
                if let Some(description) = one_of.description.take() {
                    reference.description = description;
                }
                *schema = RefOr::Ref(reference);
            }
        }
        _ => {}
    }
}

/// The served document, serialized once.
#[derive(Clone)]
pub struct Document(pub Bytes);

impl Document {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Document {
        Document(Bytes::from(
            serde_json::to_vec(doc).expect("an OpenAPI document serializes"),
        ))
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
async fn openapi_json(Extension(document): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document.0).into_response()
}

/// Swagger UI's settings: this daemon's document, no online validator.
static SWAGGER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::new([OPENAPI_PATH])
            .validator_url("none")
            .persist_authorization(true),
    )
});

fn swagger_file(name: &str) -> ApiResult<Option<(String, Bytes)>> {
    match utoipa_swagger_ui::serve(name, SWAGGER.clone()) {
        Ok(Some(file)) => {
            let bytes = match file.bytes {
                Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                Cow::Owned(bytes) => Bytes::from(bytes),
            };
            Ok(Some((file.content_type, bytes)))
        }
        Ok(None) => Ok(None),
        Err(err) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Swagger UI: {err}"),
        )),
    }
}

/// The API's documentation page (Swagger UI).
///
/// Its scripts and styles are served by cronhook under `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    operation_id = "docs",
    responses((status = 200, description = "Swagger UI", body = String, content_type = "text/html"))
)]
async fn docs_page() -> ApiResult<Html<String>> {
    let (_, index) = swagger_file("index.html")?.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Swagger UI has no index.html",
        )
    })?;
    let html = String::from_utf8_lossy(&index)
        .replace("<title>Swagger UI</title>", "<title>cronhook API</title>");
    Ok(Html(anchor_relative_urls(&html, "/docs/")))
}

/// The daemon's root: leads a person typing the address to the documentation.
#[utoipa::path(
    get,
    path = "/",
    tag = "docs",
    operation_id = "root",
    responses((status = 307, description = "To `/docs`", headers(("location" = String, description = "`/docs`"))))
)]
async fn site_root() -> Redirect {
    Redirect::temporary("/docs")
}

/// The documentation page's address with a trailing slash.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "docs",
    operation_id = "docs_slash",
    responses((status = 307, description = "To `/docs`", headers(("location" = String, description = "`/docs`"))))
)]
async fn docs_slash() -> Redirect {
    Redirect::temporary("/docs")
}

/// A file of Swagger UI (script, style sheet, icon).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    operation_id = "docs_file",
    params(("file" = String, Path, description = "The file's name, e.g. `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The file, with its content type", body = String,
            content_type = "application/octet-stream"),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
async fn docs_file(Path(file): Path<String>) -> ApiResult<Response> {
    let (content_type, bytes) =
        swagger_file(&file)?.ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Makes the page's relative `href`s and `src`s absolute under `base`, so the page works at
/// `/docs` (no trailing slash), where the browser would resolve them against `/`.
fn anchor_relative_urls(html: &str, base: &str) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    loop {
        let next = ["href=\"", "src=\""]
            .iter()
            .filter_map(|attribute| rest.find(attribute).map(|at| at + attribute.len()))
            .min();
        let Some(start) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find('"').unwrap_or(rest.len());
        let url = &rest[..end];
        let absolute = url.starts_with('/') || url.starts_with('#') || url.contains(':');
        if !absolute {
            out.push_str(base);
            out.push_str(url.strip_prefix("./").unwrap_or(url));
        } else {
            out.push_str(url);
        }
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_are_anchored() {
        let html = r##"<link href="./a.css"><link href="b.css"><script src="./c.js"></script><a href="https://x/y"><a href="/z"><a href="#top">"##;
        assert_eq!(
            anchor_relative_urls(html, "/docs/"),
            r##"<link href="/docs/a.css"><link href="/docs/b.css"><script src="/docs/c.js"></script><a href="https://x/y"><a href="/z"><a href="#top">"##
        );
    }

    #[test]
    fn top_level_nulls_are_refused_but_where_allowed() {
        let mut doc = super::super::api().into_openapi();
        finish(&mut doc);
        let json = serde_json::to_value(&doc).expect("serializes");
        let create = &json["components"]["schemas"]["CronCreateRequest"]["properties"];
        assert_eq!(create["timezone"]["type"], "string");
        assert_eq!(
            create["misfire_policy"]["$ref"],
            "#/components/schemas/MisfirePolicy"
        );
        let patch = &json["components"]["schemas"]["CronPatchRequest"]["properties"];
        assert_eq!(
            patch["end_time"]["type"],
            serde_json::json!(["string", "null"])
        );
        assert_eq!(patch["timezone"]["type"], "string");
    }
}
