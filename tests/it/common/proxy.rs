//! A TCP proxy in front of PostgreSQL that a test can cut, as an outage
//! would look to the server (open connections reset, new ones refused),
//! and restore. The shared PostgreSQL keeps serving every other test.

use std::net::SocketAddr;

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Proxy {
    pub port: u16,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, watching) = watch::channel(true);
        let task = tokio::spawn(forward(listener, port, target, watching));
        Proxy { port, up, task }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn forward(
    mut listener: TcpListener,
    port: u16,
    target: SocketAddr,
    mut up: watch::Receiver<bool>,
) {
    loop {
        let watching = up.clone();
        let cut = tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(pipe(client, target, watching));
                }
                false
            }
            down = up.wait_for(|up| !*up) => down.is_ok(),
        };
        if cut {
            // No listener: connecting is refused.
            drop(listener);
            if up.wait_for(|up| *up).await.is_err() {
                return;
            }
            listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        }
    }
}

async fn pipe(mut client: TcpStream, target: SocketAddr, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
