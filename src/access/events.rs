//! The download audit: written by the download route, read by admins.

use chrono::{DateTime, Utc};
use entity::{DownloadOutcome, download_event};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::{Audit, MAX_PAGE};
use crate::error::AppResult;

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

/// Writes download events; it can write nothing else and read nothing.
#[derive(Clone)]
pub struct AuditLog {
    db: DatabaseConnection,
}

impl AuditLog {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        AuditLog { db }
    }

    /// Records `event` off the request path.
    pub fn record(&self, event: NewDownloadEvent) {
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(e) = insert(&db, event).await {
                e.log();
            }
        });
    }
}

async fn insert(db: &DatabaseConnection, e: NewDownloadEvent) -> AppResult<()> {
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

impl Audit {
    /// Download events of one file, newest first, after the cursor `after`
    /// (an event id). Returns one row more than asked when more exist.
    pub async fn download_events(
        &self,
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
            .all(self.db.spend(1)?)
            .await?)
    }
}
