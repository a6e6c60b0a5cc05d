//! Where object bytes live: `STORAGE_URL`, parsed once into a backend.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::{ConfigError, Vars};

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

impl std::fmt::Display for StorageBackend {
    /// What the start-up banner says: where bytes go, no secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageBackend::Local { dir } => write!(f, "local folder {}", dir.display()),
            StorageBackend::Memory => write!(f, "memory (nothing is kept)"),
            StorageBackend::S3(s3) => {
                write!(f, "s3://{}", s3.bucket)?;
                if let Some(prefix) = &s3.prefix {
                    write!(f, "/{prefix}")?;
                }
                match &s3.endpoint {
                    Some(endpoint) => write!(f, " at {endpoint}")?,
                    None => write!(f, " in {}", s3.region)?,
                }
                let credentials = match (&s3.access_key_id, &s3.secret_access_key) {
                    (Some(_), Some(_)) => "keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                    _ => "credentials from the environment's default chain",
                };
                write!(f, " ({credentials})")
            }
        }
    }
}

impl StorageConfig {
    pub(crate) fn parse(env: &Vars<'_>) -> Result<Self, ConfigError> {
        let url = env
            .get("STORAGE_URL")
            .unwrap_or_else(|| format!("file://{}", env.data_dir().join("objects").display()));
        let backend = if let Some(dir) = url.strip_prefix("file://").filter(|d| !d.is_empty()) {
            StorageBackend::Local {
                dir: PathBuf::from(dir),
            }
        } else if let Some(rest) = url.strip_prefix("s3://").filter(|r| !r.is_empty()) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            let s3 = S3Config {
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
            };
            check_s3(&s3)?;
            StorageBackend::S3(s3)
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

/// What would otherwise fail only at the first request, with an error that
/// names no variable.
fn check_s3(s3: &S3Config) -> Result<(), ConfigError> {
    if let Some(endpoint) = &s3.endpoint {
        let plain = endpoint.starts_with("http://");
        if !plain && !endpoint.starts_with("https://") {
            return Err(ConfigError::new(
                "AWS_ENDPOINT_URL",
                format!(
                    "`{endpoint}` must start with https:// (or http:// with AWS_ALLOW_HTTP=true)"
                ),
            ));
        }
        if plain && !s3.allow_http {
            return Err(ConfigError::new(
                "AWS_ALLOW_HTTP",
                format!(
                    "AWS_ENDPOINT_URL `{endpoint}` is plain HTTP: set AWS_ALLOW_HTTP=true \
                     (for a local S3-compatible server) or use https://"
                ),
            ));
        }
    }
    match (&s3.access_key_id, &s3.secret_access_key) {
        (Some(_), None) => Err(ConfigError::new(
            "AWS_SECRET_ACCESS_KEY",
            "is missing: AWS_ACCESS_KEY_ID is set, so both are needed",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "AWS_ACCESS_KEY_ID",
            "is missing: AWS_SECRET_ACCESS_KEY is set, so both are needed",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn an_s3_endpoint_over_plain_http_needs_aws_allow_http() {
        let s3 = [
            ("STORAGE_URL", "s3://b"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8333"),
        ];
        assert_eq!(config(&s3).unwrap_err().name, "AWS_ALLOW_HTTP");
        let allowed = [s3[0], s3[1], ("AWS_ALLOW_HTTP", "true")];
        assert!(config(&allowed).is_ok());
        let odd = [
            ("STORAGE_URL", "s3://b"),
            ("AWS_ENDPOINT_URL", "127.0.0.1:8333"),
        ];
        assert_eq!(config(&odd).unwrap_err().name, "AWS_ENDPOINT_URL");
    }

    #[test]
    fn half_a_key_pair_names_the_missing_half() {
        let half = [("STORAGE_URL", "s3://b"), ("AWS_ACCESS_KEY_ID", "k")];
        assert_eq!(config(&half).unwrap_err().name, "AWS_SECRET_ACCESS_KEY");
    }

    #[test]
    fn the_banner_names_the_storage_without_secrets() {
        let c = config(&[
            ("STORAGE_URL", "s3://reports/tanf"),
            ("AWS_ENDPOINT_URL", "https://s3.example.gov"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ])
        .unwrap();
        let shown = c.storage.backend.to_string();
        assert_eq!(
            shown,
            "s3://reports/tanf at https://s3.example.gov (keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        );
        assert!(!shown.contains("very-secret"));
    }

    #[test]
    fn the_default_is_a_local_folder_under_data() {
        let c = config(&[]).unwrap();
        assert!(
            matches!(&c.storage.backend, StorageBackend::Local { dir } if dir == &PathBuf::from("./data/objects"))
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
