use chrono::{DateTime, Utc};
use entity::{DownloadOutcome, download_event};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::{access::AuditGrant, error::AppResult, service::report_files::MAX_PAGE};

/// One finished request to the download route.
#[derive(Debug, Clone)]
pub struct NewDownloadEvent {
    pub report_file_id: Uuid,
    pub user_id: i64,
    pub started_at: DateTime<Utc>,
    pub bytes_sent: i64,
    pub requested_range: Option<String>,
    pub outcome: DownloadOutcome,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn record(db: &DatabaseConnection, e: NewDownloadEvent) -> AppResult<()> {
    download_event::Entity::insert(download_event::ActiveModel {
        report_file_id: Set(e.report_file_id),
        user_id: Set(e.user_id),
        started_at: Set(e.started_at),
        finished_at: Set(Some(Utc::now())),
        bytes_sent: Set(e.bytes_sent),
        requested_range: Set(e.requested_range),
        outcome: Set(e.outcome),
        client_addr: Set(e.client_addr),
        user_agent: Set(e.user_agent),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Download events of one file, newest first, after the cursor `after` (an
/// event id). Returns one row more than asked when more exist.
pub async fn list(
    db: &DatabaseConnection,
    _grant: AuditGrant,
    report_file_id: Uuid,
    first: u64,
    after: Option<i64>,
) -> AppResult<Vec<download_event::Model>> {
    let mut q = download_event::Entity::find()
        .filter(download_event::Column::ReportFileId.eq(report_file_id));
    if let Some(after) = after {
        q = q.filter(download_event::Column::Id.lt(after));
    }
    Ok(q.order_by_desc(download_event::Column::Id)
        .limit(first.min(MAX_PAGE) + 1)
        .all(db)
        .await?)
}
