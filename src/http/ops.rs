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

/// Ready when the database, the object store and (when scanning is
/// required) the virus scanner answer.
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
    // Only when scanning is required: without a scanner, no upload passes.
    let scanner = async {
        let scanner = state.scanner.as_ref()?;
        Some(match tokio::time::timeout(CHECK, scanner.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: virus scanner unreachable");
                false
            }
            Err(_) => {
                tracing::warn!(within = ?CHECK, "readiness: virus scanner did not answer");
                false
            }
        })
    };
    let (database, storage, scanner) = tokio::join!(database, storage, scanner);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ok = database && storage && scanner.unwrap_or(true);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({ "database": word(database), "storage": word(storage) });
    if let Some(scanner) = scanner {
        body["scanner"] = json!(word(scanner));
    }
    (status, Json(body))
}
