//! How resolvers reach the application and their request: one typed
//! accessor each, so a type slip is a compile error in one place rather
//! than a panic in many.

use async_graphql::Context;

use super::{loaders::Loaders, upload::PendingUpload};
use crate::{
    access::Access,
    app::{App, AppState},
    error::{AppError, GqlResult},
};

/// What one request brings to its resolvers.
pub struct RequestData {
    pub access: Access,
    pub loaders: Loaders,
    /// The unread file part of a multipart upload.
    pub upload: Option<PendingUpload>,
    /// The client's address, for the records an upload leaves.
    pub client: std::net::IpAddr,
}

impl RequestData {
    pub fn new(access: Access, upload: Option<PendingUpload>, client: std::net::IpAddr) -> Self {
        RequestData {
            loaders: Loaders::new(&access),
            access,
            upload,
            client,
        }
    }
}

pub(crate) trait ContextExt<'a> {
    /// The application (schema data).
    fn app(&self) -> GqlResult<&'a App>;
    /// This request's caller, loaders and upload (request data).
    fn request(&self) -> GqlResult<&'a RequestData>;

    fn access(&self) -> GqlResult<&'a Access> {
        Ok(&self.request()?.access)
    }

    fn loaders(&self) -> GqlResult<&'a Loaders> {
        Ok(&self.request()?.loaders)
    }
}

impl<'a> ContextExt<'a> for Context<'a> {
    fn app(&self) -> GqlResult<&'a App> {
        self.data::<AppState>()
            .map(|state| &*state.0)
            .map_err(|_| AppError::internal("the schema was built without the application").into())
    }

    fn request(&self) -> GqlResult<&'a RequestData> {
        self.data::<RequestData>()
            .map_err(|_| AppError::internal("the request was executed without its data").into())
    }
}
