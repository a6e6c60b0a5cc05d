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
/// ask for, and puts it in the loaders' caches, so resolvers of a page's
/// items find it there.
///
/// The DataLoaders alone batch only what is requested within their delay
/// (1 ms, paid once per level), and async-graphql yields while resolving
/// long lists, which splits a page of 100 into several batches. Loading
/// directly, the kinds side by side, makes the statement count independent
/// of scheduling and costs no delay.
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
    let stts = async {
        if !stt.exists() {
            return Ok(());
        }
        let ids = distinct(files.iter().map(|f| f.stt_id));
        let stts = loaders.stts.loader().load(&ids).await?;
        if stt.field("region").exists() {
            let ids = distinct(stts.values().map(|s| s.region_id));
            let regions = loaders.regions.loader().load(&ids).await?;
            loaders.regions.feed_many(regions).await;
        }
        loaders.stts.feed_many(stts).await;
        Ok::<_, GqlError>(())
    };
    let users = async {
        if !node.field("uploadedBy").exists() {
            return Ok(());
        }
        let ids = distinct(files.iter().map(|f| f.uploaded_by_id));
        let users = loaders.users.loader().load(&ids).await?;
        loaders.users.feed_many(users).await;
        Ok::<_, GqlError>(())
    };
    let latest = async {
        if !node.field("isLatest").exists() {
            return Ok(());
        }
        let slots = distinct(files.iter().map(report_files::Slot::of));
        let latest = loaders.latest.loader().load(&slots).await?;
        loaders.latest.feed_many(latest).await;
        Ok::<_, GqlError>(())
    };
    let (a, b, c) = tokio::join!(stts, users, latest);
    a.and(b).and(c)
}

fn distinct<K: std::hash::Hash + Eq + Clone>(keys: impl Iterator<Item = K>) -> Vec<K> {
    let set: std::collections::HashSet<K> = keys.collect();
    set.into_iter().collect()
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
