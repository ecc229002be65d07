//! `GET /` and `/console/…`: the admin console, a single-page app compiled
//! into the binary from `native/console/`. The page drives the node through
//! the project's own wasm client over `/ws` (the built client is committed
//! under `native/console/wasm/` by `scripts/wasm.sh console`, so this crate
//! builds without the wasm toolchain) and reads `/metrics` for its charts
//! and the Raft roles.
//!
//! Each asset has an ETag (a hash of its bytes) and `Cache-Control:
//! no-cache`: a browser revalidates and gets a 304 while the binary is the
//! same, and never runs a page of one build with the client of another.
//! Text assets and the wasm are gzipped when the browser accepts it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::compression::CompressionLayer;

use super::errors::ApiError;
use super::Http;

/// One file of the console.
struct Asset {
    /// Its name under `/console/` (`index.html` is served at `/`).
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("console.js", JAVASCRIPT),
    asset!("documents.js", JAVASCRIPT),
    asset!("live.js", JAVASCRIPT),
    asset!("metrics.js", JAVASCRIPT),
    asset!("ui.js", JAVASCRIPT),
    asset!("wasm/canhazdb_wasm.js", JAVASCRIPT),
    asset!("wasm/canhazdb_wasm_bindings.js", JAVASCRIPT),
    // application/wasm lets the browser compile it while it downloads
    // (WebAssembly.instantiateStreaming refuses any other type).
    asset!("wasm/canhazdb_wasm_bindings_bg.wasm", "application/wasm"),
];

pub fn routes() -> Router<Arc<Http>> {
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/console/{*name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move { serve(&name, &headers) }),
        )
        .layer(CompressionLayer::new())
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some((index, asset)) = ASSETS.iter().enumerate().find(|(_, asset)| asset.name == name) else {
        return ApiError::not_found(format!("the console has no file {name}")).into_response();
    };
    let etag = &etags()[index];
    let cache = [
        (ETAG, etag.clone()),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if headers.get(IF_NONE_MATCH) == Some(etag) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
}

/// Each asset's ETag, in [`ASSETS`] order: weak, since the compression
/// layer may send other bytes than these.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                // DefaultHasher::new() has fixed keys: the same bytes give
                // the same tag in every process of this build.
                let mut hasher = DefaultHasher::new();
                asset.bytes.hash(&mut hasher);
                let tag = format!("W/\"{:016x}\"", hasher.finish());
                HeaderValue::from_str(&tag).expect("hex is a header value")
            })
            .collect()
    })
}
