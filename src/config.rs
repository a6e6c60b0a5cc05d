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

/// Where object bytes live and how to reach them.
#[derive(Clone)]
pub struct StorageConfig {
    /// `file://DIR`, `s3://BUCKET[/PREFIX]` or `memory://` (tests only).
    pub url: String,
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_session_token: Option<String>,
    /// Plain-HTTP endpoints (local S3-compatible servers).
    pub s3_allow_http: bool,
    /// `bucket.host` addressing instead of `host/bucket`.
    pub s3_virtual_hosted_style: bool,
    pub connect_timeout_secs: u64,
    /// Longest silence within one storage response. There is deliberately no
    /// limit on a whole transfer: a 1 GiB download may take minutes.
    pub read_timeout_secs: u64,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.url)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .finish_non_exhaustive()
    }
}

/// What an upload must satisfy, and how it is sent to storage.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub max_bytes: u64,
    /// Extension patterns; `#` stands for one digit (`ts##` matches `ts01`).
    pub allowed_extensions: Vec<String>,
    /// Size of each multipart part (S3 needs at least 5 MiB).
    pub part_size: usize,
    /// Parts in flight at once; memory per upload is about part_size × (this + 1).
    pub part_concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub bind_addr: SocketAddr,
    pub database_url: String,
    pub storage: StorageConfig,
    pub upload: UploadConfig,
    pub jwt: JwtConfig,
    pub cookie_name: String,
    pub cookie_secure: bool,
    pub graphiql_enabled: bool,
    /// Origins (`scheme://host[:port]`) whose scripts may call the API with
    /// the session cookie. Empty: no cross-origin access at all.
    pub cors_allowed_origins: Vec<String>,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    pub graphql_body_limit_bytes: usize,
    pub log_json: bool,
    /// How long in-flight transfers may run after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// How long an instance may reuse what it knows of a user (0: never).
    pub auth_cache_ttl_ms: u64,
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
            storage: storage_config(&env)?,
            upload: upload_config(&env)?,
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
            cors_allowed_origins: cors_origins(env.get("CORS_ALLOWED_ORIGINS").as_deref())?,
            graphql_max_depth: env.parse("GRAPHQL_MAX_DEPTH", 10)?,
            graphql_max_complexity: env.parse("GRAPHQL_MAX_COMPLEXITY", 5000)?,
            graphql_body_limit_bytes: env.parse("GRAPHQL_BODY_LIMIT_BYTES", 64 * 1024)?,
            log_json: env.parse("LOG_JSON", !dev)?,
            shutdown_grace_secs: env.parse("SHUTDOWN_GRACE_SECS", 30)?,
            auth_cache_ttl_ms: env.parse("AUTH_CACHE_TTL_MS", 2000)?,
        })
    }

    pub fn is_development(&self) -> bool {
        self.environment == Environment::Development
    }
}

fn storage_config<F: Fn(&str) -> Option<String>>(
    env: &Vars<'_, F>,
) -> Result<StorageConfig, ConfigError> {
    let url = env
        .get("STORAGE_URL")
        .unwrap_or_else(|| DEFAULT_STORAGE_URL.into());
    let known = ["file://", "s3://", "memory://"];
    if !known.iter().any(|p| url.starts_with(p)) || url == "s3://" {
        return Err(ConfigError {
            name: "STORAGE_URL",
            reason: format!("`{url}` is not file://DIR, s3://BUCKET or memory://"),
        });
    }
    Ok(StorageConfig {
        url,
        s3_endpoint: env.get("AWS_ENDPOINT_URL"),
        s3_region: env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        s3_access_key_id: env.get("AWS_ACCESS_KEY_ID"),
        s3_secret_access_key: env.get("AWS_SECRET_ACCESS_KEY"),
        s3_session_token: env.get("AWS_SESSION_TOKEN"),
        s3_allow_http: env.parse("AWS_ALLOW_HTTP", false)?,
        s3_virtual_hosted_style: env.parse("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", false)?,
        connect_timeout_secs: env.parse("STORAGE_CONNECT_TIMEOUT_SECS", 5)?,
        read_timeout_secs: env.parse("STORAGE_READ_TIMEOUT_SECS", 30)?,
    })
}

pub const DEFAULT_EXTENSIONS: &str = "txt,ts##,ts###,ms##";

fn upload_config<F: Fn(&str) -> Option<String>>(
    env: &Vars<'_, F>,
) -> Result<UploadConfig, ConfigError> {
    let allowed: Vec<String> = env
        .get("ALLOWED_EXTENSIONS")
        .unwrap_or_else(|| DEFAULT_EXTENSIONS.into())
        .split(',')
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    if allowed.is_empty()
        || allowed
            .iter()
            .any(|e| !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '#'))
    {
        return Err(ConfigError {
            name: "ALLOWED_EXTENSIONS",
            reason: "must be a comma-separated list of letters, digits and # (one digit)".into(),
        });
    }
    let part_size: usize = env.parse("UPLOAD_PART_SIZE_BYTES", 8 << 20)?;
    if part_size < 5 << 20 {
        return Err(ConfigError {
            name: "UPLOAD_PART_SIZE_BYTES",
            reason: "must be at least 5 MiB (5242880), the S3 minimum part size".into(),
        });
    }
    let part_concurrency: usize = env.parse("UPLOAD_PART_CONCURRENCY", 2)?;
    if part_concurrency == 0 {
        return Err(ConfigError {
            name: "UPLOAD_PART_CONCURRENCY",
            reason: "must be at least 1".into(),
        });
    }
    Ok(UploadConfig {
        max_bytes: env.parse("MAX_UPLOAD_BYTES", 1 << 30)?,
        allowed_extensions: allowed,
        part_size,
        part_concurrency,
    })
}

/// Parses the comma-separated origin list. Each entry must be exactly what a
/// browser sends in `Origin` (no path, no trailing slash), because CORS
/// compares origins byte for byte; `*` is refused since credentialed CORS
/// cannot use it and a wildcard would hand the session to every site.
fn cors_origins(list: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let bad = |origin: &str, why: &str| ConfigError {
        name: "CORS_ALLOWED_ORIGINS",
        reason: format!("`{origin}` {why}"),
    };
    let mut origins = Vec::new();
    for origin in list.unwrap_or_default().split(',').map(str::trim) {
        if origin.is_empty() {
            continue;
        }
        if origin.contains('*') {
            return Err(bad(origin, "is a wildcard; list each origin"));
        }
        let uri: http::Uri = origin
            .parse()
            .map_err(|_| bad(origin, "is not an origin like https://portal.example.gov"))?;
        let exact = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme @ ("http" | "https")), Some(authority)) => {
                format!("{scheme}://{authority}") == origin
            }
            _ => false,
        };
        if !exact || authority_has_userinfo(origin) {
            return Err(bad(
                origin,
                "must be scheme://host[:port] exactly (http or https, no path or trailing slash)",
            ));
        }
        if !origins.iter().any(|o| o == origin) {
            origins.push(origin.to_string());
        }
    }
    Ok(origins)
}

fn authority_has_userinfo(origin: &str) -> bool {
    origin.contains('@')
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
        assert_eq!(c.storage.url, DEFAULT_STORAGE_URL);
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(c.graphiql_enabled);
        assert!(!c.cookie_secure);
        assert_eq!(c.upload.max_bytes, 1 << 30);
        assert_eq!(
            c.upload.allowed_extensions,
            vec!["txt", "ts##", "ts###", "ms##"]
        );
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
    fn storage_and_upload_settings_are_checked() {
        assert_eq!(
            config(&[("STORAGE_URL", "ftp://x")]).unwrap_err().name,
            "STORAGE_URL"
        );
        assert_eq!(
            config(&[("STORAGE_URL", "s3://")]).unwrap_err().name,
            "STORAGE_URL"
        );
        assert_eq!(
            config(&[("UPLOAD_PART_SIZE_BYTES", "1024")])
                .unwrap_err()
                .name,
            "UPLOAD_PART_SIZE_BYTES"
        );
        assert_eq!(
            config(&[("ALLOWED_EXTENSIONS", "t*t")]).unwrap_err().name,
            "ALLOWED_EXTENSIONS"
        );
        assert_eq!(
            config(&[("AWS_ALLOW_HTTP", "maybe")]).unwrap_err().name,
            "AWS_ALLOW_HTTP"
        );
        let c = config(&[("ALLOWED_EXTENSIONS", ".TXT, csv")]).unwrap();
        assert_eq!(c.upload.allowed_extensions, vec!["txt", "csv"]);
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
    fn cors_origins_are_an_exact_list() {
        assert!(config(&[]).unwrap().cors_allowed_origins.is_empty());
        let c = config(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://portal.example.gov, http://localhost:3000,https://portal.example.gov",
        )])
        .unwrap();
        assert_eq!(
            c.cors_allowed_origins,
            vec!["https://portal.example.gov", "http://localhost:3000"]
        );
    }

    #[test]
    fn cors_origins_that_a_browser_would_never_send_are_refused() {
        for origin in [
            "*",
            "https://*.example.gov",
            "https://portal.example.gov/",
            "https://portal.example.gov/app",
            "portal.example.gov",
            "ftp://portal.example.gov",
            "https://user@portal.example.gov",
        ] {
            let err = config(&[("CORS_ALLOWED_ORIGINS", origin)]).unwrap_err();
            assert_eq!(err.name, "CORS_ALLOWED_ORIGINS", "{origin}");
        }
    }

    #[test]
    fn production_defaults_are_locked_down() {
        let c = config(&[("APP_ENV", "production"), ("JWT_ALGORITHMS", "HS256")]).unwrap();
        assert!(c.cookie_secure);
        assert!(!c.graphiql_enabled);
    }
}
