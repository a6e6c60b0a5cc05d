//! The application: shared state, the router, and serving it.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderMap, HeaderName, HeaderValue, Method, header},
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    access::Access,
    auth::{self, JwtVerifier, KeyError},
    config::Config,
    db::{self, StatementCounter},
    download,
    error::{AppError, AppResult},
    graphiql,
    graphql::{self, Schemas},
    metrics::{self, Metrics},
    ops,
    service::{principals::PrincipalCache, report_files::FileCache},
    storage::{Storage, StorageConfigError},
};

/// Everything a request handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub verifier: Arc<JwtVerifier>,
    pub schema: Schemas,
    pub storage: Storage,
    pub statements: StatementCounter,
    pub metrics: Arc<Metrics>,
    pub principals: Arc<PrincipalCache>,
    /// Immutable file metadata the download route has read before.
    pub files: Arc<FileCache>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("preparing the database: {0}")]
    Prepare(AppError),
    #[error("JWT keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageConfigError),
}

impl AppState {
    /// Connects, migrates and seeds: everything `serve` needs before it listens.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let config = Arc::new(config);
        let (db, statements) = db::connect(&config.database_url).await?;
        db::prepare(&db).await.map_err(StartError::Prepare)?;
        let verifier = Arc::new(JwtVerifier::new(&config.jwt)?);
        let storage = Storage::new(&config.storage, &config.upload)?;
        let metrics = Arc::new(Metrics::default());
        let principals = Arc::new(PrincipalCache::new(Duration::from_millis(
            config.auth_cache_ttl_ms,
        )));
        let schema = graphql::build_schema(
            config.clone(),
            db.clone(),
            verifier.clone(),
            storage.clone(),
            metrics.clone(),
            principals.clone(),
        );
        Ok(AppState {
            config,
            db,
            verifier,
            schema,
            storage,
            statements,
            metrics,
            principals,
            files: Arc::new(FileCache::default()),
        })
    }

    /// Who sent these headers. A missing or invalid token is anonymous:
    /// whatever needs a user then answers `UNAUTHENTICATED`.
    pub async fn access(&self, headers: &HeaderMap) -> AppResult<Access> {
        let claims = auth::token_from_headers(headers, &self.config.cookie_name)
            .and_then(|(token, _)| self.verifier.verify(token));
        self.principals.access(&self.db, claims.as_ref()).await
    }
}

pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let cors = cors_layer(&state.config);
    let mut router = Router::new()
        .merge(graphql::http::router())
        .merge(graphiql::router())
        .merge(ops::router())
        .merge(download::router())
        .merge(metrics::router())
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ));
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
fn cors_layer(config: &Config) -> Option<CorsLayer> {
    if config.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = config
        .cors_allowed_origins
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
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small answers (headers, a GraphQL reply) must not wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
