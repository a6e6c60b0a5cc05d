//! Outages and shutdown: the database cut off (through a proxy the test
//! controls, so the shared PostgreSQL keeps serving everyone else), and
//! SIGTERM with downloads in flight. Fast honest answers, and no download
//! event lost.

use std::time::{Duration, Instant};

use entity::DownloadOutcome;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{ALABAMA, Proxy, TestApp, error_codes, postgres_addr, text, wait_for};

/// A server whose database the test can cut off; users and files are
/// remembered for a minute, so downloads go on during the outage.
async fn behind_proxy() -> (Proxy, TestApp) {
    let proxy = Proxy::start(postgres_addr()).await;
    let app = TestApp::postgres_behind(&proxy, &[("AUTH_CACHE_TTL_MS", "60000")]).await;
    (proxy, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_requests_answer_503_within_a_second() {
    let (proxy, app) = behind_proxy().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app.upload_file(&token, ALABAMA, "a.txt", text(100)).await;
    proxy.cut();
    // A user the server has not seen yet needs the database.
    let (_, stranger) = app.analyst("stranger", ALABAMA).await;
    let started = Instant::now();
    let (status, body) = app
        .gql_status(Some(&stranger), "{ me { subject } }", json!({}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_codes(&body), ["DATABASE_UNAVAILABLE"]);

    let started = Instant::now();
    let res = app.download(&stranger, &file.url, &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res.status().as_u16(), 503);

    let started = Instant::now();
    let res = app.get("/readyz").send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res.status().as_u16(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["storage"], "ok");

    proxy.restore();
    wait_for(
        Duration::from_secs(5),
        "the server is ready again",
        async || {
            let res = app.get("/readyz").send().await.unwrap();
            (res.status().as_u16() == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_during_a_database_outage_are_recorded_once_it_is_back() {
    let (proxy, app) = behind_proxy().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app.upload_file(&token, ALABAMA, "a.txt", text(1000)).await;
    // Known to the server: the user and the file are served from memory.
    let res = app.download(&token, &file.url, &[]).await;
    assert_eq!(res.bytes().await.unwrap().len(), 1000);
    app.download_events(file.id, 1).await;
    proxy.cut();
    for _ in 0..2 {
        let res = app.download(&token, &file.url, &[]).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.bytes().await.unwrap().len(), 1000);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the outage lasts a while
    assert_eq!(app.download_events_now(file.id).await.len(), 1);
    proxy.restore();
    let events = app.download_events(file.id, 3).await;
    assert!(
        events
            .iter()
            .all(|e| e.outcome == DownloadOutcome::Completed && e.bytes_sent == 1000),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_the_grace_period_records_each_cut_download_as_aborted() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app
        .upload_file(&token, ALABAMA, "big.txt", text(32 << 20))
        .await;
    let mut server = app
        .spawn_process_with(&[("SHUTDOWN_GRACE_SECS", "1")])
        .await;
    // Three clients that read a little and then wait: still downloading
    // when the grace period ends.
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "GET {} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n",
            file.url
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        readers.push(s);
    }
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    // Written before the process exited: no waiting needed.
    let events = app.download_events_now(file.id).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.outcome == DownloadOutcome::Aborted && (e.bytes_sent as u64) < 32 << 20),
        "{events:?}"
    );
    drop(readers);
}
