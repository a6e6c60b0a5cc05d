//! The private clamds that `scripts/test` starts (`ensure_clamd`), the test
//! signatures they know, and every use the tests make of the library's
//! scanner and scan records.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::Utc;
use entity::{Quarter, ScanResult, Section, user};
use reportfiles::access::{NewScanEvent, Operator};
pub use reportfiles::{
    config::ClamdAddr,
    scan::{ScanError, Scanner, Verdict},
};

use super::{TestApp, fixture, free_port, wait_until};

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

/// A scan record as the upload path writes one, with the fields a test
/// rarely cares about filled in: started a second ago, from 127.0.0.1.
pub fn scan_event(result: ScanResult, signature: Option<&str>, filename: &str) -> NewScanEvent {
    let now = Utc::now();
    NewScanEvent {
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
    }
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
        self.record(uploader, stt_id, scan_event(result, signature, filename))
            .await
    }

    /// Records `event` through `uploader`'s upload grant for `stt_id`.
    pub async fn record(&self, uploader: &user::Model, stt_id: i32, event: NewScanEvent) -> i64 {
        let grant = Operator::new(self.db.clone())
            .access_of(&uploader.subject)
            .await
            .unwrap()
            .upload(stt_id)
            .expect("uploader may upload here");
        grant
            .record_scan(event)
            .await
            .expect("the scan is recorded")
    }
}

/// A clamd of the test's own, on a port of its own, that the test can kill
/// and start again: the shared ones must stay up for the other tests. It
/// knows the test signatures (the database `ensure_clamd` wrote). Killed
/// when dropped.
pub struct PrivateClamd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateClamd {
    pub async fn start() -> PrivateClamd {
        let dir = tempfile::tempdir().unwrap();
        let mut clamd = PrivateClamd {
            port: free_port(),
            dir,
            child: None,
        };
        clamd.restart().await;
        clamd
    }

    pub fn addr(&self) -> ClamdAddr {
        ClamdAddr::Tcp {
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, on the same port) and waits until it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let db = std::env::var("TEST_CLAMD_DB").expect(
            "TEST_CLAMD_DB is not set: the virus-scanning tests need clamd; run them through scripts/test",
        );
        let bin = std::env::var("TEST_CLAMD_BIN").unwrap_or_else(|_| "clamd".into());
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {db}\n\
                 TemporaryDirectory {tmp}\nLogFile {log}\nStreamMaxLength 100M\n\
                 MaxFileSize 100M\nMaxScanSize 100M\nAlertExceedsMax yes\n",
                port = self.port,
                tmp = dir.join("tmp").display(),
                log = dir.join("clamd.log").display(),
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd starts");
        self.child = Some(child);
        let scanner = Scanner::new(self.addr(), Duration::from_secs(5));
        wait_until(
            Duration::from_secs(60),
            "the private clamd answers PING",
            async || scanner.ping().await.is_ok(),
        )
        .await;
    }
}

impl Drop for PrivateClamd {
    fn drop(&mut self) {
        self.kill();
    }
}
