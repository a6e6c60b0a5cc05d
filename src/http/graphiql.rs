//! GraphiQL, served entirely by this server. The stock page loads React and
//! GraphiQL from a CDN, which a locked-down network cannot reach; here they
//! are vendored from npm (`scripts/vendor-graphiql`, with their licenses in
//! `assets/graphiql/`) and compiled into the binary.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};

use crate::{app::AppState, error::AppError};

/// In every asset URL, so that a new version is a new URL and the old ones
/// can be cached for good.
const GRAPHIQL_VERSION: &str = "3.8.3";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        JS,
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        CSS,
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        JS,
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        JS,
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "page.js",
        JS,
        include_bytes!("../../assets/graphiql-page.js"),
    ),
];

/// Only this server's own scripts run, and the page talks only to it: the
/// browser itself then refuses anything a CDN would have served. Styles and
/// data: URLs are allowed because GraphiQL sets inline styles and ships its
/// fonts and icons inline.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new().route("/graphiql/{version}/{file}", get(asset))
}

async fn asset(
    State(state): State<AppState>,
    Path((version, file)): Path<(String, String)>,
) -> Response {
    let found = ASSETS.iter().find(|(name, _, _)| *name == file);
    let (Some((_, content_type, bytes)), true, true) = (
        found,
        version == GRAPHIQL_VERSION,
        state.config.graphql.graphiql_enabled,
    ) else {
        return AppError::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        *bytes,
    )
        .into_response()
}

/// The GraphiQL page; every URL in it is on this server.
pub fn page() -> Response {
    let v = GRAPHIQL_VERSION;
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>reportfiles GraphiQL</title>
<link rel="stylesheet" href="/graphiql/{v}/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphiql/{v}/react.production.min.js"></script>
<script src="/graphiql/{v}/react-dom.production.min.js"></script>
<script src="/graphiql/{v}/graphiql.min.js"></script>
<script src="/graphiql/{v}/page.js"></script>
</body>
</html>
"#
    );
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Html(html),
    )
        .into_response()
}
