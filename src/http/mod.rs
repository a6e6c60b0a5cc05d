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
//! | `slots` | how many GraphQL requests one caller may have running |

mod download;
mod extract;
mod graphiql;
mod graphql;
mod metrics;
mod multipart;
mod ops;
mod slots;

use std::{future::Future, time::Duration};

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, header},
};
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use download::content_disposition;
pub use graphql::{ResponseType, negotiate};

use crate::{app::AppState, config::CorsConfig};

pub fn router(app: AppState) -> Router {
    let cors = cors_layer(&app.config.cors);
    let mut router = Router::new()
        .merge(graphql::router(app.clone()))
        .merge(
            Router::new()
                .merge(graphiql::router())
                .merge(ops::router())
                .merge(download::router())
                .merge(metrics::router())
                .with_state(app.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(app, metrics::track));
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

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small answers (headers, a GraphQL reply) must not wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
