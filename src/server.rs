//! Running the server: start the application, listen, and stop gracefully
//! on SIGTERM or Ctrl-C (stop accepting, let in-flight transfers finish
//! within the grace period, then exit).

use tokio::{net::TcpListener, sync::watch};

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
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn run(config: Config) -> Result<(), ServeError> {
    let addr = config.server.bind_addr;
    let grace = config.server.shutdown_grace;
    let dev = config.is_development();
    let graphiql = config.graphql.graphiql_enabled;
    let app = App::start(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    tracing::info!(%addr, "listening");
    if graphiql {
        println!("GraphiQL: http://{addr}/graphql");
    }
    if dev {
        println!(
            "Development token: cargo run -- token --sub dev-admin\n\
             Make that user a system admin: cargo run -- user create --subject dev-admin --role SYSTEM_ADMIN --approve\n\
             Then send it as the header  Authorization: Bearer <token>"
        );
    }
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let mut until_stop = stopping.clone();
    let server = http::serve(listener, app.clone(), async move {
        let _ = until_stop.wait_for(|s| *s).await;
    });
    let mut after_stop = stopping;
    tokio::select! {
        result = server => result?,
        // In-flight transfers get the grace period, then the process exits.
        _ = async {
            let _ = after_stop.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "grace period over: exiting with transfers still running"),
    }
    // Uploads still running stop now and abort their multipart uploads;
    // the process exits once those aborts are through (or the wait is over).
    app.shutdown.end_grace();
    app.storage.wait_for_aborts(ABORTS_AT_EXIT).await;
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
