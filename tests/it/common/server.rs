//! [`TestApp`]: a server of the library on a real port, and every use the
//! tests make of the library's own API (`reportfiles::*`). When that API
//! changes, this file is the one to adapt.

use std::collections::HashMap;

use entity::{Quarter, Role, Section, UserStatus, report_file, user};
use reportfiles::{
    access::{AccessChange, NewReportFile, Operator},
    app::{App, AppState},
    auth,
    config::{Config, Hs256Secret},
    http,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::ExposeSecret;
use tempfile::TempDir;
use tokio::sync::oneshot;

use super::{Db, S3Server};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The test's own connection to the server's database, for reading what
    /// the server wrote and for setting up rows.
    pub db: DatabaseConnection,
    /// The variables this server was configured with.
    pub(super) env: HashMap<String, String>,
    pub(super) dir: TempDir,
    state: AppState,
    _stop: oneshot::Sender<()>,
}

/// A database of its own per test, so tests never see each other's rows.
/// A missing server fails the test: it never skips.
pub async fn new_postgres_database() -> String {
    let admin_url = postgres_admin_url();
    let admin = Database::connect(test_connection(&admin_url))
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

/// Set by `postgres_behind`: the database the proxy forwards to, for the
/// test's own connection.
const DIRECT_DATABASE_URL: &str = "TEST_DIRECT_DATABASE_URL";

/// The PostgreSQL server's address, for a proxy in front of it.
pub fn postgres_addr() -> std::net::SocketAddr {
    let url = postgres_admin_url();
    let authority = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("TEST_POSTGRES_URL names a host and port after `@`");
    std::net::ToSocketAddrs::to_socket_addrs(authority)
        .unwrap()
        .next()
        .unwrap()
}

/// A test's own connection: like the server's, without sqlx's reaping task
/// (it can spin forever when it outlives the test's runtime).
fn test_connection(url: &str) -> sea_orm::ConnectOptions {
    let mut options = sea_orm::ConnectOptions::new(url.to_string());
    options
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false);
    options
}

/// Where the PostgreSQL tests connect to create their own databases.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}/test.db?mode=rwc", dir.path().display())
}

fn local_storage_url(dir: &TempDir) -> String {
    format!("file://{}/objects", dir.path().display())
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(&[]).await
    }

    pub async fn sqlite_with(vars: &[(&str, &str)]) -> Self {
        Self::new(Db::Sqlite, None, vars).await
    }

    pub async fn postgres() -> Self {
        Self::new(Db::Postgres, None, &[]).await
    }

    /// A server on `db`, storing objects in `s3` (a prefix of its own in the
    /// bucket) or in a local folder.
    pub async fn new(db: Db, s3: Option<&S3Server>, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match db {
            Db::Sqlite => sqlite_url(&dir),
            Db::Postgres => new_postgres_database().await,
        };
        let mut env = match s3 {
            Some(s3) => s3.vars(&uuid::Uuid::new_v4().simple().to_string()),
            None => HashMap::from([("STORAGE_URL".to_string(), local_storage_url(&dir))]),
        };
        env.insert("DATABASE_URL".into(), database_url);
        Self::start(dir, env, vars).await
    }

    /// A server on a fresh PostgreSQL database that it reaches only through
    /// `proxy`, so the test can cut the database off; the test's own
    /// connection goes straight to it.
    pub async fn postgres_behind(proxy: &super::Proxy, vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let direct = new_postgres_database().await;
        let (base, name) = direct.rsplit_once('/').unwrap();
        let (credentials, _) = base.rsplit_once('@').unwrap();
        let proxied = format!("{credentials}@127.0.0.1:{}/{name}", proxy.port);
        let env = HashMap::from([
            ("STORAGE_URL".to_string(), local_storage_url(&dir)),
            ("DATABASE_URL".to_string(), proxied),
            (DIRECT_DATABASE_URL.to_string(), direct),
        ]);
        Self::start(dir, env, vars).await
    }

    /// This server's setup with some variables changed (a new server on a
    /// fresh database of the same kind, storage of the same kind).
    pub async fn with_vars(self, vars: &[(&str, &str)]) -> Self {
        let mut env = self.env.clone();
        let dir = tempfile::tempdir().unwrap();
        let database_url = if env["DATABASE_URL"].starts_with("postgres") {
            new_postgres_database().await
        } else {
            sqlite_url(&dir)
        };
        env.insert("DATABASE_URL".into(), database_url);
        let url = env["STORAGE_URL"].clone();
        let fresh = if url.starts_with("s3://") {
            format!("{url}-2")
        } else {
            local_storage_url(&dir)
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

    /// Whether this server stores its objects in S3.
    pub fn stores_in_s3(&self) -> bool {
        self.env["STORAGE_URL"].starts_with("s3://")
    }

    async fn start(dir: TempDir, mut env: HashMap<String, String>, vars: &[(&str, &str)]) -> Self {
        env.insert("JWT_HS256_SECRET".into(), "test-secret-".repeat(4));
        env.insert("SESSION_SECRET".into(), "test-session-secret-".repeat(3));
        env.insert("LOG_JSON".into(), "false".into());
        for (k, v) in vars {
            env.insert(k.to_string(), v.to_string());
        }
        give_production_keys(&mut env);
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
        let state = App::start(config).await.expect("server state");
        // Opened after the server's start, which created and migrated it;
        // straight to the database even when the server goes through a proxy.
        let own_url = env.get(DIRECT_DATABASE_URL).unwrap_or(&env["DATABASE_URL"]);
        let db = Database::connect(test_connection(own_url))
            .await
            .expect("the test's database connection");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(http::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            client: reqwest::Client::new(),
            db,
            env,
            dir,
            state,
            _stop: stop,
        }
    }

    /// The multipart part size the server uploads to storage with.
    pub fn part_size(&self) -> usize {
        self.state.config.uploads.part_size
    }

    /// The largest GraphQL request body the server reads.
    pub fn graphql_body_limit(&self) -> usize {
        self.state.config.graphql.body_limit_bytes
    }

    /// The HS256 secret tokens are signed with.
    pub fn hs256_secret(&self) -> Vec<u8> {
        match &self.state.config.tokens.hs256_secret {
            Some(Hs256Secret::Given(secret)) => secret.expose_secret().as_bytes().to_vec(),
            other => panic!("tests set JWT_HS256_SECRET, found {other:?}"),
        }
    }

    /// The `iss` tokens must carry.
    pub fn jwt_issuer(&self) -> String {
        self.state.config.tokens.issuer.clone()
    }

    /// The `aud` tokens must carry.
    pub fn jwt_audience(&self) -> String {
        self.state.config.tokens.audience.clone()
    }

    /// The SQL statements the server has run so far.
    pub fn sql_statements(&self) -> u64 {
        self.state.sql_statements()
    }

    /// The database the server was configured with.
    pub fn database_url(&self) -> String {
        self.state.config.database.url().to_string()
    }

    /// Closes the server's own database pool, as a database outage would
    /// look to it. (The test's `db` stays open.)
    pub async fn close_server_database(&self) {
        self.state.close_database().await;
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

    /// Every version of every object under `report-files/` (delete markers
    /// included, as `true`): what a versioned bucket still holds.
    pub async fn object_versions(&self) -> Vec<(String, bool)> {
        let mut versions: Vec<(String, bool)> = self
            .state
            .storage
            .stored_versions()
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.key, v.delete_marker))
            .collect();
        versions.sort();
        versions
    }

    /// The keys of the multipart uploads begun and not completed or aborted
    /// (S3's incomplete uploads, the local folder's staging files).
    pub async fn incomplete_uploads(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .state
            .storage
            .incomplete_uploads()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.key)
            .collect();
        keys.sort();
        keys
    }

    /// Writes an object straight into storage, as if by an upload whose row
    /// was never written.
    pub async fn put_object(&self, key: &str, bytes: &'static [u8]) {
        use object_store::ObjectStoreExt;
        self.state
            .storage
            .store()
            .put(&key.into(), bytes.into())
            .await
            .unwrap();
    }

    /// A plain delete: in a versioned bucket, a delete marker over the bytes.
    pub async fn delete_object(&self, key: &str) {
        use object_store::ObjectStoreExt;
        self.state
            .storage
            .store()
            .delete(&key.into())
            .await
            .unwrap();
    }

    /// Begins a multipart upload to `key` and leaves it, as a process that
    /// died mid-upload would.
    pub async fn leave_incomplete_upload(&self, key: &str) {
        use object_store::ObjectStoreExt;
        if self.stores_in_s3() {
            let mut upload = self
                .state
                .storage
                .store()
                .put_multipart(&key.into())
                .await
                .unwrap();
            upload.put_part(b"partial".as_slice().into()).await.unwrap();
        } else {
            // object_store removes its staging file when the upload is
            // dropped: a killed process leaves it, as written here.
            let root = self.env["STORAGE_URL"].trim_start_matches("file://");
            let path = std::path::Path::new(root).join(format!("{key}#1"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"partial").unwrap();
        }
    }

    /// Every object key the rows point at, compressed copies included,
    /// sorted.
    pub async fn recorded_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .report_files()
            .await
            .into_iter()
            .flat_map(|r| std::iter::once(r.object_key).chain(r.encoded_object_key))
            .collect();
        keys.sort();
        keys
    }

    /// Asserts that storage and the table agree: every row has its object,
    /// every object version has a row, and no multipart upload is left.
    pub async fn assert_reconciled(&self, why: &str) {
        let rows: std::collections::BTreeSet<String> =
            self.recorded_keys().await.into_iter().collect();
        let versions = self.object_versions().await;
        let stored: std::collections::BTreeSet<String> =
            versions.iter().map(|(k, _)| k.clone()).collect();
        assert!(
            versions.iter().all(|(_, marker)| !marker),
            "{why}: delete markers left: {versions:?}"
        );
        assert_eq!(rows, stored, "{why}: rows and objects differ");
        assert_eq!(
            self.incomplete_uploads().await,
            Vec::<String>::new(),
            "{why}: incomplete uploads left"
        );
    }

    /// Loads the reference data (regions and STTs) again, as the server
    /// does at every start.
    pub async fn seed_again(&self) {
        Operator::connect(&self.state.config.database)
            .await
            .expect("migrations and reference data load again");
    }

    /// A valid HS256 token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.state
            .tokens
            .mint_hs256(sub, Some(&format!("{sub}@example.gov")), None, 3600)
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
        let user = self
            .operator()
            .upsert_user(sub, Some(&format!("{sub}@example.gov")), None, change)
            .await
            .unwrap();
        (user, self.token(sub))
    }

    /// The console's rights, on the test's own connection.
    fn operator(&self) -> Operator {
        Operator::new(self.db.clone())
    }

    /// Records a report file through the upload grant, as an upload would.
    pub async fn insert_file(
        &self,
        uploader: &user::Model,
        stt_id: i32,
        fiscal_year: i32,
        quarter: Quarter,
        section: Section,
    ) -> report_file::Model {
        let grant = self
            .operator()
            .access_of(&uploader.subject)
            .await
            .unwrap()
            .upload(stt_id)
            .expect("uploader may upload here");
        let id = uuid::Uuid::new_v4();
        grant
            .insert_next_version(NewReportFile {
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
                encoded: None,
            })
            .await
            .unwrap()
    }
}

/// Production refuses to start without keys from an identity provider: a
/// production test of something else gets a JWKS URL where nothing answers.
pub(super) fn give_production_keys(env: &mut HashMap<String, String>) {
    let names_keys = ["JWT_JWKS_URL", "OIDC_ISSUER_URL", "OIDC_PROVIDERS"]
        .iter()
        .any(|k| env.contains_key(*k));
    if env.get("APP_ENV").is_some_and(|e| e == "production") && !names_keys {
        env.insert(
            "JWT_JWKS_URL".into(),
            "https://127.0.0.1:9/jwks.json".into(),
        );
    }
}

/// The GraphQL schema the library serves, in SDL.
pub fn schema_sdl() -> String {
    reportfiles::graphql::sdl()
}

/// Seconds since the Unix epoch, as JWT claims count time.
pub fn now_secs() -> u64 {
    auth::now_secs()
}
