//! The objects the report file rows point at: what storage must hold, as
//! the storage sweep (an operator's command) reads it.

use entity::report_file;
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::Operator;
use crate::{error::AppResult, storage::RecordedObject};

impl Operator {
    /// Every row's object key and storage version, read-only.
    pub async fn recorded_objects(&self) -> AppResult<Vec<RecordedObject>> {
        let rows: Vec<(Uuid, String, Option<String>)> = report_file::Entity::find()
            .select_only()
            .column(report_file::Column::Id)
            .column(report_file::Column::ObjectKey)
            .column(report_file::Column::StorageVersion)
            .order_by_asc(report_file::Column::Seq)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(file_id, key, version)| RecordedObject {
                file_id,
                key,
                version,
            })
            .collect())
    }
}
