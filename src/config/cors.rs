//! Which frontend origins may call the API with the session cookie.

use super::{ConfigError, Vars};

#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose scripts may call the API with
    /// the session cookie. Empty: no cross-origin access at all.
    pub allowed_origins: Vec<String>,
}

impl CorsConfig {
    pub(crate) fn parse(env: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(CorsConfig {
            allowed_origins: origins(env.get("CORS_ALLOWED_ORIGINS").as_deref())?,
        })
    }
}

/// Parses the comma-separated origin list. Each entry must be exactly what a
/// browser sends in `Origin` (no path, no trailing slash), because CORS
/// compares origins byte for byte; `*` is refused since credentialed CORS
/// cannot use it and a wildcard would hand the session to every site.
fn origins(list: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let bad = |origin: &str, why: &str| {
        ConfigError::new("CORS_ALLOWED_ORIGINS", format!("`{origin}` {why}"))
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
        // User info (`user@host`) is part of an authority but never of an origin.
        if !exact || origin.contains('@') {
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

#[cfg(test)]
mod tests {
    use crate::config::tests::config;

    #[test]
    fn cors_origins_are_an_exact_list() {
        assert!(config(&[]).unwrap().cors.allowed_origins.is_empty());
        let c = config(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://portal.example.gov, http://localhost:3000,https://portal.example.gov",
        )])
        .unwrap();
        assert_eq!(
            c.cors.allowed_origins,
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
}
