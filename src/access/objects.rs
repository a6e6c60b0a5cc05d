//! The objects the report file rows point at: what storage must hold, as
//! the storage sweep (an operator's command) reads it.

use entity::report_file;
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::Operator;
use crate::{error::AppResult, storage::RecordedObject};

impl Operator {
    /// Every row's object key and storage version, and those of its
    /// compressed copy where it has one, read-only.
    pub async fn recorded_objects(&self) -> AppResult<Vec<RecordedObject>> {
        type Row = (Uuid, String, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = report_file::Entity::find()
            .select_only()
            .column(report_file::Column::Id)
            .column(report_file::Column::ObjectKey)
            .column(report_file::Column::StorageVersion)
            .column(report_file::Column::EncodedObjectKey)
            .column(report_file::Column::EncodedStorageVersion)
            .order_by_asc(report_file::Column::Seq)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut recorded = Vec::with_capacity(rows.len());
        for (file_id, key, version, encoded_key, encoded_version) in rows {
            recorded.push(RecordedObject {
                file_id,
                key,
                version,
            });
            if let Some(key) = encoded_key {
                recorded.push(RecordedObject {
                    file_id,
                    key,
                    version: encoded_version,
                });
            }
        }
        Ok(recorded)
    }
}
