//! Upload requests that try to make the server read or hold more than it
//! should: refused before the body is read, or cut as soon as they go past
//! what their parts can need, with the server's memory bounded. Against the
//! real binary, over raw sockets, so the client controls every byte.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{ALABAMA, ServerProcess, TestApp};

/// The head of a multipart upload request, declaring `length` bytes.
fn upload_head(token: Option<&str>, length: u64) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /graphql HTTP/1.1\r\nHost: test\r\nApollo-Require-Preflight: true\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {length}\r\n{auth}\r\n"
    )
}

/// What came back, and how many body bytes the client got to send first.
struct Outcome {
    status: u16,
    body_sent: u64,
    took: Duration,
}

/// Sends `head`, then `prefix`, then filler bytes up to `length` body bytes
/// in all, while watching for the answer; stops sending once it arrives or
/// the server stops reading. Fails the test without an answer in `within`.
async fn send(
    server: &ServerProcess,
    head: &str,
    prefix: &[u8],
    length: u64,
    within: Duration,
) -> Outcome {
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let head_sent = Instant::now();
    let prefix = prefix.to_vec();
    let sent = Arc::new(AtomicU64::new(0));
    let counted = sent.clone();
    let sending = async move {
        if writer.write_all(&prefix).await.is_err() {
            return;
        }
        counted.fetch_add(prefix.len() as u64, Ordering::Relaxed);
        let filler = vec![b'x'; 64 * 1024];
        let mut total = prefix.len() as u64;
        while total < length {
            let n = filler.len().min((length - total) as usize);
            if writer.write_all(&filler[..n]).await.is_err() {
                return;
            }
            total += n as u64;
            counted.fetch_add(n as u64, Ordering::Relaxed);
        }
        // Keep the connection open: a client that stalls.
        std::future::pending::<()>().await;
    };
    let sending = tokio::spawn(sending);
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(within, reader.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?}"))
        .unwrap();
    let took = head_sent.elapsed();
    sending.abort();
    let body_sent = sent.load(Ordering::Relaxed);
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line:?}"));
    Outcome {
        status,
        body_sent,
        took,
    }
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_upload_is_refused_before_its_body_is_read() {
    let app = TestApp::sqlite().await;
    let server = app.spawn_process().await;
    let out = send(
        &server,
        &upload_head(None, GIB),
        b"",
        0,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(out.status, 401);
    assert!(out.took < Duration::from_secs(1), "{:?}", out.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_may_not_upload_is_refused_before_the_body_is_read() {
    let app = TestApp::sqlite().await;
    let (_, token) = app
        .regional("regional", &[crate::common::ALABAMA_REGION])
        .await;
    let server = app.spawn_process().await;
    let head = upload_head(Some(&token), GIB);
    let out = send(&server, &head, b"", 0, Duration::from_secs(3)).await;
    assert_eq!(out.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_the_limit_is_refused_at_once() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let server = app
        .spawn_process_with(&[("MAX_UPLOAD_BYTES", "1048576")])
        .await;
    let head = upload_head(Some(&token), 100 * MIB);
    let out = send(&server, &head, b"", 0, Duration::from_secs(3)).await;
    assert_eq!(out.status, 413);
    assert!(out.took < Duration::from_secs(1), "{:?}", out.took);
    app.assert_nothing_stored("refused by its declared length")
        .await;
}

/// Sends a body that is `prefix` followed by filler, declared as 1 GiB, and
/// checks it is cut early with the server's memory bounded.
async fn cut_early_with_bounded_memory(prefix: &[u8]) {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let server = app.spawn_process().await;
    // Warm up, so allocator arenas and the connection pool exist already.
    let head = upload_head(Some(&token), 1024);
    send(&server, &head, b"--B\r\n", 1024, Duration::from_secs(5)).await;
    let before = server.rss();
    let head = upload_head(Some(&token), GIB);
    let out = send(&server, &head, prefix, 256 * MIB, Duration::from_secs(10)).await;
    let grew = server.rss().saturating_sub(before);
    assert_eq!(out.status, 400);
    assert!(
        out.body_sent < 64 * MIB,
        "the server read {} MiB before refusing",
        out.body_sent / MIB
    );
    assert!(out.took < Duration::from_secs(2), "{:?}", out.took);
    assert!(grew <= 16 * MIB, "RSS grew by {} MiB", grew / MIB);
    app.assert_nothing_stored("cut before the file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_reaches_a_boundary_is_cut_early_with_bounded_memory() {
    cut_early_with_bounded_memory(b"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_head_that_never_ends_is_cut_early_with_bounded_memory() {
    cut_early_with_bounded_memory(
        b"--B\r\nContent-Disposition: form-data; name=\"operations\"\r\nX-Pad: ",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_before_the_file_that_stall_are_ended_after_the_header_timeout() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let server = app
        .spawn_process_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")])
        .await;
    let head = upload_head(Some(&token), 10 * MIB);
    let prefix = b"--B\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{\"query\":";
    let out = send(
        &server,
        &head,
        prefix,
        prefix.len() as u64,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(out.status, 400);
    assert!(
        out.took >= Duration::from_millis(900) && out.took < Duration::from_secs(3),
        "{:?}",
        out.took
    );
}
