use async_graphql::{Context, ID, Object};
use axum::http::header::SET_COOKIE;
use entity::{Role, UserStatus};
use sea_orm::DatabaseConnection;

use super::{request_access, types::User};
use crate::{
    auth::{self, JwtVerifier},
    config::Config,
    error::{AppError, GqlResult},
    service::users::{self, AccessChange},
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
        Ok(User(users::set_access(db, grant, user_id, change).await?))
    }
}
