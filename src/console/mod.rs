//! The operator console: plain HTML, CSS and ES modules, embedded in the
//! binary as they are in `assets/`, served at `/console/` by `serve`.
//!
//! The files hold no data, so they need no credential; the page calls the
//! REST API with the token the operator pasted. Every response carries a
//! strict Content-Security-Policy (scripts from this origin only, no inline
//! script, no eval, no framing) and an `ETag` with `Cache-Control: no-cache`,
//! so a browser revalidates and never runs an older binary's console.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use gateway_rest::error::ApiError;
use sha2::{Digest, Sha256};

/// Where the console lives.
pub const PATH: &str = "/console/";

const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $type:expr),* $(,)?) => {
        [$(Asset { name: $name, content_type: $type, bytes: include_bytes!(concat!("assets/", $name)) }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: [Asset; 12] = assets![
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "changes.js" => JS,
    "cursors.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "gateways.js" => JS,
    "pages.js" => JS,
    "session.js" => JS,
    "sessions.js" => JS,
    "signin.js" => JS,
];

/// Each asset's entity tag: a digest of its bytes, so it changes exactly
/// when the file does.
static TAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"console\""))
        })
        .collect()
});

/// `/` and `/console` redirect to the console; `/console/` is its page and
/// `/console/{file}` its other files.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary(PATH) }))
        .route("/console", get(|| async { Redirect::temporary(PATH) }))
        .route(PATH, get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
        )
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(at) = ASSETS.iter().position(|asset| asset.name == name) else {
        return ApiError::not_found("no such console file").into_response();
    };
    let (asset, tag) = (&ASSETS[at], &TAGS[at]);
    let fresh = request.get_all(header::IF_NONE_MATCH).iter().any(|value| matches_tag(value, tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.bytes).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `If-None-Match` holds `*` or a list of tags, weak or strong.
fn matches_tag(value: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(list) = value.to_str() else { return false };
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate).as_bytes() == tag.as_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_assets_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/console/assets");
        let mut on_disk: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        on_disk.sort();
        let mut served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        served.sort_unstable();
        assert_eq!(on_disk, served, "a file in assets/ is not embedded, or an embedded one is gone");
    }

    #[test]
    fn if_none_match_reads_lists_weak_tags_and_star() {
        let tag = HeaderValue::from_static("\"abc\"");
        for (header, fresh) in
            [("\"abc\"", true), ("W/\"abc\"", true), ("\"x\", \"abc\"", true), ("*", true), ("\"abd\"", false)]
        {
            assert_eq!(matches_tag(&HeaderValue::from_static(header), &tag), fresh, "{header}");
        }
    }
}
