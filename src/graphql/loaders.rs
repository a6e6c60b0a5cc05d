//! DataLoaders: a page of files asks for its STTs, uploaders and latest
//! versions in one statement each, whatever the page size.

use std::collections::HashMap;

use async_graphql::{
    Context,
    dataloader::{DataLoader, HashMapCache, Loader},
};
use entity::{region, stt, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::{
    error::GqlError,
    service::{report_files, users},
};

pub struct Loaders {
    pub stts: DataLoader<SttLoader, HashMapCache>,
    pub users: DataLoader<UserLoader, HashMapCache>,
    pub regions: DataLoader<RegionLoader, HashMapCache>,
    pub latest: DataLoader<LatestVersionLoader, HashMapCache>,
}

impl Loaders {
    /// Made per request: their caches must not outlive one caller's view.
    pub fn new(db: &DatabaseConnection) -> Self {
        Loaders {
            stts: DataLoader::with_cache(
                SttLoader(db.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            users: DataLoader::with_cache(
                UserLoader(db.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            regions: DataLoader::with_cache(
                RegionLoader(db.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            latest: DataLoader::with_cache(
                LatestVersionLoader(db.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
        }
    }
}

/// Loads, in one statement per kind, what the selection under `node` will
/// ask for, so resolvers of a page's items find it cached.
///
/// The DataLoaders alone batch only what is requested within their delay;
/// async-graphql yields while resolving long lists, which splits a page of
/// 100 into several batches. Prefetching makes the count independent of
/// scheduling.
pub async fn prefetch_files(
    ctx: &Context<'_>,
    node: async_graphql::Lookahead<'_>,
    files: &[entity::report_file::Model],
) -> Result<(), GqlError> {
    if files.is_empty() {
        return Ok(());
    }
    let loaders = ctx.data_unchecked::<Loaders>();
    let stt = node.field("stt");
    if stt.exists() {
        let stts = loaders
            .stts
            .load_many(files.iter().map(|f| f.stt_id))
            .await?;
        if stt.field("region").exists() {
            loaders
                .regions
                .load_many(stts.values().map(|s| s.region_id))
                .await?;
        }
    }
    if node.field("uploadedBy").exists() {
        loaders
            .users
            .load_many(files.iter().map(|f| f.uploaded_by_id))
            .await?;
    }
    if node.field("isLatest").exists() {
        loaders
            .latest
            .load_many(files.iter().map(report_files::Slot::of))
            .await?;
    }
    Ok(())
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
