//! Operations: health, readiness, request ids, seeding, the CLI, the schema file.

use std::process::Command;

use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::common::{TestApp, db_tests, error_codes, header, schema_sdl};

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.get("/healthz").send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

async fn readiness_fails_when_the_database_is_gone(app: TestApp) {
    app.close_server_database().await;
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let res = app.get("/healthz").send().await.unwrap();
    let id = header(&res, "x-request-id").unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    let res = app
        .get("/healthz")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "x-request-id"),
        Some("abc-123"),
        "a caller's id is kept"
    );
}

async fn a_request_id_that_is_not_short_and_plain_is_replaced(app: TestApp) {
    let long = "a".repeat(65);
    for id in ["tab\there", "semi;colon", "sp ace", long.as_str()] {
        let res = app
            .get("/healthz")
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let echoed = header(&res, "x-request-id").unwrap();
        assert_ne!(echoed, id);
        assert!(uuid::Uuid::parse_str(echoed).is_ok(), "{echoed}");
    }
}

async fn seeding_twice_changes_nothing(app: TestApp) {
    let stts = || entity::stt::Entity::find().count(&app.db);
    let regions = || entity::region::Entity::find().count(&app.db);
    assert_eq!((stts().await.unwrap(), regions().await.unwrap()), (131, 10));
    app.seed_again().await;
    assert_eq!((stts().await.unwrap(), regions().await.unwrap()), (131, 10));
    let alabama = entity::stt::Entity::find_by_id(1)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (alabama.name.as_str(), alabama.stt_code.as_str()),
        ("Alabama", "01")
    );
}

async fn graphiql_is_served_when_enabled(app: TestApp) {
    let res = app.get("/graphql").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("graphiql"));
}

db_tests!(
    health_and_readiness_answer,
    readiness_fails_when_the_database_is_gone,
    every_response_carries_a_request_id,
    a_request_id_that_is_not_short_and_plain_is_replaced,
    seeding_twice_changes_nothing,
    graphiql_is_served_when_enabled,
);

fn cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_reportfiles"))
        .args(args)
        .current_dir(dir.path())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn schema_file_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        committed == schema_sdl(),
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn the_cli_prints_the_schema() {
    let out = cli(&["schema"], &[]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), schema_sdl());
}

#[test]
fn an_invalid_setting_stops_the_cli_naming_the_variable() {
    let out = cli(&["migrate"], &[("MAX_UPLOAD_BYTES", "a lot")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_UPLOAD_BYTES"));
}

#[tokio::test]
async fn a_cli_minted_token_answers_me() {
    let app = TestApp::sqlite().await;
    let secret = String::from_utf8(app.hs256_secret()).unwrap();
    let out = cli(
        &["token", "--sub", "from-cli"],
        &[("JWT_HS256_SECRET", &secret)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let body = app
        .gql(Some(token.trim()), "{ me { subject status } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["me"],
        json!({ "subject": "from-cli", "status": "PENDING" })
    );
}

#[tokio::test]
async fn the_cli_creates_and_approves_users() {
    let app = TestApp::sqlite().await;
    let url = app.database_url();
    let out = cli(
        &[
            "user",
            "create",
            "--subject",
            "cli-admin",
            "--role",
            "SYSTEM_ADMIN",
            "--approve",
        ],
        &[
            ("DATABASE_URL", &url),
            ("JWT_HS256_SECRET", &"x".repeat(32)),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = app
        .gql(
            Some(&app.token("cli-admin")),
            "{ users { subject role status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["users"],
        json!([{ "subject": "cli-admin", "role": "SYSTEM_ADMIN", "status": "APPROVED" }])
    );
    assert!(error_codes(&body).is_empty());
}

#[tokio::test]
async fn production_keeps_metrics_off_the_api_listener() {
    let app = TestApp::sqlite_with(&[
        ("APP_ENV", "production"),
        ("JWT_ALGORITHMS", "HS256"),
        ("AV_SCAN", "off"),
    ])
    .await;
    let res = app.get("/metrics").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener() {
    let app = TestApp::sqlite().await;
    let port = crate::common::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = app
        .spawn_process_with(&[
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "HS256"),
            ("AV_SCAN", "off"),
            ("METRICS_BIND_ADDR", &metrics_addr),
        ])
        .await;
    let api = app
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 404, "not on the API listener");
    let own = app
        .client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status().as_u16(), 200);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("reportfiles_http_requests_total")
    );
}
