use async_graphql::{Context, ID, Object};
use axum::http::header::SET_COOKIE;
use entity::{Role, UserStatus};
use sea_orm::DatabaseConnection;

use super::{
    request_access,
    types::{ReportFile, User},
    upload::{PendingUpload, Upload, UploadReportFileInput},
};
use crate::{
    auth::{self, JwtVerifier},
    config::Config,
    error::{AppError, GqlResult},
    metrics::Metrics,
    service::principals::PrincipalCache,
    service::users::{self, AccessChange},
    storage::Storage,
    upload::{Receiver, Target},
};

pub struct Mutation;

#[Object]
impl Mutation {
    /// Verifies `token` and answers with an HttpOnly session cookie holding
    /// it, so that plain `<a href>` downloads are authenticated.
    async fn login(&self, ctx: &Context<'_>, token: String) -> GqlResult<User> {
        let config = ctx.data_unchecked::<std::sync::Arc<Config>>();
        let verifier = ctx.data_unchecked::<std::sync::Arc<JwtVerifier>>();
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let claims = verifier
            .verify(token.trim())
            .ok_or(AppError::Unauthenticated)?;
        let principal = users::principal_for(db, &claims).await?;
        let user = users::record_login(db, principal.user.id).await?;
        let max_age = claims.exp.saturating_sub(auth::now_secs());
        ctx.append_http_header(
            SET_COOKIE,
            auth::session_cookie(config, token.trim(), max_age),
        );
        Ok(User(user))
    }

    /// Stores a new version of a report file. Send it as a GraphQL multipart
    /// request (as `apollo-upload-client` does) with the header
    /// `Apollo-Require-Preflight: true`.
    async fn upload_report_file(
        &self,
        ctx: &Context<'_>,
        input: UploadReportFileInput,
        file: Upload,
    ) -> GqlResult<ReportFile> {
        // Who, for what, and whether the input makes sense: all settled
        // before the first byte of the file is read.
        let grant = request_access(ctx).upload(input.stt_id)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        validate_target(db, &input).await?;
        let part = match ctx.data_opt::<PendingUpload>() {
            Some(pending) => pending.take(&file).await?,
            None => {
                return Err(
                    AppError::bad_input("send the file as a GraphQL multipart request").into(),
                );
            }
        };
        let config = ctx.data_unchecked::<std::sync::Arc<Config>>();
        let receiver = Receiver {
            db,
            storage: ctx.data_unchecked::<Storage>(),
            policy: &config.upload,
        };
        let target = Target {
            fiscal_year: input.fiscal_year,
            quarter: input.quarter,
            section: input.section,
        };
        let filename = part.filename.clone();
        let metrics = ctx.data_unchecked::<std::sync::Arc<Metrics>>();
        let _active = metrics.upload_started();
        let file = receiver
            .receive(&grant, target, &filename, part.into_stream())
            .await?;
        metrics.upload_stored(file.size_bytes as u64);
        Ok(ReportFile(file))
    }

    /// Clears the session cookie.
    async fn logout(&self, ctx: &Context<'_>) -> bool {
        let config = ctx.data_unchecked::<std::sync::Arc<Config>>();
        ctx.append_http_header(SET_COOKIE, auth::clear_session_cookie(config));
        true
    }

    /// Approves, changes or deactivates a user (system admins only).
    async fn set_user_access(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Option<Role>,
        stt_id: Option<i32>,
        region_ids: Option<Vec<i32>>,
        status: UserStatus,
    ) -> GqlResult<User> {
        let grant = request_access(ctx).user_admin()?;
        let user_id: i64 = user_id
            .parse()
            .map_err(|_| AppError::bad_input("userId is not a user id"))?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let change = AccessChange {
            role,
            stt_id,
            region_ids: region_ids.unwrap_or_default(),
            status,
        };
        let user = users::set_access(db, grant, user_id, change).await?;
        ctx.data_unchecked::<std::sync::Arc<PrincipalCache>>()
            .forget(&user.subject);
        Ok(User(user))
    }
}

async fn validate_target(db: &DatabaseConnection, input: &UploadReportFileInput) -> GqlResult<()> {
    use chrono::Datelike;
    let latest = chrono::Utc::now().year() + 1;
    if !(2000..=latest).contains(&input.fiscal_year) {
        return Err(
            AppError::bad_input(format!("fiscalYear must be between 2000 and {latest}")).into(),
        );
    }
    if crate::service::stts::find(db, input.stt_id)
        .await?
        .is_none()
    {
        return Err(AppError::bad_input(format!("no STT has id {}", input.stt_id)).into());
    }
    Ok(())
}
