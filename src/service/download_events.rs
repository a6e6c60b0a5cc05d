use entity::download_event;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::{access::AuditGrant, error::AppResult, service::report_files::MAX_PAGE};

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
