//! The GraphQL schema: resolvers, object types, DataLoaders, cursors and the
//! introspection rules. Resolvers are thin: they ask the caller's `Access`
//! for a capability and call it. Serving the schema over HTTP is
//! `http::graphql`'s job.

mod context;
pub mod cost;
mod cursor;
pub mod introspection;
mod loaders;
mod mutation;
mod query;
mod scans;
pub mod types;
pub mod upload;

use async_graphql::{
    EmptySubscription, Schema,
    parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition},
};

pub use context::RequestData;
pub use loaders::Loaders;
pub use mutation::Mutation;
pub use query::Query;

use crate::app::AppState;

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema, three times over: with the limits for data queries; with the
/// depth that the standard introspection query needs (`introspection`); and
/// for callers who may not learn the schema (`GRAPHQL_INTROSPECTION=admins`
/// and not an admin), without introspection or "Did you mean …" suggestions
/// in validation errors.
#[derive(Clone)]
pub struct Schemas {
    pub data: AppSchema,
    pub introspection: AppSchema,
    pub restricted: AppSchema,
}

pub fn build_schema(app: AppState) -> Schemas {
    let limits = app.config.graphql.clone();
    let build = |max_depth: usize| {
        Schema::build(Query, Mutation, EmptySubscription)
            .limit_depth(max_depth)
            // Checked by `CostLimit`, whose refusal says what to change.
            .extension(cost::CostLimit(limits.max_complexity))
            .limit_recursive_depth(32)
            .limit_directives(16)
            .data(app.clone())
    };
    Schemas {
        data: build(limits.max_depth).finish(),
        introspection: build(introspection::MAX_DEPTH.max(limits.max_depth)).finish(),
        restricted: build(limits.max_depth)
            .disable_introspection()
            .disable_suggestions()
            .finish(),
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
pub fn selected_operation<'a>(
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
