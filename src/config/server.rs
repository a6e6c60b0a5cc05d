//! The listener and the process around it.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind_addr: SocketAddr,
    /// How long in-flight transfers may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// JSON log lines (production) or human-readable ones.
    pub log_json: bool,
}

impl ServerConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let dev = environment == Environment::Development;
        Ok(ServerConfig {
            bind_addr: env.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            shutdown_grace: Duration::from_secs(env.parse("SHUTDOWN_GRACE_SECS", 30)?),
            log_json: env.parse("LOG_JSON", !dev)?,
        })
    }
}
