//! The private clamds that `scripts/test` starts (`ensure_clamd`), the test
//! signatures they know, and every use the tests make of the library's
//! scanner and scan records.

use std::time::Duration;

use chrono::Utc;
use entity::{Quarter, ScanResult, Section, user};
use reportfiles::access::{NewScanEvent, Operator};
pub use reportfiles::{
    config::ClamdAddr,
    scan::{ScanError, Scanner, Verdict},
};

use super::{TestApp, fixture};

fn addr_from(var: &str) -> ClamdAddr {
    let raw = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: the virus-scanning tests need clamd; run them through scripts/test"
        )
    });
    raw.parse()
        .unwrap_or_else(|e| panic!("{var}={raw} is not a clamd address: {e}"))
}

/// The clamd with the production-sized `StreamMaxLength` (1100M).
pub fn clamd() -> ClamdAddr {
    addr_from("TEST_CLAMD_ADDR")
}

/// The clamd whose `StreamMaxLength` is 1M.
pub fn limited_clamd() -> ClamdAddr {
    addr_from("TEST_CLAMD_LIMITED_ADDR")
}

pub fn scanner(addr: ClamdAddr, timeout: Duration) -> Scanner {
    Scanner::new(addr, timeout)
}

/// The EICAR test string, joined from two halves so that no source file
/// holds it whole.
pub fn eicar() -> Vec<u8> {
    [
        &b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-"[..],
        &b"STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"[..],
    ]
    .concat()
}

/// The TANF-shaped record line that the test database flags
/// (`tests/fixtures/av-test-marker.txt`).
pub fn av_marker() -> String {
    let text = std::fs::read_to_string(fixture("av-test-marker.txt")).unwrap();
    text.lines().next().unwrap().to_string()
}

impl TestApp {
    /// Records a scan through `uploader`'s upload grant for `stt_id`, as the
    /// upload path would.
    pub async fn record_scan(
        &self,
        uploader: &user::Model,
        stt_id: i32,
        result: ScanResult,
        signature: Option<&str>,
        filename: &str,
    ) -> i64 {
        let grant = Operator::new(self.db.clone())
            .access_of(&uploader.subject)
            .await
            .unwrap()
            .upload(stt_id)
            .expect("uploader may upload here");
        let now = Utc::now();
        grant
            .record_scan(NewScanEvent {
                fiscal_year: Some(2026),
                quarter: Some(Quarter::Q1),
                section: Some(Section::ActiveCaseData),
                report_file_id: (result == ScanResult::Clean).then(uuid::Uuid::new_v4),
                original_filename: filename.into(),
                size_bytes: 1234,
                sha256: (result != ScanResult::Failed).then(|| "ab".repeat(32)),
                result,
                signature: signature.map(Into::into),
                engine_version: Some("ClamAV 1.4.6".into()),
                detail: (result == ScanResult::Failed).then(|| "clamd unreachable".into()),
                started_at: now - chrono::Duration::seconds(1),
                finished_at: now,
                client_addr: Some("127.0.0.1".into()),
            })
            .await
            .expect("the scan is recorded")
    }
}
