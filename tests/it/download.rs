//! `GET`/`HEAD /v1/report-files/{id}/download`: streaming, headers, ranges,
//! conditional requests, refusals, faults, and the audit trail.

use std::time::Duration;

use entity::{DownloadOutcome, download_event};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{
    ALABAMA, ALASKA, Db, S3Server, ServerProcess, TestApp, error_codes, header, sha256_hex,
    storage_tests, text, upload_input, wait_until,
};

/// Whether every event has `outcome` and, if given, `bytes_sent`.
fn all_events_are(
    events: &[download_event::Model],
    outcome: DownloadOutcome,
    bytes_sent: Option<i64>,
) -> bool {
    events
        .iter()
        .all(|e| e.outcome == outcome && bytes_sent.is_none_or(|b| e.bytes_sent == b))
}

async fn a_download_has_every_header(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "report.ts01", text(1000))
        .await;
    let res = app.download(&token, &f.url, &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-length"), Some("1000"));
    assert_eq!(header(&res, "content-type"), Some("text/plain"));
    assert_eq!(
        header(&res, "etag"),
        Some(format!("\"{}\"", f.sha256).as_str())
    );
    assert!(httpdate::parse_http_date(header(&res, "last-modified").unwrap()).is_ok());
    assert_eq!(header(&res, "accept-ranges"), Some("bytes"));
    assert_eq!(
        header(&res, "content-disposition"),
        Some("attachment; filename=\"report.ts01\"; filename*=UTF-8''report.ts01")
    );
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    assert_eq!(header(&res, "x-content-type-options"), Some("nosniff"));
    assert_eq!(res.bytes().await.unwrap(), f.bytes);
    let events = app.download_events(f.id, 1).await;
    assert_eq!(events[0].outcome, DownloadOutcome::Completed);
    assert_eq!(events[0].bytes_sent, 1000);
    assert_eq!(events[0].client_addr.as_deref(), Some("127.0.0.1"));
    assert!(events[0].finished_at.unwrap() >= events[0].started_at);
    assert_eq!(app.metric("reportfiles_download_bytes_total").await, 1000);
    assert_eq!(
        app.metric("reportfiles_downloads_total{outcome=\"COMPLETED\"}")
            .await,
        1
    );
    assert_eq!(app.metric("reportfiles_upload_bytes_total").await, 1000);
    assert_eq!(app.metric("reportfiles_active_downloads").await, 0);
}

async fn hostile_file_names_are_safe_in_the_header(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let long = format!("{}.txt", "é".repeat(120));
    for (name, fallback, encoded) in [
        ("quote\"s.txt", "quote_s.txt", "quote%22s.txt"),
        ("back\\slash.txt", "slash.txt", "slash.txt"),
        ("semi;colon.txt", "semi_colon.txt", "semi%3Bcolon.txt"),
        (
            "Données été.txt",
            "Donn_es _t_.txt",
            "Donn%C3%A9es%20%C3%A9t%C3%A9.txt",
        ),
        ("100% real.txt", "100_ real.txt", "100%25%20real.txt"),
    ] {
        let f = app.upload_file(&token, ALABAMA, name, text(3)).await;
        let res = app.download(&token, &f.url, &[]).await;
        let d = header(&res, "content-disposition").unwrap();
        assert_eq!(
            d,
            format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"),
            "{name}"
        );
    }
    let f = app.upload_file(&token, ALABAMA, &long, text(3)).await;
    let res = app.download(&token, &f.url, &[]).await;
    let d = header(&res, "content-disposition").unwrap();
    assert!(d.ends_with(&format!("{}.txt", "%C3%A9".repeat(120))), "{d}");
    // CR/LF can never reach a header: such names are refused at upload.
    let (_, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "a\r\nSet-Cookie: x=1.txt",
            text(3),
        )
        .await;
    assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"]);
}

async fn ranges_give_206_with_content_range(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "r.txt", text(1000)).await;
    for (range, start, end) in [
        ("bytes=0-0", 0, 0),
        ("bytes=999-999", 999, 999),
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=0-", 0, 999),
        ("bytes=0-5000", 0, 999),
        ("bytes=-5000", 0, 999),
    ] {
        let res = app.download(&token, &f.url, &[("range", range)]).await;
        assert_eq!(res.status().as_u16(), 206, "{range}");
        assert_eq!(
            header(&res, "content-range"),
            Some(format!("bytes {start}-{end}/1000").as_str()),
            "{range}"
        );
        assert_eq!(
            header(&res, "content-length"),
            Some((end - start + 1).to_string().as_str()),
            "{range}"
        );
        assert_eq!(res.bytes().await.unwrap(), f.bytes[start..=end], "{range}");
    }
    let events = app.download_events(f.id, 8).await;
    assert!(all_events_are(&events, DownloadOutcome::Completed, None));
    // Events are written as each response ends, so look them up by range.
    let sent = |range: &str| {
        events
            .iter()
            .find(|e| e.requested_range.as_deref() == Some(range))
            .map(|e| e.bytes_sent)
    };
    assert_eq!(sent("bytes=0-0"), Some(1));
    assert_eq!(sent("bytes=10-19"), Some(10));
    assert_eq!(sent("bytes=-5"), Some(5));
}

async fn unsatisfiable_ranges_give_416(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "r.txt", text(1000)).await;
    for range in ["bytes=1000-", "bytes=1000-1001", "bytes=5000-6000"] {
        let res = app.download(&token, &f.url, &[("range", range)]).await;
        assert_eq!(res.status().as_u16(), 416, "{range}");
        assert_eq!(
            header(&res, "content-range"),
            Some("bytes */1000"),
            "{range}"
        );
    }
    // Nothing of the file was sent: not a download. Events are written in
    // order, so once the next download's event is there, a 416's would be.
    let whole = app.download(&token, &f.url, &[]).await;
    assert_eq!(whole.bytes().await.unwrap().len(), f.bytes.len());
    let events = app.download_events(f.id, 1).await;
    assert!(all_events_are(
        &events,
        DownloadOutcome::Completed,
        Some(1000)
    ));
}

async fn malformed_or_multiple_ranges_are_ignored(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "r.txt", text(1000)).await;
    for range in [
        "bytes=abc",
        "bytes=5-1",
        "items=0-5",
        "bytes=",
        "bytes=0-1,5-6",
        "bytes=--1",
    ] {
        let res = app.download(&token, &f.url, &[("range", range)]).await;
        assert_eq!(res.status().as_u16(), 200, "{range}");
        assert_eq!(res.bytes().await.unwrap().len(), 1000, "{range}");
    }
}

async fn if_range_sends_the_range_only_for_the_current_version(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "r.txt", text(100)).await;
    let first_ten_if = async |validator: &str| {
        app.download(
            &token,
            &f.url,
            &[("range", "bytes=0-9"), ("if-range", validator)],
        )
        .await
    };
    let etag = format!("\"{}\"", f.sha256);
    assert_eq!(first_ten_if(&etag).await.status().as_u16(), 206);
    let res = first_ten_if("\"other\"").await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 100);
    let res = app.download(&token, &f.url, &[]).await;
    let modified = header(&res, "last-modified").unwrap().to_string();
    assert_eq!(first_ten_if(&modified).await.status().as_u16(), 206);
    let earlier = first_ten_if("Sun, 06 Nov 1994 08:49:37 GMT").await;
    assert_eq!(earlier.status().as_u16(), 200);
}

async fn conditional_requests_give_304(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "c.txt", text(100)).await;
    let etag = format!("\"{}\"", f.sha256);
    let res = app.download(&token, &f.url, &[]).await;
    let modified = header(&res, "last-modified").unwrap().to_string();
    for headers in [
        vec![("if-none-match", etag.as_str())],
        vec![("if-none-match", "\"x\", W/\"nope\", *")],
        vec![("if-modified-since", modified.as_str())],
        vec![("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
    ] {
        let res = app.download(&token, &f.url, &headers).await;
        assert_eq!(res.status().as_u16(), 304, "{headers:?}");
        assert_eq!(header(&res, "etag"), Some(etag.as_str()));
        assert!(res.bytes().await.unwrap().is_empty());
    }
    for headers in [
        vec![("if-none-match", "\"other\"")],
        vec![("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
        // If-None-Match wins over If-Modified-Since.
        vec![
            ("if-none-match", "\"other\""),
            ("if-modified-since", modified.as_str()),
        ],
        vec![("if-modified-since", "not a date")],
    ] {
        let res = app.download(&token, &f.url, &headers).await;
        assert_eq!(res.status().as_u16(), 200, "{headers:?}");
    }
    let events = app.download_events(f.id, 9).await;
    let not_modified = events
        .iter()
        .filter(|e| e.outcome == DownloadOutcome::NotModified)
        .count();
    assert_eq!(not_modified, 4);
}

async fn head_sends_headers_without_a_body(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "h.txt", text(1234)).await;
    let res = app
        .client
        .head(app.url(&f.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-length"), Some("1234"));
    assert_eq!(
        header(&res, "etag"),
        Some(format!("\"{}\"", f.sha256).as_str())
    );
    assert!(res.bytes().await.unwrap().is_empty());
    let res = app
        .client
        .head(app.url(&f.url))
        .bearer_auth(&token)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(header(&res, "content-length"), Some("10"));
    // HEAD is not a download: only the GET after it is recorded (events
    // are written in order, so a HEAD's would be there by then).
    let whole = app.download(&token, &f.url, &[]).await;
    assert_eq!(whole.bytes().await.unwrap().len(), f.bytes.len());
    let events = app.download_events(f.id, 1).await;
    assert!(all_events_are(
        &events,
        DownloadOutcome::Completed,
        Some(1234)
    ));
    assert_eq!(
        app.metric("reportfiles_downloads_total{outcome=\"COMPLETED\"}")
            .await,
        1,
        "download metrics count GETs that sent a body"
    );
}

async fn without_credentials_the_answer_is_401(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "a.txt", text(10)).await;
    for auth in [
        None,
        Some("Bearer garbage"),
        Some("Bearer "),
        Some("Basic dXNlcjpwYXNz"),
    ] {
        let mut req = app.get(&f.url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{auth:?}");
        // A plain challenge without credentials; with refused ones, why.
        let challenge = header(&res, "www-authenticate").unwrap();
        match auth {
            None => assert_eq!(challenge, "Bearer"),
            Some(_) => assert!(
                challenge.starts_with("Bearer error=\"invalid_token\", error_description="),
                "{challenge}"
            ),
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    }
    let expired = app
        .get(&f.url)
        .header("cookie", "reportfiles_session=expired.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status().as_u16(), 401);
}

async fn what_a_user_may_not_download_is_404(app: TestApp) {
    let (_, own) = app.analyst("analyst", ALABAMA).await;
    let (_, other) = app.analyst("alaskan", ALASKA).await;
    let (_, regional) = app.regional("regional", &[4]).await;
    let (_, pending) = app.pending("pending").await;
    let f = app.upload_file(&own, ALABAMA, "a.txt", text(10)).await;
    for (token, who) in [
        (&other, "another STT's analyst"),
        (&regional, "regional staff"),
        (&pending, "pending user"),
    ] {
        let res = app.download(token, &f.url, &[]).await;
        assert_eq!(res.status().as_u16(), 404, "{who}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{who}");
    }
    for path in [
        "/v1/report-files/6d9c4c9e-9f0e-4c0e-8f53-0c1d2e3f4a5b/download".to_string(),
        "/v1/report-files/not-a-uuid/download".to_string(),
        "/v1/report-files/..%2F..%2Fetc%2Fpasswd/download".to_string(),
    ] {
        let res = app.download(&own, &path, &[]).await;
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    let (_, admin) = app.admin().await;
    let res = app.download(&admin, &f.url, &[]).await;
    assert_eq!(res.status().as_u16(), 200, "admins download all");
    assert_eq!(res.bytes().await.unwrap(), f.bytes);
    // Refusals leave no trace in the file's audit: only the admin's download.
    assert_eq!(
        app.download_events(f.id, 1).await[0].outcome,
        DownloadOutcome::Completed
    );
}

async fn a_file_read_before_is_still_refused_to_others(app: TestApp) {
    let (_, own) = app.analyst("analyst", ALABAMA).await;
    let (_, other) = app.analyst("alaskan", ALASKA).await;
    let (_, regional) = app.regional("regional", &[4]).await;
    let f = app.upload_file(&own, ALABAMA, "a.txt", text(10)).await;
    // The owner's download puts the file's metadata in the instance's cache.
    assert_eq!(
        app.download(&own, &f.url, &[]).await.bytes().await.unwrap(),
        f.bytes
    );
    assert_eq!(
        app.download(&other, &f.url, &[]).await.status().as_u16(),
        404
    );
    assert_eq!(
        app.download(&regional, &f.url, &[]).await.status().as_u16(),
        404
    );
}

async fn the_session_cookie_authenticates_downloads(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "a.txt", text(10)).await;
    let session = app.session_cookie(&token).await;
    let res = app
        .get(&f.url)
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap(), f.bytes);
}

async fn a_client_that_hangs_up_is_recorded_as_aborted(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "big.txt", text(32 << 20))
        .await;
    let res = app.download(&token, &f.url, &[]).await;
    let mut stream = res.bytes_stream();
    let mut got = 0;
    while got < 1 << 20 {
        got += stream.next().await.unwrap().unwrap().len();
    }
    drop(stream);
    let events = app.download_events(f.id, 1).await;
    assert_eq!(events[0].outcome, DownloadOutcome::Aborted);
    assert!(
        events[0].bytes_sent >= got as i64 && events[0].bytes_sent < 32 << 20,
        "{}",
        events[0].bytes_sent
    );
}

async fn the_first_byte_arrives_before_the_object_is_read(app: TestApp) {
    // Flat memory and streaming: a 64 MiB body is read in small chunks, and
    // the first one is here while most of the object is still in storage.
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "big.txt", text(64 << 20))
        .await;
    let res = app.download(&token, &f.url, &[]).await;
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.len() <= 1 << 20, "first chunk {} bytes", first.len());
    let mut body = Vec::with_capacity(64 << 20);
    body.extend_from_slice(&first);
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(body.len(), 64 << 20);
    assert_eq!(sha256_hex(&body), f.sha256);
}

async fn admins_read_the_download_audit(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "a.txt", text(10)).await;
    app.download(&token, &f.url, &[("user-agent", "audit-test/1.0")])
        .await
        .bytes()
        .await
        .unwrap();
    app.download_events(f.id, 1).await;
    let (_, admin) = app.admin().await;
    let q = "query($id: ID!) { downloadEvents(reportFileId: $id) { edges { node { outcome bytesSent userAgent user { subject } reportFileId } } } }";
    let body = app
        .gql(Some(&admin), q, json!({ "id": f.id.to_string() }))
        .await;
    assert_eq!(
        body["data"]["downloadEvents"]["edges"][0]["node"],
        json!({ "outcome": "COMPLETED", "bytesSent": 10, "userAgent": "audit-test/1.0", "user": { "subject": "analyst" }, "reportFileId": f.id.to_string() })
    );
    let body = app
        .gql(Some(&token), q, json!({ "id": f.id.to_string() }))
        .await;
    assert_eq!(error_codes(&body), vec!["FORBIDDEN"]);
}

storage_tests!(
    a_download_has_every_header,
    hostile_file_names_are_safe_in_the_header,
    ranges_give_206_with_content_range,
    unsatisfiable_ranges_give_416,
    malformed_or_multiple_ranges_are_ignored,
    if_range_sends_the_range_only_for_the_current_version,
    conditional_requests_give_304,
    head_sends_headers_without_a_body,
    without_credentials_the_answer_is_401,
    what_a_user_may_not_download_is_404,
    the_session_cookie_authenticates_downloads,
    a_file_read_before_is_still_refused_to_others,
    a_client_that_hangs_up_is_recorded_as_aborted,
    the_first_byte_arrives_before_the_object_is_read,
    admins_read_the_download_audit,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_before_the_response_gives_503() {
    let s3 = S3Server::private();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "a.txt", text(10)).await;
    s3.stop();
    let res = app.download(&token, &f.url, &[]).await;
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "STORAGE_UNAVAILABLE");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no storage details: {body}"
    );
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["storage"],
        "unavailable"
    );
    assert_eq!(
        app.download_events(f.id, 1).await[0].outcome,
        DownloadOutcome::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_mid_stream_cuts_the_connection() {
    let s3 = S3Server::private();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let size = 64 << 20;
    let f = app
        .upload_file(&token, ALABAMA, "big.txt", text(size))
        .await;
    let res = app.download(&token, &f.url, &[]).await;
    assert_eq!(
        header(&res, "content-length"),
        Some(size.to_string().as_str())
    );
    let mut stream = res.bytes_stream();
    let mut got = 0;
    while got < 1 << 20 {
        got += stream.next().await.unwrap().unwrap().len();
    }
    s3.stop();
    let mut error = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got += c.len(),
            Err(_) => {
                error = true;
                break;
            }
        }
    }
    assert!(error, "the body must end in an error, not look complete");
    assert!(got < size, "got {got} of {size}");
    let events = app.download_events(f.id, 1).await;
    assert_eq!(events[0].outcome, DownloadOutcome::Failed);
    assert!(events[0].bytes_sent < size as i64);
}

/// Starts downloading `path` from `server` and reads the first chunk: the
/// rest of the body, and how many bytes that chunk had.
async fn start_download(
    app: &TestApp,
    server: &ServerProcess,
    token: &str,
    path: &str,
) -> (
    impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + use<>,
    usize,
) {
    let res = app
        .client
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap().len();
    (stream, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_download_finish_and_refuses_new_ones() {
    let app = TestApp::new(Db::Sqlite, None, &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let size = 16 << 20;
    let f = app
        .upload_file(&token, ALABAMA, "big.txt", text(size))
        .await;
    let mut server = app
        .spawn_process_with(&[("SHUTDOWN_GRACE_SECS", "20")])
        .await;
    let (mut stream, mut got) = start_download(&app, &server, &token, &f.url).await;
    server.terminate();
    // The download is held up by this client, which reads no further yet.
    wait_until(
        Duration::from_secs(5),
        "a stopping server takes no new connections",
        async || !server.accepts_connections().await,
    )
    .await;
    while let Some(chunk) = stream.next().await {
        got += chunk.unwrap().len();
    }
    assert_eq!(got, size, "the in-flight download finished");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_the_server_exits_anyway() {
    let app = TestApp::new(Db::Sqlite, None, &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app
        .upload_file(&token, ALABAMA, "big.txt", text(16 << 20))
        .await;
    let mut server = app
        .spawn_process_with(&[("SHUTDOWN_GRACE_SECS", "1")])
        .await;
    // A client that reads one chunk and then stalls.
    let _stalled = start_download(&app, &server, &token, &f.url).await;
    server.terminate();
    // The stalled download would hold it forever: the grace period ends it.
    server.wait_exit(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_slower_than_the_storage_read_timeout_completes() {
    // Storage calls are bounded by idle time, never by total time: a client
    // that takes longer than the read timeout, reading steadily, is not cut.
    let s3 = S3Server::shared();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[("STORAGE_READ_TIMEOUT_SECS", "1")]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let size = 16 << 20;
    let f = app
        .upload_file(&token, ALABAMA, "slow.txt", text(size))
        .await;
    let started = std::time::Instant::now();
    let res = app.download(&token, &f.url, &[]).await;
    let mut stream = res.bytes_stream();
    let mut got = 0;
    while let Some(chunk) = stream.next().await {
        let n = chunk.unwrap().len();
        got += n;
        // This sleep is the behaviour under test, not a wait: a client that
        // reads steadily but slowly, about 6 MB/s, some 2.7 s for the file.
        tokio::time::sleep(Duration::from_micros(n as u64 / 6)).await;
    }
    assert_eq!(got, size);
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.download_events(f.id, 1).await[0].outcome,
        DownloadOutcome::Completed
    );
}

/// A file out of reach and an id that names nothing take the same path:
/// the same statements the first time, none the next (both remembered), so
/// their 404s cannot be told apart by timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_file_and_a_missing_one_cost_the_same() {
    let app = TestApp::sqlite_with(&[("AUTH_CACHE_TTL_MS", "60000")]).await;
    let (_, alaskan) = app.analyst("alaskan", ALASKA).await;
    let (_, analyst) = app.analyst("analyst", ALABAMA).await;
    let theirs = app.upload_file(&alaskan, ALASKA, "a.txt", text(10)).await;
    let missing = format!("/v1/report-files/{}/download", uuid::Uuid::new_v4());
    // Signed in and remembered: only the file lookup is left to count.
    assert_eq!(
        app.download(&analyst, "/v1/report-files/x/download", &[])
            .await
            .status(),
        404
    );
    let cost = async |path: &str| {
        let before = app.sql_statements();
        let res = app.download(&analyst, path, &[]).await;
        assert_eq!(res.status().as_u16(), 404, "{path}");
        app.sql_statements() - before
    };
    let forbidden_first = cost(&theirs.url).await;
    let missing_first = cost(&missing).await;
    assert_eq!(forbidden_first, missing_first);
    assert_eq!(forbidden_first, 1, "one lookup by id");
    assert_eq!((cost(&theirs.url).await, cost(&missing).await), (0, 0));
}
