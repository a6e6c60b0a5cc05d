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
    /// The variables this server was configured with.
    pub env: HashMap<String, String>,
    _stop: oneshot::Sender<()>,
}

pub const UPLOAD: &str = "mutation($input: UploadReportFileInput!, $file: Upload!) {
  uploadReportFile(input: $input, file: $file) {
    id version sizeBytes sha256 originalFilename extension contentType downloadUrl
    uploadedBy { subject } stt { id }
  }
}";

pub struct ServerProcess {
    pub base: String,
    child: std::process::Child,
}

impl ServerProcess {
    /// Sends SIGTERM, as an orchestrator stopping the instance would.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, for at most `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database of its own per test, so tests never see each other's rows.
/// A missing server fails the test: it never skips.
async fn new_postgres_database() -> String {
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
    format!("{base}/{name}")
}

/// A SeaweedFS S3 server: the shared one `scripts/test` started, or a
/// private one a fault test may stop and start.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    private: Option<(TempDir, u16)>,
}

fn services_script() -> String {
    format!("{}/scripts/services.sh", env!("CARGO_MANIFEST_DIR"))
}

fn free_port_base() -> u16 {
    use std::net::TcpListener;
    for _ in 0..200 {
        let base = 30000 + (rand_u16() % 900) * 10;
        let ports = (1..=5).flat_map(|i| [base + i, base + i + 10000]);
        if ports
            .into_iter()
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free ports for a private SeaweedFS");
}

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() % 65536) as u16
}

impl S3Server {
    /// The server started by `scripts/test`. Without it the test fails.
    pub fn shared() -> Self {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: S3 tests need SeaweedFS; run them through scripts/test")
            })
        };
        S3Server {
            endpoint: var("TEST_S3_ENDPOINT"),
            bucket: var("TEST_S3_BUCKET"),
            access_key: var("TEST_S3_ACCESS_KEY"),
            secret_key: var("TEST_S3_SECRET_KEY"),
            private: None,
        }
    }

    /// A SeaweedFS of this test's own, on free ports.
    pub fn private() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = free_port_base();
        let s3 = S3Server {
            endpoint: format!("http://127.0.0.1:{}", base + 4),
            bucket: "private".into(),
            access_key: "private-key".into(),
            secret_key: "private-secret".into(),
            private: Some((dir, base)),
        };
        s3.start();
        s3
    }

    fn shell(&self, script: &str) {
        let (dir, base) = self
            .private
            .as_ref()
            .expect("only private servers are managed");
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(". {} && {script}", services_script()))
            .env("DIR", dir.path())
            .env("BASE", base.to_string())
            .env("KEY", &self.access_key)
            .env("SECRET", &self.secret_key)
            .env("BUCKET", &self.bucket)
            .status()
            .unwrap();
        assert!(status.success(), "{script}");
    }

    /// (Re)starts a private server on its folder and ports.
    pub fn start(&self) {
        self.shell(
            r#"start_weed "$DIR" "$BASE" "$KEY" "$SECRET" && for i in $(seq 1 40); do make_bucket $((BASE + 1)) "$BUCKET" && exit 0; sleep 0.5; done; exit 1"#,
        );
    }

    /// Stops a private server at once, as a crash would.
    pub fn stop(&self) {
        self.shell(r#"kill -9 "$(cat "$DIR/weed.pid")"; for i in $(seq 1 40); do curl -s -o /dev/null "http://127.0.0.1:$((BASE + 4))/" || exit 0; sleep 0.25; done; exit 1"#);
    }

    pub fn vars(&self, prefix: &str) -> HashMap<String, String> {
        HashMap::from([
            (
                "STORAGE_URL".into(),
                format!("s3://{}/{prefix}", self.bucket),
            ),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("STORAGE_READ_TIMEOUT_SECS".into(), "5".into()),
            ("STORAGE_CONNECT_TIMEOUT_SECS".into(), "2".into()),
        ])
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some((dir, _)) = &self.private
            && let Ok(pid) = std::fs::read_to_string(dir.path().join("weed.pid"))
        {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.trim())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
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
        Self::new(Db::Sqlite, None, vars).await
    }

    pub async fn postgres() -> Self {
        Self::postgres_with(&[]).await
    }

    pub async fn postgres_with(vars: &[(&str, &str)]) -> Self {
        Self::new(Db::Postgres, None, vars).await
    }

    /// A server on `db`, storing objects in `s3` (a prefix of its own in the
    /// bucket) or in a local folder.
    pub async fn new(db: Db, s3: Option<&S3Server>, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
            Db::Postgres => new_postgres_database().await,
        };
        let mut env = match s3 {
            Some(s3) => s3.vars(&uuid::Uuid::new_v4().simple().to_string()),
            None => HashMap::from([(
                "STORAGE_URL".to_string(),
                format!("file://{}/objects", dir.path().display()),
            )]),
        };
        env.insert("DATABASE_URL".into(), database_url);
        Self::start(dir, env, vars).await
    }

    /// This server's setup with some variables changed (a new server on a
    /// fresh database of the same kind, storage of the same kind).
    pub async fn with_vars(self, vars: &[(&str, &str)]) -> Self {
        let mut env = self.env.clone();
        let dir = tempfile::tempdir().unwrap();
        if env["DATABASE_URL"].starts_with("postgres") {
            env.insert("DATABASE_URL".into(), new_postgres_database().await);
        } else {
            env.insert(
                "DATABASE_URL".into(),
                format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
            );
        }
        let url = env["STORAGE_URL"].clone();
        let fresh = if url.starts_with("s3://") {
            format!("{url}-2")
        } else {
            format!("file://{}/objects", dir.path().display())
        };
        env.insert("STORAGE_URL".into(), fresh);
        drop(self);
        Self::start(dir, env, vars).await
    }

    /// A second server sharing this one's database and storage.
    pub async fn sibling(&self) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start(dir, self.env.clone(), &[]).await
    }

    async fn start(dir: TempDir, mut env: HashMap<String, String>, vars: &[(&str, &str)]) -> Self {
        env.insert("JWT_HS256_SECRET".into(), "test-secret-".repeat(4));
        env.insert("LOG_JSON".into(), "false".into());
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
            env,
            _stop: stop,
        }
    }

    /// Another server process (the real binary) on this one's database and
    /// storage, as a second instance behind a load balancer would be.
    pub async fn spawn_process(&self) -> ServerProcess {
        self.spawn_process_with(&[]).await
    }

    pub async fn spawn_process_with(&self, vars: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_reportfiles"))
            .arg("serve")
            .current_dir(self.dir.path())
            .envs(&self.env)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let process = ServerProcess {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        for _ in 0..200 {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", process.base))
                .send()
                .await
                && r.status().is_success()
            {
                return process;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the second server process did not start");
    }

    /// Every object key in this server's storage.
    pub async fn objects(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let mut keys: Vec<String> = self
            .state
            .storage
            .store()
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    pub async fn report_files(&self) -> Vec<report_file::Model> {
        use sea_orm::{EntityTrait, QueryOrder};
        report_file::Entity::find()
            .order_by_asc(report_file::Column::Seq)
            .all(&self.state.db)
            .await
            .unwrap()
    }

    /// Asserts that nothing was stored: no row and no object.
    pub async fn assert_nothing_stored(&self, why: &str) {
        assert_eq!(self.report_files().await.len(), 0, "{why}: a row was left");
        assert_eq!(
            self.objects().await,
            Vec::<String>::new(),
            "{why}: an object was left"
        );
    }

    /// Uploads `bytes` as apollo-upload-client would: operations, map, file.
    pub async fn upload(
        &self,
        token: Option<&str>,
        input: Value,
        filename: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        self.upload_body(token, input, filename, reqwest::Body::from(bytes), None)
            .await
    }

    pub async fn upload_body(
        &self,
        token: Option<&str>,
        input: Value,
        filename: &str,
        body: reqwest::Body,
        length: Option<u64>,
    ) -> (u16, Value) {
        let operations = json!({
            "query": UPLOAD,
            "variables": { "input": input, "file": null },
        });
        let part = match length {
            Some(n) => reqwest::multipart::Part::stream_with_length(body, n),
            None => reqwest::multipart::Part::stream(body),
        }
        .file_name(filename.to_string())
        .mime_str("text/plain")
        .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part("0", part);
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .header("apollo-require-preflight", "true")
            .multipart(form);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn download(
        &self,
        token: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.get(self.url(path)).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// The download events of a file, waiting until `n` have been written
    /// (they are written when the response body is done with).
    pub async fn download_events(
        &self,
        file: uuid::Uuid,
        n: usize,
    ) -> Vec<entity::download_event::Model> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let events = entity::download_event::Entity::find()
                .filter(entity::download_event::Column::ReportFileId.eq(file))
                .order_by_asc(entity::download_event::Column::Id)
                .all(&self.state.db)
                .await
                .unwrap();
            if events.len() >= n || std::time::Instant::now() > deadline {
                assert_eq!(events.len(), n, "download events of {file}");
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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

    pub async fn regional(&self, sub: &str, regions: &[i32]) -> (user::Model, String) {
        self.user(
            sub,
            Some(Role::RegionalStaff),
            None,
            regions,
            UserStatus::Approved,
        )
        .await
    }

    pub async fn pending(&self, sub: &str) -> (user::Model, String) {
        self.user(sub, None, None, &[], UserStatus::Pending).await
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

/// Runs each named `async fn(TestApp)` on the two storage backends: the
/// local folder (with SQLite) and SeaweedFS S3 (with PostgreSQL).
macro_rules! storage_tests {
    ($($name:ident),* $(,)?) => {
        mod local_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    use $crate::common::{Db, TestApp};
                    super::$name(TestApp::new(Db::Sqlite, None, &[]).await).await
                }
            )*
        }
        mod s3_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    use $crate::common::{Db, S3Server, TestApp};
                    let s3 = S3Server::shared();
                    super::$name(TestApp::new(Db::Postgres, Some(&s3), &[]).await).await
                }
            )*
        }
    };
}
pub(crate) use storage_tests;

/// Runs each named `async fn(TestApp)` against SQLite and against PostgreSQL.
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestApp::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestApp::postgres().await).await
                }
            )*
        }
    };
}
pub(crate) use db_tests;
