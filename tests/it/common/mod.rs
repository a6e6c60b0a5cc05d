//! The test harness: the real server on a real port, over a real SQLite
//! file or a fresh PostgreSQL database, spoken to over HTTP.
//!
//! Test modules reach the server library (`reportfiles::*`) only through
//! [`TestApp`]'s methods in `server.rs`: that file is the one to adapt when
//! the library's API changes.

pub mod clamd;
mod nginx;
mod oidc;
mod process;
mod proxy;
mod requests;
mod s3;
mod server;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use nginx::{Nginx, NginxSpec};
pub use oidc::{Browser, OidcProvider, location, set_cookie, set_cookies};
pub use process::ServerProcess;
pub use proxy::Proxy;
pub use requests::{UPLOAD, UPLOAD_MAP, channel_body, upload_operations};
pub use s3::S3Server;
pub use server::{TestApp, new_postgres_database, now_secs, postgres_addr, schema_sdl};

pub const ALABAMA: i32 = 1; // region 4
pub const ALASKA: i32 = 2; // region 10
pub const ALABAMA_REGION: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
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

/// A port nothing listens on at 127.0.0.1 now: for a service a test
/// starts, or an address that refuses connections.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How often [`wait_for`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Tries `attempt` until it gives a value, and returns that. Fails the test,
/// naming `what`, when an attempt begun after `within` has passed still
/// gives none: as strict as waiting `within` and trying once, but done as
/// soon as the state is reached.
pub async fn wait_for<T>(
    within: Duration,
    what: &str,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let late = Instant::now() >= deadline;
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(!late, "{what}: not within {within:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] a condition to hold.
pub async fn wait_until(within: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    wait_for(within, what, async || condition().await.then_some(())).await
}

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `len` bytes of text shaped like a TANF data file: printable lines, so the
/// server's binary check lets them in.
pub fn text(len: usize) -> Vec<u8> {
    const LINE: &[u8] = b"ADS.E2J.NDM1.TS01 0123456789 abcdefghijklmnopqrstuvwxyz\n";
    let mut bytes = LINE.repeat(len / LINE.len() + 1);
    bytes.truncate(len);
    bytes
}

/// The SHA-256 of `bytes` in lowercase hex, as the API reports it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `UploadReportFileInput` of a file for `stt`, in one fixed slot.
pub fn upload_input(stt: i32) -> Value {
    json!({ "sttId": stt, "fiscalYear": 2026, "quarter": "Q1", "section": "ACTIVE_CASE_DATA" })
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

/// A response header's value, if it has one.
pub fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// `req` with these headers added.
pub fn with_headers(
    mut req: reqwest::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req
}
