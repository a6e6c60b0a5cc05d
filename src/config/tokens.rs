//! How tokens are verified and how sessions are kept. Algorithms come from
//! here, never from a token. Key files are named here and read at start;
//! a JWKS URL is fetched at start and refreshed (`auth::jwks`).

use std::{borrow::Cow, path::PathBuf, time::Duration};

use jsonwebtoken::Algorithm;
use openidconnect::url::Url;
use secrecy::SecretString;

use super::{ConfigError, Environment, OidcConfig, Vars};

/// The file in the data folder that keeps the development HS256 secret when
/// `JWT_HS256_SECRET` is unset, so that `serve` and `token` agree on it.
pub const DEV_SECRET_FILE: &str = "dev-jwt-secret";

/// Where the development session secret lives when `SESSION_SECRET` is
/// unset: every instance started from the same folder shares it, so each
/// can finish a sign-in another began and read the sessions others made.
pub const DEV_SESSION_SECRET_FILE: &str = "dev-session-secret";

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub algorithms: Vec<Algorithm>,
    /// The HS256 secret; `None` when HS256 is off.
    pub hs256_secret: Option<Hs256Secret>,
    /// PEM public key for RS256/ES256.
    pub public_key_file: Option<PathBuf>,
    /// JWKS document for RS256/ES256.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL for RS256/ES256 (keys of `issuer`), fetched and refreshed.
    pub jwks_url: Option<Url>,
    /// How long fetched JWKS (this URL's and the OIDC providers') are used
    /// before they are fetched again.
    pub jwks_cache_ttl: Duration,
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
            Some(list) => parse_algorithm_list("JWT_ALGORITHMS", &list)?,
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
        let jwks_url = match env.get("JWT_JWKS_URL") {
            None => None,
            Some(raw) => {
                let url = Url::parse(raw.trim()).map_err(|e| {
                    ConfigError::new("JWT_JWKS_URL", format!("`{raw}` is not a URL: {e}"))
                })?;
                match url.scheme() {
                    "https" => Some(url),
                    "http" if dev => Some(url),
                    _ => {
                        return Err(ConfigError::new(
                            "JWT_JWKS_URL",
                            format!("`{raw}` must be an https URL"),
                        ));
                    }
                }
            }
        };
        let jwks_cache_ttl = Duration::from_secs(env.parse("JWKS_CACHE_TTL_SECS", 300)?);
        if jwks_cache_ttl.is_zero() {
            return Err(ConfigError::new(
                "JWKS_CACHE_TTL_SECS",
                "must be at least 1 (seconds between refreshes of fetched keys)",
            ));
        }
        Ok(TokenConfig {
            algorithms,
            hs256_secret,
            public_key_file,
            jwks_file,
            jwks_url,
            jwks_cache_ttl,
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

impl TokenConfig {
    /// RS256/ES256 need keys from somewhere, and production takes them from
    /// the identity provider: OIDC sign-in or a JWKS URL (key files and
    /// `login(token)` with HS256 are for development and tests).
    pub(crate) fn check_key_sources(
        &self,
        oidc: &OidcConfig,
        environment: Environment,
    ) -> Result<(), ConfigError> {
        let remote = self.jwks_url.is_some() || oidc.is_configured();
        let asymmetric = self.algorithms.iter().any(|a| *a != Algorithm::HS256);
        if asymmetric && !remote && self.public_key_file.is_none() && self.jwks_file.is_none() {
            return Err(ConfigError::new(
                "JWT_ALGORITHMS",
                "RS256/ES256 need keys: JWT_JWKS_URL, OIDC_ISSUER_URL (the provider's JWKS), \
                 JWT_JWKS_FILE or JWT_PUBLIC_KEY_FILE",
            ));
        }
        if environment == Environment::Production && !remote {
            return Err(ConfigError::new(
                "OIDC_ISSUER_URL",
                "production signs people in through an OpenID Connect provider: set \
                 OIDC_ISSUER_URL (or OIDC_PROVIDERS), or at least JWT_JWKS_URL for API \
                 clients; key files and HS256 tokens are for development and tests",
            ));
        }
        Ok(())
    }
}

/// The session cookie, what signs it, and how long an instance trusts what
/// it knows of a signed-in user.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub cookie_secure: bool,
    /// Signs session tokens and encrypts the sign-in flow cookie. Every
    /// instance must have the same one.
    pub secret: SessionSecret,
    /// How long a session lasts after sign-in, whatever the provider's
    /// tokens say.
    pub ttl: Duration,
    /// How long an instance may reuse what it knows of a user (zero: never).
    pub auth_cache_ttl: Duration,
}

/// The key material of sessions.
#[derive(Debug, Clone)]
pub enum SessionSecret {
    /// `SESSION_SECRET`.
    Given(SecretString),
    /// Development without one: a random secret kept in this file, made on
    /// first use and shared by every instance started from the same folder.
    DevelopmentFile(PathBuf),
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
        let secret = match env.get("SESSION_SECRET") {
            Some(s) if s.len() < 32 => {
                return Err(ConfigError::new(
                    "SESSION_SECRET",
                    "must be at least 32 characters (e.g. `openssl rand -base64 48`)",
                ));
            }
            Some(s) => SessionSecret::Given(SecretString::from(s)),
            None if dev => {
                SessionSecret::DevelopmentFile(env.data_dir().join(DEV_SESSION_SECRET_FILE))
            }
            None => {
                return Err(ConfigError::new(
                    "SESSION_SECRET",
                    "is required in production: at least 32 random characters, the same \
                     on every instance (e.g. `openssl rand -base64 48`)",
                ));
            }
        };
        let ttl_secs: u64 = env.parse("SESSION_TTL_SECS", 8 * 3600)?;
        if !(60..=30 * 24 * 3600).contains(&ttl_secs) {
            return Err(ConfigError::new(
                "SESSION_TTL_SECS",
                "must be between 60 seconds and 30 days",
            ));
        }
        Ok(SessionConfig {
            cookie_name,
            cookie_secure,
            secret,
            ttl: Duration::from_secs(ttl_secs),
            auth_cache_ttl: Duration::from_millis(env.parse("AUTH_CACHE_TTL_MS", 2000)?),
        })
    }
}

/// A comma-separated list of algorithms, read from the variable `var`.
pub(super) fn parse_algorithm_list(
    var: impl Into<Cow<'static, str>>,
    list: &str,
) -> Result<Vec<Algorithm>, ConfigError> {
    let var = var.into();
    let mut algorithms = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let alg = match name {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return Err(ConfigError::new(
                    var,
                    format!("`{other}` is not one of HS256, RS256, ES256"),
                ));
            }
        };
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new(var, "names no algorithm"));
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
            "JWT_JWKS_URL" => Some("https://idp.example.gov/jwks".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.name, "JWT_HS256_SECRET");
    }

    /// Production with everything but `except`.
    fn production_without(except: &str) -> Result<Config, crate::config::ConfigError> {
        let vars = [
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "RS256"),
            ("JWT_JWKS_URL", "https://idp.example.gov/jwks"),
            ("SESSION_SECRET", "0123456789abcdef0123456789abcdef"),
            ("CLAMD_ADDR", "tcp://127.0.0.1:3310"),
        ];
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k && *name != except)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn production_refuses_to_start_without_a_provider_or_a_jwks_url() {
        assert!(production_without("").is_ok());
        let err = production_without("JWT_JWKS_URL").unwrap_err();
        assert_eq!(err.name, "JWT_ALGORITHMS", "{err}");
        // Key files alone are for development and tests.
        let err = Config::from_lookup(|k| match k {
            "APP_ENV" => Some("production".into()),
            "JWT_ALGORITHMS" => Some("RS256".into()),
            "JWT_JWKS_FILE" => Some("/etc/jwks.json".into()),
            "SESSION_SECRET" => Some("0123456789abcdef0123456789abcdef".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(err.name, "OIDC_ISSUER_URL", "{err}");
        assert!(err.to_string().contains("JWT_JWKS_URL"), "{err}");
    }

    #[test]
    fn production_needs_a_session_secret() {
        let err = production_without("SESSION_SECRET").unwrap_err();
        assert_eq!(err.name, "SESSION_SECRET");
        assert_eq!(
            config(&[("SESSION_SECRET", "short")]).unwrap_err().name,
            "SESSION_SECRET"
        );
        let dev = Config::from_lookup(|_| None).unwrap();
        assert!(matches!(
            dev.sessions.secret,
            SessionSecret::DevelopmentFile(ref p) if p == &PathBuf::from("./data").join(DEV_SESSION_SECRET_FILE)
        ));
    }

    #[test]
    fn session_and_jwks_lifetimes() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sessions.ttl, Duration::from_secs(8 * 3600));
        assert_eq!(c.tokens.jwks_cache_ttl, Duration::from_secs(300));
        for (name, value) in [
            ("SESSION_TTL_SECS", "59"),
            ("SESSION_TTL_SECS", "soon"),
            ("JWKS_CACHE_TTL_SECS", "0"),
            ("JWT_JWKS_URL", "not a url"),
            ("JWT_JWKS_URL", "ftp://idp.example.gov/jwks"),
        ] {
            assert_eq!(config(&[(name, value)]).unwrap_err().name, name, "{value}");
        }
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
