//! SeaweedFS, the S3 server the storage tests run against.

use std::collections::HashMap;

use tempfile::TempDir;

/// A SeaweedFS S3 server: the shared one `scripts/test` started, or a
/// private one a fault test may stop and start.
pub struct S3Server {
    endpoint: String,
    bucket: String,
    access_key: String,
    secret_key: String,
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
