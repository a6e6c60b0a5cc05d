//! Where metadata lives.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Vars};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/reportfiles.db?mode=rwc";

/// The URL may carry a password, so it is kept as a secret.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    url: SecretString,
    /// How long a request waits for a connection before the database counts
    /// as unavailable (503): when it is down, a connection is never coming.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels a statement of the server's pool that runs longer
    /// (`None`: no limit). SQLite has no such setting.
    pub statement_timeout: Option<Duration>,
}

impl DatabaseConfig {
    pub(crate) fn parse(env: &Vars<'_>) -> Result<Self, ConfigError> {
        let url = env
            .get("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let url = url.trim().to_string();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must be sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DATABASE",
            ));
        }
        let acquire_ms: u64 = env.parse("DATABASE_ACQUIRE_TIMEOUT_MS", 800)?;
        if acquire_ms == 0 {
            return Err(ConfigError::new(
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                "must be at least 1 (milliseconds)",
            ));
        }
        let timeout_ms: u64 = env.parse("DATABASE_STATEMENT_TIMEOUT_MS", 5000)?;
        Ok(DatabaseConfig {
            url: SecretString::from(url),
            acquire_timeout: Duration::from_millis(acquire_ms),
            statement_timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
        })
    }

    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }

    pub fn is_sqlite(&self) -> bool {
        self.url().starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config;

    #[test]
    fn the_default_is_a_sqlite_file_under_data() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database.url(), super::DEFAULT_DATABASE_URL);
        assert!(c.database.is_sqlite());
    }

    #[test]
    fn statements_time_out_after_five_seconds_unless_told_otherwise() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database.statement_timeout.unwrap().as_millis(), 5000);
        let off = config(&[("DATABASE_STATEMENT_TIMEOUT_MS", "0")]).unwrap();
        assert_eq!(off.database.statement_timeout, None);
        let err = config(&[("DATABASE_STATEMENT_TIMEOUT_MS", "5s")]).unwrap_err();
        assert_eq!(err.name, "DATABASE_STATEMENT_TIMEOUT_MS");
    }

    #[test]
    fn an_unknown_scheme_is_refused_naming_the_variable() {
        let err = config(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.name, "DATABASE_URL");
    }
}
