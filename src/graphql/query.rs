use async_graphql::{
    Context, ID, InputObject, Object,
    connection::{Connection, CursorType, Edge, EmptyFields},
};
use entity::{Quarter, Section, SttType, UserStatus};
use sea_orm::DatabaseConnection;

use super::{
    cursor::Cursor,
    loaders::prefetch_files,
    request_access,
    types::{DownloadEvent, Region, ReportFile, Stt, User},
};
use crate::{
    access::FileScope,
    error::{AppError, GqlResult},
    service::{
        download_events,
        report_files::{self, DEFAULT_PAGE, Filter, PageRequest},
        stts, users,
    },
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
    scope: FileScope,
    filter: Filter,
}

#[Object]
impl ReportFileConnectionFields {
    /// How many files match the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(report_files::count(db, &self.scope, &self.filter).await? as i64)
    }
}

pub type ReportFileConnection =
    Connection<Cursor, ReportFile, ReportFileConnectionFields, EmptyFields>;
pub type DownloadEventConnection = Connection<Cursor, DownloadEvent, EmptyFields, EmptyFields>;

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

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
        Ok(Some(User(request_access(ctx).principal()?.user.clone())))
    }

    /// The STTs the caller may see.
    async fn stts(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type")] stt_type: Option<SttType>,
        region_id: Option<i32>,
    ) -> GqlResult<Vec<Stt>> {
        let scope = request_access(ctx).files()?;
        Ok(stts::list(db(ctx), &scope, stt_type, region_id)
            .await?
            .into_iter()
            .map(Stt)
            .collect())
    }

    async fn regions(&self, ctx: &Context<'_>) -> GqlResult<Vec<Region>> {
        request_access(ctx).files()?;
        Ok(stts::regions(db(ctx))
            .await?
            .into_iter()
            .map(Region)
            .collect())
    }

    /// A file the caller may see, or null.
    async fn report_file(&self, ctx: &Context<'_>, id: ID) -> GqlResult<Option<ReportFile>> {
        let scope = request_access(ctx).files()?;
        let id = parse_uuid(&id)?;
        Ok(report_files::find(db(ctx), &scope, id)
            .await?
            .map(ReportFile))
    }

    /// Visible files, newest first, as a Relay connection.
    #[graphql(
        complexity = "5 + first.or(last).unwrap_or(DEFAULT_PAGE as i64).max(0) as usize * child_complexity"
    )]
    async fn report_files(
        &self,
        ctx: &Context<'_>,
        filter: Option<ReportFileFilter>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
    ) -> GqlResult<ReportFileConnection> {
        let scope = request_access(ctx).files()?;
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
        let result = report_files::list(db(ctx), &scope, &filter, page).await?;
        let node = ctx.look_ahead().field("edges").field("node");
        prefetch_files(ctx, node, &result.items).await?;
        let mut connection = Connection::with_additional_fields(
            result.has_previous_page,
            result.has_next_page,
            ReportFileConnectionFields { scope, filter },
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
    async fn users(&self, ctx: &Context<'_>, status: Option<UserStatus>) -> GqlResult<Vec<User>> {
        let grant = request_access(ctx).audit()?;
        Ok(users::list(db(ctx), grant, status)
            .await?
            .into_iter()
            .map(User)
            .collect())
    }

    /// The download audit of one file, newest first (OFA and system admins).
    #[graphql(
        complexity = "5 + first.unwrap_or(DEFAULT_PAGE as i64).max(0) as usize * child_complexity"
    )]
    async fn download_events(
        &self,
        ctx: &Context<'_>,
        report_file_id: ID,
        first: Option<i64>,
        after: Option<String>,
    ) -> GqlResult<DownloadEventConnection> {
        let grant = request_access(ctx).audit()?;
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) if (0..=report_files::MAX_PAGE as i64).contains(&n) => n as u64,
            Some(_) => return Err(AppError::bad_input("`first` must be between 0 and 100").into()),
        };
        let after = cursor(after)?;
        let id = parse_uuid(&report_file_id)?;
        let mut rows = download_events::list(db(ctx), grant, id, first, after).await?;
        let has_next = rows.len() as u64 > first;
        rows.truncate(first as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .map(|e| Edge::new(Cursor(e.id), DownloadEvent::from(e))),
        );
        Ok(connection)
    }
}
