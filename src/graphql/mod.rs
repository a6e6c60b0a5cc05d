//! The GraphQL API: schema, resolvers, and the HTTP endpoint that runs them.

mod cursor;
pub mod http;
mod introspection;
mod loaders;
mod mutation;
mod query;
pub mod types;
pub mod upload;

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, Schema,
    parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition},
};
use sea_orm::DatabaseConnection;

pub use loaders::Loaders;
pub use mutation::Mutation;
pub use query::Query;

use crate::{
    access::Access, auth::JwtVerifier, config::Config, metrics::Metrics,
    service::principals::PrincipalCache, storage::Storage,
};

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema, twice over: with the limits for data queries, and with the
/// depth that the standard introspection query needs (`introspection`).
#[derive(Clone)]
pub struct Schemas {
    pub data: AppSchema,
    pub introspection: AppSchema,
}

pub fn build_schema(
    config: Arc<Config>,
    db: DatabaseConnection,
    verifier: Arc<JwtVerifier>,
    storage: Storage,
    metrics: Arc<Metrics>,
    principals: Arc<PrincipalCache>,
) -> Schemas {
    let build = |max_depth: usize| {
        Schema::build(Query, Mutation, EmptySubscription)
            .limit_depth(max_depth)
            .limit_complexity(config.graphql_max_complexity)
            .limit_recursive_depth(32)
            .limit_directives(16)
            .data(db.clone())
            .data(verifier.clone())
            .data(config.clone())
            .data(storage.clone())
            .data(metrics.clone())
            .data(principals.clone())
            .finish()
    };
    Schemas {
        data: build(config.graphql_max_depth),
        introspection: build(introspection::MAX_DEPTH.max(config.graphql_max_depth)),
    }
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .finish()
        .sdl()
}

/// The operation that `name` selects in `document`: the named one, or the
/// only one when no name is given. `None` leaves the error to execution.
pub(crate) fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Who is asking; put into every request by the endpoint.
pub(crate) fn request_access<'a>(ctx: &Context<'a>) -> &'a Access {
    ctx.data_unchecked::<Access>()
}
