//! Storage under faults (issue #9): stalled uploads, storage or the database
//! failing mid-upload, shutdown with an upload in flight, a crash on the
//! local folder, the sweep that reconciles bucket and table, magic numbers
//! sent a byte at a time, and how fast an outage answers.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ALABAMA, Db, S3Server, TestApp, error_codes, text, upload_input, wait_until};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn a_stalled_upload_ends_within_its_idle_timeout(app: TestApp) {
    let app = app.with_vars(&[("UPLOAD_IDLE_TIMEOUT_SECS", "2")]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (tx, response) = app.start_upload(&app.base, &token, 40 << 20);
    // More than a part, so that storage holds a multipart upload with data.
    for _ in 0..9 {
        tx.send(Ok(text(1 << 20))).await.unwrap();
    }
    app.wait_until_streaming(&tx).await;
    // Nothing more is sent, and the connection stays open.
    let stalled_at = Instant::now();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("a stalled upload must be ended")
        .unwrap()
        .unwrap();
    let took = stalled_at.elapsed();
    eprintln!("a stalled upload was ended after {took:?} (idle timeout 2 s)");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let body = json(&body);
    assert_eq!(
        (status, error_codes(&body)),
        (200, vec!["BAD_USER_INPUT".into()])
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stalled")),
        "{body}"
    );
    drop(tx);
    wait_until(
        Duration::from_secs(10),
        "the stalled upload's multipart upload is aborted",
        async || app.incomplete_uploads().await.is_empty(),
    )
    .await;
    app.assert_nothing_stored("stalled upload").await;
}

async fn magic_numbers_sent_a_byte_ahead_are_refused(app: TestApp) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    for (first, rest) in [
        (&b"\x89"[..], &b"PNG\r\n\x1a\n"[..]),
        (b"%", b"PDF-1.7\n"),
        (b"P", b"K\x03\x04"),
    ] {
        let rest = [rest, &text(1000)].concat();
        let (tx, response) = app.start_upload(&app.base, &token, (1 + rest.len()) as u64);
        tx.send(Ok(first.to_vec())).await.unwrap();
        // A client whose first byte goes out in a segment of its own: the
        // behaviour under test, not a wait for the server.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tx.send(Ok(rest)).await;
        drop(tx);
        let (_, body) = response.await.unwrap().unwrap();
        let body = json(&body);
        assert_eq!(
            error_codes(&body),
            vec!["BAD_USER_INPUT"],
            "{first:?}: {body}"
        );
    }
    app.assert_nothing_stored("magic numbers").await;
}

async fn storage_sweep_reconciles_bucket_and_table(app: TestApp) {
    let (analyst, token) = app.analyst("analyst", ALABAMA).await;
    let kept = app
        .upload_file(&token, ALABAMA, "kept.txt", text(100))
        .await;
    let orphan = format!("report-files/{}", uuid::Uuid::new_v4());
    app.put_object(&orphan, b"no row points here").await;
    // In a versioned bucket, a plain delete leaves the bytes behind a
    // delete marker: still an orphan, of two versions.
    let hidden = format!("report-files/{}", uuid::Uuid::new_v4());
    let mut orphans = vec![orphan.clone()];
    if app.stores_in_s3() {
        app.put_object(&hidden, b"deleted the old way").await;
        app.delete_object(&hidden).await;
        orphans.push(hidden);
    }
    let incomplete = format!("report-files/{}", uuid::Uuid::new_v4());
    app.leave_incomplete_upload(&incomplete).await;
    let missing = app
        .insert_file(
            &analyst,
            ALABAMA,
            2026,
            entity::Quarter::Q2,
            entity::Section::ActiveCaseData,
        )
        .await;
    let versions_before = app.object_versions().await;
    assert_eq!(app.incomplete_uploads().await, vec![incomplete.clone()]);

    // A dry run reports everything and changes nothing.
    let out = sweep(&app, &["--dry-run", "--older-than", "0s"]);
    for key in &orphans {
        assert!(
            out.contains(&format!("object without a row: {key}")),
            "{out}"
        );
    }
    assert!(
        out.contains(&format!("incomplete upload: {incomplete}")),
        "{out}"
    );
    assert!(
        out.contains("would be deleted") && out.contains("would be aborted"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "row without an object: report file {}",
            missing.id
        )),
        "{out}"
    );
    assert_eq!(app.object_versions().await, versions_before);
    assert_eq!(app.incomplete_uploads().await, vec![incomplete.clone()]);

    // The default threshold (a day) leaves everything this young alone.
    let out = sweep(&app, &[]);
    let young = orphans.len() + 1;
    assert!(
        out.contains(&format!("younger items left alone: {young}")),
        "{out}"
    );
    assert_eq!(app.object_versions().await, versions_before);

    let out = sweep(&app, &["--older-than", "0s"]);
    assert!(out.contains("reported only, not deleted"), "{out}");
    assert!(out.contains("failures: 0"), "{out}");
    let kept_row = app
        .report_files()
        .await
        .into_iter()
        .find(|r| r.id == kept.id)
        .expect("the kept file's row");
    // The kept file's object, and its compressed copy when it has one.
    let mut kept_keys: Vec<(String, bool)> = std::iter::once(kept_row.object_key)
        .chain(kept_row.encoded_object_key)
        .map(|k| (k, false))
        .collect();
    kept_keys.sort();
    assert_eq!(
        app.object_versions().await,
        kept_keys,
        "every version of every orphan is gone"
    );
    assert_eq!(app.incomplete_uploads().await, Vec::<String>::new());
    assert_eq!(app.report_files().await.len(), 2, "rows are never deleted");
    let res = app.download(&token, &kept.url, &[]).await;
    assert_eq!(res.bytes().await.unwrap(), kept.bytes);
}

/// Runs `reportfiles storage sweep ARGS` and returns what it printed.
fn sweep(app: &TestApp, args: &[&str]) -> String {
    let out = app.cli(&[&["storage", "sweep"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

crate::common::storage_tests!(
    a_stalled_upload_ends_within_its_idle_timeout,
    magic_numbers_sent_a_byte_ahead_are_refused,
    storage_sweep_reconciles_bucket_and_table,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_mid_upload_the_abort_is_retried_until_it_is_back() {
    let s3 = S3Server::private();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let (tx, response) = app.start_upload(&app.base, &token, 40 << 20);
    for _ in 0..12 {
        tx.send(Ok(text(1 << 20))).await.unwrap();
    }
    app.wait_until_streaming(&tx).await;
    assert_eq!(app.incomplete_uploads().await.len(), 1);
    s3.stop();
    for _ in 12..40 {
        if tx.send(Ok(text(1 << 20))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let (_, body) = response.await.unwrap().unwrap();
    assert_eq!(
        error_codes(&json(&body)),
        vec!["STORAGE_UNAVAILABLE"],
        "{body}"
    );
    // The abort failed while storage was down; it is retried once it is back.
    s3.start();
    wait_until(
        Duration::from_secs(30),
        "the multipart upload is aborted after storage is back",
        async || app.incomplete_uploads().await.is_empty(),
    )
    .await;
    app.assert_nothing_stored("storage down mid-upload").await;
    sweep(&app, &["--older-than", "0s"]);
    app.assert_reconciled("after the sweep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_at_the_insert_deletes_the_exact_version() {
    let s3 = S3Server::shared();
    let app = TestApp::new(Db::Postgres, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let size = 10 << 20;
    let (tx, response) = app.start_upload(&app.base, &token, size);
    tx.send(Ok(text(1 << 20))).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "the server streams the upload",
        async || app.metric("reportfiles_active_uploads").await == 1,
    )
    .await;
    // The database goes away while the file streams into storage.
    app.close_server_database().await;
    for _ in 1..10 {
        tx.send(Ok(text(1 << 20))).await.unwrap();
    }
    drop(tx);
    let (_, body) = response.await.unwrap().unwrap();
    assert_eq!(
        error_codes(&json(&body)),
        vec!["DATABASE_UNAVAILABLE"],
        "{body}"
    );
    // Not hidden behind a delete marker: no version of the object is left.
    assert_eq!(app.object_versions().await, Vec::<(String, bool)>::new());
    app.assert_nothing_stored("database down at the insert")
        .await;
    assert_eq!(app.incomplete_uploads().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_end_of_the_grace_period_a_running_upload_is_aborted() {
    let s3 = S3Server::shared();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let mut server = app
        .spawn_process_with(&[("SHUTDOWN_GRACE_SECS", "1")])
        .await;
    let (tx, response) = app.start_upload(&server.base, &token, 40 << 20);
    // A slow client: 11 MiB, then it waits.
    for _ in 0..11 {
        tx.send(Ok(text(1 << 20))).await.unwrap();
    }
    wait_until(
        Duration::from_secs(10),
        "the second server streams the upload into storage",
        async || app.incomplete_uploads().await.len() == 1,
    )
    .await;
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    // The client saw an error or a cut connection; either way, it is over.
    let _ = response.await.unwrap();
    drop(tx);
    assert_eq!(
        app.incomplete_uploads().await,
        Vec::<String>::new(),
        "the multipart upload was aborted before the process exited"
    );
    app.assert_nothing_stored("shut down mid-upload").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_file_left_by_a_killed_process_is_gone_after_the_next_start() {
    let app = TestApp::new(Db::Sqlite, None, &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let mut server = app.spawn_process().await;
    let (tx, response) = app.start_upload(&server.base, &token, 40 << 20);
    for _ in 0..9 {
        tx.send(Ok(text(1 << 20))).await.unwrap();
    }
    wait_until(
        Duration::from_secs(10),
        "the second server stages the upload in the folder",
        async || app.incomplete_uploads().await.len() == 1,
    )
    .await;
    server.kill();
    let _ = response.await.unwrap();
    drop(tx);
    assert_eq!(
        app.incomplete_uploads().await.len(),
        1,
        "a killed process leaves its staging file"
    );
    let _next = app.spawn_process().await;
    assert_eq!(app.incomplete_uploads().await, Vec::<String>::new());
    app.assert_nothing_stored("killed mid-upload").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_storage_down_everything_answers_503_within_a_second() {
    let s3 = S3Server::private();
    let app = TestApp::new(Db::Sqlite, Some(&s3), &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "a.txt", text(10)).await;
    s3.stop();

    let started = Instant::now();
    let res = app.download(&token, &f.url, &[]).await;
    let download = started.elapsed();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "STORAGE_UNAVAILABLE"
    );

    let started = Instant::now();
    let (_, body) = app
        .upload(Some(&token), upload_input(ALABAMA), "b.txt", text(10))
        .await;
    let upload = started.elapsed();
    assert_eq!(error_codes(&body), vec!["STORAGE_UNAVAILABLE"], "{body}");

    let started = Instant::now();
    let ready = app.get("/readyz").send().await.unwrap();
    let readyz = started.elapsed();
    assert_eq!(ready.status().as_u16(), 503);

    eprintln!("storage down: download {download:?}, upload {upload:?}, /readyz {readyz:?}");
    for (what, took) in [
        ("download", download),
        ("upload", upload),
        ("/readyz", readyz),
    ] {
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
    }
}
