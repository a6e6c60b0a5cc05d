//! The caller of a request, as an extractor: the download route and
//! `/graphql` take `Access` like any other argument.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};

use crate::{access::Access, app::AppState, error::AppError};

impl<S> FromRequestParts<S> for Access
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let access = AppState::from_ref(state).access(&parts.headers).await?;
        // For the request's log line.
        if let (Some(slot), Ok(principal)) = (
            parts.extensions.get::<super::log::CallerSlot>(),
            access.principal(),
        ) {
            slot.set(principal.user.id);
        }
        Ok(access)
    }
}
