//! Prometheus metrics at `/metrics`: plain counters rendered as text. The
//! download and upload paths update them once per transfer, never per chunk.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use entity::DownloadOutcome;

use crate::app::AppState;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0];

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    request_micros: AtomicU64,
    request_buckets: [AtomicU64; BUCKETS.len()],
    downloads: [AtomicU64; 4],
    download_bytes: AtomicU64,
    upload_bytes: AtomicU64,
    uploads: AtomicU64,
    active_downloads: AtomicU64,
    active_uploads: AtomicU64,
}

fn outcome_index(o: DownloadOutcome) -> usize {
    match o {
        DownloadOutcome::Completed => 0,
        DownloadOutcome::Aborted => 1,
        DownloadOutcome::NotModified => 2,
        DownloadOutcome::Failed => 3,
    }
}

/// Counts a transfer as active for as long as it lives.
pub struct Active {
    metrics: Arc<Metrics>,
    download: bool,
}

impl Drop for Active {
    fn drop(&mut self) {
        let gauge = if self.download {
            &self.metrics.active_downloads
        } else {
            &self.metrics.active_uploads
        };
        gauge.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub fn download_started(self: &Arc<Self>) -> Active {
        self.active_downloads.fetch_add(1, Relaxed);
        Active {
            metrics: self.clone(),
            download: true,
        }
    }

    pub fn upload_started(self: &Arc<Self>) -> Active {
        self.active_uploads.fetch_add(1, Relaxed);
        Active {
            metrics: self.clone(),
            download: false,
        }
    }

    pub fn download_finished(&self, outcome: DownloadOutcome, bytes: u64) {
        self.downloads[outcome_index(outcome)].fetch_add(1, Relaxed);
        self.download_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn upload_stored(&self, bytes: u64) {
        self.uploads.fetch_add(1, Relaxed);
        self.upload_bytes.fetch_add(bytes, Relaxed);
    }

    fn request_done(&self, took: Duration) {
        self.requests.fetch_add(1, Relaxed);
        self.request_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.request_buckets[i].fetch_add(1, Relaxed);
            }
        }
    }

    pub fn render(&self, sql_statements: u64) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: &AtomicU64| vec![(String::new(), v.load(Relaxed))];
        metric(
            "reportfiles_http_requests_total",
            "counter",
            "HTTP requests answered.",
            one(&self.requests),
        );
        metric(
            "reportfiles_sql_statements_total",
            "counter",
            "SQL statements run.",
            one_value(sql_statements),
        );
        metric(
            "reportfiles_download_bytes_total",
            "counter",
            "File bytes streamed to clients.",
            one(&self.download_bytes),
        );
        metric(
            "reportfiles_upload_bytes_total",
            "counter",
            "File bytes stored from uploads.",
            one(&self.upload_bytes),
        );
        metric(
            "reportfiles_uploads_total",
            "counter",
            "Uploads stored.",
            one(&self.uploads),
        );
        metric(
            "reportfiles_active_downloads",
            "gauge",
            "Downloads streaming now.",
            one(&self.active_downloads),
        );
        metric(
            "reportfiles_active_uploads",
            "gauge",
            "Uploads streaming now.",
            one(&self.active_uploads),
        );
        let outcomes = [
            DownloadOutcome::Completed,
            DownloadOutcome::Aborted,
            DownloadOutcome::NotModified,
            DownloadOutcome::Failed,
        ];
        metric(
            "reportfiles_downloads_total",
            "counter",
            "Download requests by outcome.",
            outcomes
                .iter()
                .map(|o| {
                    (
                        format!("{{outcome=\"{}\"}}", o.as_str()),
                        self.downloads[outcome_index(*o)].load(Relaxed),
                    )
                })
                .collect(),
        );
        let _ = writeln!(
            out,
            "# HELP reportfiles_http_request_duration_seconds Time to answer (headers sent).\n\
             # TYPE reportfiles_http_request_duration_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "reportfiles_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.request_buckets[i].load(Relaxed)
            );
        }
        let count = self.requests.load(Relaxed);
        let _ = writeln!(
            out,
            "reportfiles_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "reportfiles_http_request_duration_seconds_sum {}",
            self.request_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "reportfiles_http_request_duration_seconds_count {count}"
        );
        out
    }
}

fn one_value(v: u64) -> Vec<(String, u64)> {
    vec![(String::new(), v)]
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(state.statements.get());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
}

/// Middleware: counts every request and how long its answer took.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let res = next.run(req).await;
    metrics.request_done(started.elapsed());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_shows_counters_and_the_histogram() {
        let m = Arc::new(Metrics::default());
        m.download_finished(DownloadOutcome::Completed, 100);
        m.download_finished(DownloadOutcome::Aborted, 5);
        m.request_done(Duration::from_millis(3));
        let active = m.download_started();
        let text = m.render(42);
        assert!(
            text.contains("reportfiles_download_bytes_total 105\n"),
            "{text}"
        );
        assert!(text.contains("reportfiles_downloads_total{outcome=\"ABORTED\"} 1\n"));
        assert!(text.contains("reportfiles_sql_statements_total 42\n"));
        assert!(text.contains("reportfiles_active_downloads 1\n"));
        assert!(
            text.contains("reportfiles_http_request_duration_seconds_bucket{le=\"0.005\"} 1\n")
        );
        assert!(
            text.contains("reportfiles_http_request_duration_seconds_bucket{le=\"0.001\"} 0\n")
        );
        drop(active);
        assert!(m.render(0).contains("reportfiles_active_downloads 0\n"));
    }
}
