//! Accepting connections, each bounded in time and memory, and their number
//! bounded too.
//!
//! `axum::serve` runs hyper without a timer, so hyper's header timeout never
//! applies, and it accepts without limit. Here:
//! - hyper has a timer: a request head must arrive within the header
//!   timeout, and an idle keep-alive connection waits no longer than that
//!   for its next request (hyper runs the same timer while it waits for a
//!   head);
//! - request heads are capped in size;
//! - at most `max_connections` are served at once: at the cap the server
//!   stops accepting and keeps serving the connections it has;
//! - TCP keepalive finds clients that vanished, and `TCP_USER_TIMEOUT`
//!   drops a client that stops reading (unsent data waiting on a zero
//!   window counts, on Linux);
//! - HTTP/1.1 only: cleartext HTTP/2 (h2c) is off. Browsers never use it,
//!   TLS terminates at the balancer, and each h2 connection would need
//!   limits of its own (streams, flow-control windows).

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use socket2::{SockRef, TcpKeepalive};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tower::ServiceExt;

use crate::{app::Shutdown, config::ConnectionLimits};

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, asks every connection to finish its request and close, and
/// resolves once all have. Connections still open when the grace period is
/// over (`cut`) are closed where they are: their downloads are recorded as
/// aborted, their uploads aborted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    cut: Shutdown,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, nothing more is accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        configure(&stream, &limits);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let grace_over = cut.watch();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                },
                () = grace_over => tracing::debug!(%peer, "connection cut at shutdown"),
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Socket options of an accepted connection. Failing to set one is logged,
/// not fatal: the connection still works, only less well guarded.
fn configure(stream: &TcpStream, limits: &ConnectionLimits) {
    // Small answers (headers, a GraphQL reply) must not wait for Nagle.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    let socket = SockRef::from(stream);
    let keepalive = TcpKeepalive::new()
        .with_time(limits.tcp_keepalive)
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "TCP keepalive");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = socket.set_tcp_user_timeout(Some(limits.tcp_user_timeout)) {
        tracing::debug!(error = %e, "TCP_USER_TIMEOUT");
    }
}

/// Raises the process's open-file limit to what `max_connections` needs
/// (every connection is a descriptor, plus the database pool, storage
/// connections and the listeners), as far as the hard limit allows.
/// Returns the number of connections the limit leaves room for.
pub fn ensure_descriptors(max_connections: usize) -> usize {
    const RESERVED: u64 = 256;
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return max_connections;
        }
        let wanted = max_connections as u64 + RESERVED;
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = raised.rlim_cur;
            }
        }
        let room = limit.rlim_cur.saturating_sub(RESERVED).max(1) as usize;
        if room < max_connections {
            tracing::warn!(
                max_connections,
                open_file_limit = limit.rlim_cur,
                "MAX_CONNECTIONS is above what the open-file limit allows; serving {room} at once"
            );
        }
        room.min(max_connections)
    }
    #[cfg(not(unix))]
    max_connections
}
