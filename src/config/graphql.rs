//! Limits of the GraphQL endpoint, who may introspect it, and whether
//! GraphiQL is served.

use std::{num::NonZeroUsize, str::FromStr, time::Duration};

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
    /// Who may run introspection and read "Did you mean …" suggestions.
    pub introspection: Introspection,
    /// The largest JSON body (and `operations`/`map` part of an upload).
    pub body_limit_bytes: usize,
    /// GraphiQL on `GET /graphql`.
    pub graphiql_enabled: bool,
}

/// `GRAPHQL_INTROSPECTION`: who learns the schema from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Introspection {
    /// Every caller, signed in or not (development).
    Everyone,
    /// Signed-in OFA and system admins only; everyone else also gets no
    /// field suggestions in validation errors (production).
    Admins,
}

impl FromStr for Introspection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "everyone" => Ok(Introspection::Everyone),
            "admins" => Ok(Introspection::Admins),
            _ => Err("must be `everyone` or `admins`".into()),
        }
    }
}

impl GraphqlConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let dev = environment == Environment::Development;
        let default_introspection = if dev {
            Introspection::Everyone
        } else {
            Introspection::Admins
        };
        Ok(GraphqlConfig {
            max_depth: env.parse("GRAPHQL_MAX_DEPTH", 10)?,
            max_complexity: env.parse("GRAPHQL_MAX_COMPLEXITY", 10_000)?,
            max_statements: env.parse("GRAPHQL_MAX_STATEMENTS", DEFAULT_MAX_STATEMENTS)?,
            max_concurrent_per_user: env
                .parse("GRAPHQL_MAX_CONCURRENT_PER_USER", DEFAULT_MAX_CONCURRENT)?,
            concurrent_wait: Duration::from_millis(env.parse("GRAPHQL_CONCURRENT_WAIT_MS", 2000)?),
            introspection: env.parse("GRAPHQL_INTROSPECTION", default_introspection)?,
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
    use super::Introspection;
    use crate::config::tests::config;

    #[test]
    fn the_defaults_bound_cost_statements_and_concurrency() {
        let c = config(&[]).unwrap().graphql;
        assert_eq!(c.max_complexity, 10_000);
        assert_eq!(c.max_statements.get(), 100);
        assert_eq!(c.max_concurrent_per_user.get(), 4);
        assert_eq!(c.concurrent_wait.as_millis(), 2000);
        assert_eq!(c.introspection, Introspection::Everyone);
    }

    #[test]
    fn production_introspects_for_admins_only_unless_told_otherwise() {
        let prod = [
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "HS256"),
            ("AV_SCAN", "off"),
        ];
        let c = config(&prod).unwrap().graphql;
        assert_eq!(c.introspection, Introspection::Admins);
        let everyone = [
            prod[0],
            prod[1],
            prod[2],
            ("GRAPHQL_INTROSPECTION", "everyone"),
        ];
        let c = config(&everyone).unwrap().graphql;
        assert_eq!(c.introspection, Introspection::Everyone);
    }

    #[test]
    fn bad_limits_name_their_variable() {
        for (name, value) in [
            ("GRAPHQL_MAX_STATEMENTS", "0"),
            ("GRAPHQL_MAX_STATEMENTS", "many"),
            ("GRAPHQL_MAX_CONCURRENT_PER_USER", "0"),
            ("GRAPHQL_MAX_CONCURRENT_PER_USER", "-1"),
            ("GRAPHQL_CONCURRENT_WAIT_MS", "soon"),
            ("GRAPHQL_MAX_COMPLEXITY", "-5"),
            ("GRAPHQL_INTROSPECTION", "nobody"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name, "{value}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
