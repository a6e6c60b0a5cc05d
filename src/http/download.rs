//! `GET`/`HEAD /v1/report-files/{id}/download`: the one route that hands out
//! file bytes. It streams the object from storage as it arrives, chunk by
//! chunk, and records every request as a DownloadEvent. A client that
//! prefers the coding of the file's compressed copy gets the copy: its own
//! representation, with its own length, ETag and byte ranges.

use std::{
    ops::RangeInclusive,
    pin::Pin,
    task::{Context, Poll},
    time::SystemTime,
};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use chrono::Utc;
use entity::{DownloadOutcome, report_file};
use futures_util::Stream;
use http_range_header::RangeUnsatisfiableError;

use super::client::Client;
use crate::{
    access::{Access, NewDownloadEvent},
    app::AppState,
    encoding::{self, Coding, RecordedCopy},
    error::AppError,
    metrics::Active,
    storage::ByteStream,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/report-files/{id}/download",
        get(download).head(download),
    )
}

async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Client,
    method: Method,
    headers: HeaderMap,
    access: Result<Access, AppError>,
) -> Response {
    let started_at = Utc::now();
    let access = match access {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let principal = match access.principal() {
        Ok(p) => p.user.id,
        Err(e) => return e.into_response(),
    };
    // Whatever this user may not download does not exist for them.
    let Ok(files) = access.downloads() else {
        return AppError::NotFound.into_response();
    };
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return AppError::NotFound.into_response();
    };
    let file = match files.find_cached(id).await {
        Ok(Some(f)) => f,
        Ok(None) => return AppError::NotFound.into_response(),
        Err(e) => return e.into_response(),
    };

    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let event = Recorder {
        state: state.clone(),
        event: NewDownloadEvent {
            report_file_id: file.id,
            user_id: principal,
            started_at,
            finished_at: None,
            bytes_sent: 0,
            requested_range: text(header::RANGE).map(|r| r.chars().take(255).collect()),
            outcome: DownloadOutcome::Failed,
            client_addr: Some(client.ip.to_string()),
            user_agent: text(header::USER_AGENT).map(|u| u.chars().take(512).collect()),
        },
    };
    // The copy's bytes are a representation of their own: validators,
    // length and ranges below are all of what is sent.
    let stored = encoding::recorded_copy(&file);
    let copy = stored.filter(|c| encoding::accepts(&headers, c.coding));
    let meta = Meta::of(&file, copy.as_ref(), stored.as_ref());

    if not_modified(&headers, &meta) {
        if method == Method::GET {
            event.finish(DownloadOutcome::NotModified, 0);
        }
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        meta.validators(res.headers_mut());
        return res;
    }

    // A range past the end sends nothing of the file: not a download.
    let Ok(range) = requested_range(&headers, &meta) else {
        let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
        res.headers_mut().insert(
            header::CONTENT_RANGE,
            value(&format!("bytes */{}", meta.size)),
        );
        res.headers_mut().insert(header::VARY, vary());
        return res;
    };
    let length = range
        .as_ref()
        .map_or(meta.size, |r| r.end() - r.start() + 1);

    // HEAD reads headers only: not a download either.
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let byte_range = range.as_ref().map(|r| *r.start()..r.end() + 1);
        let (key, version) = match &copy {
            Some(c) => (c.key, c.version),
            None => (file.object_key.as_str(), file.storage_version.as_deref()),
        };
        match state.storage.open(key, version, byte_range).await {
            Ok(stream) => Body::from_stream(Tracked {
                inner: stream,
                sent: 0,
                expected: length,
                state: StreamState::Streaming,
                _active: state.metrics.download_started(),
                recorder: Some(event),
            }),
            Err(e) => {
                event.finish(DownloadOutcome::Failed, 0);
                return e.into_response();
            }
        }
    };

    let mut res = Response::new(body);
    let h = res.headers_mut();
    meta.validators(h);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::CONTENT_TYPE, value(&file.content_type));
    if let Some(coding) = meta.coding {
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&file.original_filename),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(r) = &range {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        res.headers_mut().insert(
            header::CONTENT_RANGE,
            value(&format!("bytes {}-{}/{}", r.start(), r.end(), meta.size)),
        );
    }
    res
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Responses differ by `Accept-Encoding` whether or not this one is
/// encoded: a cache must not hand one client's representation to another.
fn vary() -> HeaderValue {
    HeaderValue::from_static("accept-encoding")
}

/// The validators of what is sent: the file, or its compressed copy. Files
/// are immutable, so the SHA-256 of the bytes is a strong ETag on every
/// instance; the copy's is that, marked with the coding (its bytes are
/// written once and never change either).
struct Meta {
    etag: String,
    modified: SystemTime,
    size: u64,
    coding: Option<Coding>,
    /// Whether an `If-Range` date may keep a range.
    date_validates_ranges: bool,
    /// When the original is sent and the file has a copy: the copy's ETag,
    /// which validates ranges of the original too.
    copy_etag: Option<String>,
}

impl Meta {
    /// `copy`: the copy, when it is what is sent; `stored`: the file's
    /// copy, sent or not.
    fn of(
        file: &report_file::Model,
        copy: Option<&RecordedCopy<'_>>,
        stored: Option<&RecordedCopy<'_>>,
    ) -> Self {
        let seconds = file.created_at.timestamp().max(0) as u64;
        let copy_etag = |c: &RecordedCopy<'_>| format!("\"{}-{}\"", file.sha256, c.coding.token());
        let (etag, size) = match copy {
            Some(c) => (copy_etag(c), c.size),
            None => (format!("\"{}\"", file.sha256), file.size_bytes as u64),
        };
        Meta {
            // A browser resumes a download it received encoded by asking
            // for the original bytes from the length it saved (decoded),
            // with `Accept-Encoding: identity` and the copy's ETag in
            // If-Range (Chromium does). Those saved bytes are the
            // original's, so the copy's ETag validates a range of the
            // original. Never the reverse: bytes of the original continue
            // no range of the copy.
            copy_etag: match copy {
                None => stored.map(copy_etag),
                Some(_) => None,
            },
            etag,
            modified: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
            size,
            coding: copy.map(|c| c.coding),
            // Both representations share Last-Modified: a date cannot tell
            // whether a partial download holds encoded bytes, so it keeps
            // no range of them (identity stays as it always was).
            date_validates_ranges: copy.is_none(),
        }
    }

    fn validators(&self, h: &mut HeaderMap) {
        h.insert(header::VARY, vary());
        h.insert(header::ETAG, value(&self.etag));
        h.insert(
            header::LAST_MODIFIED,
            value(&httpdate::fmt_http_date(self.modified)),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// RFC 9110 §13.2.2: If-None-Match wins; If-Modified-Since counts only
/// without it.
fn not_modified(headers: &HeaderMap, meta: &Meta) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return inm.to_str().is_ok_and(|l| etag_list_matches(l, &meta.etag));
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| meta.modified <= since)
}

/// The one range to send, `None` for the whole file, `Err` for 416.
/// Malformed or multiple ranges are ignored, as RFC 9110 allows.
fn requested_range(headers: &HeaderMap, meta: &Meta) -> Result<Option<RangeInclusive<u64>>, ()> {
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let current = if if_range.starts_with('"') {
            if_range == meta.etag || meta.copy_etag.as_deref() == Some(if_range)
        } else {
            meta.date_validates_ranges
                && httpdate::parse_http_date(if_range).is_ok_and(|d| d == meta.modified)
        };
        if !current {
            return Ok(None);
        }
    }
    let parsed = match http_range_header::parse_range_header(raw) {
        Ok(p) => p,
        Err(_) => return Ok(None),
    };
    match parsed.validate(meta.size) {
        Ok(ranges) if ranges.len() == 1 => Ok(ranges.into_iter().next()),
        Ok(_) => Ok(None),
        Err(RangeUnsatisfiableError::Unsatisfiable) => Err(()),
        Err(_) => Ok(None),
    }
}

/// `attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266,
/// RFC 8187), safe whatever the original name holds.
pub fn content_disposition(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' ' => ' ',
            '"' | '\\' | '%' | ';' => '_',
            c if c.is_ascii_graphic() => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    value(&format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
}

/// Writes the DownloadEvent once the outcome is known, off the request path.
struct Recorder {
    state: AppState,
    event: NewDownloadEvent,
}

impl Recorder {
    fn finish(self, outcome: DownloadOutcome, bytes: u64) {
        let mut event = self.event;
        event.outcome = outcome;
        event.bytes_sent = bytes as i64;
        event.finished_at = Some(Utc::now());
        self.state.audit_log.record(event);
    }

    /// A response that streamed a body: recorded, and counted in the
    /// download metrics (which count only those).
    fn finish_stream(self, outcome: DownloadOutcome, bytes: u64) {
        self.state.metrics.download_finished(outcome, bytes);
        self.finish(outcome, bytes);
    }
}

#[derive(PartialEq)]
enum StreamState {
    Streaming,
    Done,
    Failed,
}

/// The response body: storage's stream, counted. Hyper says nothing to a
/// handler when a client hangs up; it drops the body. So the outcome is
/// decided when this is dropped: ended cleanly, failed, or cut short.
struct Tracked {
    inner: ByteStream,
    sent: u64,
    expected: u64,
    state: StreamState,
    _active: Active,
    recorder: Option<Recorder>,
}

impl Stream for Tracked {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.sent += chunk.len() as u64;
                // Hyper stops polling once Content-Length bytes are out, so
                // the last chunk, not the end of the stream, completes it.
                if self.sent == self.expected {
                    self.state = StreamState::Done;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                // Erroring the body makes hyper cut the connection, so the
                // client sees fewer bytes than Content-Length promised.
                tracing::error!(error = %e, sent = self.sent, "storage failed mid-download");
                self.state = StreamState::Failed;
                Poll::Ready(Some(Err(std::io::Error::other("storage failed"))))
            }
            Poll::Ready(None) if self.sent != self.expected => {
                tracing::error!(
                    sent = self.sent,
                    expected = self.expected,
                    "storage ended early"
                );
                self.state = StreamState::Failed;
                Poll::Ready(Some(Err(std::io::Error::other("storage ended early"))))
            }
            Poll::Ready(None) => {
                self.state = StreamState::Done;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let outcome = match self.state {
            StreamState::Done => DownloadOutcome::Completed,
            StreamState::Failed => DownloadOutcome::Failed,
            StreamState::Streaming => DownloadOutcome::Aborted,
        };
        if let Some(r) = self.recorder.take() {
            r.finish_stream(outcome, self.sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(name: &str) -> String {
        content_disposition(name).to_str().unwrap().to_string()
    }

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(
            disposition("report.ts01"),
            "attachment; filename=\"report.ts01\"; filename*=UTF-8''report.ts01"
        );
    }

    #[test]
    fn hostile_names_cannot_break_the_header() {
        let d = disposition("a\"b\\c;d%e.txt");
        assert!(
            d.starts_with("attachment; filename=\"a_b_c_d_e.txt\"; "),
            "{d}"
        );
        assert!(d.ends_with("filename*=UTF-8''a%22b%5Cc%3Bd%25e.txt"), "{d}");
    }

    #[test]
    fn non_ascii_names_get_an_ascii_fallback_and_the_exact_name() {
        let d = disposition("Données été 2026.txt");
        assert!(d.contains("filename=\"Donn_es _t_ 2026.txt\""), "{d}");
        assert!(
            d.contains("filename*=UTF-8''Donn%C3%A9es%20%C3%A9t%C3%A9%202026.txt"),
            "{d}"
        );
    }

    fn meta() -> Meta {
        Meta {
            etag: "\"abc\"".into(),
            modified: httpdate::parse_http_date("Sun, 29 Nov 2026 10:00:00 GMT").unwrap(),
            size: 100,
            coding: None,
            date_validates_ranges: true,
            copy_etag: None,
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn range(pairs: &[(header::HeaderName, &str)]) -> Result<Option<RangeInclusive<u64>>, ()> {
        requested_range(&headers(pairs), &meta())
    }

    #[test]
    fn one_range_of_any_form_is_honoured() {
        assert_eq!(range(&[]), Ok(None));
        assert_eq!(range(&[(header::RANGE, "bytes=0-9")]), Ok(Some(0..=9)));
        assert_eq!(range(&[(header::RANGE, "bytes=90-")]), Ok(Some(90..=99)));
        assert_eq!(range(&[(header::RANGE, "bytes=-5")]), Ok(Some(95..=99)));
        assert_eq!(
            range(&[(header::RANGE, "bytes=50-500")]),
            Ok(Some(50..=99)),
            "an end past the file is clamped"
        );
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        assert_eq!(range(&[(header::RANGE, "bytes=100-")]), Err(()));
        assert_eq!(range(&[(header::RANGE, "bytes=200-300")]), Err(()));
    }

    #[test]
    fn malformed_and_multiple_ranges_are_ignored() {
        for raw in [
            "bytes=a-b",
            "items=0-1",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=",
        ] {
            assert_eq!(range(&[(header::RANGE, raw)]), Ok(None), "{raw}");
        }
    }

    #[test]
    fn if_range_keeps_the_range_only_for_the_current_representation() {
        let r = (header::RANGE, "bytes=0-9");
        assert_eq!(
            range(&[r.clone(), (header::IF_RANGE, "\"abc\"")]),
            Ok(Some(0..=9))
        );
        assert_eq!(range(&[r.clone(), (header::IF_RANGE, "\"old\"")]), Ok(None));
        assert_eq!(
            range(&[
                r.clone(),
                (header::IF_RANGE, "Sun, 29 Nov 2026 10:00:00 GMT")
            ]),
            Ok(Some(0..=9))
        );
        assert_eq!(
            range(&[r, (header::IF_RANGE, "Sun, 29 Nov 2026 09:00:00 GMT")]),
            Ok(None)
        );
    }

    #[test]
    fn a_date_validates_no_range_of_the_encoded_bytes() {
        let mut m = meta();
        m.date_validates_ranges = false;
        let h = headers(&[
            (header::RANGE, "bytes=0-9"),
            (header::IF_RANGE, "Sun, 29 Nov 2026 10:00:00 GMT"),
        ]);
        assert_eq!(requested_range(&h, &m), Ok(None));
        let h = headers(&[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, "\"abc\"")]);
        assert_eq!(
            requested_range(&h, &m),
            Ok(Some(0..=9)),
            "an ETag still does"
        );
    }

    #[test]
    fn the_copys_etag_validates_a_range_of_the_original() {
        let mut m = meta();
        m.copy_etag = Some("\"abc-zstd\"".into());
        let h = headers(&[
            (header::RANGE, "bytes=0-9"),
            (header::IF_RANGE, "\"abc-zstd\""),
        ]);
        assert_eq!(requested_range(&h, &m), Ok(Some(0..=9)));
        let h = headers(&[
            (header::RANGE, "bytes=0-9"),
            (header::IF_RANGE, "\"abc-gzip\""),
        ]);
        assert_eq!(
            requested_range(&h, &m),
            Ok(None),
            "another coding's does not"
        );
    }

    #[test]
    fn if_none_match_decides_before_if_modified_since() {
        let m = meta();
        let later = "Mon, 30 Nov 2026 10:00:00 GMT";
        let earlier = "Sat, 28 Nov 2026 10:00:00 GMT";
        assert!(not_modified(
            &headers(&[(header::IF_NONE_MATCH, "\"abc\"")]),
            &m
        ));
        assert!(not_modified(&headers(&[(header::IF_NONE_MATCH, "*")]), &m));
        assert!(!not_modified(
            &headers(&[(header::IF_NONE_MATCH, "\"x\"")]),
            &m
        ));
        assert!(
            !not_modified(
                &headers(&[
                    (header::IF_NONE_MATCH, "\"x\""),
                    (header::IF_MODIFIED_SINCE, later)
                ]),
                &m
            ),
            "If-Modified-Since counts only without If-None-Match"
        );
        assert!(not_modified(
            &headers(&[(header::IF_MODIFIED_SINCE, later)]),
            &m
        ));
        assert!(!not_modified(
            &headers(&[(header::IF_MODIFIED_SINCE, earlier)]),
            &m
        ));
        assert!(!not_modified(
            &headers(&[(header::IF_MODIFIED_SINCE, "garbage")]),
            &m
        ));
        assert!(!not_modified(&HeaderMap::new(), &m));
    }

    #[test]
    fn etag_lists_match_strong_weak_and_star() {
        assert!(etag_list_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_list_matches("W/\"b\"", "\"b\""));
        assert!(etag_list_matches("*", "\"b\""));
        assert!(!etag_list_matches("\"c\"", "\"b\""));
    }
}
