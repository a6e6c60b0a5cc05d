use sea_orm::entity::prelude::*;

use crate::{Quarter, ScanResult, Section};

/// The record of one virus scan of an upload, whatever its result. An
/// infected or failed upload leaves this row and nothing else, so it names
/// the file by what the uploader sent, not by a report file.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "scan_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub uploader_id: i64,
    pub stt_id: i32,
    pub fiscal_year: Option<i32>,
    pub quarter: Option<Quarter>,
    pub section: Option<Section>,
    /// The id the upload was to have: for a clean scan, the report file it
    /// became, unless storing it failed after the scan. No foreign key:
    /// the scan is recorded before the version row is written.
    pub report_file_id: Option<Uuid>,
    pub original_filename: String,
    /// Bytes scanned: the whole file, or as far as a failed scan got.
    pub size_bytes: i64,
    /// Hex SHA-256 of the whole file; none when the scan failed before its end.
    pub sha256: Option<String>,
    pub result: ScanResult,
    /// What clamd found (`INFECTED`), or the limit it hit (`FAILED`).
    pub signature: Option<String>,
    /// clamd's `VERSION` answer (engine and signature database).
    pub engine_version: Option<String>,
    /// Why a scan failed, for operators.
    pub detail: Option<String>,
    pub started_at: DateTimeUtc,
    pub finished_at: DateTimeUtc,
    pub client_addr: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UploaderId",
        to = "super::user::Column::Id"
    )]
    Uploader,
    #[sea_orm(
        belongs_to = "super::stt::Entity",
        from = "Column::SttId",
        to = "super::stt::Column::Id"
    )]
    Stt,
}

impl ActiveModelBehavior for ActiveModel {}
