//! GraphQL object types: thin views over entity models.

use super::context::ContextExt;
use crate::{
    access::{Caller, Slot},
    error::{AppError, GqlResult},
};
use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{DownloadOutcome, Quarter, Role, Section, SttType, UserStatus};

pub struct Region(pub entity::region::Model);

#[Object]
impl Region {
    async fn id(&self) -> i32 {
        self.0.id
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
}

pub struct Stt(pub entity::stt::Model);

#[Object]
impl Stt {
    async fn id(&self) -> i32 {
        self.0.id
    }
    #[graphql(name = "type")]
    async fn stt_type(&self) -> SttType {
        self.0.stt_type
    }
    /// For a tribe, the postal code of its state.
    async fn postal_code(&self) -> &str {
        &self.0.postal_code
    }
    async fn stt_code(&self) -> &str {
        &self.0.stt_code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn region(&self, ctx: &Context<'_>) -> GqlResult<Region> {
        load(ctx.loaders()?.regions.load_one(self.0.region_id).await?).map(Region)
    }
}

pub struct User(pub entity::user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The `sub` of this user's tokens.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn role(&self) -> Option<Role> {
        self.0.role
    }
    async fn status(&self) -> UserStatus {
        self.0.status
    }
    /// The STT of a data analyst.
    async fn stt(&self, ctx: &Context<'_>) -> GqlResult<Option<Stt>> {
        match self.0.stt_id {
            None => Ok(None),
            Some(id) => load(ctx.loaders()?.stts.load_one(id).await?).map(|s| Some(Stt(s))),
        }
    }
    /// The regions of regional staff.
    async fn regions(&self, ctx: &Context<'_>) -> GqlResult<Vec<Region>> {
        if self.0.role != Some(Role::RegionalStaff) {
            return Ok(Vec::new());
        }
        // The caller's own regions are known already, whatever their status.
        let ids = match ctx.access()?.caller() {
            Caller::User(me) if me.user.id == self.0.id => me.region_ids.clone(),
            _ => ctx.access()?.people()?.region_ids(self.0.id).await?,
        };
        let map = ctx.loaders()?.regions.load_many(ids.clone()).await?;
        Ok(ids
            .iter()
            .filter_map(|id| map.get(id).cloned())
            .map(Region)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_login_at
    }
}

pub struct ReportFile(pub entity::report_file::Model);

/// The download route of a file; the frontend puts it into `<a href>`.
pub fn download_path(id: uuid::Uuid) -> String {
    format!("/v1/report-files/{id}/download")
}

#[Object]
impl ReportFile {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn stt(&self, ctx: &Context<'_>) -> GqlResult<Stt> {
        load(ctx.loaders()?.stts.load_one(self.0.stt_id).await?).map(Stt)
    }
    /// The federal fiscal year: Q1 of 2026 is October to December 2025.
    async fn fiscal_year(&self) -> i32 {
        self.0.fiscal_year
    }
    async fn quarter(&self) -> Quarter {
        self.0.quarter
    }
    async fn section(&self) -> Section {
        self.0.section
    }
    /// 1 for the first submission to this slot, then 2, 3, …
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// Whether no later version of this slot exists.
    async fn is_latest(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let latest = ctx.loaders()?.latest.load_one(Slot::of(&self.0)).await?;
        Ok(latest.is_none_or(|v| v <= self.0.version))
    }
    async fn original_filename(&self) -> &str {
        &self.0.original_filename
    }
    async fn extension(&self) -> &str {
        &self.0.extension
    }
    async fn content_type(&self) -> &str {
        &self.0.content_type
    }
    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }
    /// Hex SHA-256 of the bytes, computed by the server on upload.
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn uploaded_by(&self, ctx: &Context<'_>) -> GqlResult<User> {
        load(ctx.loaders()?.users.load_one(self.0.uploaded_by_id).await?).map(User)
    }
    /// Relative URL of the authenticated download route.
    async fn download_url(&self) -> String {
        download_path(self.0.id)
    }
    /// Every version of this file's slot, newest first.
    #[graphql(complexity = "1 + 10 * child_complexity")]
    async fn versions(&self, ctx: &Context<'_>) -> GqlResult<Vec<ReportFile>> {
        let files = ctx.access()?.files()?;
        Ok(files
            .versions(&self.0)
            .await?
            .into_iter()
            .map(ReportFile)
            .collect())
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct DownloadEvent {
    #[graphql(skip)]
    pub model: entity::download_event::Model,
    pub id: ID,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub bytes_sent: i64,
    pub requested_range: Option<String>,
    pub outcome: DownloadOutcome,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

impl From<entity::download_event::Model> for DownloadEvent {
    fn from(m: entity::download_event::Model) -> Self {
        DownloadEvent {
            id: ID(m.id.to_string()),
            started_at: m.started_at,
            finished_at: m.finished_at,
            bytes_sent: m.bytes_sent,
            requested_range: m.requested_range.clone(),
            outcome: m.outcome,
            client_address: m.client_addr.clone(),
            user_agent: m.user_agent.clone(),
            model: m,
        }
    }
}

#[ComplexObject]
impl DownloadEvent {
    async fn report_file_id(&self) -> ID {
        ID(self.model.report_file_id.to_string())
    }
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<User> {
        load(ctx.loaders()?.users.load_one(self.model.user_id).await?).map(User)
    }
}

/// A row that a foreign key promises exists.
pub(super) fn load<T>(found: Option<T>) -> GqlResult<T> {
    found.ok_or_else(|| AppError::internal("dangling reference").into())
}
