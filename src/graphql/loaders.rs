//! DataLoaders: a page of files asks for its STTs, uploaders, latest
//! versions, versions and scans in one statement each, whatever the page size (and
//! `graphql::cost` prices these fields by rows, not statements). Each loader holds
//! the capability it reads through, taken from the caller's `Access` when
//! the request starts; a caller without it gets that capability's error.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{region, report_file, scan_event, stt, user};
use uuid::Uuid;

use crate::{
    access::{Access, Files, People, Reference, Slot},
    error::{AppResult, GqlError},
};

pub struct Loaders {
    pub stts: DataLoader<SttLoader, HashMapCache>,
    pub users: DataLoader<UserLoader, HashMapCache>,
    pub regions: DataLoader<RegionLoader, HashMapCache>,
    pub latest: DataLoader<LatestVersionLoader, HashMapCache>,
    pub versions: DataLoader<VersionsLoader, HashMapCache>,
    pub user_regions: DataLoader<UserRegionsLoader, HashMapCache>,
    pub scans: DataLoader<ScanLoader, HashMapCache>,
}

fn loader<T: Loader<K>, K: Send + Sync + std::hash::Hash + Eq + Clone + 'static>(
    inner: T,
) -> DataLoader<T, HashMapCache> {
    DataLoader::with_cache(inner, tokio::spawn, HashMapCache::default())
}

impl Loaders {
    /// Made per request: their caches must not outlive one caller's view.
    pub fn new(access: &Access) -> Self {
        Loaders {
            stts: loader(SttLoader(Granted::of(access.reference()))),
            users: loader(UserLoader(Granted::of(access.people()))),
            regions: loader(RegionLoader(Granted::of(access.reference()))),
            latest: loader(LatestVersionLoader(Granted::of(access.files()))),
            versions: loader(VersionsLoader(Granted::of(access.files()))),
            user_regions: loader(UserRegionsLoader(Granted::of(access.people()))),
            scans: loader(ScanLoader(Granted::of(access.files()))),
        }
    }
}

/// A capability, or the error the caller got asking for it (kept as a
/// GraphQL error, which loaders must be able to clone).
pub struct Granted<T>(Result<T, GqlError>);

impl<T> Granted<T> {
    fn of(result: AppResult<T>) -> Self {
        Granted(result.map_err(GqlError::from))
    }

    fn get(&self) -> Result<&T, GqlError> {
        self.0.as_ref().map_err(Clone::clone)
    }
}

pub struct SttLoader(Granted<Reference>);
pub struct RegionLoader(Granted<Reference>);
pub struct UserLoader(Granted<People>);
pub struct LatestVersionLoader(Granted<Files>);
pub struct VersionsLoader(Granted<Files>);
pub struct UserRegionsLoader(Granted<People>);
pub struct ScanLoader(Granted<Files>);

impl Loader<i32> for SttLoader {
    type Value = stt::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, stt::Model>, GqlError> {
        Ok(self.0.get()?.stts_by_ids(keys).await?)
    }
}

impl Loader<i32> for RegionLoader {
    type Value = region::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, region::Model>, GqlError> {
        Ok(self.0.get()?.regions_by_ids(keys).await?)
    }
}

impl Loader<i64> for UserLoader {
    type Value = user::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, user::Model>, GqlError> {
        Ok(self.0.get()?.by_ids(keys).await?)
    }
}

impl Loader<Slot> for LatestVersionLoader {
    type Value = i32;
    type Error = GqlError;

    async fn load(&self, keys: &[Slot]) -> Result<HashMap<Slot, i32>, GqlError> {
        Ok(self.0.get()?.latest_versions(keys).await?)
    }
}

impl Loader<Slot> for VersionsLoader {
    type Value = Vec<report_file::Model>;
    type Error = GqlError;

    async fn load(
        &self,
        keys: &[Slot],
    ) -> Result<HashMap<Slot, Vec<report_file::Model>>, GqlError> {
        Ok(self.0.get()?.versions_of(keys).await?)
    }
}

impl Loader<i64> for UserRegionsLoader {
    type Value = Vec<i32>;
    type Error = GqlError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Vec<i32>>, GqlError> {
        Ok(self.0.get()?.region_ids_of(keys).await?)
    }
}

impl Loader<Uuid> for ScanLoader {
    type Value = scan_event::Model;
    type Error = GqlError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, scan_event::Model>, GqlError> {
        Ok(self.0.get()?.clean_scans_of(keys).await?)
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
    loaders: &Loaders,
    node: async_graphql::Lookahead<'_>,
    files: &[entity::report_file::Model],
) -> Result<(), GqlError> {
    if files.is_empty() {
        return Ok(());
    }
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
        let slots = distinct(files.iter().map(Slot::of));
        let latest = loaders.latest.loader().load(&slots).await?;
        loaders.latest.feed_many(latest).await;
        Ok::<_, GqlError>(())
    };
    let versions = async {
        if !node.field("versions").exists() {
            return Ok(());
        }
        let slots = distinct(files.iter().map(Slot::of));
        let versions = loaders.versions.loader().load(&slots).await?;
        loaders.versions.feed_many(versions).await;
        Ok::<_, GqlError>(())
    };
    let scans = async {
        if !node.field("scan").exists() {
            return Ok(());
        }
        let ids: Vec<Uuid> = files.iter().map(|f| f.id).collect();
        let scans = loaders.scans.loader().load(&ids).await?;
        loaders.scans.feed_many(scans).await;
        Ok::<_, GqlError>(())
    };
    let (a, b, c, d, e) = tokio::join!(stts, users, latest, versions, scans);
    a.and(b).and(c).and(d).and(e)
}

fn distinct<K: std::hash::Hash + Eq + Clone>(keys: impl Iterator<Item = K>) -> Vec<K> {
    let set: std::collections::HashSet<K> = keys.collect();
    set.into_iter().collect()
}
