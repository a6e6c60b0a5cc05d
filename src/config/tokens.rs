//! How tokens are verified and how sessions are kept. Algorithms come from
//! here, never from a token. Key files are named here and read at start.

use std::{path::PathBuf, time::Duration};

use jsonwebtoken::Algorithm;
use secrecy::SecretString;

use super::{ConfigError, Environment, Vars};

/// The file in the data folder that keeps the development HS256 secret when
/// `JWT_HS256_SECRET` is unset, so that `serve` and `token` agree on it.
pub const DEV_SECRET_FILE: &str = "dev-jwt-secret";

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub algorithms: Vec<Algorithm>,
    /// The HS256 secret; `None` when HS256 is off.
    pub hs256_secret: Option<Hs256Secret>,
    /// PEM public key for RS256/ES256.
    pub public_key_file: Option<PathBuf>,
    /// JWKS document for RS256/ES256.
    pub jwks_file: Option<PathBuf>,
    pub issuer: String,
    pub audience: String,
    /// Allowed clock skew.
    pub leeway_secs: u64,
}

/// The shared secret of HS256 tokens.
#[derive(Debug, Clone)]
pub enum Hs256Secret {
    /// `JWT_HS256_SECRET`.
    Given(SecretString),
    /// Development without a secret set: a random one kept in this file,
    /// created on first use.
    DevelopmentFile(PathBuf),
}

impl TokenConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let dev = environment == Environment::Development;
        let algorithms = match env.get("JWT_ALGORITHMS") {
            Some(list) => parse_algorithms(&list)?,
            None if dev => vec![Algorithm::HS256],
            None => {
                return Err(ConfigError::new(
                    "JWT_ALGORITHMS",
                    "must be set in production (RS256 and/or ES256)",
                ));
            }
        };
        let wants_hs = algorithms.contains(&Algorithm::HS256);
        let hs256_secret = match env.get("JWT_HS256_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(ConfigError::new(
                    "JWT_HS256_SECRET",
                    "must be at least 32 characters",
                ));
            }
            Some(s) => Some(Hs256Secret::Given(SecretString::from(s))),
            None if wants_hs && dev => Some(Hs256Secret::DevelopmentFile(
                env.data_dir().join(DEV_SECRET_FILE),
            )),
            None if wants_hs => {
                return Err(ConfigError::new(
                    "JWT_HS256_SECRET",
                    "HS256 is enabled in production but no secret is set",
                ));
            }
            None => None,
        };
        let public_key_file = env.get("JWT_PUBLIC_KEY_FILE").map(PathBuf::from);
        let jwks_file = env.get("JWT_JWKS_FILE").map(PathBuf::from);
        let asymmetric = algorithms.iter().any(|a| *a != Algorithm::HS256);
        if asymmetric && public_key_file.is_none() && jwks_file.is_none() {
            return Err(ConfigError::new(
                "JWT_ALGORITHMS",
                "RS256/ES256 need JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE",
            ));
        }
        Ok(TokenConfig {
            algorithms,
            hs256_secret,
            public_key_file,
            jwks_file,
            issuer: env
                .get("JWT_ISSUER")
                .unwrap_or_else(|| "reportfiles-dev".into()),
            audience: env
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| "reportfiles".into()),
            leeway_secs: env.parse("JWT_LEEWAY_SECS", 30)?,
        })
    }
}

/// The session cookie, and how long an instance trusts what it knows of a
/// signed-in user.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub cookie_secure: bool,
    /// How long an instance may reuse what it knows of a user (zero: never).
    pub auth_cache_ttl: Duration,
}

impl SessionConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let dev = environment == Environment::Development;
        let cookie_name = env
            .get("SESSION_COOKIE_NAME")
            .unwrap_or_else(|| "reportfiles_session".into());
        if !cookie_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(ConfigError::new(
                "SESSION_COOKIE_NAME",
                "may hold letters, digits, `_`, `-` and `.` only",
            ));
        }
        let cookie_secure = env.parse("COOKIE_SECURE", !dev)?;
        // Browsers accept a `__Host-` cookie only when Secure (with Path=/
        // and no Domain, which the session cookie always has): no sibling
        // subdomain can then set or shadow it.
        if cookie_name.starts_with("__Host-") && !cookie_secure {
            return Err(ConfigError::new(
                "SESSION_COOKIE_NAME",
                "a __Host- cookie must be Secure: set COOKIE_SECURE=true (HTTPS only)",
            ));
        }
        Ok(SessionConfig {
            cookie_name,
            cookie_secure,
            auth_cache_ttl: Duration::from_millis(env.parse("AUTH_CACHE_TTL_MS", 2000)?),
        })
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
                return Err(ConfigError::new(
                    "JWT_ALGORITHMS",
                    format!("`{other}` is not one of HS256, RS256, ES256"),
                ));
            }
        };
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new("JWT_ALGORITHMS", "names no algorithm"));
    }
    Ok(algorithms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn development_without_a_secret_uses_the_development_file() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert!(matches!(
            c.tokens.hs256_secret,
            Some(Hs256Secret::DevelopmentFile(ref p)) if p == &PathBuf::from("./data/dev-jwt-secret")
        ));
    }

    use crate::config::Config;

    #[test]
    fn unknown_or_empty_algorithm_lists_are_refused() {
        for list in ["none", "HS512", " , "] {
            assert_eq!(
                config(&[("JWT_ALGORITHMS", list)]).unwrap_err().name,
                "JWT_ALGORITHMS",
                "{list}"
            );
        }
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
    fn production_with_hs256_needs_a_secret() {
        let err = Config::from_lookup(|k| match k {
            "APP_ENV" => Some("production".into()),
            "JWT_ALGORITHMS" => Some("HS256".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.name, "JWT_HS256_SECRET");
    }

    #[test]
    fn a_short_hs256_secret_is_refused() {
        let err = config(&[("JWT_HS256_SECRET", "short")]).unwrap_err();
        assert_eq!(err.name, "JWT_HS256_SECRET");
    }

    #[test]
    fn a_host_prefixed_cookie_must_be_secure() {
        let err = config(&[("SESSION_COOKIE_NAME", "__Host-reportfiles_session")]).unwrap_err();
        assert_eq!(err.name, "SESSION_COOKIE_NAME");
        let c = config(&[
            ("SESSION_COOKIE_NAME", "__Host-reportfiles_session"),
            ("COOKIE_SECURE", "true"),
        ])
        .unwrap();
        assert_eq!(c.sessions.cookie_name, "__Host-reportfiles_session");
    }

    #[test]
    fn a_cookie_name_that_cannot_be_a_cookie_is_refused() {
        let err = config(&[("SESSION_COOKIE_NAME", "a b;c")]).unwrap_err();
        assert_eq!(err.name, "SESSION_COOKIE_NAME");
    }
}
