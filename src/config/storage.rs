//! Where object bytes live: `STORAGE_URL`, parsed once into a backend.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::{ConfigError, Vars};

pub const DEFAULT_STORAGE_DIR: &str = "./data/objects";

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Time allowed to open a connection to storage.
    pub connect_timeout: Duration,
    /// Longest silence within one storage response. There is deliberately no
    /// limit on a whole transfer: a 1 GiB download may take minutes.
    pub read_timeout: Duration,
    /// Retries of one failed storage request (S3), and the time after which
    /// no new retry starts. Kept small so that an outage answers 503 within
    /// a second instead of after seconds of backoff.
    pub max_retries: usize,
    pub retry_timeout: Duration,
    /// How long an abort of a multipart upload is retried while storage is
    /// down, before it is left to `reportfiles storage sweep`.
    pub abort_retry_for: Duration,
}

#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// `file://DIR`: a local folder.
    Local { dir: PathBuf },
    /// `s3://BUCKET[/PREFIX]`: S3 or any S3-compatible server.
    S3(S3Config),
    /// `memory://`: nothing survives the process (tests only).
    Memory,
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Keys live under this prefix (no leading or trailing slash).
    pub prefix: Option<String>,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    /// Plain-HTTP endpoints (local S3-compatible servers).
    pub allow_http: bool,
    /// `bucket.host` addressing instead of `host/bucket`.
    pub virtual_hosted_style: bool,
}

impl StorageConfig {
    pub(crate) fn parse(env: &Vars<'_>) -> Result<Self, ConfigError> {
        let url = env
            .get("STORAGE_URL")
            .unwrap_or_else(|| format!("file://{DEFAULT_STORAGE_DIR}"));
        let backend = if let Some(dir) = url.strip_prefix("file://").filter(|d| !d.is_empty()) {
            StorageBackend::Local {
                dir: PathBuf::from(dir),
            }
        } else if let Some(rest) = url.strip_prefix("s3://").filter(|r| !r.is_empty()) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            StorageBackend::S3(S3Config {
                bucket: bucket.to_string(),
                prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
                endpoint: env.get("AWS_ENDPOINT_URL"),
                region: env
                    .get("AWS_REGION")
                    .or_else(|| env.get("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into()),
                access_key_id: env.get("AWS_ACCESS_KEY_ID"),
                secret_access_key: env.get("AWS_SECRET_ACCESS_KEY").map(SecretString::from),
                session_token: env.get("AWS_SESSION_TOKEN").map(SecretString::from),
                allow_http: env.parse("AWS_ALLOW_HTTP", false)?,
                virtual_hosted_style: env.parse("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", false)?,
            })
        } else if url == "memory://" {
            StorageBackend::Memory
        } else {
            return Err(ConfigError::new(
                "STORAGE_URL",
                format!("`{url}` is not file://DIR, s3://BUCKET or memory://"),
            ));
        };
        Ok(StorageConfig {
            backend,
            connect_timeout: Duration::from_secs(env.parse("STORAGE_CONNECT_TIMEOUT_SECS", 5)?),
            read_timeout: Duration::from_secs(env.parse("STORAGE_READ_TIMEOUT_SECS", 30)?),
            max_retries: env.parse("STORAGE_MAX_RETRIES", 3)?,
            retry_timeout: Duration::from_millis(env.parse("STORAGE_RETRY_TIMEOUT_MS", 500)?),
            abort_retry_for: Duration::from_secs(env.parse("STORAGE_ABORT_RETRY_SECS", 300)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn the_default_is_a_local_folder_under_data() {
        let c = config(&[]).unwrap();
        assert!(
            matches!(&c.storage.backend, StorageBackend::Local { dir } if dir == &PathBuf::from(DEFAULT_STORAGE_DIR))
        );
    }

    #[test]
    fn an_s3_url_names_the_bucket_and_an_optional_prefix() {
        let c = config(&[("STORAGE_URL", "s3://reports/tanf/2026/")]).unwrap();
        let StorageBackend::S3(s3) = c.storage.backend else {
            panic!("not S3")
        };
        assert_eq!(s3.bucket, "reports");
        assert_eq!(s3.prefix.as_deref(), Some("tanf/2026"));
        assert_eq!(s3.region, "us-east-1");
        let c = config(&[("STORAGE_URL", "s3://reports")]).unwrap();
        assert!(matches!(
            c.storage.backend,
            StorageBackend::S3(S3Config { prefix: None, .. })
        ));
    }

    #[test]
    fn storage_retries_are_few_and_short_by_default() {
        let c = config(&[]).unwrap();
        assert_eq!(c.storage.max_retries, 3);
        assert_eq!(c.storage.retry_timeout, Duration::from_millis(500));
        assert_eq!(c.storage.abort_retry_for, Duration::from_secs(300));
        let c = config(&[
            ("STORAGE_MAX_RETRIES", "0"),
            ("STORAGE_RETRY_TIMEOUT_MS", "200"),
            ("STORAGE_ABORT_RETRY_SECS", "30"),
        ])
        .unwrap();
        assert_eq!(c.storage.max_retries, 0);
        assert_eq!(c.storage.retry_timeout, Duration::from_millis(200));
        assert_eq!(c.storage.abort_retry_for, Duration::from_secs(30));
        for name in [
            "STORAGE_MAX_RETRIES",
            "STORAGE_RETRY_TIMEOUT_MS",
            "STORAGE_ABORT_RETRY_SECS",
        ] {
            assert_eq!(config(&[(name, "-1")]).unwrap_err().name, name);
        }
    }

    #[test]
    fn unknown_or_incomplete_urls_are_refused() {
        for url in ["ftp://x", "s3://", "file://", "memory://x", "reports"] {
            assert_eq!(
                config(&[("STORAGE_URL", url)]).unwrap_err().name,
                "STORAGE_URL",
                "{url}"
            );
        }
        assert_eq!(
            config(&[("STORAGE_URL", "s3://b"), ("AWS_ALLOW_HTTP", "maybe")])
                .unwrap_err()
                .name,
            "AWS_ALLOW_HTTP"
        );
    }
}
