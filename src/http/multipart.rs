//! The GraphQL multipart request (as `apollo-upload-client` sends it: an
//! `operations` part, a `map` part, then the file part).
//!
//! async-graphql's own multipart support spools every file to a temporary
//! file before the query runs. Here the file part is handed, unread, to the
//! resolver, which checks who is asking and what for before it pulls a
//! single byte, and then streams it straight into storage.

use std::collections::HashMap;

use async_graphql::Value;
use axum::{body::Body, http::HeaderMap};
use futures_util::StreamExt;
use multer::{Constraints, Multipart, SizeLimit};

use crate::{
    error::{AppError, AppResult},
    graphql::upload::{FilePart, PendingUpload},
};

/// Whether a request is a multipart upload.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Multipart bodies can be sent by a plain HTML form from any site, so they
/// must carry a header no form can set (the same rule as Apollo Server's).
pub fn has_preflight_header(headers: &HeaderMap) -> bool {
    ["apollo-require-preflight", "x-apollo-operation-name"]
        .iter()
        .any(|h| headers.get(*h).is_some_and(|v| !v.is_empty()))
}

/// Reads `operations` and `map`, and stops at the head of the file part.
pub async fn read_parts(
    headers: &HeaderMap,
    body: Body,
    text_limit: usize,
) -> AppResult<(async_graphql::Request, Option<PendingUpload>)> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| AppError::bad_input("multipart body without a boundary"))?;
    let limits = SizeLimit::new()
        .for_field("operations", text_limit as u64)
        .for_field("map", text_limit as u64);
    let mut multipart = Multipart::with_constraints(
        body.into_data_stream(),
        boundary,
        Constraints::new().size_limit(limits),
    );
    let malformed = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } => AppError::PayloadTooLarge {
            limit: text_limit as u64,
        },
        e => AppError::bad_input(format!("malformed multipart body: {e}")),
    };

    let mut next_text = async |name: &str| -> AppResult<String> {
        let field = multipart
            .next_field()
            .await
            .map_err(malformed)?
            .ok_or_else(|| AppError::bad_input(format!("the `{name}` part is missing")))?;
        if field.name() != Some(name) {
            return Err(AppError::bad_input(format!(
                "expected the `{name}` part, found `{}`",
                field.name().unwrap_or("")
            )));
        }
        field.text().await.map_err(malformed)
    };
    let operations = next_text("operations").await?;
    let map = next_text("map").await?;

    if !operations.trim_start().starts_with('{') {
        return Err(AppError::bad_input(
            "`operations` must be one operation (batches are not supported)",
        ));
    }
    let mut request: async_graphql::Request = serde_json::from_str(&operations)
        .map_err(|e| AppError::bad_input(format!("`operations` is not a GraphQL request: {e}")))?;
    let map: HashMap<String, Vec<String>> = serde_json::from_str(&map)
        .map_err(|e| AppError::bad_input(format!("`map` is not a JSON object of paths: {e}")))?;
    let (part, paths) = match map.len() {
        0 => return Ok((request, None)),
        1 => map.into_iter().next().expect("one entry"),
        _ => return Err(AppError::bad_input("one file per request")),
    };
    let variable = match paths.as_slice() {
        [path] => path.strip_prefix("variables.").filter(|v| !v.contains('.')),
        _ => None,
    }
    .ok_or_else(|| AppError::bad_input("`map` must point the file at one top-level variable"))?;
    request.variables.insert(
        async_graphql::Name::new(variable),
        Value::String(part.clone()),
    );

    let field = multipart
        .next_field()
        .await
        .map_err(malformed)?
        .ok_or_else(|| AppError::bad_input(format!("the file part `{part}` is missing")))?;
    if field.name() != Some(part.as_str()) {
        return Err(AppError::bad_input(format!(
            "expected the file part `{part}`, found `{}`",
            field.name().unwrap_or("")
        )));
    }
    let filename = field.file_name().unwrap_or_default().to_string();
    let body = field
        .map(|chunk| {
            chunk.map_err(|e| AppError::bad_input(format!("the upload was interrupted: {e}")))
        })
        .boxed();
    let file = FilePart {
        part,
        filename,
        body,
    };
    Ok((request, Some(PendingUpload::new(file))))
}
