//! Liveness and readiness for the orchestrator.

use std::time::Duration;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
}

/// How long each check may take: a probe with a one-second timeout must
/// see the answer, whatever is down.
const CHECK: Duration = Duration::from_millis(800);

/// Ready when the database and the object store both answer.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = async {
        match tokio::time::timeout(CHECK, state.ping_database()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: database unreachable");
                false
            }
            Err(_) => {
                tracing::warn!(within = ?CHECK, "readiness: database did not answer");
                false
            }
        }
    };
    let storage = async {
        match tokio::time::timeout(CHECK, state.storage.check()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                e.log();
                false
            }
            Err(_) => {
                tracing::warn!(within = ?CHECK, "readiness: storage did not answer");
                false
            }
        }
    };
    let (database, storage) = tokio::join!(database, storage);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ok = database && storage;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "database": word(database), "storage": word(storage) });
    (status, Json(body))
}
