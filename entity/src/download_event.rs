use sea_orm::entity::prelude::*;

use crate::DownloadOutcome;

/// Audit record of one request to the download route.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "download_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub report_file_id: Uuid,
    pub user_id: i64,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub bytes_sent: i64,
    pub requested_range: Option<String>,
    pub outcome: DownloadOutcome,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::report_file::Entity",
        from = "Column::ReportFileId",
        to = "super::report_file::Column::Id"
    )]
    ReportFile,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
