//! Configuration: read once at start from the environment (and `.env`), into
//! one typed struct that is passed down. Nothing else reads the environment.

use std::{net::SocketAddr, path::PathBuf, str::FromStr};

use jsonwebtoken::Algorithm;

#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// How JWTs are verified. Algorithms come from here, never from a token.
#[derive(Clone)]
pub struct JwtConfig {
    pub algorithms: Vec<Algorithm>,
    /// Shared secret for HS256 (development); `None` when HS256 is off.
    pub hs256_secret: Option<Vec<u8>>,
    /// PEM public key for RS256/ES256.
    pub public_key_pem: Option<Vec<u8>>,
    /// JWKS document (JSON) for RS256/ES256.
    pub jwks_json: Option<String>,
    pub issuer: String,
    pub audience: String,
    /// Allowed clock skew, in seconds.
    pub leeway_secs: u64,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and panics.
        f.debug_struct("JwtConfig")
            .field("algorithms", &self.algorithms)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "<set>"))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub bind_addr: SocketAddr,
    pub database_url: String,
    pub storage_url: String,
    pub jwt: JwtConfig,
    pub cookie_name: String,
    pub cookie_secure: bool,
    pub graphiql_enabled: bool,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    pub graphql_body_limit_bytes: usize,
    pub max_upload_bytes: u64,
    pub log_json: bool,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/reportfiles.db?mode=rwc";
pub const DEFAULT_STORAGE_URL: &str = "file://./data/objects";
/// Where the development HS256 secret lives when `JWT_HS256_SECRET` is unset,
/// so that `serve` and `token` agree on it across runs.
pub const DEV_SECRET_FILE: &str = "./data/dev-jwt-secret";

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
                return Err(ConfigError {
                    name: "APP_ENV",
                    reason: format!("`{other}` is not `development` or `production`"),
                });
            }
        };
        let dev = environment == Environment::Development;

        let algorithms = match env.get("JWT_ALGORITHMS") {
            Some(list) => parse_algorithms(&list)?,
            None if dev => vec![Algorithm::HS256],
            None => {
                return Err(ConfigError {
                    name: "JWT_ALGORITHMS",
                    reason: "must be set in production (RS256 and/or ES256)".into(),
                });
            }
        };
        let wants_hs = algorithms.contains(&Algorithm::HS256);
        let hs256_secret = match env.get("JWT_HS256_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(ConfigError {
                    name: "JWT_HS256_SECRET",
                    reason: "must be at least 32 characters".into(),
                });
            }
            Some(s) => Some(s.into_bytes()),
            None if wants_hs && dev => Some(dev_secret().map_err(|e| ConfigError {
                name: "JWT_HS256_SECRET",
                reason: format!("unset, and the development secret file {DEV_SECRET_FILE} could not be used: {e}"),
            })?),
            None if wants_hs => {
                return Err(ConfigError {
                    name: "JWT_HS256_SECRET",
                    reason: "HS256 is enabled in production but no secret is set".into(),
                });
            }
            None => None,
        };
        let public_key_pem = env
            .get("JWT_PUBLIC_KEY_FILE")
            .map(|p| read_file("JWT_PUBLIC_KEY_FILE", &p))
            .transpose()?;
        let jwks_json = env
            .get("JWT_JWKS_FILE")
            .map(|p| read_file("JWT_JWKS_FILE", &p))
            .transpose()?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| ConfigError {
                    name: "JWT_JWKS_FILE",
                    reason: "is not UTF-8".into(),
                })
            })
            .transpose()?;
        let asymmetric = algorithms.iter().any(|a| *a != Algorithm::HS256);
        if asymmetric && public_key_pem.is_none() && jwks_json.is_none() {
            return Err(ConfigError {
                name: "JWT_ALGORITHMS",
                reason: "RS256/ES256 need JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE".into(),
            });
        }

        Ok(Config {
            environment,
            bind_addr: env.parse("BIND_ADDR", "127.0.0.1:8080".parse().unwrap())?,
            database_url: env
                .get("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            storage_url: env
                .get("STORAGE_URL")
                .unwrap_or_else(|| DEFAULT_STORAGE_URL.into()),
            jwt: JwtConfig {
                algorithms,
                hs256_secret,
                public_key_pem,
                jwks_json,
                issuer: env
                    .get("JWT_ISSUER")
                    .unwrap_or_else(|| "reportfiles-dev".into()),
                audience: env
                    .get("JWT_AUDIENCE")
                    .unwrap_or_else(|| "reportfiles".into()),
                leeway_secs: env.parse("JWT_LEEWAY_SECS", 30)?,
            },
            cookie_name: env
                .get("SESSION_COOKIE_NAME")
                .unwrap_or_else(|| "reportfiles_session".into()),
            cookie_secure: env.parse("COOKIE_SECURE", !dev)?,
            graphiql_enabled: env.parse("GRAPHIQL_ENABLED", dev)?,
            graphql_max_depth: env.parse("GRAPHQL_MAX_DEPTH", 10)?,
            graphql_max_complexity: env.parse("GRAPHQL_MAX_COMPLEXITY", 5000)?,
            graphql_body_limit_bytes: env.parse("GRAPHQL_BODY_LIMIT_BYTES", 64 * 1024)?,
            max_upload_bytes: env.parse("MAX_UPLOAD_BYTES", 1 << 30)?,
            log_json: env.parse("LOG_JSON", !dev)?,
        })
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }
}

struct Vars<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    /// A set, non-empty variable.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
                name,
                reason: format!("`{raw}`: {e}"),
            }),
        }
    }
}

fn parse_algorithms(list: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let mut algorithms = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let alg = match name {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return Err(ConfigError {
                    name: "JWT_ALGORITHMS",
                    reason: format!("`{other}` is not one of HS256, RS256, ES256"),
                });
            }
        };
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError {
            name: "JWT_ALGORITHMS",
            reason: "names no algorithm".into(),
        });
    }
    Ok(algorithms)
}

fn read_file(name: &'static str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError {
        name,
        reason: format!("cannot read `{path}`: {e}"),
    })
}

/// Reads the development secret, creating a random one on first use.
fn dev_secret() -> std::io::Result<Vec<u8>> {
    let path = PathBuf::from(DEV_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
        _ => {
            use rand::Rng;
            let secret: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(48)
                .map(char::from)
                .collect();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, &secret)?;
            Ok(secret.into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut with_secret = map.clone();
        with_secret
            .entry("JWT_HS256_SECRET".into())
            .or_insert_with(|| "x".repeat(32));
        Config::from_lookup(move |k| with_secret.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_development_setup() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.storage_url, DEFAULT_STORAGE_URL);
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(c.graphiql_enabled);
        assert!(!c.cookie_secure);
        assert_eq!(c.max_upload_bytes, 1 << 30);
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
    fn unknown_or_empty_algorithm_lists_are_refused() {
        assert_eq!(
            config(&[("JWT_ALGORITHMS", "none")]).unwrap_err().name,
            "JWT_ALGORITHMS"
        );
        assert_eq!(
            config(&[("JWT_ALGORITHMS", "HS512")]).unwrap_err().name,
            "JWT_ALGORITHMS"
        );
        assert_eq!(
            config(&[("JWT_ALGORITHMS", " , ")]).unwrap_err().name,
            "JWT_ALGORITHMS"
        );
    }

    #[test]
    fn asymmetric_algorithms_need_a_key() {
        let err = config(&[("JWT_ALGORITHMS", "RS256")]).unwrap_err();
        assert_eq!(err.name, "JWT_ALGORITHMS");
    }

    #[test]
    fn production_refuses_to_start_without_explicit_algorithms() {
        let err = config(&[("APP_ENV", "production")]).unwrap_err();
        assert_eq!(err.name, "JWT_ALGORITHMS");
    }

    #[test]
    fn a_short_hs256_secret_is_refused() {
        let err = config(&[("JWT_HS256_SECRET", "short")]).unwrap_err();
        assert_eq!(err.name, "JWT_HS256_SECRET");
    }

    #[test]
    fn production_defaults_are_locked_down() {
        let c = config(&[("APP_ENV", "production"), ("JWT_ALGORITHMS", "HS256")]).unwrap();
        assert!(c.cookie_secure);
        assert!(!c.graphiql_enabled);
    }
}
