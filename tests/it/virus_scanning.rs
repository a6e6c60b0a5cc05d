//! Every upload scanned by a real clamd while it streams: clean files are
//! stored, infected ones refused naming the signature, and a scanner that
//! fails refuses the upload (fail closed). Nothing of a refused upload is
//! left, and every scan leaves a record admins can read.

use serde_json::{Value, json};

use crate::common::{
    ALABAMA, Db, TestApp,
    clamd::{av_marker, clamd, eicar, limited_clamd},
    error_codes, text, upload_input,
};

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
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
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
);

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
