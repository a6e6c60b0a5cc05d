use async_graphql::{Context, ID, Object};
use axum::http::header::SET_COOKIE;
use entity::{Role, UserStatus};

use super::{
    context::ContextExt,
    cost,
    types::{ReportFile, User},
    upload::{Upload, UploadReportFileInput},
};
use crate::{
    access::{AccessChange, UploadGrant},
    auth,
    error::{AppError, GqlResult},
    upload::{Receiver, Target},
};

pub struct Mutation;

#[Object]
impl Mutation {
    /// For development and tests: verifies `token` (a bearer JWT) and
    /// answers with the HttpOnly session cookie, so that plain `<a href>`
    /// downloads are authenticated. The session ends with the token (or
    /// `SESSION_TTL_SECS`, if sooner). People sign in through
    /// `GET /auth/login` (OpenID Connect).
    #[graphql(complexity = "cost::statements(2, child_complexity)")]
    async fn login(&self, ctx: &Context<'_>, token: String) -> GqlResult<User> {
        let app = ctx.app()?;
        let claims = app.tokens.verify(token.trim()).await.map_err(|why| {
            tracing::info!(reason = %why, "login: token refused");
            AppError::Unauthenticated
        })?;
        let user = app.gate.sign_in(&claims).await?;
        let (session, max_age) = app.sessions.issue(&claims, None, Some(claims.exp));
        ctx.append_http_header(
            SET_COOKIE,
            auth::session_cookie(&app.config.sessions, &session, max_age),
        );
        Ok(User::own(user))
    }

    /// Stores a new version of a report file. Send it as a GraphQL multipart
    /// request (as `apollo-upload-client` does) with the header
    /// `Apollo-Require-Preflight: true`.
    #[graphql(complexity = "cost::statements(3, child_complexity)")]
    async fn upload_report_file(
        &self,
        ctx: &Context<'_>,
        input: UploadReportFileInput,
        file: Upload,
    ) -> GqlResult<ReportFile> {
        let app = ctx.app()?;
        // Who, for what, and whether the input makes sense: all settled
        // before the first byte of the file is read.
        let grant = ctx.access()?.upload(input.stt_id)?;
        validate_target(&grant, &input).await?;
        let part = match &ctx.request()?.upload {
            Some(pending) => pending.take(&file).await?,
            None => {
                return Err(
                    AppError::bad_input("send the file as a GraphQL multipart request").into(),
                );
            }
        };
        let receiver = Receiver {
            storage: &app.storage,
            policy: &app.config.uploads,
            shutdown: &app.shutdown,
            scanner: app.scanner.as_ref(),
            client: ctx.request()?.client,
            metrics: &app.metrics,
        };
        let target = Target {
            fiscal_year: input.fiscal_year,
            quarter: input.quarter,
            section: input.section,
        };
        let _active = app.metrics.upload_started();
        let file = receiver
            .receive(&grant, target, &part.filename, part.body)
            .await?;
        app.metrics.upload_stored(file.size_bytes as u64);
        Ok(ReportFile(file))
    }

    /// Clears the session cookie.
    async fn logout(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let app = ctx.app()?;
        ctx.append_http_header(SET_COOKIE, auth::clear_session_cookie(&app.config.sessions));
        Ok(true)
    }

    /// Approves, changes or deactivates a user (system admins only).
    #[graphql(complexity = "cost::statements(5, child_complexity)")]
    async fn set_user_access(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Option<Role>,
        stt_id: Option<i32>,
        region_ids: Option<Vec<i32>>,
        status: UserStatus,
    ) -> GqlResult<User> {
        let admin = ctx.access()?.user_admin()?;
        let user_id: i64 = user_id
            .parse()
            .map_err(|_| AppError::bad_input("userId is not a user id"))?;
        let change = AccessChange {
            role,
            stt_id,
            region_ids: region_ids.unwrap_or_default(),
            status,
        };
        let user = admin.set_access(user_id, change).await?;
        ctx.app()?.gate.forget(&user.subject).await;
        Ok(User::seen_by(user, ctx.access()?))
    }
}

async fn validate_target(grant: &UploadGrant, input: &UploadReportFileInput) -> GqlResult<()> {
    use chrono::Datelike;
    let latest = chrono::Utc::now().year() + 1;
    if !(2000..=latest).contains(&input.fiscal_year) {
        return Err(
            AppError::bad_input(format!("fiscalYear must be between 2000 and {latest}")).into(),
        );
    }
    if !grant.stt_exists().await? {
        return Err(AppError::bad_input(format!("no STT has id {}", input.stt_id)).into());
    }
    Ok(())
}
