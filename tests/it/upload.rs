//! `uploadReportFile`: GraphQL multipart uploads streamed into storage.

use std::time::Duration;

use entity::{Role, UserStatus};
use serde_json::{Value, json};

use crate::common::{
    ALABAMA, ALASKA, Db, S3Server, TestApp, UPLOAD, UPLOAD_MAP, channel_body, error_codes,
    sha256_hex, storage_tests, text, upload_input, upload_operations, wait_until, with_headers,
};

async fn sizes_round_trip_byte_for_byte(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    // The multipart part size the server uploads with: exactly one part, and
    // one byte into a second.
    let part = app.part_size();
    for (i, size) in [1, part, part + 1, 64 << 20].into_iter().enumerate() {
        let bytes = text(size);
        let (status, body) = app
            .upload(
                Some(&token),
                upload_input(ALABAMA),
                "data.txt",
                bytes.clone(),
            )
            .await;
        assert_eq!(status, 200);
        let file = &body["data"]["uploadReportFile"];
        assert_eq!(file["sizeBytes"], size, "{body}");
        assert_eq!(file["sha256"], sha256_hex(&bytes));
        assert_eq!(file["version"], i + 1);
        let res = app
            .download(&token, file["downloadUrl"].as_str().unwrap(), &[])
            .await;
        assert_eq!(res.status().as_u16(), 200);
        let got = res.bytes().await.unwrap();
        assert_eq!(got.len(), size);
        assert!(got == bytes, "bytes differ for size {size}");
    }
    assert_eq!(app.report_files().await.len(), 4);
    // One object per version, and a compressed copy of each text that
    // compresses (all but the one-byte file).
    assert_eq!(app.objects().await, app.recorded_keys().await);
    assert_eq!(app.objects().await.len(), 4 + 3);
}

async fn an_upload_records_who_what_and_where(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (_, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "ADS.E2J.NDM1.TS01",
            b"hello\n".to_vec(),
        )
        .await;
    let file = &body["data"]["uploadReportFile"];
    assert_eq!(file["originalFilename"], "ADS.E2J.NDM1.TS01");
    assert_eq!(file["extension"], "ts01");
    assert_eq!(file["contentType"], "text/plain");
    assert_eq!(
        file["uploadedBy"]["subject"], "analyst",
        "the uploader is the caller"
    );
    assert_eq!(file["stt"]["id"], ALABAMA);
    let rows = app.report_files().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(app.objects().await, vec![rows[0].object_key.clone()]);
    // A key of its own: nothing a client sees (the id is in every download
    // URL) leads to the object.
    assert!(rows[0].object_key.starts_with("report-files/"));
    assert!(!rows[0].object_key.contains(&rows[0].id.to_string()));
    if app.stores_in_s3() {
        // The test bucket has versioning on: the version id is kept.
        assert!(
            rows[0]
                .storage_version
                .as_deref()
                .is_some_and(|v| !v.is_empty()),
            "{:?}",
            rows[0]
        );
        assert!(rows[0].etag.is_some());
    }
}

async fn each_version_keeps_its_own_object(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let mut urls = Vec::new();
    for content in [b"first\n".to_vec(), b"second\n".to_vec()] {
        urls.push(app.upload_file(&token, ALABAMA, "a.txt", content).await.url);
    }
    let first = app
        .download(&token, &urls[0], &[])
        .await
        .bytes()
        .await
        .unwrap();
    let second = app
        .download(&token, &urls[1], &[])
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        (&first[..], &second[..]),
        (&b"first\n"[..], &b"second\n"[..])
    );
    let rows = app.report_files().await;
    assert_ne!(rows[0].object_key, rows[1].object_key);
}

async fn refused_files_leave_nothing(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.txt", vec![], "empty"),
        ("data.exe", b"text".to_vec(), "extension not allowed"),
        ("data", b"text".to_vec(), "no extension"),
        ("data.ts1", b"text".to_vec(), "ts with one digit"),
        ("data.txt", b"abc\0def".to_vec(), "NUL byte"),
        ("data.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), "PNG"),
        ("data.txt", b"\xFF\xD8\xFF\xE0 jpeg".to_vec(), "JPEG"),
        (
            "data.txt",
            [text(50_000), vec![0]].concat(),
            "NUL within the first 64 KiB",
        ),
        (
            "bad\tname.txt",
            b"text".to_vec(),
            "control character in the name",
        ),
    ];
    for (name, bytes, why) in cases {
        let (status, body) = app
            .upload(Some(&token), upload_input(ALABAMA), name, bytes)
            .await;
        assert_eq!(status, 200, "{why}");
        assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{why}: {body}");
        assert_eq!(body["data"], Value::Null, "{why}");
    }
    // A raw CR/LF breaks the part's header itself: the request is malformed.
    let (status, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "bad\r\nname.txt",
            b"text".to_vec(),
        )
        .await;
    assert_eq!(
        (status, error_codes(&body)),
        (400, vec!["BAD_USER_INPUT".to_string()]),
        "{body}"
    );
    app.assert_nothing_stored("refused files").await;
}

async fn oversize_uploads_are_refused_while_streaming(app: TestApp) {
    let app = app.with_vars(&[("MAX_UPLOAD_BYTES", "6000000")]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (_, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "big.txt",
            text(6_000_001),
        )
        .await;
    assert_eq!(error_codes(&body), vec!["PAYLOAD_TOO_LARGE"], "{body}");
    app.assert_nothing_stored("oversize").await;
    let (_, body) = app
        .upload(
            Some(&token),
            upload_input(ALABAMA),
            "ok.txt",
            text(6_000_000),
        )
        .await;
    assert_eq!(
        body["data"]["uploadReportFile"]["sizeBytes"], 6_000_000,
        "the limit itself is allowed"
    );
}

async fn callers_who_may_not_upload_are_refused_before_any_byte(app: TestApp) {
    let (_, analyst) = app.analyst("analyst", ALABAMA).await;
    let (_, regional) = app.regional("regional", &[4]).await;
    let (_, pending) = app.pending("pending").await;
    let (_, deactivated) = app
        .user(
            "gone",
            Some(Role::DataAnalyst),
            Some(ALABAMA),
            &[],
            UserStatus::Deactivated,
        )
        .await;
    for (token, stt, code, who) in [
        (
            Some(analyst.as_str()),
            ALASKA,
            "FORBIDDEN",
            "analyst for another STT",
        ),
        (
            Some(regional.as_str()),
            ALABAMA,
            "FORBIDDEN",
            "regional staff",
        ),
        (Some(pending.as_str()), ALABAMA, "FORBIDDEN", "pending user"),
        (
            Some(deactivated.as_str()),
            ALABAMA,
            "FORBIDDEN",
            "deactivated user",
        ),
        (None, ALABAMA, "UNAUTHENTICATED", "anonymous"),
        (Some("garbage"), ALABAMA, "UNAUTHENTICATED", "bad token"),
    ] {
        let (_, body) = app
            .upload(token, upload_input(stt), "a.txt", text(1000))
            .await;
        assert_eq!(error_codes(&body), vec![code], "{who}: {body}");
    }
    app.assert_nothing_stored("refused callers").await;
}

async fn invalid_input_is_refused(app: TestApp) {
    let (_, admin) = app.admin().await;
    for (input, why) in [
        (
            json!({ "sttId": 99999, "fiscalYear": 2026, "quarter": "Q1", "section": "ACTIVE_CASE_DATA" }),
            "unknown STT",
        ),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 1900, "quarter": "Q1", "section": "ACTIVE_CASE_DATA" }),
            "fiscal year too early",
        ),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 9999, "quarter": "Q1", "section": "ACTIVE_CASE_DATA" }),
            "fiscal year too late",
        ),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 2026, "quarter": "Q5", "section": "ACTIVE_CASE_DATA" }),
            "no such quarter",
        ),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 2026, "quarter": "Q1", "section": "SECRETS" }),
            "no such section",
        ),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 2026, "quarter": "Q1" }),
            "section missing",
        ),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 2026, "quarter": "Q1", "section": "ACTIVE_CASE_DATA", "uploadedBy": "someone-else" }),
            "uploader from the request",
        ),
    ] {
        let (_, body) = app.upload(Some(&admin), input, "a.txt", text(10)).await;
        assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{why}: {body}");
    }
    app.assert_nothing_stored("invalid input").await;
}

/// Sends a hand-made multipart body.
async fn raw_multipart(
    app: &TestApp,
    token: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, Value) {
    let req = app
        .post("/graphql")
        .bearer_auth(token)
        .header("content-type", MULTIPART)
        .body(body);
    let res = with_headers(req, headers).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The content type of the hand-made multipart bodies.
const MULTIPART: &str = "multipart/form-data; boundary=XyZ";

/// The start of a multipart part, up to its content.
fn part_head(name: &str, filename: Option<&str>) -> String {
    let file = filename
        .map(|f| format!("; filename=\"{f}\""))
        .unwrap_or_default();
    format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n")
}

fn part(name: &str, filename: Option<&str>, content: &str) -> String {
    format!("{}{content}\r\n", part_head(name, filename))
}

/// The operations and map parts of an upload of an Alabama file.
fn operations_and_map() -> String {
    let ops = upload_operations(&upload_input(ALABAMA));
    format!(
        "{}{}",
        part("operations", None, &ops),
        part("map", None, UPLOAD_MAP)
    )
}

async fn malformed_multipart_requests_are_refused(app: TestApp) {
    let (_, admin) = app.admin().await;
    let ops = upload_operations(&upload_input(ALABAMA));
    let preflight = [("apollo-require-preflight", "true")];
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}--XyZ--\r\n", part("map", None, UPLOAD_MAP)),
            "map before operations",
        ),
        (
            format!("{}--XyZ--\r\n", part("operations", None, &ops)),
            "no map",
        ),
        (
            format!(
                "{}{}--XyZ--\r\n",
                part("operations", None, "{not json"),
                part("map", None, UPLOAD_MAP)
            ),
            "operations not JSON",
        ),
        (
            format!(
                "{}{}--XyZ--\r\n",
                part("operations", None, &format!("[{ops}]")),
                part("map", None, UPLOAD_MAP)
            ),
            "a batch",
        ),
        (
            format!(
                "{}{}--XyZ--\r\n",
                part("operations", None, &ops),
                part("map", None, "[1]")
            ),
            "map not an object",
        ),
        (
            format!("{}--XyZ--\r\n", operations_and_map()),
            "file part missing",
        ),
        (
            format!(
                "{}{}--XyZ--\r\n",
                operations_and_map(),
                part("1", Some("a.txt"), "x")
            ),
            "wrong file part",
        ),
        (
            format!(
                "{}{}{}--XyZ--\r\n",
                part("operations", None, &ops),
                part(
                    "map",
                    None,
                    r#"{"0":["variables.file"],"1":["variables.other"]}"#
                ),
                part("0", Some("a.txt"), "x")
            ),
            "two files",
        ),
        (
            format!(
                "{}{}{}--XyZ--\r\n",
                part("operations", None, &ops),
                part("map", None, r#"{"0":["variables.input.file"]}"#),
                part("0", Some("a.txt"), "x")
            ),
            "nested path",
        ),
        (
            "garbage without boundaries".to_string(),
            "not multipart at all",
        ),
    ];
    for (body, why) in cases {
        let (status, json) = raw_multipart(&app, &admin, &preflight, body).await;
        assert_eq!(
            error_codes(&json),
            vec!["BAD_USER_INPUT"],
            "{why}: {status} {json}"
        );
    }
    // A file must come as an upload, not as a string in JSON.
    let (_, json) = app
        .gql_status(
            Some(&admin),
            UPLOAD,
            json!({ "input": upload_input(ALABAMA), "file": "0" }),
        )
        .await;
    assert_eq!(error_codes(&json), vec!["BAD_USER_INPUT"], "{json}");
    app.assert_nothing_stored("malformed multipart").await;
}

async fn multipart_without_the_preflight_header_is_refused(app: TestApp) {
    let (_, admin) = app.admin().await;
    let body = format!(
        "{}{}--XyZ--\r\n",
        operations_and_map(),
        part("0", Some("a.txt"), "hello")
    );
    // What a cross-site HTML form could send with the victim's cookie.
    let session = app.session_cookie(&admin).await;
    let res = app
        .post("/graphql")
        .header("cookie", session)
        .header("content-type", MULTIPART)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let json: Value = res.json().await.unwrap();
    assert_eq!(error_codes(&json), vec!["BAD_USER_INPUT"]);
    app.assert_nothing_stored("no preflight header").await;
}

/// Uploads 20 files to one slot at once, in turn to the servers at `bases`,
/// and checks they got versions 1 to 20, each with an object of its own.
async fn assert_concurrent_uploads_get_consecutive_versions(app: &TestApp, bases: &[&str]) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let uploads = (0..20).map(|i| {
        let token = token.clone();
        let base = bases[i % bases.len()];
        async move {
            let bytes = format!("upload {i}\n").into_bytes();
            let (_, body) = app
                .upload_to(base, Some(&token), upload_input(ALABAMA), "c.txt", bytes)
                .await;
            body["data"]["uploadReportFile"]["version"]
                .as_i64()
                .unwrap_or_else(|| panic!("{body}"))
        }
    });
    let mut versions = futures_util::future::join_all(uploads).await;
    versions.sort();
    assert_eq!(versions, (1..=20).collect::<Vec<i64>>());
    assert_eq!(app.objects().await.len(), 20);
}

async fn concurrent_uploads_to_one_slot_get_consecutive_versions(app: TestApp) {
    assert_concurrent_uploads_get_consecutive_versions(&app, &[&app.base]).await;
}

async fn an_upload_cut_off_midway_leaves_nothing(app: TestApp) {
    use tokio::io::AsyncWriteExt;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let head = format!(
        "{}{}",
        operations_and_map(),
        part_head("0", Some("cut.txt"))
    );
    let promised = head.len() + 20_000_000;
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\napollo-require-preflight: true\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {promised}\r\n\r\n{head}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&text(7 << 20)).await.unwrap();
    // The server is streaming the file into storage, waiting for the rest.
    wait_until(
        Duration::from_secs(10),
        "the server is receiving the upload",
        async || app.metric("reportfiles_active_uploads").await == 1,
    )
    .await;
    stream.shutdown().await.unwrap();
    drop(stream);
    // The server notices, aborts the multipart upload, writes no row, and
    // only then counts the upload as over.
    wait_until(
        Duration::from_secs(10),
        "the server gives the upload up",
        async || app.metric("reportfiles_active_uploads").await == 0,
    )
    .await;
    app.assert_nothing_stored("client hung up").await;
}

storage_tests!(
    sizes_round_trip_byte_for_byte,
    an_upload_records_who_what_and_where,
    each_version_keeps_its_own_object,
    refused_files_leave_nothing,
    oversize_uploads_are_refused_while_streaming,
    callers_who_may_not_upload_are_refused_before_any_byte,
    invalid_input_is_refused,
    malformed_multipart_requests_are_refused,
    multipart_without_the_preflight_header_is_refused,
    concurrent_uploads_to_one_slot_get_consecutive_versions,
    an_upload_cut_off_midway_leaves_nothing,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_version_sequence() {
    let s3 = S3Server::shared();
    let app = TestApp::new(Db::Postgres, Some(&s3), &[]).await;
    let other = app.spawn_process().await;
    assert_concurrent_uploads_get_consecutive_versions(&app, &[&app.base, &other.base]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_mid_upload_leaves_no_row() {
    let s3 = S3Server::private();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    // A body that pauses after 12 MiB, until the store is stopped.
    let (tx, body) = channel_body();
    let upload = {
        let app = &app;
        let token = token.clone();
        async move {
            app.upload_body(Some(&token), upload_input(ALABAMA), "f.txt", body, 40 << 20)
                .await
        }
    };
    let feeder = async {
        for _ in 0..12 {
            tx.send(Ok(text(1 << 20))).await.unwrap();
        }
        // Stop the store while the server is streaming this upload into it:
        // it has taken what was sent, and waits for more.
        app.wait_until_streaming(&tx).await;
        s3.stop();
        for _ in 12..40 {
            if tx.send(Ok(text(1 << 20))).await.is_err() {
                break;
            }
        }
        drop(tx);
    };
    let ((status, body), ()) = tokio::join!(upload, feeder);
    assert_eq!(status, 200);
    assert_eq!(error_codes(&body), vec!["STORAGE_UNAVAILABLE"], "{body}");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no storage details leak: {body}"
    );
    s3.start();
    app.assert_nothing_stored("storage failed midway").await;
}
