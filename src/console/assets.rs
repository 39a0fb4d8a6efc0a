//! The console's stylesheet and script, compiled into the binary and served under names
//! that carry a hash of their content, so browsers may cache them for a year: a new
//! binary with different files serves them under new names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub struct Asset {
    /// The path it is served at: `/ui/assets/NAME-HASH.EXT`.
    pub path: String,
    body: &'static [u8],
    content_type: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> Asset {
    let digest = Sha256::digest(body);
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        path: format!("/ui/assets/{stem}-{hash}.{ext}"),
        body,
        content_type,
    }
}

pub static CSS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "app",
        "css",
        include_bytes!("assets/app.css"),
        "text/css; charset=utf-8",
    )
});

pub static JS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "app",
        "js",
        include_bytes!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
});

pub async fn serve(Path(file): Path<String>) -> Response {
    let wanted = format!("/ui/assets/{file}");
    match [&*CSS, &*JS].into_iter().find(|a| a.path == wanted) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
