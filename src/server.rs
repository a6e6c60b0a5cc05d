//! Running the server: start the application, listen, and stop gracefully
//! on SIGTERM or Ctrl-C (stop accepting, let in-flight transfers finish
//! within the grace period, then exit).

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    app::{App, StartError},
    config::Config,
    http,
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr} ({var}): {why}")]
    Bind {
        addr: std::net::SocketAddr,
        var: &'static str,
        why: String,
    },
}

async fn bind(addr: std::net::SocketAddr, var: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another process is listening there; stop it, or set {var} to another address \
                 (e.g. {var}=127.0.0.1:{})",
                addr.port().wrapping_add(1)
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                "no network interface of this machine has that address".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports under 1024 need privileges; use a higher port".to_string()
            }
            _ => e.to_string(),
        };
        ServeError::Bind { addr, var, why }
    })
}

/// What the operator sees at start: where the server listens and what it
/// runs on (no secrets), and, in development, how to sign in.
pub fn banner(config: &Config) -> String {
    use std::fmt::Write;
    let addr = config.server.bind_addr;
    let mut out = String::new();
    let mode = if config.is_development() {
        "development"
    } else {
        "production"
    };
    let _ = writeln!(out, "reportfiles {} ({mode})", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  listening  http://{addr}");
    if config.graphql.graphiql_enabled {
        let _ = writeln!(out, "  GraphiQL   http://{addr}/graphql");
    }
    if let Some(metrics) = config.server.metrics_bind_addr {
        let _ = writeln!(out, "  metrics    http://{metrics}/metrics");
    }
    let _ = writeln!(out, "  database   {}", config.database.redacted());
    let _ = writeln!(out, "  storage    {}", config.storage.backend);
    let _ = writeln!(out, "  clients    {}", config.proxies.describe());
    match crate::config::banner_warning(&config.scan) {
        Some(warning) => {
            let _ = writeln!(out, "  scanning   off\n{warning}");
        }
        None => {
            let _ = writeln!(out, "  scanning   every upload (ClamAV)");
        }
    }
    if config.is_development() {
        let _ = write!(
            out,
            "\nTo sign in for development:\n\
             1. make a system admin:  cargo run -- user create --subject dev-admin --role SYSTEM_ADMIN --approve\n\
             2. print a token:        cargo run -- token --sub dev-admin\n\
             3. in GraphiQL's Headers tab: {{\"Authorization\": \"Bearer PASTE-THE-TOKEN-HERE\"}}\n"
        );
    }
    out
}

/// How long, once the grace period is over, cut transfers get to clean up
/// (abort their uploads, record their download events) before the exit.
const CLEANUP: Duration = Duration::from_secs(5);

pub async fn run(mut config: Config) -> Result<(), ServeError> {
    let addr = config.server.bind_addr;
    let grace = config.server.shutdown_grace;
    let connections = &mut config.server.connections;
    connections.max_connections = http::ensure_descriptors(connections.max_connections);
    // The addresses first: a port in use is found before any migration.
    let listener = bind(addr, "BIND_ADDR").await?;
    let metrics_listener = match config.server.metrics_bind_addr {
        Some(addr) => Some(bind(addr, "METRICS_BIND_ADDR").await?),
        None => None,
    };
    let app = App::start(config).await?;
    tracing::info!(%addr, "listening");
    print!("{}", banner(&app.config));
    if let Some(warning) = crate::config::banner_warning(&app.config.scan) {
        tracing::warn!("{warning}");
    }
    if app.config.proxies.trusted.is_empty() && !app.config.is_development() {
        // Deployments sit behind a balancer: without it, the audit names it.
        tracing::warn!(
            "TRUSTED_PROXIES is empty: behind a load balancer, the download audit and the log record the balancer's address, not the client's"
        );
    }
    if app.config.server.metrics_bind_addr.is_none() && !app.config.is_development() {
        tracing::warn!("METRICS_BIND_ADDR is unset: /metrics is not served");
    }

    let stop = CancellationToken::new();
    let mut api = tokio::spawn(http::serve(
        listener,
        app.clone(),
        stop.clone().cancelled_owned(),
    ));
    let metrics = metrics_listener.map(|listener| {
        tokio::spawn(http::serve_metrics(
            listener,
            app.clone(),
            stop.clone().cancelled_owned(),
        ))
    });
    tokio::select! {
        () = shutdown_signal() => {}
        // The server does not stop on its own; if it did, stop the rest too.
        _ = &mut api => tracing::error!("the API listener stopped"),
    }
    stop.cancel();
    // In-flight requests get the grace period; then long transfers are cut
    // and get a moment to clean up.
    if tokio::time::timeout(grace, &mut api).await.is_err() {
        tracing::warn!(
            ?grace,
            "grace period over: stopping the transfers still running"
        );
        app.shutdown.end_grace();
        if tokio::time::timeout(CLEANUP, &mut api).await.is_err() {
            tracing::warn!("connections still open after the cleanup period; exiting anyway");
        }
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    // Uploads cut above abort their multipart uploads in the background;
    // the process exits once those aborts are through (or the wait is over).
    app.storage.wait_for_aborts(ABORTS_AT_EXIT).await;
    if !app.audit_log.flush(CLEANUP).await {
        tracing::error!("download events still queued at exit; the log lines above name them");
    }
    app.close_database().await;
    Ok(())
}

/// How long the process waits for aborts of multipart uploads before it
/// exits anyway (what is left is the sweep's).
const ABORTS_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
}
