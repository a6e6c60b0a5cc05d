use async_graphql::{
    Context, ID, InputObject, Object,
    connection::{Connection, CursorType, Edge, EmptyFields},
};
use chrono::{DateTime, Utc};
use entity::{Quarter, ScanResult, Section, SttType, UserStatus};

use super::{
    context::ContextExt,
    cost,
    cursor::Cursor,
    loaders::prefetch_files,
    scans::{ScanEvent, ScanEventConnection},
    types::{DownloadEvent, Region, ReportFile, Stt, User},
};
use crate::{
    access::{DEFAULT_PAGE, Files, Filter, PageRequest, ScanFilter},
    error::{AppError, GqlResult},
};

pub struct Query;

#[derive(InputObject, Default)]
pub struct ReportFileFilter {
    stt_id: Option<i32>,
    fiscal_year: Option<i32>,
    quarter: Option<Quarter>,
    section: Option<Section>,
    /// Only the newest version of each slot.
    #[graphql(default)]
    latest_only: bool,
}

/// Extra fields of `ReportFileConnection`.
pub struct ReportFileConnectionFields {
    files: Files,
    filter: Filter,
}

#[Object]
impl ReportFileConnectionFields {
    /// How many files match the filter, across all pages.
    // Priced with `reportFiles` itself (`cost::files_page`): here it would
    // be multiplied by the page size.
    #[graphql(complexity = 0)]
    async fn total_count(&self) -> GqlResult<i64> {
        Ok(self.files.count(&self.filter).await? as i64)
    }
}

pub type ReportFileConnection =
    Connection<Cursor, ReportFile, ReportFileConnectionFields, EmptyFields>;
pub type DownloadEventConnection = Connection<Cursor, DownloadEvent, EmptyFields, EmptyFields>;

fn cursor(raw: Option<String>) -> GqlResult<Option<i64>> {
    raw.map(|s| {
        Cursor::decode_cursor(&s)
            .map(|c| c.0)
            .map_err(|_| AppError::bad_input("invalid cursor").into())
    })
    .transpose()
}

fn parse_uuid(id: &ID) -> GqlResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| AppError::bad_input("id is not a valid UUID").into())
}

#[Object]
impl Query {
    /// The signed-in user, whatever their status.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Option<User>> {
        Ok(Some(User::own(ctx.access()?.principal()?.user.clone())))
    }

    /// The STTs the caller may see.
    #[graphql(complexity = "cost::statements(1, child_complexity)")]
    async fn stts(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] stt_type: Option<SttType>,
        region_id: Option<i32>,
    ) -> GqlResult<Vec<Stt>> {
        let files = ctx.access()?.files()?;
        Ok(files
            .stts(stt_type, region_id)
            .await?
            .into_iter()
            .map(Stt)
            .collect())
    }

    #[graphql(complexity = "cost::statements(1, child_complexity)")]
    async fn regions(&self, ctx: &Context<'_>) -> GqlResult<Vec<Region>> {
        let files = ctx.access()?.files()?;
        Ok(files.regions().await?.into_iter().map(Region).collect())
    }

    /// A file the caller may see, or null.
    #[graphql(complexity = "cost::statements(1, child_complexity)")]
    async fn report_file(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<ReportFile>> {
        let files = ctx.access()?.files()?;
        let id = parse_uuid(&id)?;
        Ok(files.find(id).await?.map(ReportFile))
    }

    /// Visible files, newest first, as a Relay connection.
    #[graphql(complexity = "cost::files_page(first, last, child_complexity)")]
    async fn report_files(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFileFilter>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<ReportFileConnection> {
        let files = ctx.access()?.files()?;
        let f = filter.unwrap_or_default();
        let filter = Filter {
            stt_id: f.stt_id,
            fiscal_year: f.fiscal_year,
            quarter: f.quarter,
            section: f.section,
            latest_only: f.latest_only,
        };
        let page = PageRequest {
            first,
            after: cursor(after)?,
            last,
            before: cursor(before)?,
        };
        let result = files.list(&filter, page).await?;
        let node = ctx.look_ahead().field("edges").field("node");
        prefetch_files(ctx.loaders()?, node, &result.items).await?;
        let mut connection = Connection::with_additional_fields(
            result.has_previous_page,
            result.has_next_page,
            ReportFileConnectionFields { files, filter },
        );
        connection.edges.extend(
            result
                .items
                .into_iter()
                .map(|f| Edge::new(Cursor(f.seq), ReportFile(f))),
        );
        Ok(connection)
    }

    /// All users, optionally by status (OFA and system admins).
    #[graphql(complexity = "cost::statements(1, child_complexity)")]
    async fn users(&self, ctx: &Context<'_>, status: Option<UserStatus>) -> GqlResult<Vec<User>> {
        let access = ctx.access()?;
        let users = access.audit()?.users(status).await?;
        Ok(users
            .into_iter()
            .map(|u| User::seen_by(u, access))
            .collect())
    }

    /// The download audit of one file, newest first (OFA and system admins).
    #[graphql(complexity = "cost::events_page(first, child_complexity)")]
    async fn download_events(
        &self,
        ctx: &Context<'_>,
        report_file_id: ID,
        first: Option<i64>,
        after: Option<String>,
    ) -> GqlResult<DownloadEventConnection> {
        let audit = ctx.access()?.audit()?;
        let first = PageRequest::size(first, "first")?.unwrap_or(DEFAULT_PAGE);
        let after = cursor(after)?;
        let id = parse_uuid(&report_file_id)?;
        let mut rows = audit.download_events(id, first, after).await?;
        let has_next = rows.len() as u64 > first;
        rows.truncate(first as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .map(|e| Edge::new(Cursor(e.id), DownloadEvent::from(e))),
        );
        Ok(connection)
    }

    /// Virus-scan results of uploads, newest first, optionally of one
    /// result or STT, or started within `[startedFrom, startedBefore)`
    /// (OFA and system admins).
    #[graphql(complexity = "cost::events_page(first, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn scan_events(
        &self,
        ctx: &Context<'_>,
        first: Option<i64>,
        after: Option<String>,
        result: Option<ScanResult>,
        stt_id: Option<i32>,
        started_from: Option<DateTime<Utc>>,
        started_before: Option<DateTime<Utc>>,
    ) -> GqlResult<ScanEventConnection> {
        let audit = ctx.access()?.audit()?;
        let first = PageRequest::size(first, "first")?.unwrap_or(DEFAULT_PAGE);
        let after = cursor(after)?;
        if let (Some(from), Some(before)) = (started_from, started_before)
            && from >= before
        {
            return Err(
                AppError::bad_input("startedFrom must be earlier than startedBefore").into(),
            );
        }
        let filter = ScanFilter {
            result,
            stt_id,
            started_from,
            started_before,
        };
        let mut rows = audit.scan_events(&filter, first, after).await?;
        let has_next = rows.len() as u64 > first;
        rows.truncate(first as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .map(|e| Edge::new(Cursor(e.id), ScanEvent::from(e))),
        );
        Ok(connection)
    }
}
