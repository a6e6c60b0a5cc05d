//! What an upload must satisfy, and how it is sent to storage.

use std::time::Duration;

use super::{ConfigError, Vars};

pub const DEFAULT_EXTENSIONS: &str = "txt,ts##,ts###,ms##";

#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub max_bytes: u64,
    /// Extension patterns; `#` stands for one digit (`ts##` matches `ts01`).
    pub allowed_extensions: Vec<String>,
    /// Size of each multipart part (S3 needs at least 5 MiB).
    pub part_size: usize,
    /// Parts in flight at once; memory per upload is about part_size × (this + 1).
    pub part_concurrency: usize,
    /// Longest wait for the next bytes of a file: an upload that sends
    /// nothing for this long is ended, so a stalled client cannot hold a
    /// multipart upload (and its buffers) open.
    pub idle_timeout: Duration,
}

impl UploadConfig {
    pub(crate) fn parse(env: &Vars<'_>) -> Result<Self, ConfigError> {
        let allowed: Vec<String> = env
            .get("ALLOWED_EXTENSIONS")
            .unwrap_or_else(|| DEFAULT_EXTENSIONS.into())
            .split(',')
            .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        if allowed.is_empty()
            || allowed
                .iter()
                .any(|e| !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '#'))
        {
            return Err(ConfigError::new(
                "ALLOWED_EXTENSIONS",
                "must be a comma-separated list of letters, digits and # (one digit)",
            ));
        }
        let part_size = env.bytes("UPLOAD_PART_SIZE_BYTES", 8 << 20)? as usize;
        if part_size < 5 << 20 {
            return Err(ConfigError::new(
                "UPLOAD_PART_SIZE_BYTES",
                "must be at least 5 MiB (5242880), the S3 minimum part size",
            ));
        }
        let part_concurrency: usize = env.parse("UPLOAD_PART_CONCURRENCY", 2)?;
        if part_concurrency == 0 {
            return Err(ConfigError::new(
                "UPLOAD_PART_CONCURRENCY",
                "must be at least 1",
            ));
        }
        let idle_secs: u64 = env.parse("UPLOAD_IDLE_TIMEOUT_SECS", 60)?;
        if idle_secs == 0 {
            return Err(ConfigError::new(
                "UPLOAD_IDLE_TIMEOUT_SECS",
                "must be at least 1: an upload without an idle limit can stall forever",
            ));
        }
        Ok(UploadConfig {
            max_bytes: env.bytes("MAX_UPLOAD_BYTES", 1 << 30)?,
            allowed_extensions: allowed,
            part_size,
            part_concurrency,
            idle_timeout: Duration::from_secs(idle_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::config;

    #[test]
    fn the_defaults_take_a_gibibyte_of_tanf_text_files() {
        let c = config(&[]).unwrap();
        assert_eq!(c.uploads.max_bytes, 1 << 30);
        assert_eq!(
            c.uploads.allowed_extensions,
            vec!["txt", "ts##", "ts###", "ms##"]
        );
    }

    #[test]
    fn extensions_are_normalised_and_checked() {
        let c = config(&[("ALLOWED_EXTENSIONS", ".TXT, csv")]).unwrap();
        assert_eq!(c.uploads.allowed_extensions, vec!["txt", "csv"]);
        assert_eq!(
            config(&[("ALLOWED_EXTENSIONS", "t*t")]).unwrap_err().name,
            "ALLOWED_EXTENSIONS"
        );
    }

    #[test]
    fn a_stalled_upload_is_ended_after_a_minute_by_default() {
        let c = config(&[]).unwrap();
        assert_eq!(c.uploads.idle_timeout, std::time::Duration::from_secs(60));
        let c = config(&[("UPLOAD_IDLE_TIMEOUT_SECS", "2")]).unwrap();
        assert_eq!(c.uploads.idle_timeout, std::time::Duration::from_secs(2));
        for bad in ["0", "-1", "soon"] {
            assert_eq!(
                config(&[("UPLOAD_IDLE_TIMEOUT_SECS", bad)])
                    .unwrap_err()
                    .name,
                "UPLOAD_IDLE_TIMEOUT_SECS",
                "{bad}"
            );
        }
    }

    #[test]
    fn parts_must_be_at_least_the_s3_minimum() {
        assert_eq!(
            config(&[("UPLOAD_PART_SIZE_BYTES", "1024")])
                .unwrap_err()
                .name,
            "UPLOAD_PART_SIZE_BYTES"
        );
        assert_eq!(
            config(&[("UPLOAD_PART_CONCURRENCY", "0")])
                .unwrap_err()
                .name,
            "UPLOAD_PART_CONCURRENCY"
        );
    }
}
