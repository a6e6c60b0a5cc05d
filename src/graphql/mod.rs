//! The GraphQL schema: resolvers, object types, DataLoaders, cursors and the
//! introspection rules. Resolvers are thin: they ask the caller's `Access`
//! for a capability and call it. Serving the schema over HTTP is
//! `http::graphql`'s job.

mod context;
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

/// The schema, twice over: with the limits for data queries, and with the
/// depth that the standard introspection query needs (`introspection`).
#[derive(Clone)]
pub struct Schemas {
    pub data: AppSchema,
    pub introspection: AppSchema,
}

pub fn build_schema(app: AppState) -> Schemas {
    let limits = app.config.graphql.clone();
    let build = |max_depth: usize| {
        Schema::build(Query, Mutation, EmptySubscription)
            .limit_depth(max_depth)
            .limit_complexity(limits.max_complexity)
            .limit_recursive_depth(32)
            .limit_directives(16)
            .data(app.clone())
            .finish()
    };
    Schemas {
        data: build(limits.max_depth),
        introspection: build(introspection::MAX_DEPTH.max(limits.max_depth)),
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
