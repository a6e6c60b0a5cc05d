//! The listener and the process around it: every connection is bounded in
//! number, time and memory.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, Environment, Vars};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind_addr: SocketAddr,
    /// Where `/metrics` is served. Unset: on the API listener in
    /// development, nowhere in production.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// How long in-flight transfers may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// JSON log lines (production) or human-readable ones.
    pub log_json: bool,
    pub connections: ConnectionLimits,
}

/// What one client connection may hold.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time to send a whole request head; also how long an idle keep-alive
    /// connection is kept waiting for its next request.
    pub header_timeout: Duration,
    /// The largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Idle time before TCP keepalive probes find a client that vanished.
    pub tcp_keepalive: Duration,
    /// How long sent data may stay unacknowledged, or unsent because the
    /// client stopped reading, before the kernel drops the connection.
    pub tcp_user_timeout: Duration,
}

impl ServerConfig {
    pub(crate) fn parse(env: &Vars<'_>, environment: Environment) -> Result<Self, ConfigError> {
        let dev = environment == Environment::Development;
        let metrics_bind_addr = env
            .get("METRICS_BIND_ADDR")
            .map(|raw| {
                raw.trim()
                    .parse::<SocketAddr>()
                    .map_err(|e| ConfigError::new("METRICS_BIND_ADDR", format!("`{raw}`: {e}")))
            })
            .transpose()?;
        Ok(ServerConfig {
            bind_addr: env.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            metrics_bind_addr,
            shutdown_grace: Duration::from_secs(env.parse("SHUTDOWN_GRACE_SECS", 30)?),
            log_json: env.parse("LOG_JSON", !dev)?,
            connections: ConnectionLimits {
                header_timeout: positive_secs(env, "HTTP_HEADER_TIMEOUT_SECS", 10)?,
                max_header_bytes: header_bytes(env)?,
                max_connections: at_least(env, "MAX_CONNECTIONS", 1024, 1)?,
                tcp_keepalive: positive_secs(env, "TCP_KEEPALIVE_SECS", 30)?,
                tcp_user_timeout: positive_secs(env, "TCP_USER_TIMEOUT_SECS", 60)?,
            },
        })
    }
}

fn header_bytes(env: &Vars<'_>) -> Result<usize, ConfigError> {
    const NAME: &str = "MAX_REQUEST_HEADER_BYTES";
    match env.bytes(NAME, 16 * 1024)? {
        n if n < 8192 => Err(ConfigError::new(NAME, "must be at least 8192 (8KiB)")),
        n => Ok(n as usize),
    }
}

fn positive_secs(
    env: &Vars<'_>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match env.parse(name, default)? {
        0 => Err(ConfigError::new(name, "must be at least 1 (seconds)")),
        secs => Ok(Duration::from_secs(secs)),
    }
}

fn at_least(
    env: &Vars<'_>,
    name: &'static str,
    default: usize,
    min: usize,
) -> Result<usize, ConfigError> {
    let value: usize = env.parse(name, default)?;
    if value < min {
        return Err(ConfigError::new(name, format!("must be at least {min}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config;

    #[test]
    fn connections_are_bounded_by_default() {
        let c = config(&[]).unwrap().server;
        assert_eq!(c.connections.header_timeout.as_secs(), 10);
        assert_eq!(c.connections.max_connections, 1024);
        assert_eq!(c.connections.tcp_user_timeout.as_secs(), 60);
        assert!(c.metrics_bind_addr.is_none());
    }

    #[test]
    fn bounds_that_would_turn_a_limit_off_are_refused() {
        for (name, value) in [
            ("HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("MAX_CONNECTIONS", "0"),
            ("TCP_USER_TIMEOUT_SECS", "0"),
            ("MAX_REQUEST_HEADER_BYTES", "100"),
            ("METRICS_BIND_ADDR", "localhost"),
        ] {
            assert_eq!(config(&[(name, value)]).unwrap_err().name, name, "{name}");
        }
    }
}
