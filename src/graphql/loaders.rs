//! DataLoaders: a page of files asks for its STTs, uploaders and latest
//! versions in one statement each, whatever the page size.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{region, stt, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::{
    error::GqlError,
    service::{report_files, users},
};

pub struct Loaders {
    pub stts: DataLoader<SttLoader>,
    pub users: DataLoader<UserLoader>,
    pub regions: DataLoader<RegionLoader>,
    pub latest: DataLoader<LatestVersionLoader>,
}

impl Loaders {
    /// Made per request: their caches must not outlive one caller's view.
    pub fn new(db: &DatabaseConnection) -> Self {
        Loaders {
            stts: DataLoader::new(SttLoader(db.clone()), tokio::spawn),
            users: DataLoader::new(UserLoader(db.clone()), tokio::spawn),
            regions: DataLoader::new(RegionLoader(db.clone()), tokio::spawn),
            latest: DataLoader::new(LatestVersionLoader(db.clone()), tokio::spawn),
        }
    }
}

pub struct SttLoader(DatabaseConnection);
pub struct UserLoader(DatabaseConnection);
pub struct RegionLoader(DatabaseConnection);
pub struct LatestVersionLoader(DatabaseConnection);

impl Loader<i32> for SttLoader {
    type Value = stt::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, stt::Model>, GqlError> {
        let rows = stt::Entity::find()
            .filter(stt::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|s| (s.id, s)).collect())
    }
}

impl Loader<i32> for RegionLoader {
    type Value = region::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, region::Model>, GqlError> {
        let rows = region::Entity::find()
            .filter(region::Column::Id.is_in(keys.iter().copied()))
            .all(&self.0)
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<i64> for UserLoader {
    type Value = user::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, user::Model>, GqlError> {
        let rows = users::by_ids(&self.0, keys).await?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }
}

impl Loader<report_files::Slot> for LatestVersionLoader {
    type Value = i32;
    type Error = GqlError;

    async fn load(
        &self,
        keys: &[report_files::Slot],
    ) -> Result<HashMap<report_files::Slot, i32>, GqlError> {
        Ok(report_files::latest_versions(&self.0, keys).await?)
    }
}
