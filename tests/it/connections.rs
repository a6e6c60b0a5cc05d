//! Connections under hostile traffic: half-sent heads, idle keep-alive,
//! the connection cap, cleartext HTTP/2, a client that stops reading. Each
//! against the real binary, with bounds small enough to observe.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{ALABAMA, TestApp, text, wait_for};

/// Reads until the server closes the connection (end of stream or a reset),
/// for at most `within`; `Some(elapsed)` when it did.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
}

/// Sends one request head and reads the first bytes of the answer.
async fn answered(stream: &mut TcpStream, head: &str, within: Duration) -> Option<String> {
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(within, stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_request_heads_are_closed_within_the_header_timeout_while_a_download_completes() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app
        .upload_file(&token, ALABAMA, "big.txt", text(8 << 20))
        .await;
    let server = app
        .spawn_process_with(&[("HTTP_HEADER_TIMEOUT_SECS", "2")])
        .await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // A real client is served meanwhile.
    let res = app
        .client
        .get(format!("{}{}", server.base, file.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 8 << 20);
    for (i, s) in slow.iter_mut().enumerate() {
        let closed = closed_within(s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "half-sent head {i} still open after 5 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_within_the_header_timeout() {
    let app = TestApp::sqlite().await;
    let server = app
        .spawn_process_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")])
        .await;
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    let answer = answered(&mut s, HEALTHZ, Duration::from_secs(2)).await;
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    let closed = closed_within(&mut s, Duration::from_secs(4)).await;
    let closed = closed.expect("an idle keep-alive connection is closed");
    assert!(
        closed >= Duration::from_millis(900),
        "closed too early: {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_wait_while_open_ones_are_served() {
    let app = TestApp::sqlite().await;
    let server = app
        .spawn_process_with(&[("MAX_CONNECTIONS", "4"), ("HTTP_HEADER_TIMEOUT_SECS", "30")])
        .await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr()).await.unwrap();
        let answer = answered(&mut s, HEALTHZ, Duration::from_secs(2)).await;
        assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
        open.push(s);
    }
    // The kernel completes the handshake, but the server does not take it.
    let mut fifth = TcpStream::connect(server.addr()).await.unwrap();
    assert_eq!(
        answered(&mut fifth, HEALTHZ, Duration::from_millis(500)).await,
        None,
        "a fifth connection is not served at the cap"
    );
    // The connections it has are still served.
    let again = answered(&mut open[0], HEALTHZ, Duration::from_secs(2)).await;
    assert!(again.unwrap().starts_with("HTTP/1.1 200"));
    // One leaves; the fifth is taken and answered.
    drop(open.pop());
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), fifth.read(&mut buf))
        .await
        .expect("the waiting connection is served once a slot frees")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_http2_is_not_spoken() {
    let app = TestApp::sqlite().await;
    let server = app.spawn_process().await;
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("the server answers or closes")
        .unwrap_or(0);
    // An HTTP/2 server would answer with a SETTINGS frame (type 4 at byte 3).
    let h2_settings = n >= 9 && buf[3] == 4;
    assert!(!h2_settings, "the server spoke HTTP/2: {:?}", &buf[..n]);
    if n > 0 {
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_download_is_dropped() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app
        .upload_file(&token, ALABAMA, "big.txt", text(64 << 20))
        .await;
    let server = app
        .spawn_process_with(&[("TCP_USER_TIMEOUT_SECS", "2")])
        .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket
        .connect(server.addr().parse().unwrap())
        .await
        .unwrap();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n",
        file.url
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Read nothing: the server's sends fill both buffers and stop.
    let events = wait_for(
        Duration::from_secs(30),
        "the stalled download is recorded",
        async || {
            let events = app.download_events_now(file.id).await;
            (!events.is_empty()).then_some(events)
        },
    )
    .await;
    assert_eq!(events[0].outcome, entity::DownloadOutcome::Aborted);
    assert!((events[0].bytes_sent as u64) < 64 << 20);
    drop(s);
}
