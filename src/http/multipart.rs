//! The GraphQL multipart request (as `apollo-upload-client` sends it: an
//! `operations` part, a `map` part, then the file part).
//!
//! async-graphql's own multipart support spools every file to a temporary
//! file before the query runs. Here the file part is handed, unread, to the
//! resolver, which checks who is asking and what for before it pulls a
//! single byte, and then streams it straight into storage.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::Value;
use axum::{body::Body, http::HeaderMap};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
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

/// Room for part heads, boundaries and the closing boundary, besides the
/// `operations` and `map` texts: a part head is a few hundred bytes.
const FRAMING_BYTES: u64 = 16 * 1024;

/// The most a multipart request may carry in all: the two texts, the file
/// and the framing around them.
pub fn max_request_bytes(text_limit: usize, max_upload: u64) -> u64 {
    2 * text_limit as u64 + max_upload + FRAMING_BYTES
}

/// How many body bytes the reader may pull. Before the file part begins,
/// only what `operations`, `map` and the part heads can need: a body that
/// never reaches a boundary, or a part head that never ends, is cut there
/// instead of being buffered. Once the file part begins, the whole request
/// may be as large as `max_request_bytes`.
#[derive(Clone)]
struct Allowance(Arc<AtomicU64>);

/// The marker error of a body past its allowance.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than allowed")]
struct OverAllowance;

/// The body, cut once the reader has pulled more than its allowance. The
/// chunk that crosses the line still goes through (the reader may need the
/// part head at its start); a chunk is at most hyper's read buffer, so what
/// is held stays within the allowance plus one chunk.
fn within(body: Body, allowance: Allowance) -> impl Stream<Item = Result<Bytes, BoxError>> {
    let mut read: u64 = 0;
    body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| Box::new(e) as BoxError)?;
        if read > allowance.0.load(Ordering::Relaxed) {
            return Err(Box::new(OverAllowance) as BoxError);
        }
        read += chunk.len() as u64;
        Ok(chunk)
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether multer failed because the body went past its allowance.
fn over_allowance(e: &multer::Error) -> bool {
    match e {
        multer::Error::StreamReadFailed(source) => source.downcast_ref::<OverAllowance>().is_some(),
        _ => false,
    }
}

/// Reads `operations` and `map`, and stops at the head of the file part.
/// Call it only for a caller who may upload: it reads the body.
pub async fn read_parts(
    headers: &HeaderMap,
    body: Body,
    text_limit: usize,
    max_upload: u64,
) -> AppResult<(async_graphql::Request, Option<PendingUpload>)> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| AppError::bad_input("multipart body without a boundary"))?;
    let limits = SizeLimit::new()
        .whole_stream(max_request_bytes(text_limit, max_upload))
        .for_field("operations", text_limit as u64)
        .for_field("map", text_limit as u64);
    let preamble = 2 * text_limit as u64 + FRAMING_BYTES;
    let allowance = Allowance(Arc::new(AtomicU64::new(preamble)));
    let mut multipart = Multipart::with_constraints(
        within(body, allowance.clone()),
        boundary,
        Constraints::new().size_limit(limits),
    );
    let malformed = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } => AppError::PayloadTooLarge {
            limit: text_limit as u64,
        },
        e if over_allowance(&e) => AppError::bad_input(format!(
            "the `operations` and `map` parts and the head of the file part must come \
             within the first {preamble} bytes"
        )),
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
    // The file may be large; the upload's own limit refuses it past
    // MAX_UPLOAD_BYTES, this one is the backstop for the whole body.
    allowance
        .0
        .store(max_request_bytes(text_limit, max_upload), Ordering::Relaxed);
    if field.name() != Some(part.as_str()) {
        return Err(AppError::bad_input(format!(
            "expected the file part `{part}`, found `{}`",
            field.name().unwrap_or("")
        )));
    }
    let filename = field.file_name().unwrap_or_default().to_string();
    let body = field
        .map(move |chunk| {
            chunk.map_err(|e| match e {
                e if over_allowance(&e) => AppError::PayloadTooLarge { limit: max_upload },
                multer::Error::StreamSizeExceeded { .. } => {
                    AppError::PayloadTooLarge { limit: max_upload }
                }
                e => AppError::bad_input(format!("the upload was interrupted: {e}")),
            })
        })
        .boxed();
    let file = FilePart {
        part,
        filename,
        body,
    };
    Ok((request, Some(PendingUpload::new(file))))
}
