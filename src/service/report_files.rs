use std::collections::HashMap;

use chrono::Utc;
use entity::{Quarter, Section, report_file};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, Set, SqlErr,
    sea_query::{Expr, Func},
};
use uuid::Uuid;

use crate::{
    access::{FileScope, UploadGrant},
    error::{AppError, AppResult},
};

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

    fn condition(&self) -> Condition {
        Condition::all()
            .add(report_file::Column::SttId.eq(self.stt_id))
            .add(report_file::Column::FiscalYear.eq(self.fiscal_year))
            .add(report_file::Column::Quarter.eq(self.quarter))
            .add(report_file::Column::Section.eq(self.section))
    }
}

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
}

/// How many times an insert retries after losing a version race.
const VERSION_ATTEMPTS: usize = 64;

/// Records `new` as the next version of its slot. The unique index on
/// (slot, version) decides races between instances: a loser reads the new
/// maximum and tries again, so versions stay consecutive and distinct.
pub async fn insert_next_version(
    db: &DatabaseConnection,
    grant: &UploadGrant,
    new: NewReportFile,
) -> AppResult<report_file::Model> {
    let slot = Slot {
        stt_id: grant.stt_id,
        fiscal_year: new.fiscal_year,
        quarter: new.quarter,
        section: new.section,
    };
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
            uploaded_by_id: Set(grant.uploader_id),
            created_at: Set(Utc::now()),
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

/// Report files by id. A file never changes once recorded, so what was read
/// once can be served from memory; the caller's scope is still checked on
/// every lookup.
pub struct FileCache {
    entries: std::sync::Mutex<HashMap<Uuid, report_file::Model>>,
}

/// More files than this and the cache starts over.
const FILE_CACHE_ENTRIES: usize = 10_000;

impl Default for FileCache {
    fn default() -> Self {
        FileCache {
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl FileCache {
    pub async fn find(
        &self,
        db: &DatabaseConnection,
        scope: &FileScope,
        id: Uuid,
    ) -> AppResult<Option<report_file::Model>> {
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned();
        if let Some(file) = cached
            && let Some(reached) = scope.reaches_stt(file.stt_id)
        {
            return Ok(reached.then_some(file));
        }
        let found = find(db, scope, id).await?;
        if let Some(file) = &found {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries.len() >= FILE_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(id, file.clone());
        }
        Ok(found)
    }
}

pub async fn find(
    db: &DatabaseConnection,
    scope: &FileScope,
    id: Uuid,
) -> AppResult<Option<report_file::Model>> {
    Ok(report_file::Entity::find()
        .filter(report_file::Column::Id.eq(id))
        .filter(scope.file_condition())
        .one(db)
        .await?)
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stt_id: Option<i32>,
    pub fiscal_year: Option<i32>,
    pub quarter: Option<Quarter>,
    pub section: Option<Section>,
    pub latest_only: bool,
}

fn filtered(scope: &FileScope, filter: &Filter) -> Select<report_file::Entity> {
    let mut q = report_file::Entity::find().filter(scope.file_condition());
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
    fn size(n: Option<i64>, name: &str) -> AppResult<Option<u64>> {
        match n {
            None => Ok(None),
            Some(n) if (0..=MAX_PAGE as i64).contains(&n) => Ok(Some(n as u64)),
            Some(_) => Err(AppError::bad_input(format!(
                "`{name}` must be between 0 and {MAX_PAGE}"
            ))),
        }
    }
}

pub async fn list(
    db: &DatabaseConnection,
    scope: &FileScope,
    filter: &Filter,
    page: PageRequest,
) -> AppResult<Page> {
    let first = PageRequest::size(page.first, "first")?;
    let last = PageRequest::size(page.last, "last")?;
    if first.is_some() && last.is_some() {
        return Err(AppError::bad_input("pass `first` or `last`, not both"));
    }
    let mut q = filtered(scope, filter);
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
            .all(db)
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
            .all(db)
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

pub async fn count(db: &DatabaseConnection, scope: &FileScope, filter: &Filter) -> AppResult<u64> {
    Ok(filtered(scope, filter).count(db).await?)
}

/// Every version of `file`'s slot, newest first.
pub async fn versions(
    db: &DatabaseConnection,
    scope: &FileScope,
    file: &report_file::Model,
) -> AppResult<Vec<report_file::Model>> {
    Ok(report_file::Entity::find()
        .filter(scope.file_condition())
        .filter(Slot::of(file).condition())
        .order_by_desc(report_file::Column::Version)
        .all(db)
        .await?)
}

/// The highest version of each slot, in one statement.
pub async fn latest_versions(
    db: &DatabaseConnection,
    slots: &[Slot],
) -> AppResult<HashMap<Slot, i32>> {
    if slots.is_empty() {
        return Ok(HashMap::new());
    }
    let any = slots
        .iter()
        .fold(Condition::any(), |c, s| c.add(s.condition()));
    let rows: Vec<(i32, i32, Quarter, Section, i32)> = report_file::Entity::find()
        .select_only()
        .column(report_file::Column::SttId)
        .column(report_file::Column::FiscalYear)
        .column(report_file::Column::Quarter)
        .column(report_file::Column::Section)
        .expr(Func::max(Expr::col(report_file::Column::Version)))
        .filter(any)
        .group_by(report_file::Column::SttId)
        .group_by(report_file::Column::FiscalYear)
        .group_by(report_file::Column::Quarter)
        .group_by(report_file::Column::Section)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(stt_id, fiscal_year, quarter, section, v)| {
            (
                Slot {
                    stt_id,
                    fiscal_year,
                    quarter,
                    section,
                },
                v,
            )
        })
        .collect())
}
