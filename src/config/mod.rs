//! Configuration: read once at start from the environment (and `.env`) into
//! typed structs, one per concern, that are passed down. Nothing else reads
//! the environment. Parsing only parses: reading key files and creating the
//! development secret happen when the server starts (`auth::keys`).

mod cors;
mod database;
mod graphql;
mod oidc;
mod proxies;
mod scan;
mod server;
mod storage;
mod tokens;
mod uploads;

use std::{borrow::Cow, str::FromStr};

pub use cors::CorsConfig;
pub use database::DatabaseConfig;
pub use graphql::{GraphqlConfig, Introspection};
pub use oidc::{ClientAuth, DEFAULT_PROVIDER, OidcConfig, ProviderConfig};
pub use proxies::{ForwardedHeader, ProxyConfig, TrustedProxies};
pub use scan::{AvScan, ClamdAddr, DEFAULT_CLAMD_TIMEOUT_SECS, ScanConfig, banner_warning};
pub use server::{ConnectionLimits, ServerConfig};
pub use storage::{S3Config, StorageBackend, StorageConfig};
pub use tokens::{Hs256Secret, SessionConfig, SessionSecret, TokenConfig};
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
    pub proxies: ProxyConfig,
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
    ///
    /// The data folder (`DATA_DIR`) defaults to `data/` beside the `.env`
    /// file that was found (dotenvy looks in this folder and its parents),
    /// so the server and every CLI command agree on the development secret
    /// and the embedded database from any folder of the checkout.
    pub fn from_env() -> Result<Self, ConfigError> {
        let found = dotenvy::dotenv().ok();
        let beside_env = found
            .as_deref()
            .and_then(std::path::Path::parent)
            .map(|dir| dir.join("data").display().to_string());
        Self::from_lookup(|name| {
            std::env::var(name).ok().or_else(|| match name {
                "DATA_DIR" => beside_env.clone(),
                _ => None,
            })
        })
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
            proxies: ProxyConfig::parse(&env)?,
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

pub const DEFAULT_DATA_DIR: &str = "./data";

/// The variables, as each concern's parser reads them.
pub(crate) struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A set, non-empty variable.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// Where the embedded defaults keep their files: the SQLite database,
    /// stored objects and the development secret (`DATA_DIR`, `./data`).
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(
            self.get("DATA_DIR")
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        )
    }

    /// A size in bytes, with or without a unit (`parse_bytes`).
    pub(crate) fn bytes(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse_bytes(&raw).map_err(|reason| ConfigError::new(name, reason)),
        }
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

/// A number of bytes: a plain number, or one with a unit (`KB`, `MB`, `GB`
/// are powers of 1000; `KiB`, `MiB`, `GiB` of 1024; `B` is bytes; any case).
pub(crate) fn parse_bytes(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let expected = || {
        format!(
            "`{raw}` is not a number of bytes: write 10485760, 10MiB (= 10 × 1024²) or 10MB (= 10 × 1000²)"
        )
    };
    let number: u64 = number.parse().map_err(|_| expected())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "mb" | "m" => 1000 * 1000,
        "gb" | "g" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(expected()),
    };
    number.checked_mul(factor).ok_or_else(expected)
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
    fn sizes_take_a_number_of_bytes_or_a_unit() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        assert_eq!(parse_bytes("10 MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("1gib"), Ok(1 << 30));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        for bad in [
            "",
            "MB",
            "ten",
            "10 bytes",
            "1.5GB",
            "99999999999999999999GB",
        ] {
            let err = parse_bytes(bad).unwrap_err();
            assert!(err.contains("number of bytes"), "{bad}: {err}");
        }
        let c = config(&[("MAX_UPLOAD_BYTES", "10MB")]).unwrap();
        assert_eq!(c.uploads.max_bytes, 10_000_000);
        let err = config(&[("MAX_UPLOAD_BYTES", "lots")]).unwrap_err();
        assert!(err.to_string().contains("10MiB"), "{err}");
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
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
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
