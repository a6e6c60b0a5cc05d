//! STTs and regions: the reference data every file and user points at.

use std::collections::HashMap;

use entity::{SttType, region, stt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Files, Reference};
use crate::error::AppResult;

impl Reference {
    pub async fn stts_by_ids(&self, ids: &[i32]) -> AppResult<HashMap<i32, stt::Model>> {
        let rows = stt::Entity::find()
            .filter(stt::Column::Id.is_in(ids.iter().copied()))
            .all(self.db.spend(1)?)
            .await?;
        Ok(rows.into_iter().map(|s| (s.id, s)).collect())
    }

    pub async fn regions_by_ids(&self, ids: &[i32]) -> AppResult<HashMap<i32, region::Model>> {
        let rows = region::Entity::find()
            .filter(region::Column::Id.is_in(ids.iter().copied()))
            .all(self.db.spend(1)?)
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Files {
    /// The STTs in reach, optionally narrowed by type and region.
    pub async fn stts(
        &self,
        stt_type: Option<SttType>,
        region_id: Option<i32>,
    ) -> AppResult<Vec<stt::Model>> {
        let mut q = stt::Entity::find().filter(self.stt_condition());
        if let Some(t) = stt_type {
            q = q.filter(stt::Column::SttType.eq(t));
        }
        if let Some(r) = region_id {
            q = q.filter(stt::Column::RegionId.eq(r));
        }
        Ok(q.order_by_asc(stt::Column::Name)
            .all(self.db.spend(1)?)
            .await?)
    }

    /// Every region (regions are not scoped: a region's name is no secret).
    pub async fn regions(&self) -> AppResult<Vec<region::Model>> {
        Ok(region::Entity::find()
            .order_by_asc(region::Column::Id)
            .all(self.db.spend(1)?)
            .await?)
    }
}
