//! GraphQL object types: thin views over entity models.

use super::{context::ContextExt, cost, scans::ScanEvent};
use crate::{
    access::{Access, Caller, Slot},
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

/// A user as the caller may see them. The role table (README, "Who may do what"): "Who uploaded a file is
/// shown to non-administrators by name only (no email, role, status or
/// sign-in times of other users)." So a non-administrator looking at
/// someone else gets `id` and `name`; the other fields are null (or an
/// empty list). Everyone sees everything about themselves, and admins about
/// everyone.
pub struct User {
    model: entity::user::Model,
    detail: Detail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    Full,
    NameOnly,
}

impl User {
    /// The caller themselves (`me`, and the user a `login` signs in).
    pub fn own(model: entity::user::Model) -> Self {
        User {
            model,
            detail: Detail::Full,
        }
    }

    /// Any user, as the caller of `access` may see them.
    pub fn seen_by(model: entity::user::Model, access: &Access) -> Self {
        let themselves = matches!(access.caller(), Caller::User(me) if me.user.id == model.id);
        let detail = if themselves || access.is_admin() {
            Detail::Full
        } else {
            Detail::NameOnly
        };
        User { model, detail }
    }

    /// The user's details, when the caller may see them.
    fn details(&self) -> Option<&entity::user::Model> {
        (self.detail == Detail::Full).then_some(&self.model)
    }
}

/// Fields other than `id` and `name` are null (`regions` empty) when a
/// non-administrator looks at another user.
#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    /// The `sub` of this user's tokens.
    async fn subject(&self) -> Option<&str> {
        self.details().map(|u| u.subject.as_str())
    }
    async fn email(&self) -> Option<&str> {
        self.details().and_then(|u| u.email.as_deref())
    }
    async fn name(&self) -> Option<&str> {
        self.model.name.as_deref()
    }
    async fn role(&self) -> Option<Role> {
        self.details().and_then(|u| u.role)
    }
    async fn status(&self) -> Option<UserStatus> {
        self.details().map(|u| u.status)
    }
    /// The STT of a data analyst.
    async fn stt(&self, ctx: &Context<'_>) -> GqlResult<Option<Stt>> {
        match self.details().and_then(|u| u.stt_id) {
            None => Ok(None),
            Some(id) => load(ctx.loaders()?.stts.load_one(id).await?).map(|s| Some(Stt(s))),
        }
    }
    /// The regions of regional staff.
    async fn regions(&self, ctx: &Context<'_>) -> GqlResult<Vec<Region>> {
        let Some(user) = self.details() else {
            return Ok(Vec::new());
        };
        if user.role != Some(Role::RegionalStaff) {
            return Ok(Vec::new());
        }
        // The caller's own regions are known already, whatever their status.
        let ids = match ctx.access()?.caller() {
            Caller::User(me) if me.user.id == user.id => me.region_ids.clone(),
            _ => ctx
                .loaders()?
                .user_regions
                .load_one(user.id)
                .await?
                .unwrap_or_default(),
        };
        let map = ctx.loaders()?.regions.load_many(ids.clone()).await?;
        Ok(ids
            .iter()
            .filter_map(|id| map.get(id).cloned())
            .map(Region)
            .collect())
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.details().map(|u| u.created_at)
    }
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.details().and_then(|u| u.last_login_at)
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
    /// Who uploaded the file: by name only, unless it is the caller or the
    /// caller is an administrator.
    async fn uploaded_by(&self, ctx: &Context<'_>) -> GqlResult<User> {
        let user = load(ctx.loaders()?.users.load_one(self.0.uploaded_by_id).await?)?;
        Ok(User::seen_by(user, ctx.access()?))
    }
    /// The virus scan that let this version be stored; null for files
    /// stored while scanning was off.
    async fn scan(&self, ctx: &Context<'_>) -> GqlResult<Option<ScanEvent>> {
        let scan = ctx.loaders()?.scans.load_one(self.0.id).await?;
        Ok(scan.map(ScanEvent::from))
    }
    /// Relative URL of the authenticated download route.
    async fn download_url(&self) -> String {
        download_path(self.0.id)
    }
    /// Every version of this file's slot, newest first.
    #[graphql(complexity = "cost::versions(child_complexity)")]
    async fn versions(&self, ctx: &Context<'_>) -> GqlResult<Vec<ReportFile>> {
        let versions = ctx.loaders()?.versions.load_one(Slot::of(&self.0)).await?;
        Ok(versions
            .unwrap_or_default()
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
        let user = load(ctx.loaders()?.users.load_one(self.model.user_id).await?)?;
        Ok(User::seen_by(user, ctx.access()?))
    }
}

/// A row that a foreign key promises exists.
pub(super) fn load<T>(found: Option<T>) -> GqlResult<T> {
    found.ok_or_else(|| AppError::internal("dangling reference").into())
}
