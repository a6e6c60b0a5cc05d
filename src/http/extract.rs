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
        AppState::from_ref(state).access(&parts.headers).await
    }
}
