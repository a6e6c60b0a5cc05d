//! What an upload must satisfy, and how it is sent to storage.

use std::time::Duration;

use super::{ConfigError, Vars};
use crate::encoding::{Coding, CopyPolicy};

pub const DEFAULT_EXTENSIONS: &str = "txt,ts##,ts###,ms##";

/// The encoded copy uploads get unless configured otherwise (README
/// "Compressed delivery" has the measurements behind the choice).
pub const DEFAULT_ENCODED_COPY: CopyPolicy = CopyPolicy {
    coding: Coding::Zstd,
    level: 1,
};

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
    /// The compressed copy each upload gets while it streams, served to
    /// the clients that accept its coding; `None`: no copies.
    pub encoded_copy: Option<CopyPolicy>,
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
            encoded_copy: encoded_copy(env.get("UPLOAD_ENCODED_COPY"))?,
        })
    }
}

/// `off`, a coding (`zstd`, `gzip`) at its default level, or `coding:level`.
fn encoded_copy(raw: Option<String>) -> Result<Option<CopyPolicy>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Some(DEFAULT_ENCODED_COPY));
    };
    let invalid = || {
        ConfigError::new(
            "UPLOAD_ENCODED_COPY",
            format!(
                "`{raw}`: write off, zstd, gzip, or a coding and its level (zstd:1, 1-19; gzip:3, 1-9)"
            ),
        )
    };
    let raw = raw.trim().to_ascii_lowercase();
    if raw == "off" {
        return Ok(None);
    }
    let (name, level) = raw.split_once(':').unwrap_or((raw.as_str(), ""));
    let coding = Coding::from_token(name.trim()).ok_or_else(invalid)?;
    let level = match level.trim() {
        "" if coding == DEFAULT_ENCODED_COPY.coding => DEFAULT_ENCODED_COPY.level,
        // gzip's level 3: the fastest that still saves about as much as
        // zstd (README "Compressed delivery").
        "" => 3,
        n => n.parse().map_err(|_| invalid())?,
    };
    if !coding.levels().contains(&level) {
        return Err(invalid());
    }
    Ok(Some(CopyPolicy { coding, level }))
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
    fn encoded_copies_are_zstd_unless_configured() {
        use crate::encoding::{Coding, CopyPolicy};
        let copy = |v: &str| config(&[("UPLOAD_ENCODED_COPY", v)]).map(|c| c.uploads.encoded_copy);
        assert_eq!(
            config(&[]).unwrap().uploads.encoded_copy,
            Some(super::DEFAULT_ENCODED_COPY)
        );
        assert_eq!(copy("off").unwrap(), None);
        assert_eq!(
            copy("GZIP:9").unwrap(),
            Some(CopyPolicy {
                coding: Coding::Gzip,
                level: 9
            })
        );
        assert_eq!(
            copy("zstd:19").unwrap(),
            Some(CopyPolicy {
                coding: Coding::Zstd,
                level: 19
            })
        );
        for bad in [
            "br", "zstd:20", "zstd:0", "gzip:10", "gzip:x", "zstd:-1", "yes",
        ] {
            assert_eq!(copy(bad).unwrap_err().name, "UPLOAD_ENCODED_COPY", "{bad}");
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
