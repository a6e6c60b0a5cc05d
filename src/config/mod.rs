//! Configuration: read once at start from the environment (and `.env`) into
//! typed structs, one per concern, that are passed down. Nothing else reads
//! the environment. Parsing only parses: reading key files and creating the
//! development secret happen when the server starts (`auth::keys`).

mod cors;
mod database;
mod graphql;
mod oidc;
mod scan;
mod server;
mod storage;
mod tokens;
mod uploads;

use std::{borrow::Cow, str::FromStr};

pub use cors::CorsConfig;
pub use database::{DEFAULT_DATABASE_URL, DatabaseConfig};
pub use graphql::{GraphqlConfig, Introspection};
pub use oidc::{ClientAuth, DEFAULT_PROVIDER, OidcConfig, ProviderConfig};
pub use scan::{AvScan, ClamdAddr, DEFAULT_CLAMD_TIMEOUT_SECS, ScanConfig, banner_warning};
pub use server::{ConnectionLimits, ServerConfig};
pub use storage::{DEFAULT_STORAGE_DIR, S3Config, StorageBackend, StorageConfig};
pub use tokens::{
    DEV_SECRET_FILE, DEV_SESSION_SECRET_FILE, Hs256Secret, SessionConfig, SessionSecret,
    TokenConfig,
};
pub use uploads::{DEFAULT_EXTENSIONS, UploadConfig};

#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct ConfigError {
    /// The variable; built at run time for the `OIDC_<NAME>_*` ones.
    pub name: Cow<'static, str>,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        ConfigError {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub uploads: UploadConfig,
    pub tokens: TokenConfig,
    pub sessions: SessionConfig,
    pub oidc: OidcConfig,
    pub cors: CorsConfig,
    pub graphql: GraphqlConfig,
    pub scan: ScanConfig,
}

impl Config {
    /// Reads the process environment (after loading `.env`, if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Vars(&lookup);
        let environment = match env.get("APP_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("`{other}` is not `development` or `production`"),
                ));
            }
        };
        let tokens = TokenConfig::parse(&env, environment)?;
        let oidc = OidcConfig::parse(&env, environment)?;
        tokens.check_key_sources(&oidc, environment)?;
        Ok(Config {
            environment,
            server: ServerConfig::parse(&env, environment)?,
            database: DatabaseConfig::parse(&env)?,
            storage: StorageConfig::parse(&env)?,
            uploads: UploadConfig::parse(&env)?,
            tokens,
            sessions: SessionConfig::parse(&env, environment)?,
            oidc,
            cors: CorsConfig::parse(&env)?,
            graphql: GraphqlConfig::parse(&env, environment)?,
            scan: ScanConfig::parse(&env, environment)?,
        })
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }
}

/// The variables, as each concern's parser reads them.
pub(crate) struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A set, non-empty variable.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::new(name, format!("`{raw}`: {e}"))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A configuration from `vars`, with a valid HS256 secret and session
    /// secret unless given. A production one also gets a JWKS URL unless
    /// it names its keys (a JWKS URL or an OIDC provider): production
    /// refuses to start without, and most tests are about something else.
    pub(crate) fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("JWT_HS256_SECRET".into())
            .or_insert_with(|| "x".repeat(32));
        map.entry("SESSION_SECRET".into())
            .or_insert_with(|| "s".repeat(32));
        let production = map.get("APP_ENV").is_some_and(|e| e == "production");
        let names_keys = ["JWT_JWKS_URL", "OIDC_ISSUER_URL", "OIDC_PROVIDERS"]
            .iter()
            .any(|k| map.contains_key(*k));
        if production && !names_keys {
            map.insert(
                "JWT_JWKS_URL".into(),
                "https://idp.example.gov/jwks.json".into(),
            );
        }
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_development_setup() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.server.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(c.graphql.graphiql_enabled);
        assert!(!c.sessions.cookie_secure);
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        let err = config(&[("MAX_UPLOAD_BYTES", "lots")]).unwrap_err();
        assert_eq!(err.name, "MAX_UPLOAD_BYTES");
        assert!(err.to_string().contains("MAX_UPLOAD_BYTES"));
        assert_eq!(
            config(&[("BIND_ADDR", "nowhere")]).unwrap_err().name,
            "BIND_ADDR"
        );
        assert_eq!(
            config(&[("APP_ENV", "staging")]).unwrap_err().name,
            "APP_ENV"
        );
    }

    #[test]
    fn production_defaults_are_locked_down() {
        let c = config(&[
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "HS256"),
            ("AV_SCAN", "off"),
        ])
        .unwrap();
        assert!(c.sessions.cookie_secure);
        assert!(!c.graphql.graphiql_enabled);
        assert!(c.server.log_json);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let c = config(&[
            ("JWT_HS256_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret"),
            ("DATABASE_URL", "postgres://u:pa55word@db/x"),
            ("STORAGE_URL", "s3://bucket"),
            ("AWS_SECRET_ACCESS_KEY", "aws-s3cret-key"),
            ("AWS_SESSION_TOKEN", "aws-session-t0ken"),
            ("SESSION_SECRET", "sess-s3cret-sess-s3cret-sess-s3cret"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        for secret in [
            "s3cret-s3cret",
            "pa55word",
            "aws-s3cret-key",
            "aws-session-t0ken",
            "sess-s3cret",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }
}
