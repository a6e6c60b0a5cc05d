//! Limits of the GraphQL endpoint, and whether GraphiQL is served.

use super::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// The largest JSON body (and `operations`/`map` part of an upload).
    pub body_limit_bytes: usize,
    /// GraphiQL on `GET /graphql`.
    pub graphiql_enabled: bool,
}

impl GraphqlConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let dev = environment == Environment::Development;
        Ok(GraphqlConfig {
            max_depth: env.parse("GRAPHQL_MAX_DEPTH", 10)?,
            max_complexity: env.parse("GRAPHQL_MAX_COMPLEXITY", 5000)?,
            body_limit_bytes: env.bytes("GRAPHQL_BODY_LIMIT_BYTES", 64 * 1024)? as usize,
            graphiql_enabled: env.parse("GRAPHIQL_ENABLED", dev)?,
        })
    }
}
