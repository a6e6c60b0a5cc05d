//! One log line per request, when its response has been sent (or cut):
//! method, route, status, duration, bytes of body sent, request id, the
//! client's address (behind trusted proxies, the forwarded one: see
//! `client`) and the signed-in user's id. JSON in production, like every
//! line.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};

use super::client::Client;

/// Where the caller's extractor leaves the user's id for the log line.
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<i64>>);

impl CallerSlot {
    pub fn set(&self, user_id: i64) {
        let _ = self.0.set(user_id);
    }
}

pub async fn log_request(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let caller = CallerSlot::default();
    req.extensions_mut().insert(caller.clone());
    let line = Line {
        method: req.method().to_string(),
        // The route, not the path: ids stay out of the line's shape.
        route: req
            .extensions()
            .get::<MatchedPath>()
            .map_or("-", MatchedPath::as_str)
            .to_string(),
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string(),
        client: req
            .extensions()
            .get::<Client>()
            .map_or_else(|| "-".to_string(), |c| c.ip.to_string()),
        status: 0,
        started,
        caller,
    };
    let res = next.run(req).await;
    let (parts, body) = res.into_parts();
    let line = Line {
        status: parts.status.as_u16(),
        ..line
    };
    Response::from_parts(
        parts,
        Body::new(Logged {
            inner: body,
            bytes: 0,
            line: Some(line),
        }),
    )
}

struct Line {
    method: String,
    route: String,
    request_id: String,
    client: String,
    status: u16,
    started: Instant,
    caller: CallerSlot,
}

impl Line {
    fn write(self, bytes: u64, complete: bool) {
        let user = self.caller.0.get().map_or("-".to_string(), i64::to_string);
        tracing::info!(
            method = %self.method,
            route = %self.route,
            status = self.status,
            duration_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            bytes,
            complete,
            request_id = %self.request_id,
            client = %self.client,
            user = %user,
            "request"
        );
    }
}

/// The response body, counted; the line is written when it ends, or when
/// it is dropped before its end (the client hung up, the connection was cut).
struct Logged {
    inner: Body,
    bytes: u64,
    line: Option<Line>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.write(self.bytes, true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            // A body whose end hyper never polled for (an empty body, or one
            // with a known length) is complete when all of it was sent.
            let complete = self.inner.is_end_stream();
            line.write(self.bytes, complete);
        }
    }
}
