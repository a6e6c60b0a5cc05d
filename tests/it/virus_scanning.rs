//! Every upload scanned by a real clamd while it streams: clean files are
//! stored, infected ones refused naming the signature, and a scanner that
//! fails refuses the upload (fail closed). Nothing of a refused upload is
//! left, and every scan leaves a record admins can read.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    ALABAMA, Db, TestApp,
    clamd::{PrivateClamd, av_marker, clamd, eicar, limited_clamd},
    error_codes, free_port, text, upload_input,
};

/// The upload part size (`UPLOAD_PART_SIZE_BYTES`' default): where the
/// first part of a multipart upload ends.
const PART: usize = 8 << 20;

/// This setup, scanning every upload with `clamd`.
async fn scanning(app: TestApp, clamd: &str) -> TestApp {
    app.with_vars(&[("AV_SCAN", "required"), ("CLAMD_ADDR", clamd)])
        .await
}

const SCANS: &str = "{ scanEvents(first: 10) { edges { node {
    result signature engineVersion failureReason originalFilename sizeBytes sha256
    reportFileId clientAddress uploadedBy { subject } stt { id }
} } } }";

async fn scan_events(app: &TestApp) -> Vec<Value> {
    let (_, admin) = app.admin().await;
    let body = app.gql(Some(&admin), SCANS, json!({})).await;
    body["data"]["scanEvents"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Nothing of a refused upload: no row, no object, no multipart upload.
async fn nothing_left(app: &TestApp, why: &str) {
    app.assert_nothing_stored(why).await;
    assert_eq!(
        app.incomplete_uploads().await,
        Vec::<String>::new(),
        "{why}"
    );
}

async fn a_clean_file_is_stored_and_its_scan_recorded(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let bytes = text(3 << 20);
    let file = app.upload_file(&token, ALABAMA, "clean.txt", bytes).await;
    let events = scan_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["result"], "CLEAN");
    assert_eq!(e["sizeBytes"], 3 << 20);
    assert_eq!(e["sha256"], file.sha256);
    assert_eq!(e["reportFileId"], file.id.to_string());
    assert_eq!(e["originalFilename"], "clean.txt");
    assert_eq!(e["uploadedBy"]["subject"], "analyst");
    assert_eq!(e["stt"]["id"], ALABAMA);
    assert!(
        e["engineVersion"].as_str().unwrap().contains("ClamAV"),
        "{e}"
    );
    assert_eq!(e["clientAddress"], "127.0.0.1");
}

async fn eicar_is_refused_naming_the_signature_and_nothing_is_kept(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "eicar.txt", eicar())
        .await;
    assert_eq!(error_codes(&body), ["VIRUS_DETECTED"], "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Eicar-Test-Signature"), "{message}");
    nothing_left(&app, "an infected upload").await;
    let events = scan_events(&app).await;
    assert_eq!(events[0]["result"], "INFECTED");
    assert!(
        events[0]["signature"]
            .as_str()
            .unwrap()
            .starts_with("Eicar-Test-Signature")
    );
    assert_eq!(events[0]["reportFileId"], Value::Null);
}

async fn a_tanf_file_with_the_marker_deep_inside_is_refused(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    // Valid TANF-shaped text, the marker line 20 MiB in: far past the first
    // chunks, and across whatever chunk boundary the transport makes.
    let mut bytes = text(20 << 20);
    bytes.extend_from_slice(av_marker().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(&text(5 << 20));
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "section1.ts01", bytes)
        .await;
    assert_eq!(error_codes(&body), ["VIRUS_DETECTED"], "{body}");
    nothing_left(&app, "a TANF file with the marker").await;
}

async fn an_unreachable_scanner_refuses_the_upload(app: TestApp) {
    let port = free_port();
    let app = scanning(app, &format!("tcp://127.0.0.1:{port}")).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "a.txt", text(1000))
        .await;
    assert_eq!(error_codes(&body), ["SCANNER_UNAVAILABLE"], "{body}");
    nothing_left(&app, "no scanner").await;
    let events = scan_events(&app).await;
    assert_eq!(events[0]["result"], "FAILED");
    assert!(!events[0]["failureReason"].as_str().unwrap().is_empty());
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["scanner"], "unavailable");
}

async fn a_file_over_the_scanners_stream_limit_is_refused(app: TestApp) {
    let app = scanning(app, &limited_clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (_, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "big.txt",
            text(3 << 20),
        )
        .await;
    assert_eq!(error_codes(&body), ["SCANNER_UNAVAILABLE"], "{body}");
    nothing_left(&app, "past StreamMaxLength").await;
    assert_eq!(scan_events(&app).await[0]["result"], "FAILED");
}

/// Valid TANF-shaped text of `len` bytes with the marker line starting at
/// byte `at`.
fn text_with_marker_at(len: usize, at: usize) -> Vec<u8> {
    let marker = format!("{}\n", av_marker());
    let mut bytes = text(at);
    bytes.extend_from_slice(marker.as_bytes());
    bytes.extend_from_slice(&text(len.saturating_sub(bytes.len()).max(1)));
    bytes
}

/// Uploads `bytes`, expects `VIRUS_DETECTED` naming the marker's
/// signature, nothing stored, and the scan recorded as infected.
async fn marker_refused(app: &TestApp, bytes: Vec<u8>, why: &str) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let size = bytes.len();
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "section1.ts01", bytes)
        .await;
    assert_eq!(error_codes(&body), ["VIRUS_DETECTED"], "{why}: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Reportfiles-Tanf-Test-Marker"),
        "{why}: {message}"
    );
    nothing_left(app, why).await;
    let events = scan_events(app).await;
    assert_eq!(events.len(), 1, "{why}: {events:?}");
    assert_eq!(events[0]["result"], "INFECTED", "{why}");
    assert!(
        events[0]["signature"]
            .as_str()
            .unwrap()
            .contains("Reportfiles-Tanf-Test-Marker"),
        "{why}: {events:?}"
    );
    assert_eq!(events[0]["sizeBytes"], size, "{why}");
}

async fn the_marker_in_the_first_chunk_is_refused(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    marker_refused(&app, text_with_marker_at(4096, 0), "marker at byte 0").await;
}

async fn the_marker_past_the_first_64_kib_is_refused(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let bytes = text_with_marker_at(1 << 20, (64 << 10) + 157);
    marker_refused(&app, bytes, "marker past 64 KiB").await;
}

async fn the_marker_across_an_upload_part_boundary_is_refused(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    // The marker line starts 20 bytes before the first part ends: its
    // bytes go to storage in two parts, and to clamd in two chunks.
    let bytes = text_with_marker_at(PART + (2 << 20), PART - 20);
    marker_refused(&app, bytes, "marker across the part boundary").await;
}

async fn a_stored_file_shows_its_clean_scan(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app
        .upload_file(&token, ALABAMA, "clean.txt", text(100_000))
        .await;
    let query = "{ reportFiles(first: 5) { nodes {
        id sha256 scan { result sizeBytes sha256 engineVersion reportFileId clientAddress }
    } } }";
    let mine = app.gql(Some(&token), query, json!({})).await;
    let node = &mine["data"]["reportFiles"]["nodes"][0];
    assert_eq!(node["id"], file.id.to_string(), "{mine}");
    let scan = &node["scan"];
    assert_eq!(scan["result"], "CLEAN", "{mine}");
    assert_eq!(scan["sizeBytes"], 100_000);
    assert_eq!(scan["sha256"], file.sha256);
    assert_eq!(scan["reportFileId"], file.id.to_string());
    assert!(
        scan["engineVersion"]
            .as_str()
            .unwrap()
            .starts_with("ClamAV "),
        "{mine}"
    );
    // The uploader sees the scan, not where uploads come from; admins do.
    assert!(scan["clientAddress"].is_null(), "{mine}");
    let (_, admin) = app.admin().await;
    let theirs = app.gql(Some(&admin), query, json!({})).await;
    assert_eq!(
        theirs["data"]["reportFiles"]["nodes"][0]["scan"]["clientAddress"], "127.0.0.1",
        "{theirs}"
    );
}

async fn scans_are_counted_by_result_in_the_metrics(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    app.upload_file(&token, ALABAMA, "clean.txt", text(1000))
        .await;
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "e.txt", eicar())
        .await;
    assert_eq!(error_codes(&body), ["VIRUS_DETECTED"], "{body}");
    assert_eq!(
        app.metric("reportfiles_scans_total{result=\"CLEAN\"}")
            .await,
        1
    );
    assert_eq!(
        app.metric("reportfiles_scans_total{result=\"INFECTED\"}")
            .await,
        1
    );
    assert_eq!(
        app.metric("reportfiles_scan_duration_seconds_count").await,
        2
    );
}

async fn ten_concurrent_scanned_uploads_are_all_stored(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let uploads = (0..10).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            app.upload_file(token, ALABAMA, &format!("f{i}.txt"), text((1 << 20) + i))
                .await
        }
    });
    let files = futures_util::future::join_all(uploads).await;
    let stored = app.report_files().await;
    assert_eq!(stored.len(), 10);
    let mut versions: Vec<i32> = stored.iter().map(|f| f.version).collect();
    versions.sort();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
    for file in &files {
        let row = stored.iter().find(|f| f.id == file.id).unwrap();
        assert_eq!(row.sha256, file.sha256);
    }
    let events = scan_events(&app).await;
    assert_eq!(events.len(), 10, "{events:?}");
    assert!(events.iter().all(|e| e["result"] == "CLEAN"), "{events:?}");
}

async fn readiness_includes_the_scanner_when_scanning_is_required(app: TestApp) {
    let app = scanning(app, &clamd().to_string()).await;
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["scanner"], "ok");
}

crate::common::storage_tests!(
    a_clean_file_is_stored_and_its_scan_recorded,
    eicar_is_refused_naming_the_signature_and_nothing_is_kept,
    a_tanf_file_with_the_marker_deep_inside_is_refused,
    an_unreachable_scanner_refuses_the_upload,
    a_file_over_the_scanners_stream_limit_is_refused,
    readiness_includes_the_scanner_when_scanning_is_required,
    the_marker_in_the_first_chunk_is_refused,
    the_marker_past_the_first_64_kib_is_refused,
    the_marker_across_an_upload_part_boundary_is_refused,
    a_stored_file_shows_its_clean_scan,
    scans_are_counted_by_result_in_the_metrics,
    ten_concurrent_scanned_uploads_are_all_stored,
);

/// clamd dies while an upload streams: the upload fails closed and leaves
/// nothing; once clamd is back, the same server scans and stores again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_killed_mid_upload_fails_closed_and_uploads_resume_when_it_is_back() {
    let mut private = PrivateClamd::start().await;
    let app = scanning(
        TestApp::new(Db::Sqlite, None, &[]).await,
        &private.addr().to_string(),
    )
    .await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (tx, response) = app.start_upload(&app.base, &token, 24 << 20);
    for _ in 0..4 {
        tx.send(Ok(text(1 << 20))).await.unwrap();
    }
    app.wait_until_streaming(&tx).await;
    private.kill();
    // The rest of the file: the server finds clamd gone at the next chunk
    // or at the end of the stream, whichever comes first.
    for _ in 0..20 {
        if tx.send(Ok(text(1 << 20))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let (_, body) = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("the upload is answered")
        .unwrap()
        .unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error_codes(&body), ["SCANNER_UNAVAILABLE"], "{body}");
    nothing_left(&app, "clamd killed mid-upload").await;
    let events = scan_events(&app).await;
    assert_eq!(events[0]["result"], "FAILED", "{events:?}");

    private.restart().await;
    let file = app
        .upload_file(&token, ALABAMA, "after.txt", text(3 << 20))
        .await;
    let stored = app.report_files().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, file.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scanning_readiness_does_not_mention_a_scanner() {
    let app = TestApp::new(Db::Sqlite, None, &[]).await;
    let ready: Value = app
        .get("/readyz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ready.get("scanner").is_none(), "{ready}");
}

/// Each scan logs one `scan` line at info: its result, what was found, and
/// the file (never its bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scan_logs_one_line() {
    let app = TestApp::sqlite().await;
    let (user, token) = app.analyst("analyst", ALABAMA).await;
    let clamd = clamd().to_string();
    let server = app
        .spawn_process_with(&[
            ("AV_SCAN", "required"),
            ("CLAMD_ADDR", &clamd),
            ("RUST_LOG", "info"),
            ("LOG_JSON", "true"),
        ])
        .await;
    let (_, body) = app
        .upload_to(
            &server.base,
            Some(&token),
            upload_input(ALABAMA),
            "e.txt",
            eicar(),
        )
        .await;
    assert_eq!(error_codes(&body), ["VIRUS_DETECTED"], "{body}");
    let (_, body) = app
        .upload_to(
            &server.base,
            Some(&token),
            upload_input(ALABAMA),
            "c.txt",
            text(5000),
        )
        .await;
    assert!(body["data"]["uploadReportFile"]["id"].is_string(), "{body}");
    let scans = crate::common::wait_for(Duration::from_secs(5), "two scan lines", async || {
        let lines: Vec<Value> = server
            .output()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == "scan")
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert_eq!(scans.len(), 2, "{scans:?}");
    let (infected, clean) = (&scans[0]["fields"], &scans[1]["fields"]);
    assert_eq!(infected["result"], "INFECTED");
    assert!(
        infected["signature"].as_str().unwrap().contains("Eicar"),
        "{infected}"
    );
    assert_eq!(infected["original_filename"], "e.txt");
    assert_eq!(clean["result"], "CLEAN");
    assert_eq!(clean["size_bytes"], 5000);
    assert_eq!(clean["uploader_id"], user.id);
    assert!(clean["duration_ms"].as_u64().is_some(), "{clean}");
    assert_eq!(scans[0]["level"], "INFO");
    assert!(
        !server.output().contains("EICAR-STANDARD"),
        "no file bytes in the log"
    );
}
