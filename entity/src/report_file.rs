use sea_orm::entity::prelude::*;

use crate::{Quarter, Section};

/// One immutable version of one submitted file.
///
/// `seq` is the internal key and the newest-first order (it only grows);
/// `id` is the public identifier. `object_key`, `storage_version` and `etag`
/// are internal and never leave the server; so are the `encoded_*` columns
/// of the compressed copy (all null when the file has none), whose coding
/// (`gzip`, `zstd`) is `content_encoding`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "report_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    pub stt_id: i32,
    pub fiscal_year: i32,
    pub quarter: Quarter,
    pub section: Section,
    pub version: i32,
    pub original_filename: String,
    pub extension: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub storage_version: Option<String>,
    pub etag: Option<String>,
    pub uploaded_by_id: i64,
    pub created_at: DateTimeUtc,
    pub content_encoding: Option<String>,
    pub encoded_object_key: Option<String>,
    pub encoded_size_bytes: Option<i64>,
    pub encoded_storage_version: Option<String>,
    pub encoded_etag: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::stt::Entity",
        from = "Column::SttId",
        to = "super::stt::Column::Id"
    )]
    Stt,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UploadedById",
        to = "super::user::Column::Id"
    )]
    UploadedBy,
}

impl ActiveModelBehavior for ActiveModel {}
