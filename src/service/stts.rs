use entity::{SttType, region, stt};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::{access::FileScope, error::AppResult};

/// The STTs the scope reaches, optionally narrowed by type and region.
pub async fn list(
    db: &DatabaseConnection,
    scope: &FileScope,
    stt_type: Option<SttType>,
    region_id: Option<i32>,
) -> AppResult<Vec<stt::Model>> {
    let mut q = stt::Entity::find().filter(scope.stt_condition());
    if let Some(t) = stt_type {
        q = q.filter(stt::Column::SttType.eq(t));
    }
    if let Some(r) = region_id {
        q = q.filter(stt::Column::RegionId.eq(r));
    }
    Ok(q.order_by_asc(stt::Column::Name).all(db).await?)
}

pub async fn regions(db: &DatabaseConnection) -> AppResult<Vec<region::Model>> {
    Ok(region::Entity::find()
        .order_by_asc(region::Column::Id)
        .all(db)
        .await?)
}

/// One STT by id, for input validation (STTs are public reference data).
pub async fn find(db: &DatabaseConnection, id: i32) -> AppResult<Option<stt::Model>> {
    Ok(stt::Entity::find_by_id(id).one(db).await?)
}
