//! The wire: the router and its layers, and serving it. Each route lives in
//! a module of its own; handlers are thin and call into `access`, `upload`
//! and `storage`.
//!
//! | module | routes |
//! | --- | --- |
//! | `graphql` | `GET`/`POST /graphql` (GraphQL over HTTP) |
//! | `multipart` | the upload request of `POST /graphql` |
//! | `download` | `GET`/`HEAD /v1/report-files/{id}/download` |
//! | `ops` | `/healthz`, `/readyz` |
//! | `metrics` | `/metrics`, and the layer that counts requests |
//! | `graphiql` | the GraphiQL page's assets |
//! | `signin` | `/auth/login`, `/auth/callback`, `/auth/logout`, `/auth/signed-out` (OpenID Connect) |
//! | `slots` | how many GraphQL requests one caller may have running |
//! | `client` | who the client is, behind trusted proxies (`TRUSTED_PROXIES`) |

mod client;
mod connections;
mod download;
mod extract;
mod graphiql;
mod graphql;
mod log;
mod metrics;
mod multipart;
mod ops;
mod shape;
mod signin;
mod slots;

use std::{future::Future, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use client::Client;
pub use connections::ensure_descriptors;
pub use download::content_disposition;
pub use graphql::{ResponseType, negotiate};

use crate::{app::AppState, config::CorsConfig};

/// Whether `/metrics` is served on the API listener: in development when it
/// has no listener of its own. In production it never is: what the
/// server is doing is not public.
fn metrics_on_api(app: &AppState) -> bool {
    app.config.is_development() && app.config.server.metrics_bind_addr.is_none()
}

pub fn router(app: AppState) -> Router {
    let cors = cors_layer(&app.config.cors);
    let mut routes = Router::new()
        .merge(graphiql::router())
        .merge(ops::router())
        .merge(download::router())
        .merge(signin::router());
    if metrics_on_api(&app) {
        routes = routes.merge(metrics::router());
    }
    let mut router = Router::new()
        .merge(graphql::router(app.clone()))
        .merge(routes.with_state(app.clone()))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(log::log_request))
        // Outside the log line, which names the client.
        .layer(axum::middleware::from_fn_with_state(app, client::identify));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(plain_request_id))
}

/// A client's `X-Request-Id` is kept only when it is short and plain
/// (`[A-Za-z0-9._-]{1,64}`); anything else is dropped and replaced by a
/// fresh one, so logs and echoes never carry what a client smuggled in.
async fn plain_request_id(mut req: Request, next: Next) -> Response {
    let plain = req
        .headers()
        .get("x-request-id")
        .map(|v| is_plain_request_id(v.as_bytes()));
    if plain == Some(false) {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

fn is_plain_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// CORS for the configured frontend origins only, with credentials so that
/// their scripts can use the session cookie. Without origins there is no
/// layer: browsers then refuse every cross-origin read and JSON POST.
fn cors_layer(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origins = config
        .allowed_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("origins are checked in config"));
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT,
                HeaderName::from_static("apollo-require-preflight"),
                HeaderName::from_static("x-apollo-operation-name"),
                HeaderName::from_static("range"),
                HeaderName::from_static("if-none-match"),
                HeaderName::from_static("if-range"),
                HeaderName::from_static("if-modified-since"),
            ])
            // A script that fetches a download wants its file name.
            .expose_headers([
                header::CONTENT_DISPOSITION,
                header::CONTENT_RANGE,
                header::ETAG,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Serves the API until `shutdown` resolves, then lets in-flight requests
/// finish; resolves when every connection has closed.
pub async fn serve(listener: TcpListener, app: AppState, shutdown: impl Future<Output = ()>) {
    let limits = app.config.server.connections.clone();
    let cut = app.shutdown.clone();
    connections::serve(listener, router(app), limits, shutdown, cut).await
}

/// Serves `/metrics` alone (`METRICS_BIND_ADDR`), for a scraper on a
/// private network.
pub async fn serve_metrics(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()>,
) {
    let limits = app.config.server.connections.clone();
    let cut = app.shutdown.clone();
    let router = metrics::router().with_state(app);
    connections::serve(listener, router, limits, shutdown, cut).await
}

#[cfg(test)]
mod tests {
    use super::is_plain_request_id;

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        for id in ["abc", "A.b_c-9", &"x".repeat(64)] {
            assert!(is_plain_request_id(id.as_bytes()), "{id}");
        }
        for id in ["", "a b", "a\tb", "a/b", "ü", &"x".repeat(65), "a\"b"] {
            assert!(!is_plain_request_id(id.as_bytes()), "{id}");
        }
    }
}
