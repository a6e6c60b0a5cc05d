//! Virus scanning: the clamd client against the real, private clamds of
//! `scripts/test` (and against fake ones that misbehave), and the
//! `scanEvents` audit query.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::common::clamd::{
    ClamdAddr, ScanError, Scanner, Verdict, av_marker, clamd, eicar, limited_clamd, scanner,
};
use crate::common::{free_port, text};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Feeds `bytes` to a new session in chunks of `chunk` bytes and returns
/// clamd's verdict.
async fn scan(s: &Scanner, bytes: &[u8], chunk: usize) -> Result<Verdict, ScanError> {
    let mut session = s.start().await?;
    for piece in bytes.chunks(chunk) {
        session.feed(piece).await?;
    }
    assert_eq!(session.bytes_sent(), bytes.len() as u64);
    session.finish().await
}

fn infected_with(verdict: Result<Verdict, ScanError>, name: &str) {
    match verdict {
        Ok(Verdict::Infected { signature }) => {
            assert!(signature.contains(name), "{signature} should name {name}")
        }
        other => panic!("expected {name}, got {other:?}"),
    }
}

/// Valid multi-line TANF-shaped text with the test marker as the line at
/// `at` bytes (rounded to a line start).
fn tanf_file_with_marker(len: usize, at: usize) -> (Vec<u8>, usize) {
    let body = text(len);
    let start = body[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let mut file = body[..start].to_vec();
    file.extend_from_slice(av_marker().as_bytes());
    file.push(b'\n');
    file.extend_from_slice(&body[start..]);
    (file, start)
}

#[tokio::test]
async fn a_clean_text_file_is_clean() {
    let s = scanner(clamd(), TIMEOUT);
    assert_eq!(
        scan(&s, &text(3 << 20), 64 << 10).await.unwrap(),
        Verdict::Clean
    );
}

#[tokio::test]
async fn eicar_is_infected_and_named() {
    let s = scanner(clamd(), TIMEOUT);
    infected_with(scan(&s, &eicar(), 1024).await, "Eicar-Test-Signature");
}

#[tokio::test]
async fn the_tanf_marker_is_found_where_it_straddles_two_chunks() {
    let s = scanner(clamd(), TIMEOUT);
    let (file, start) = tanf_file_with_marker(2 << 20, 1 << 20);
    // One chunk ends in the middle of the marker line.
    let split = start + av_marker().len() / 2;
    let mut session = s.start().await.unwrap();
    session.feed(&file[..split]).await.unwrap();
    session.feed(&file[split..]).await.unwrap();
    infected_with(session.finish().await, "Reportfiles-Tanf-Test-Marker");
    // Many tiny chunks, and one chunk larger than the client's largest
    // piece (split by `feed` itself, at 1 MiB, inside the marker here).
    infected_with(scan(&s, &file, 7).await, "Reportfiles-Tanf-Test-Marker");
    let (file, _) = tanf_file_with_marker(3 << 20, (1 << 20) - 10);
    infected_with(
        scan(&s, &file, file.len()).await,
        "Reportfiles-Tanf-Test-Marker",
    );
    // The same file without the marker is clean.
    assert_eq!(
        scan(&s, &text(3 << 20), 7 << 10).await.unwrap(),
        Verdict::Clean
    );
}

#[tokio::test]
async fn empty_chunks_do_not_end_the_stream() {
    let s = scanner(clamd(), TIMEOUT);
    let mut session = s.start().await.unwrap();
    session.feed(b"").await.unwrap();
    session.feed(&eicar()).await.unwrap();
    session.feed(b"").await.unwrap();
    infected_with(session.finish().await, "Eicar-Test-Signature");
}

#[tokio::test]
async fn version_and_ping_answer() {
    let s = scanner(clamd(), TIMEOUT);
    s.ping().await.unwrap();
    let version = s.version().await.unwrap();
    assert!(version.starts_with("ClamAV "), "{version}");
    assert_eq!(s.cached_version().as_deref(), Some(&*version));
    let session = s.start().await.unwrap();
    assert_eq!(session.engine_version(), &*version);
}

#[tokio::test]
async fn an_unreachable_clamd_fails_fast() {
    let nobody = ClamdAddr::Tcp {
        host: "127.0.0.1".into(),
        port: free_port(),
    };
    let no_socket = ClamdAddr::Unix("/nonexistent/clamd.ctl".into());
    for addr in [nobody, no_socket] {
        let s = scanner(addr.clone(), Duration::from_secs(30));
        let began = Instant::now();
        let err = s.start().await.err().expect("no session without clamd");
        assert!(matches!(err, ScanError::Unreachable { .. }), "{err:?}");
        assert!(s.ping().await.is_err());
        let took = began.elapsed();
        eprintln!("{addr}: failed in {took:?}: {err}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
}

#[tokio::test]
async fn a_stream_over_stream_max_length_is_an_error_not_clean() {
    let s = scanner(limited_clamd(), TIMEOUT);
    assert_eq!(
        scan(&s, &text(512 << 10), 64 << 10).await.unwrap(),
        Verdict::Clean
    );
    match scan(&s, &text(4 << 20), 64 << 10).await {
        Err(ScanError::Refused(message)) => {
            assert!(message.contains("size limit"), "{message}")
        }
        other => panic!("expected clamd's size-limit error, got {other:?}"),
    }
}

/// A fake clamd: answers `VERSION`; what it does with `INSTREAM` is
/// `instream`'s choice (given the connection after the command).
async fn fake_clamd<F, Fut>(instream: F) -> ClamdAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut command = [0u8; 10];
            if conn.read_exact(&mut command[..8]).await.is_err() {
                continue;
            }
            if &command[..8] == b"zVERSION" {
                let _ = conn.read_exact(&mut command[..1]).await;
                let _ = conn.write_all(b"ClamAV 0.0.0-fake\0").await;
            } else {
                let _ = conn.read_exact(&mut command[8..]).await;
                tokio::spawn(instream(conn));
            }
        }
    });
    ClamdAddr::Tcp {
        host: "127.0.0.1".into(),
        port,
    }
}

/// Holds `conn` open for a minute without a word.
async fn hold(conn: tokio::net::TcpStream) {
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(conn);
}

#[tokio::test]
async fn a_clamd_that_never_answers_times_out() {
    let timeout = Duration::from_secs(1);
    let slack = Duration::from_millis(1500);

    // Accepts connections and says nothing, not even to VERSION.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::spawn(hold(conn));
        }
    });
    let mute = scanner(
        ClamdAddr::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        timeout,
    );
    let began = Instant::now();
    let err = mute.start().await.err().expect("no session");
    assert!(err.is_timeout(), "{err:?}");
    assert!(began.elapsed() < timeout + slack, "{:?}", began.elapsed());
    let began = Instant::now();
    assert!(mute.ping().await.unwrap_err().is_timeout());
    assert!(began.elapsed() < Duration::from_secs(1));

    // Reads the whole stream, then never gives a verdict.
    let sink = fake_clamd(|mut conn| async move {
        let mut buf = vec![0u8; 64 << 10];
        while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    let s = scanner(sink, timeout);
    let mut session = s.start().await.unwrap();
    session.feed(&text(1 << 20)).await.unwrap();
    let began = Instant::now();
    let err = session.finish().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let took = began.elapsed();
    assert!(took >= timeout && took < timeout + slack, "{took:?}");

    // Stops reading: the socket's buffers fill, `feed` waits (backpressure)
    // and gives up after the timeout instead of buffering.
    let stalled = fake_clamd(hold).await;
    let s = scanner(stalled, timeout);
    let mut session = s.start().await.unwrap();
    let chunk = text(1 << 20);
    let began = Instant::now();
    let err = loop {
        if let Err(e) = session.feed(&chunk).await {
            break e;
        }
        assert!(
            session.bytes_sent() < 256 << 20,
            "256 MiB taken by a clamd that reads nothing"
        );
    };
    assert!(err.is_timeout(), "{err:?}");
    eprintln!(
        "a stalled clamd took {} KiB before feed waited; gave up after {:?}",
        session.bytes_sent() >> 10,
        began.elapsed()
    );
}

/// Prints the client's throughput on a 64 MiB text file (run with
/// `--nocapture` to see it).
#[tokio::test]
async fn a_64_mib_text_file_streams_through() {
    let s = scanner(clamd(), Duration::from_secs(60));
    s.version().await.unwrap();
    let file = text(64 << 20);
    let began = Instant::now();
    let mut session = s.start().await.unwrap();
    for piece in file.chunks(256 << 10) {
        session.feed(piece).await.unwrap();
    }
    let fed = began.elapsed();
    assert_eq!(session.finish().await.unwrap(), Verdict::Clean);
    let took = began.elapsed();
    eprintln!(
        "64 MiB: fed in {fed:?}, verdict after {took:?}: {:.0} MiB/s",
        64.0 / took.as_secs_f64()
    );
}

mod scan_events {
    use entity::{Role, ScanResult, UserStatus};
    use serde_json::{Value, json};

    use crate::common::{ALABAMA, ALASKA, TestApp, db_tests, error_codes};

    const QUERY: &str = "query($first: Int, $after: String, $result: ScanResult, $sttId: Int) {
  scanEvents(first: $first, after: $after, result: $result, sttId: $sttId) {
    edges { cursor node {
      id result signature engineVersion failureReason originalFilename sizeBytes
      sha256 fiscalYear quarter section startedAt finishedAt clientAddress
      reportFileId uploadedBy { subject } stt { id }
    } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}";

    fn nodes(body: &Value) -> Vec<Value> {
        body["data"]["scanEvents"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("no edges: {body}"))
            .iter()
            .map(|e| e["node"].clone())
            .collect()
    }

    fn names(body: &Value) -> Vec<String> {
        nodes(body)
            .iter()
            .map(|n| n["originalFilename"].as_str().unwrap().to_string())
            .collect()
    }

    async fn only_admins_see_scan_events(app: TestApp) {
        let (analyst, analyst_token) = app.analyst("analyst", ALABAMA).await;
        app.record_scan(
            &analyst,
            ALABAMA,
            ScanResult::Infected,
            Some("Eicar"),
            "a.txt",
        )
        .await;
        let (_, regional) = app.regional("regional", &[4]).await;
        let (_, pending) = app.pending("pending").await;
        for (token, code) in [
            (None, "UNAUTHENTICATED"),
            (Some(analyst_token.as_str()), "FORBIDDEN"),
            (Some(regional.as_str()), "FORBIDDEN"),
            (Some(pending.as_str()), "FORBIDDEN"),
        ] {
            let body = app.gql(token, QUERY, json!({})).await;
            assert_eq!(error_codes(&body), vec![code], "{body}");
            assert!(body["data"].is_null(), "{body}");
        }
        let (_, ofa) = app
            .user("ofa", Some(Role::OfaAdmin), None, &[], UserStatus::Approved)
            .await;
        let (_, sys) = app.admin().await;
        for token in [ofa, sys] {
            let body = app.gql(Some(&token), QUERY, json!({})).await;
            assert_eq!(names(&body), vec!["a.txt"], "{body}");
        }
    }

    async fn scan_events_are_listed_newest_first_in_pages(app: TestApp) {
        let (analyst, _) = app.analyst("analyst", ALABAMA).await;
        let (admin_user, admin) = app.admin().await;
        app.record_scan(&analyst, ALABAMA, ScanResult::Clean, None, "1-clean.txt")
            .await;
        app.record_scan(
            &analyst,
            ALABAMA,
            ScanResult::Infected,
            Some("Eicar-Test-Signature.UNOFFICIAL"),
            "2-infected.txt",
        )
        .await;
        app.record_scan(
            &admin_user,
            ALASKA,
            ScanResult::Failed,
            None,
            "3-failed.ts01",
        )
        .await;

        let all = app.gql(Some(&admin), QUERY, json!({})).await;
        assert_eq!(
            names(&all),
            vec!["3-failed.ts01", "2-infected.txt", "1-clean.txt"],
            "{all}"
        );
        let [failed, infected, clean] = &nodes(&all)[..] else {
            panic!("{all}")
        };
        assert_eq!(clean["result"], "CLEAN");
        assert!(clean["reportFileId"].is_string());
        assert!(clean["signature"].is_null());
        assert_eq!(clean["uploadedBy"]["subject"], "analyst");
        assert_eq!(clean["stt"]["id"], ALABAMA);
        assert_eq!(clean["sha256"], "ab".repeat(32));
        assert_eq!(clean["sizeBytes"], 1234);
        assert_eq!(clean["fiscalYear"], 2026);
        assert_eq!(clean["quarter"], "Q1");
        assert_eq!(clean["section"], "ACTIVE_CASE_DATA");
        assert_eq!(clean["engineVersion"], "ClamAV 1.4.6");
        assert_eq!(clean["clientAddress"], "127.0.0.1");
        assert_eq!(infected["result"], "INFECTED");
        assert_eq!(infected["signature"], "Eicar-Test-Signature.UNOFFICIAL");
        assert!(infected["reportFileId"].is_null());
        assert_eq!(failed["result"], "FAILED");
        assert_eq!(failed["failureReason"], "clamd unreachable");
        assert!(failed["sha256"].is_null());
        assert_eq!(failed["uploadedBy"]["subject"], "sysadmin");
        assert_eq!(failed["stt"]["id"], ALASKA);

        let page1 = app.gql(Some(&admin), QUERY, json!({ "first": 2 })).await;
        assert_eq!(names(&page1), vec!["3-failed.ts01", "2-infected.txt"]);
        let info = &page1["data"]["scanEvents"]["pageInfo"];
        assert_eq!(info["hasNextPage"], true);
        assert_eq!(info["hasPreviousPage"], false);
        let page2 = app
            .gql(
                Some(&admin),
                QUERY,
                json!({ "first": 2, "after": info["endCursor"] }),
            )
            .await;
        assert_eq!(names(&page2), vec!["1-clean.txt"]);
        assert_eq!(
            page2["data"]["scanEvents"]["pageInfo"]["hasNextPage"],
            false
        );
        assert_eq!(
            page2["data"]["scanEvents"]["pageInfo"]["hasPreviousPage"],
            true
        );

        let infected_only = app
            .gql(Some(&admin), QUERY, json!({ "result": "INFECTED" }))
            .await;
        assert_eq!(names(&infected_only), vec!["2-infected.txt"]);
        let alabama = app
            .gql(Some(&admin), QUERY, json!({ "sttId": ALABAMA }))
            .await;
        assert_eq!(names(&alabama), vec!["2-infected.txt", "1-clean.txt"]);
        let bad = app
            .gql(Some(&admin), QUERY, json!({ "after": "not-a-cursor" }))
            .await;
        assert_eq!(error_codes(&bad), vec!["BAD_USER_INPUT"]);
    }

    /// Scans started within `[startedFrom, startedBefore)`, for the audit of a
    /// period; a range that ends before it starts is refused.
    async fn scan_events_are_filtered_by_when_they_started(app: TestApp) {
        use crate::common::clamd::scan_event;
        let (analyst, _) = app.analyst("analyst", ALABAMA).await;
        let (_, admin) = app
            .user("ofa", Some(Role::OfaAdmin), None, &[], UserStatus::Approved)
            .await;
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_utc()
        };
        for (d, name) in [(1, "nov1.txt"), (2, "nov2.txt"), (3, "nov3.txt")] {
            let mut event = scan_event(ScanResult::Clean, None, name);
            event.started_at = day(d);
            event.finished_at = day(d);
            app.record(&analyst, ALABAMA, event).await;
        }
        let query = "query($from: DateTime, $before: DateTime) {
            scanEvents(startedFrom: $from, startedBefore: $before) { edges { node { originalFilename } } }
        }";
        let names = |body: &Value| -> Vec<String> {
            body["data"]["scanEvents"]["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .iter()
                .map(|e| e["node"]["originalFilename"].as_str().unwrap().to_string())
                .collect()
        };
        let from_nov2 = app
            .gql(Some(&admin), query, json!({ "from": day(2) }))
            .await;
        assert_eq!(names(&from_nov2), ["nov3.txt", "nov2.txt"]);
        let before_nov2 = app
            .gql(Some(&admin), query, json!({ "before": day(2) }))
            .await;
        assert_eq!(names(&before_nov2), ["nov1.txt"]);
        let nov2 = app
            .gql(
                Some(&admin),
                query,
                json!({ "from": day(2), "before": day(3) }),
            )
            .await;
        assert_eq!(names(&nov2), ["nov2.txt"]);
        let backwards = app
            .gql(
                Some(&admin),
                query,
                json!({ "from": day(3), "before": day(2) }),
            )
            .await;
        assert_eq!(error_codes(&backwards), ["BAD_USER_INPUT"], "{backwards}");
        let message = backwards["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("startedFrom"), "{message}");
    }

    db_tests!(
        only_admins_see_scan_events,
        scan_events_are_listed_newest_first_in_pages,
        scan_events_are_filtered_by_when_they_started,
    );
}
