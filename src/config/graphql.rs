//! Limits of the GraphQL endpoint, and whether GraphiQL is served.

use std::{num::NonZeroUsize, time::Duration};

use super::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    /// The most a document may cost (`graphql::cost`), checked before it runs.
    pub max_complexity: usize,
    /// The most SQL statements one request may run.
    pub max_statements: NonZeroUsize,
    /// GraphQL requests one caller may have running at once.
    pub max_concurrent_per_user: NonZeroUsize,
    /// How long a request beyond that waits for a slot before it is refused.
    pub concurrent_wait: Duration,
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
            max_complexity: env.parse("GRAPHQL_MAX_COMPLEXITY", 10_000)?,
            max_statements: env.parse("GRAPHQL_MAX_STATEMENTS", DEFAULT_MAX_STATEMENTS)?,
            max_concurrent_per_user: env
                .parse("GRAPHQL_MAX_CONCURRENT_PER_USER", DEFAULT_MAX_CONCURRENT)?,
            concurrent_wait: Duration::from_millis(env.parse("GRAPHQL_CONCURRENT_WAIT_MS", 2000)?),
            body_limit_bytes: env.parse("GRAPHQL_BODY_LIMIT_BYTES", 64 * 1024)?,
            graphiql_enabled: env.parse("GRAPHIQL_ENABLED", dev)?,
        })
    }
}

/// A page of 100 files with everything on it runs about 7 statements.
const DEFAULT_MAX_STATEMENTS: NonZeroUsize = NonZeroUsize::new(100).unwrap();
/// A frontend loading a page sends a few queries side by side.
const DEFAULT_MAX_CONCURRENT: NonZeroUsize = NonZeroUsize::new(4).unwrap();

#[cfg(test)]
mod tests {
    use crate::config::tests::config;

    #[test]
    fn a_request_runs_at_most_100_statements_unless_told_otherwise() {
        assert_eq!(config(&[]).unwrap().graphql.max_statements.get(), 100);
        assert_eq!(config(&[]).unwrap().graphql.max_complexity, 10_000);
        for value in ["0", "many"] {
            let err = config(&[("GRAPHQL_MAX_STATEMENTS", value)]).unwrap_err();
            assert_eq!(err.name, "GRAPHQL_MAX_STATEMENTS", "{value}");
        }
    }

    #[test]
    fn a_caller_runs_four_requests_at_once_unless_told_otherwise() {
        let c = config(&[]).unwrap().graphql;
        assert_eq!(c.max_concurrent_per_user.get(), 4);
        assert_eq!(c.concurrent_wait.as_millis(), 2000);
        for (name, value) in [
            ("GRAPHQL_MAX_CONCURRENT_PER_USER", "0"),
            ("GRAPHQL_MAX_CONCURRENT_PER_USER", "-1"),
            ("GRAPHQL_CONCURRENT_WAIT_MS", "soon"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{value}");
        }
    }
}
