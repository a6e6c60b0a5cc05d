//! The test harness: the real server on a real port, over a real SQLite
//! file or a fresh PostgreSQL database, spoken to over HTTP.
#![allow(dead_code)]

use std::{collections::HashMap, sync::Arc};

use entity::{Quarter, Role, Section, UserStatus, report_file, user};
use reportfiles::{
    access::{Access, Principal},
    app::{self, AppState},
    auth,
    config::Config,
    service::{
        report_files::{self, NewReportFile},
        users::{self, AccessChange},
    },
};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const ALABAMA: i32 = 1; // region 4
pub const ALASKA: i32 = 2; // region 10
pub const ALABAMA_REGION: i32 = 4;

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub dir: TempDir,
    _stop: oneshot::Sender<()>,
}

/// Where the PostgreSQL tests connect to create their own databases.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(&[]).await
    }

    pub async fn sqlite_with(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
        Self::start(dir, url, vars).await
    }

    pub async fn postgres() -> Self {
        Self::postgres_with(&[]).await
    }

    /// A database of its own per test, so tests never see each other's rows.
    /// A missing server fails the test: it never skips.
    pub async fn postgres_with(vars: &[(&str, &str)]) -> Self {
        let admin_url = postgres_admin_url();
        let admin = Database::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is required at {admin_url}: {e}"));
        let name = format!("rf_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let base = admin_url.rsplit_once('/').unwrap().0;
        let dir = tempfile::tempdir().unwrap();
        Self::start(dir, format!("{base}/{name}"), vars).await
    }

    async fn start(dir: TempDir, database_url: String, vars: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), database_url),
            (
                "STORAGE_URL".into(),
                format!("file://{}/objects", dir.path().display()),
            ),
            ("JWT_HS256_SECRET".into(), "test-secret-".repeat(4)),
            ("LOG_JSON".into(), "false".into()),
        ]);
        for (k, v) in vars {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
        let state = AppState::new(config).await.expect("server state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            state,
            client: reqwest::Client::new(),
            dir,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A valid HS256 token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        auth::mint_hs256(
            &self.state.config.jwt,
            sub,
            Some(&format!("{sub}@example.gov")),
            None,
            3600,
        )
        .unwrap()
    }

    /// A user with the given access, and a token for them.
    pub async fn user(
        &self,
        sub: &str,
        role: Option<Role>,
        stt_id: Option<i32>,
        region_ids: &[i32],
        status: UserStatus,
    ) -> (user::Model, String) {
        let change = AccessChange {
            role,
            stt_id,
            region_ids: region_ids.to_vec(),
            status,
        };
        let user = users::upsert_with_access(
            &self.state.db,
            sub,
            Some(format!("{sub}@example.gov")),
            None,
            change,
        )
        .await
        .unwrap();
        (user, self.token(sub))
    }

    pub async fn admin(&self) -> (user::Model, String) {
        self.user(
            "sysadmin",
            Some(Role::SystemAdmin),
            None,
            &[],
            UserStatus::Approved,
        )
        .await
    }

    pub async fn analyst(&self, sub: &str, stt: i32) -> (user::Model, String) {
        self.user(
            sub,
            Some(Role::DataAnalyst),
            Some(stt),
            &[],
            UserStatus::Approved,
        )
        .await
    }

    /// Records a report file through the service layer, as an upload would.
    pub async fn insert_file(
        &self,
        uploader: &user::Model,
        stt_id: i32,
        fiscal_year: i32,
        quarter: Quarter,
        section: Section,
    ) -> report_file::Model {
        let access = Access::User(Arc::new(Principal {
            user: uploader.clone(),
            region_ids: vec![],
        }));
        let grant = access.upload(stt_id).expect("uploader may upload here");
        let id = uuid::Uuid::new_v4();
        report_files::insert_next_version(
            &self.state.db,
            &grant,
            NewReportFile {
                id,
                fiscal_year,
                quarter,
                section,
                original_filename: format!("{id}.txt"),
                extension: "txt".into(),
                content_type: "text/plain".into(),
                size_bytes: 10,
                sha256: "0".repeat(64),
                object_key: format!("report-files/{id}"),
                storage_version: None,
                etag: None,
            },
        )
        .await
        .unwrap()
    }

    /// POSTs a GraphQL request and returns the status and JSON body.
    pub async fn gql_status(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_status(token, query, variables).await.1
    }
}

/// The `extensions.code` of each error in a GraphQL response.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs each named `async fn(TestApp)` against SQLite and against PostgreSQL.
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // each test binary has its own `common`
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::TestApp::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::TestApp::postgres().await).await
                }
            )*
        }
    };
}
