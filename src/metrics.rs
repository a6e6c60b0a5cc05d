//! Prometheus metrics, kept in a `prometheus-client` registry and rendered
//! by `/metrics`. The download and upload paths update them once per
//! transfer, never per chunk.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use entity::{DownloadOutcome, ScanResult};

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0];
/// Upper bounds of the scan-duration histogram, in seconds: a scan lasts as
/// long as its upload, from milliseconds to minutes for a 1 GiB file.
const SCAN_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Counter,
    request_duration: Histogram,
    sql_statements: Counter,
    downloads: Family<OutcomeLabel, Counter>,
    download_bytes: Counter,
    upload_bytes: Counter,
    uploads: Counter,
    active_downloads: Gauge,
    active_uploads: Gauge,
    scans: Family<ResultLabel, Counter>,
    scan_duration: Histogram,
}

/// Counts a transfer as active for as long as it lives.
pub struct Active(Gauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Counter::default();
        let request_duration = Histogram::new(BUCKETS);
        let sql_statements = Counter::default();
        let downloads = Family::<OutcomeLabel, Counter>::default();
        let download_bytes = Counter::default();
        let upload_bytes = Counter::default();
        let uploads = Counter::default();
        let active_downloads = Gauge::default();
        let active_uploads = Gauge::default();
        let scans = Family::<ResultLabel, Counter>::default();
        let scan_duration = Histogram::new(SCAN_BUCKETS);
        registry.register(
            "reportfiles_http_requests",
            "HTTP requests answered",
            requests.clone(),
        );
        registry.register(
            "reportfiles_http_request_duration_seconds",
            "Time to answer (headers sent)",
            request_duration.clone(),
        );
        registry.register(
            "reportfiles_sql_statements",
            "SQL statements run",
            sql_statements.clone(),
        );
        registry.register(
            "reportfiles_downloads",
            "Download requests by outcome",
            downloads.clone(),
        );
        registry.register(
            "reportfiles_download_bytes",
            "File bytes streamed to clients",
            download_bytes.clone(),
        );
        registry.register(
            "reportfiles_upload_bytes",
            "File bytes stored from uploads",
            upload_bytes.clone(),
        );
        registry.register("reportfiles_uploads", "Uploads stored", uploads.clone());
        registry.register(
            "reportfiles_active_downloads",
            "Downloads streaming now",
            active_downloads.clone(),
        );
        registry.register(
            "reportfiles_active_uploads",
            "Uploads streaming now",
            active_uploads.clone(),
        );
        registry.register(
            "reportfiles_scans",
            "Virus scans of uploads by result (CLEAN, INFECTED, FAILED)",
            scans.clone(),
        );
        registry.register(
            "reportfiles_scan_duration_seconds",
            "Time from the start of a scan to its verdict or failure",
            scan_duration.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            sql_statements,
            downloads,
            download_bytes,
            upload_bytes,
            uploads,
            active_downloads,
            active_uploads,
            scans,
            scan_duration,
        }
    }

    /// The counter the database connection bumps for every statement.
    pub fn sql_statements(&self) -> Counter {
        self.sql_statements.clone()
    }

    pub fn download_started(&self) -> Active {
        self.active_downloads.inc();
        Active(self.active_downloads.clone())
    }

    pub fn upload_started(&self) -> Active {
        self.active_uploads.inc();
        Active(self.active_uploads.clone())
    }

    pub fn download_finished(&self, outcome: DownloadOutcome, bytes: u64) {
        self.downloads
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        self.download_bytes.inc_by(bytes);
    }

    pub fn upload_stored(&self, bytes: u64) {
        self.uploads.inc();
        self.upload_bytes.inc_by(bytes);
    }

    /// One scan of an upload ended, whatever its result.
    pub fn scan_finished(&self, result: ScanResult, took: std::time::Duration) {
        self.scans
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
        self.scan_duration.observe(took.as_secs_f64());
    }

    pub fn request_done(&self, took: std::time::Duration) {
        self.requests.inc();
        self.request_duration.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_shows_counters_and_the_histogram() {
        let m = Metrics::new();
        m.download_finished(DownloadOutcome::Completed, 100);
        m.download_finished(DownloadOutcome::Aborted, 5);
        m.request_done(std::time::Duration::from_millis(3));
        m.sql_statements().inc_by(42);
        let active = m.download_started();
        let text = m.render();
        assert!(
            text.contains("reportfiles_download_bytes_total 105\n"),
            "{text}"
        );
        assert!(text.contains("reportfiles_downloads_total{outcome=\"ABORTED\"} 1\n"));
        assert!(text.contains("reportfiles_sql_statements_total 42\n"));
        assert!(text.contains("reportfiles_active_downloads 1\n"));
        assert!(
            text.contains("reportfiles_http_request_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("reportfiles_http_request_duration_seconds_bucket{le=\"0.001\"} 0\n")
        );
        m.scan_finished(ScanResult::Infected, std::time::Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("reportfiles_scans_total{result=\"INFECTED\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("reportfiles_scan_duration_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("reportfiles_scan_duration_seconds_bucket{le=\"0.01\"} 0\n"));
        drop(active);
        assert!(m.render().contains("reportfiles_active_downloads 0\n"));
    }
}
