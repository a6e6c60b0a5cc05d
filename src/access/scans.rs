//! The virus-scan record: written through the upload grant, read by admins.
//!
//! Every scan of an upload leaves a row, clean, infected or failed. The
//! uploader and the STT are the grant's (the authenticated user and the STT
//! they were allowed to upload for), never values from the request.
//!
//! The row is written before the upload is answered, not queued: an
//! infected upload leaves nothing else, so its record must exist by the
//! time the uploader hears `VIRUS_DETECTED`, and a clean one is recorded
//! before its version row, so no version exists without its scan. While
//! the database is briefly unreachable the write is retried; when it still
//! fails, the whole record goes to the error log (the record of last resort)
//! and the caller gets the error.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{Quarter, ScanResult, Section, scan_event};
use sea_orm::{ColumnTrait, EntityTrait as _, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use super::{Audit, MAX_PAGE, UploadGrant};
use crate::error::{AppError, AppResult};

/// One scan of an upload, as the upload path saw it.
#[derive(Debug, Clone)]
pub struct NewScanEvent {
    pub fiscal_year: Option<i32>,
    pub quarter: Option<Quarter>,
    pub section: Option<Section>,
    /// The id the upload was to have as a report file.
    pub report_file_id: Option<Uuid>,
    pub original_filename: String,
    /// Bytes scanned: the whole file, or as far as a failed scan got.
    pub size_bytes: u64,
    /// Hex SHA-256 of the whole file; `None` when the scan ended before it.
    pub sha256: Option<String>,
    pub result: ScanResult,
    /// What clamd found, or the limit it stopped at.
    pub signature: Option<String>,
    /// clamd's `VERSION` answer.
    pub engine_version: Option<String>,
    /// Why a scan failed (no addresses or other internals).
    pub detail: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub client_addr: Option<String>,
}

/// Which scan events `Audit::scan_events` lists.
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    pub result: Option<ScanResult>,
    pub stt_id: Option<i32>,
    /// Scans started at or after this time.
    pub started_from: Option<DateTime<Utc>>,
    /// Scans started before this time.
    pub started_before: Option<DateTime<Utc>>,
}

/// Tries while the database is unreachable: about 3 s in all.
const RECORD_ATTEMPTS: u32 = 6;
const FIRST_RETRY: Duration = Duration::from_millis(100);

impl UploadGrant {
    /// Records a scan of an upload by this grant's uploader for its STT;
    /// returns the new row's id. See the module's notes on why it waits.
    pub async fn record_scan(&self, event: NewScanEvent) -> AppResult<i64> {
        // Paid once: retries of the one statement are free.
        let db = self.db.spend(1)?;
        let mut wait = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            match self.insert_scan(db, &event).await {
                Ok(id) => return Ok(id),
                Err(e @ AppError::DatabaseUnavailable(_)) if attempt < RECORD_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "recording a scan; retrying");
                }
                Err(e) => {
                    self.lost(&event, &e);
                    return Err(e);
                }
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
            attempt += 1;
        }
    }

    async fn insert_scan(
        &self,
        db: &sea_orm::DatabaseConnection,
        e: &NewScanEvent,
    ) -> AppResult<i64> {
        let row = scan_event::ActiveModel {
            uploader_id: Set(self.uploader_id),
            stt_id: Set(self.stt_id),
            fiscal_year: Set(e.fiscal_year),
            quarter: Set(e.quarter),
            section: Set(e.section),
            report_file_id: Set(e.report_file_id),
            original_filename: Set(clip(&e.original_filename, 255)),
            size_bytes: Set(e.size_bytes.min(i64::MAX as u64) as i64),
            sha256: Set(e.sha256.clone()),
            result: Set(e.result),
            signature: Set(e.signature.as_deref().map(|s| clip(s, 255))),
            engine_version: Set(e.engine_version.as_deref().map(|s| clip(s, 255))),
            detail: Set(e.detail.as_deref().map(|s| clip(s, 1024))),
            started_at: Set(e.started_at),
            finished_at: Set(e.finished_at),
            client_addr: Set(e.client_addr.as_deref().map(|s| clip(s, 64))),
            ..Default::default()
        };
        Ok(scan_event::Entity::insert(row)
            .exec(db)
            .await?
            .last_insert_id)
    }

    /// The log line that stands in for a row that could not be written.
    fn lost(&self, e: &NewScanEvent, error: &AppError) {
        tracing::error!(
            error = %error,
            uploader_id = self.uploader_id,
            stt_id = self.stt_id,
            fiscal_year = ?e.fiscal_year,
            quarter = e.quarter.map_or("-", |q| q.as_str()),
            section = e.section.map_or("-", |s| s.as_str()),
            report_file_id = ?e.report_file_id,
            original_filename = %e.original_filename,
            size_bytes = e.size_bytes,
            sha256 = e.sha256.as_deref().unwrap_or("-"),
            result = e.result.as_str(),
            signature = e.signature.as_deref().unwrap_or("-"),
            engine_version = e.engine_version.as_deref().unwrap_or("-"),
            detail = e.detail.as_deref().unwrap_or("-"),
            started_at = %e.started_at,
            finished_at = %e.finished_at,
            client_addr = e.client_addr.as_deref().unwrap_or("-"),
            "scan event not recorded"
        );
    }
}

/// `s` cut to at most `max` characters (the column's length).
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Audit {
    /// Scan events matching `filter`, newest first, after the cursor `after`
    /// (an event id). Returns one row more than asked when more exist.
    pub async fn scan_events(
        &self,
        filter: &ScanFilter,
        first: u64,
        after: Option<i64>,
    ) -> AppResult<Vec<scan_event::Model>> {
        let mut q = scan_event::Entity::find();
        if let Some(result) = filter.result {
            q = q.filter(scan_event::Column::Result.eq(result));
        }
        if let Some(stt_id) = filter.stt_id {
            q = q.filter(scan_event::Column::SttId.eq(stt_id));
        }
        if let Some(from) = filter.started_from {
            q = q.filter(scan_event::Column::StartedAt.gte(from));
        }
        if let Some(before) = filter.started_before {
            q = q.filter(scan_event::Column::StartedAt.lt(before));
        }
        if let Some(after) = after {
            q = q.filter(scan_event::Column::Id.lt(after));
        }
        Ok(q.order_by_desc(scan_event::Column::Id)
            .limit(first.min(MAX_PAGE) + 1)
            .all(self.db.spend(1)?)
            .await?)
    }
}
