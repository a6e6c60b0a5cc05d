//! The GraphQL API: schema, resolvers, and the HTTP endpoint that runs them.

mod cursor;
pub mod http;
mod loaders;
mod mutation;
mod query;
pub mod types;
pub mod upload;

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, Schema};
use sea_orm::DatabaseConnection;

pub use loaders::Loaders;
pub use mutation::Mutation;
pub use query::Query;

use crate::{
    access::Access, auth::JwtVerifier, config::Config, metrics::Metrics,
    service::principals::PrincipalCache, storage::Storage,
};

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build_schema(
    config: Arc<Config>,
    db: DatabaseConnection,
    verifier: Arc<JwtVerifier>,
    storage: Storage,
    metrics: Arc<Metrics>,
    principals: Arc<PrincipalCache>,
) -> AppSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(config.graphql_max_depth)
        .limit_complexity(config.graphql_max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(16)
        .data(db)
        .data(verifier)
        .data(config)
        .data(storage)
        .data(metrics)
        .data(principals)
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .finish()
        .sdl()
}

/// Who is asking; put into every request by the endpoint.
pub(crate) fn request_access<'a>(ctx: &Context<'a>) -> &'a Access {
    ctx.data_unchecked::<Access>()
}
