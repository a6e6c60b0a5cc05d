//! `/graphql` over HTTP, after the GraphQL-over-HTTP specification.
//!
//! CSRF: a POST must be `Content-Type: application/json`. A cross-site HTML
//! form can only send `application/x-www-form-urlencoded`, `multipart/form-data`
//! or `text/plain`, and a cross-site script that sets JSON triggers a CORS
//! preflight that other origins fail, so the session cookie (also
//! SameSite=Lax) cannot be used to run a mutation from another site.

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{Loaders, upload};
use crate::{app::AppState, error::AppError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/graphql", get(graphiql).post(post))
        // Bodies are limited per kind in `post`: JSON by size, uploads by
        // the upload limit while they stream.
        .layer(DefaultBodyLimit::disable())
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

async fn graphiql(State(state): State<AppState>) -> Response {
    if !state.config.graphiql_enabled {
        return AppError::NotFound.into_response();
    }
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .title("reportfiles GraphiQL")
            .finish(),
    )
    .into_response()
}

/// A request-level error (the query never ran), shaped as GraphQL errors.
fn request_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, axum::Json(body)).into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(GRAPHQL_RESPONSE_JSON))
}

async fn post(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if upload::is_multipart(&headers) {
        return post_multipart(state, headers, body).await;
    }
    if !is_json(&headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "POST /graphql takes Content-Type: application/json",
        );
    }
    let limit = state.config.graphql_body_limit_bytes;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("the body is larger than {limit} bytes"),
            );
        }
    };
    // serde would also build a request from a JSON array; the protocol says object.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) if is_object => r,
        Ok(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                "the body must be a JSON object",
            );
        }
        Err(e) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("the body is not a GraphQL request: {e}"),
            );
        }
    };
    execute(&state, &headers, request).await
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let access = match state.access(headers).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let request = request.data(access).data(Loaders::new(&state.db));
    let response = state.schema.execute(request).await;
    respond(response, wants_graphql_response(headers))
}

async fn post_multipart(state: AppState, headers: HeaderMap, body: Body) -> Response {
    if !upload::has_preflight_header(&headers) {
        return request_error(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "multipart requests need the header `Apollo-Require-Preflight: true`",
        );
    }
    match upload::read_parts(&headers, body, state.config.graphql_body_limit_bytes).await {
        Ok((request, Some(pending))) => execute(&state, &headers, request.data(pending)).await,
        Ok((request, None)) => execute(&state, &headers, request).await,
        Err(e) => {
            let status = e.status();
            request_error(status, e.code(), &e.to_string())
        }
    }
}

fn respond(mut response: async_graphql::Response, graphql_media_type: bool) -> Response {
    // Resolver errors carry a code already; the ones async-graphql makes
    // itself (syntax, validation, limits) get one here.
    for error in &mut response.errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            let code = if error.path.is_empty() {
                "BAD_USER_INPUT"
            } else {
                "INTERNAL"
            };
            ext.set("code", code);
        }
    }
    // A response without data whose errors have no path never executed:
    // the document failed to parse or validate.
    let request_failed = response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = if graphql_media_type && request_failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut out = (status, axum::Json(&response)).into_response();
    for (name, value) in response.http_headers.iter() {
        out.headers_mut().append(name, value.clone());
    }
    if graphql_media_type {
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(GRAPHQL_RESPONSE_JSON),
        );
    }
    out
}
