//! Recording a stored object as the next version of its slot.

use chrono::Utc;
use entity::{Quarter, Section, report_file, stt};
use sea_orm::{
    EntityTrait, QueryFilter, QuerySelect, Set, SqlErr,
    sea_query::{Expr, Func},
};
use uuid::Uuid;

use super::{Slot, UploadGrant};
use crate::{
    encoding::StoredCopy,
    error::{AppError, AppResult},
};

/// A stored object about to become a report file version.
#[derive(Debug, Clone)]
pub struct NewReportFile {
    pub id: Uuid,
    pub fiscal_year: i32,
    pub quarter: Quarter,
    pub section: Section,
    pub original_filename: String,
    pub extension: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub storage_version: Option<String>,
    pub etag: Option<String>,
    /// The compressed copy, stored beside the object.
    pub encoded: Option<StoredCopy>,
}

/// How many times an insert retries after losing a version race.
const VERSION_ATTEMPTS: usize = 64;

impl UploadGrant {
    /// Whether the granted STT exists (an admin may name any id).
    pub async fn stt_exists(&self) -> AppResult<bool> {
        Ok(stt::Entity::find_by_id(self.stt_id)
            .one(self.db.spend(1)?)
            .await?
            .is_some())
    }

    /// Records `new` as the next version of its slot. The unique index on
    /// (slot, version) decides races between instances: a loser reads the new
    /// maximum and tries again, so versions stay consecutive and distinct.
    ///
    /// The budget pays for one attempt (read the maximum, insert): retries
    /// after a lost race are the server's doing, bounded by
    /// `VERSION_ATTEMPTS`, and must not fail an upload whose bytes are stored.
    pub async fn insert_next_version(&self, new: NewReportFile) -> AppResult<report_file::Model> {
        let db = self.db.spend(2)?;
        let slot = Slot {
            stt_id: self.stt_id,
            fiscal_year: new.fiscal_year,
            quarter: new.quarter,
            section: new.section,
        };
        let copy = new.encoded.as_ref();
        for _ in 0..VERSION_ATTEMPTS {
            let current: Option<i32> = report_file::Entity::find()
                .select_only()
                .expr(Func::max(Expr::col(report_file::Column::Version)))
                .filter(slot.condition())
                .into_tuple()
                .one(db)
                .await?
                .flatten();
            let model = report_file::ActiveModel {
                id: Set(new.id),
                stt_id: Set(slot.stt_id),
                fiscal_year: Set(slot.fiscal_year),
                quarter: Set(slot.quarter),
                section: Set(slot.section),
                version: Set(current.unwrap_or(0) + 1),
                original_filename: Set(new.original_filename.clone()),
                extension: Set(new.extension.clone()),
                content_type: Set(new.content_type.clone()),
                size_bytes: Set(new.size_bytes),
                sha256: Set(new.sha256.clone()),
                object_key: Set(new.object_key.clone()),
                storage_version: Set(new.storage_version.clone()),
                etag: Set(new.etag.clone()),
                uploaded_by_id: Set(self.uploader_id),
                created_at: Set(Utc::now()),
                content_encoding: Set(copy.map(|c| c.coding.token().to_string())),
                encoded_object_key: Set(copy.map(|c| c.key.clone())),
                encoded_size_bytes: Set(copy.map(|c| c.size as i64)),
                encoded_storage_version: Set(copy.and_then(|c| c.version.clone())),
                encoded_etag: Set(copy.and_then(|c| c.e_tag.clone())),
                ..Default::default()
            };
            match report_file::Entity::insert(model)
                .exec_with_returning(db)
                .await
            {
                Ok(m) => return Ok(m),
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::internal(
            "could not assign a version: too much contention",
        ))
    }
}
