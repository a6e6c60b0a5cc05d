//! Liveness and readiness for the orchestrator.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
}

/// Ready when the database and the object store both answer.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (database, storage) = tokio::join!(state.ping_database(), state.storage.check());
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database unreachable");
    }
    if let Err(e) = &storage {
        e.log();
    }
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ok = database.is_ok() && storage.is_ok();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "database": word(database.is_ok()), "storage": word(storage.is_ok()) });
    (status, Json(body))
}
