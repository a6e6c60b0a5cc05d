//! Report files as a `Files` capability reads them: its reach is a SQL
//! condition on every statement.

use std::{collections::HashMap, time::Duration};

use entity::{Quarter, ScanResult, Section, report_file, scan_event, stt};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
    sea_query::{Expr, Func, Query},
};
use uuid::Uuid;

use super::{Files, Reach};
use crate::error::{AppError, AppResult};

/// The (STT, fiscal year, quarter, section) a file is submitted for; its
/// versions are numbered 1, 2, 3, … within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub stt_id: i32,
    pub fiscal_year: i32,
    pub quarter: Quarter,
    pub section: Section,
}

impl Slot {
    pub fn of(f: &report_file::Model) -> Self {
        Slot {
            stt_id: f.stt_id,
            fiscal_year: f.fiscal_year,
            quarter: f.quarter,
            section: f.section,
        }
    }

    pub(super) fn condition(&self) -> Condition {
        Condition::all()
            .add(report_file::Column::SttId.eq(self.stt_id))
            .add(report_file::Column::FiscalYear.eq(self.fiscal_year))
            .add(report_file::Column::Quarter.eq(self.quarter))
            .add(report_file::Column::Section.eq(self.section))
    }
}

/// Report files by id, kept per instance, for the download route. A file
/// never changes once recorded, so what was read once can be served from
/// memory; the caller's reach is still checked on every lookup. That an id
/// names no file is kept too (for a minute), so an id that exists but is
/// out of reach and one that does not exist take the same path, in the same
/// time: the 404s cannot be told apart. Bounded in entries, and entries
/// expire, so a full cache evicts the least useful ones instead of starting
/// over.
#[derive(Clone)]
pub struct FileCache(moka::sync::Cache<Uuid, Option<report_file::Model>>);

const FILE_CACHE_ENTRIES: u64 = 10_000;

/// How long an entry lives: a file for an hour, an unknown id for a minute
/// (ids are random and only known once their file exists, but a minute is
/// enough to make probing cost the same as a hit).
struct Lifetimes;

impl moka::Expiry<Uuid, Option<report_file::Model>> for Lifetimes {
    fn expire_after_create(
        &self,
        _id: &Uuid,
        file: &Option<report_file::Model>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(match file {
            Some(_) => Duration::from_secs(3600),
            None => Duration::from_secs(60),
        })
    }
}

impl FileCache {
    pub fn new() -> Self {
        FileCache(
            moka::sync::Cache::builder()
                .max_capacity(FILE_CACHE_ENTRIES)
                .expire_after(Lifetimes)
                .build(),
        )
    }
}

impl Default for FileCache {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stt_id: Option<i32>,
    pub fiscal_year: Option<i32>,
    pub quarter: Option<Quarter>,
    pub section: Option<Section>,
    pub latest_only: bool,
}

pub const MAX_PAGE: u64 = 100;
pub const DEFAULT_PAGE: u64 = 20;

/// A keyset page request: cursors are `seq` values, so a page stays put
/// while new files arrive.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    pub first: Option<i64>,
    pub after: Option<i64>,
    pub last: Option<i64>,
    pub before: Option<i64>,
}

#[derive(Debug)]
pub struct Page {
    /// Newest first.
    pub items: Vec<report_file::Model>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

impl PageRequest {
    /// A page size, checked against the limit.
    pub fn size(n: Option<i64>, name: &str) -> AppResult<Option<u64>> {
        match n {
            None => Ok(None),
            Some(n) if (0..=MAX_PAGE as i64).contains(&n) => Ok(Some(n as u64)),
            Some(_) => Err(AppError::bad_input(format!(
                "`{name}` must be between 0 and {MAX_PAGE}"
            ))),
        }
    }
}

impl Files {
    /// Whether files of `stt_id` are in reach, when that can be told without
    /// the database (it cannot for regions: STTs belong to them there).
    pub(super) fn reaches_stt(&self, stt_id: i32) -> Option<bool> {
        match &self.reach {
            Reach::All => Some(true),
            Reach::Stt(id) => Some(*id == stt_id),
            Reach::Nothing => Some(false),
            Reach::Regions(_) => None,
        }
    }

    /// Restricts a query on `stts` to the ones in reach.
    pub(super) fn stt_condition(&self) -> Condition {
        match &self.reach {
            Reach::All => Condition::all(),
            Reach::Stt(id) => Condition::all().add(stt::Column::Id.eq(*id)),
            Reach::Regions(ids) => Condition::all().add(stt::Column::RegionId.is_in(ids.clone())),
            Reach::Nothing => Condition::all().add(stt::Column::Id.is_in(Vec::<i32>::new())),
        }
    }

    /// Restricts a query on `report_files` to the ones in reach.
    fn file_condition(&self) -> Condition {
        match &self.reach {
            Reach::All => Condition::all(),
            Reach::Stt(id) => Condition::all().add(report_file::Column::SttId.eq(*id)),
            Reach::Regions(ids) => Condition::all().add(
                report_file::Column::SttId.in_subquery(
                    Query::select()
                        .column(stt::Column::Id)
                        .from(stt::Entity)
                        .and_where(stt::Column::RegionId.is_in(ids.clone()))
                        .take(),
                ),
            ),
            Reach::Nothing => {
                Condition::all().add(report_file::Column::SttId.is_in(Vec::<i32>::new()))
            }
        }
    }

    /// A file in reach, or `None`.
    pub async fn find(&self, id: Uuid) -> AppResult<Option<report_file::Model>> {
        Ok(report_file::Entity::find()
            .filter(report_file::Column::Id.eq(id))
            .filter(self.file_condition())
            .one(self.db.spend(1)?)
            .await?)
    }

    /// Like `find`, through the instance's file cache: the file is looked up
    /// by id alone (cache, then database), and the reach checked in memory,
    /// so what is out of reach and what does not exist cost the same.
    pub async fn find_cached(&self, id: Uuid) -> AppResult<Option<report_file::Model>> {
        let found = match self.cache.0.get(&id) {
            Some(entry) => entry,
            None => {
                let found = report_file::Entity::find()
                    .filter(report_file::Column::Id.eq(id))
                    .one(self.db.spend(1)?)
                    .await?;
                self.cache.0.insert(id, found.clone());
                found
            }
        };
        let Some(file) = found else {
            return Ok(None);
        };
        match self.reaches_stt(file.stt_id) {
            Some(reached) => Ok(reached.then_some(file)),
            // Regions: which STTs they hold is the database's to say.
            None => self.find(id).await,
        }
    }

    fn filtered(&self, filter: &Filter) -> Select<report_file::Entity> {
        let mut q = report_file::Entity::find().filter(self.file_condition());
        if let Some(v) = filter.stt_id {
            q = q.filter(report_file::Column::SttId.eq(v));
        }
        if let Some(v) = filter.fiscal_year {
            q = q.filter(report_file::Column::FiscalYear.eq(v));
        }
        if let Some(v) = filter.quarter {
            q = q.filter(report_file::Column::Quarter.eq(v));
        }
        if let Some(v) = filter.section {
            q = q.filter(report_file::Column::Section.eq(v));
        }
        if filter.latest_only {
            q = q.filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM report_files newer \
                 WHERE newer.stt_id = report_files.stt_id \
                 AND newer.fiscal_year = report_files.fiscal_year \
                 AND newer.quarter = report_files.quarter \
                 AND newer.section = report_files.section \
                 AND newer.version > report_files.version)",
            ));
        }
        q
    }

    /// One page of the files in reach that match `filter`.
    pub async fn list(&self, filter: &Filter, page: PageRequest) -> AppResult<Page> {
        let first = PageRequest::size(page.first, "first")?;
        let last = PageRequest::size(page.last, "last")?;
        if first.is_some() && last.is_some() {
            return Err(AppError::bad_input("pass `first` or `last`, not both"));
        }
        let mut q = self.filtered(filter);
        if let Some(after) = page.after {
            q = q.filter(report_file::Column::Seq.lt(after));
        }
        if let Some(before) = page.before {
            q = q.filter(report_file::Column::Seq.gt(before));
        }
        if let Some(last) = last {
            // Walk backwards from `before`, then present newest first.
            let mut items = q
                .order_by_asc(report_file::Column::Seq)
                .limit(last + 1)
                .all(self.db.spend(1)?)
                .await?;
            let has_previous_page = items.len() as u64 > last;
            items.truncate(last as usize);
            items.reverse();
            Ok(Page {
                items,
                has_previous_page,
                has_next_page: page.before.is_some(),
            })
        } else {
            let first = first.unwrap_or(DEFAULT_PAGE);
            let mut items = q
                .order_by_desc(report_file::Column::Seq)
                .limit(first + 1)
                .all(self.db.spend(1)?)
                .await?;
            let has_next_page = items.len() as u64 > first;
            items.truncate(first as usize);
            Ok(Page {
                items,
                has_previous_page: page.after.is_some(),
                has_next_page,
            })
        }
    }

    /// How many files in reach match `filter`.
    pub async fn count(&self, filter: &Filter) -> AppResult<u64> {
        Ok(self.filtered(filter).count(self.db.spend(1)?).await?)
    }

    /// Every version in reach of each slot, newest first, in one statement.
    pub async fn versions_of(
        &self,
        slots: &[Slot],
    ) -> AppResult<HashMap<Slot, Vec<report_file::Model>>> {
        if slots.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = report_file::Entity::find()
            .filter(self.file_condition())
            .filter(any_slot(slots))
            .order_by_desc(report_file::Column::Version)
            .all(self.db.spend(1)?)
            .await?;
        let mut versions: HashMap<Slot, Vec<report_file::Model>> = HashMap::new();
        for file in rows {
            versions.entry(Slot::of(&file)).or_default().push(file);
        }
        Ok(versions)
    }

    /// The highest version of each slot, in one statement. Slots come from
    /// files in reach; so do the versions counted.
    pub async fn latest_versions(&self, slots: &[Slot]) -> AppResult<HashMap<Slot, i32>> {
        if slots.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i32, i32, Quarter, Section, i32)> = report_file::Entity::find()
            .select_only()
            .column(report_file::Column::SttId)
            .column(report_file::Column::FiscalYear)
            .column(report_file::Column::Quarter)
            .column(report_file::Column::Section)
            .expr(Func::max(Expr::col(report_file::Column::Version)))
            .filter(self.file_condition())
            .filter(any_slot(slots))
            .group_by(report_file::Column::SttId)
            .group_by(report_file::Column::FiscalYear)
            .group_by(report_file::Column::Quarter)
            .group_by(report_file::Column::Section)
            .into_tuple()
            .all(self.db.spend(1)?)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(stt_id, fiscal_year, quarter, section, v)| {
                let slot = Slot {
                    stt_id,
                    fiscal_year,
                    quarter,
                    section,
                };
                (slot, v)
            })
            .collect())
    }
}

impl Files {
    /// The clean scan of each of these files in reach, in one statement.
    /// Files stored while scanning was off have none.
    pub async fn clean_scans_of(
        &self,
        ids: &[Uuid],
    ) -> AppResult<HashMap<Uuid, scan_event::Model>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        // The reach is the file's, not the scan row's: the scan is read
        // only for a file the caller may see.
        let in_reach = Query::select()
            .column(report_file::Column::Id)
            .from(report_file::Entity)
            .and_where(report_file::Column::Id.is_in(ids.iter().copied()))
            .cond_where(self.file_condition())
            .take();
        let rows = scan_event::Entity::find()
            .filter(scan_event::Column::ReportFileId.in_subquery(in_reach))
            .filter(scan_event::Column::Result.eq(ScanResult::Clean))
            .all(self.db.spend(1)?)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|scan| Some((scan.report_file_id?, scan)))
            .collect())
    }
}

/// Files of any of these slots.
fn any_slot(slots: &[Slot]) -> Condition {
    slots
        .iter()
        .fold(Condition::any(), |c, s| c.add(s.condition()))
}
