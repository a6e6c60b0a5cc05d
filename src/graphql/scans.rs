//! `scanEvents`: the virus-scan audit, for OFA and system admins.

use async_graphql::{ComplexObject, Context, ID, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use entity::{Quarter, ScanResult, Section};

use super::{
    context::ContextExt,
    cursor::Cursor,
    types::{Stt, User, load},
};
use crate::error::GqlResult;

pub type ScanEventConnection =
    Connection<Cursor, ScanEvent, async_graphql::connection::EmptyFields>;

/// One virus scan of an upload: clean, infected (nothing was stored) or
/// failed (the scanner gave no verdict; nothing was stored).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ScanEvent {
    #[graphql(skip)]
    pub model: entity::scan_event::Model,
    pub id: ID,
    pub result: ScanResult,
    /// What ClamAV found (`INFECTED`), or the limit it stopped at (`FAILED`).
    pub signature: Option<String>,
    /// ClamAV's engine and signature database versions.
    pub engine_version: Option<String>,
    /// Why the scan failed.
    pub failure_reason: Option<String>,
    /// The file name the uploader sent.
    pub original_filename: String,
    /// Bytes scanned: the whole file, or as far as a failed scan got.
    pub size_bytes: i64,
    /// Hex SHA-256 of the whole file; null when the scan failed before its end.
    pub sha256: Option<String>,
    pub fiscal_year: Option<i32>,
    pub quarter: Option<Quarter>,
    pub section: Option<Section>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl From<entity::scan_event::Model> for ScanEvent {
    fn from(m: entity::scan_event::Model) -> Self {
        ScanEvent {
            id: ID(m.id.to_string()),
            result: m.result,
            signature: m.signature.clone(),
            engine_version: m.engine_version.clone(),
            failure_reason: m.detail.clone(),
            original_filename: m.original_filename.clone(),
            size_bytes: m.size_bytes,
            sha256: m.sha256.clone(),
            fiscal_year: m.fiscal_year,
            quarter: m.quarter,
            section: m.section,
            started_at: m.started_at,
            finished_at: m.finished_at,
            model: m,
        }
    }
}

#[ComplexObject]
impl ScanEvent {
    /// The address the upload came from; null for callers who are not
    /// OFA or system administrators (a file's scan is visible to everyone
    /// who may see the file, its client address is not).
    async fn client_address(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        Ok(ctx
            .access()?
            .audit()
            .ok()
            .and(self.model.client_addr.clone()))
    }
    /// The report file a clean upload became (null for the others, and if
    /// storing it failed after the scan).
    async fn report_file_id(&self) -> Option<ID> {
        (self.model.result == ScanResult::Clean)
            .then_some(self.model.report_file_id)
            .flatten()
            .map(|id| ID(id.to_string()))
    }
    /// Who uploaded the file.
    async fn uploaded_by(&self, ctx: &Context<'_>) -> GqlResult<User> {
        let user = load(
            ctx.loaders()?
                .users
                .load_one(self.model.uploader_id)
                .await?,
        )?;
        Ok(User::seen_by(user, ctx.access()?))
    }
    /// The STT it was uploaded for.
    async fn stt(&self, ctx: &Context<'_>) -> GqlResult<Stt> {
        load(ctx.loaders()?.stts.load_one(self.model.stt_id).await?).map(Stt)
    }
}
