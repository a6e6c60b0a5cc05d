//! What a new user meets from a fresh clone: the start-up banner, errors
//! that say how to fix them, the CLI from any folder, one log line per
//! request. CLI tests run the real binary, from a folder of their own.

use std::{path::Path, process::Command};

use serde_json::Value;

use crate::common::{ALABAMA, Db, TestApp, header, text};

/// Runs the binary in `dir` with only `env` set (and PATH), as a person at
/// a shell would: nothing of the test's environment leaks in.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reportfiles"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_postgres_database_is_named_with_the_fix_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://postgres:s3cret@127.0.0.1:5432/rf_no_such_database";
    let (ok, _, err) = run(dir.path(), &["migrate"], &[("DATABASE_URL", url)]);
    assert!(!ok);
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(err.contains("createdb"), "{err}");
    assert!(!err.contains("s3cret"), "the password leaked: {err}");
    assert!(!err.contains("at line"), "{err}");
}

#[test]
fn an_unreachable_database_names_its_host_and_port_within_a_second_or_two() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/rf");
    let started = std::time::Instant::now();
    let (ok, _, err) = run(dir.path(), &["migrate"], &[("DATABASE_URL", &url)]);
    assert!(!ok);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(started.elapsed().as_secs() < 3, "{:?}", started.elapsed());
}

#[test]
fn a_sqlite_file_that_cannot_be_made_says_how_to_make_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        dir.path(),
        &["migrate"],
        &[("DATABASE_URL", "sqlite://./missing.db")],
    );
    assert!(!ok);
    assert!(err.contains("mode=rwc"), "{err}");
}

#[test]
fn a_plain_http_s3_endpoint_needs_aws_allow_http() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        dir.path(),
        &["serve"],
        &[
            ("STORAGE_URL", "s3://bucket"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8333"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("AWS_ALLOW_HTTP"), "{err}");
}

#[test]
fn a_size_with_a_unit_is_understood_and_a_wrong_one_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(dir.path(), &["migrate"], &[("MAX_UPLOAD_BYTES", "10MB")]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(dir.path(), &["migrate"], &[("MAX_UPLOAD_BYTES", "ten")]);
    assert!(!ok);
    assert!(
        err.contains("MAX_UPLOAD_BYTES") && err.contains("10MiB"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_is_named_before_anything_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, _, err) = run(dir.path(), &["serve"], &[("BIND_ADDR", &addr)]);
    assert!(!ok);
    assert!(err.contains(&addr) && err.contains("BIND_ADDR"), "{err}");
    assert!(
        !dir.path().join("data/reportfiles.db").exists(),
        "nothing is migrated before the address is known to be free"
    );
}

#[test]
fn the_cli_finds_the_data_folder_beside_dot_env_from_a_subfolder() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join(".env"), "# nothing set\n").unwrap();
    let sub = root.path().join("deep/er");
    std::fs::create_dir_all(&sub).unwrap();
    let (ok, from_root, err) = run(root.path(), &["token", "--sub", "a"], &[]);
    assert!(ok, "{err}");
    let (ok, from_sub, err) = run(&sub, &["token", "--sub", "a"], &[]);
    assert!(ok, "{err}");
    assert!(root.path().join("data/dev-jwt-secret").exists());
    assert!(!sub.join("data").exists(), "no second data folder");
    // One secret: both tokens have the same signature over the same claims
    // only when issued in the same second; compare the secret's use instead.
    let (ok, users, err) = run(&sub, &["user", "list"], &[]);
    assert!(ok, "user list on a fresh database: {err}");
    assert!(users.trim().is_empty(), "{users}");
    assert!(!from_root.trim().is_empty() && !from_sub.trim().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_users_on_postgres_from_any_folder() {
    let url = crate::common::new_postgres_database().await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = [("DATABASE_URL", url.as_str())];
    let (ok, users, err) = run(a.path(), &["user", "list"], &env);
    assert!(ok && users.trim().is_empty(), "a fresh database: {err}");
    let (ok, _, err) = run(
        a.path(),
        &[
            "user",
            "create",
            "--subject",
            "ana",
            "--role",
            "DATA_ANALYST",
            "--stt-id",
            "1",
            "--approve",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let (ok, users, err) = run(b.path(), &["user", "list"], &env);
    assert!(ok, "{err}");
    assert!(users.contains("ana\tAPPROVED\tDATA_ANALYST"), "{users}");
}

#[test]
fn stt_list_gives_the_ids_for_stt_id() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(dir.path(), &["stt", "list"], &[]);
    assert!(ok, "{err}");
    let alabama = out.lines().find(|l| l.contains("Alabama")).unwrap();
    assert!(alabama.starts_with(&format!("{ALABAMA}\t")), "{alabama}");
    assert_eq!(out.lines().count(), 131);
}

#[test]
fn help_names_the_configuration_and_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let (_, serve, _) = run(dir.path(), &["serve", "--help"], &[]);
    assert!(
        serve.contains(".env") && serve.contains("DATABASE_URL"),
        "{serve}"
    );
    let (_, create, _) = run(dir.path(), &["user", "create", "--help"], &[]);
    for option in ["--subject", "--email", "--name", "--stt-id"] {
        let line = create.lines().find(|l| l.contains(option)).unwrap();
        assert!(
            line.trim().len() > option.len() + 10,
            "{option} has no description: {line}"
        );
    }
    let (_, token, _) = run(dir.path(), &["token", "--help"], &[]);
    assert!(token.contains("dev-jwt-secret"), "{token}");
}

#[test]
fn a_user_error_on_the_command_line_speaks_of_command_line_options() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(
        dir.path(),
        &[
            "user",
            "create",
            "--subject",
            "s",
            "--role",
            "DATA_ANALYST",
            "--approve",
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("--stt-id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_names_database_and_storage_and_the_json_header() {
    let app = TestApp::postgres().await;
    let server = app.spawn_process().await;
    let banner = server.output();
    let database = banner
        .lines()
        .find(|l| l.trim_start().starts_with("database"))
        .unwrap();
    assert!(database.contains("postgres://"), "{banner}");
    assert!(
        banner
            .lines()
            .any(|l| l.trim_start().starts_with("storage")),
        "{banner}"
    );
    assert!(
        banner.contains(r#"{"Authorization": "Bearer "#),
        "GraphiQL's Headers tab takes JSON: {banner}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_one_log_line() {
    let app = TestApp::sqlite().await;
    let (user, token) = app.analyst("analyst", ALABAMA).await;
    let file = app.upload_file(&token, ALABAMA, "a.txt", text(1234)).await;
    let server = app
        .spawn_process_with(&[("RUST_LOG", "info"), ("LOG_JSON", "true")])
        .await;
    let res = app
        .client
        .get(format!("{}{}", server.base, file.url))
        .bearer_auth(&token)
        .header("x-request-id", "log-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().len(), 1234);
    let line: Value = crate::common::wait_for(
        std::time::Duration::from_secs(5),
        "the request's log line",
        async || {
            server
                .output()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["fields"]["request_id"] == "log-me-1")
        },
    )
    .await;
    let f = &line["fields"];
    assert_eq!(f["method"], "GET");
    assert_eq!(f["route"], "/v1/report-files/{id}/download");
    assert_eq!(f["status"], 200);
    assert_eq!(f["bytes"], 1234);
    assert_eq!(f["user"], user.id.to_string());
    assert!(f["duration_ms"].as_f64().is_some());
    assert!(!server.output().contains("\u{1b}["), "no colours in a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_object_is_gone_answers_503_not_internal() {
    let app = TestApp::new(Db::Sqlite, None, &[]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let file = app.upload_file(&token, ALABAMA, "a.txt", text(10)).await;
    // Another STORAGE_URL for the same database: the object is not there.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = format!("file://{}", elsewhere.path().display());
    let server = app.spawn_process_with(&[("STORAGE_URL", &moved)]).await;
    let res = app
        .client
        .get(format!("{}{}", server.base, file.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "STORAGE_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_of_255_characters_is_kept_exactly_and_sent_back() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let name = format!("{}.txt", "ü".repeat(251));
    let file = app.upload_file(&token, ALABAMA, &name, text(10)).await;
    let res = app.download(&token, &file.url, &[]).await;
    let disposition = header(&res, "content-disposition").unwrap().to_string();
    let encoded = disposition.split("filename*=UTF-8''").nth(1).unwrap();
    let decoded: Vec<u8> = {
        let mut out = Vec::new();
        let bytes = encoded.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    };
    assert_eq!(String::from_utf8(decoded).unwrap(), name);
}
