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
    #[error("cannot listen on {addr} (BIND_ADDR): {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// How long, once the grace period is over, cut transfers get to clean up
/// (abort their uploads, record their download events) before the exit.
const CLEANUP: Duration = Duration::from_secs(5);

pub async fn run(mut config: Config) -> Result<(), ServeError> {
    let addr = config.server.bind_addr;
    let grace = config.server.shutdown_grace;
    let dev = config.is_development();
    let graphiql = config.graphql.graphiql_enabled;
    let connections = &mut config.server.connections;
    connections.max_connections = http::ensure_descriptors(connections.max_connections);
    let app = App::start(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let metrics_listener = match app.config.server.metrics_bind_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?,
        ),
        None => None,
    };
    tracing::info!(%addr, "listening");
    if let Some(addr) = app.config.server.metrics_bind_addr {
        tracing::info!(%addr, "metrics listening");
    } else if !dev {
        tracing::warn!("METRICS_BIND_ADDR is unset: /metrics is not served");
    }
    if graphiql {
        println!("GraphiQL: http://{addr}/graphql");
    }
    if let Some(warning) = crate::config::banner_warning(&app.config.scan) {
        println!("{warning}");
        tracing::warn!("{warning}");
    }
    if dev {
        println!(
            "Development token: cargo run -- token --sub dev-admin\n\
             Make that user a system admin: cargo run -- user create --subject dev-admin --role SYSTEM_ADMIN --approve\n\
             Then send it as the header  Authorization: Bearer <token>"
        );
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
