//! Encoded copies of uploaded files, for the clients that accept a content
//! coding (README "Compressed delivery"). TANF files are fixed-width text
//! that compresses about fivefold, and people download them over office and
//! VPN links where bandwidth, not the server, is the limit.
//!
//! | module | concern |
//! | --- | --- |
//! | `accept` | reading `Accept-Encoding`: whether a client takes a coding |
//! | `encoder` | the compressors, behind one small interface |
//! | `copy` | compressing an upload while it streams, into an object of its own |

mod accept;
mod copy;
mod encoder;

use std::ops::RangeInclusive;

use entity::report_file;

pub use accept::accepts;
pub use copy::{EncodedCopy, StagedCopy, StoredCopy};

/// A content coding the server keeps copies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Zstd,
}

impl Coding {
    /// The name in `Content-Encoding`, and in the table.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Zstd => "zstd",
        }
    }

    pub fn from_token(token: &str) -> Option<Self> {
        match token {
            "gzip" => Some(Coding::Gzip),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }

    /// The end of the copy's object key, after the original's key.
    fn key_suffix(self) -> &'static str {
        match self {
            Coding::Gzip => ".gz",
            Coding::Zstd => ".zst",
        }
    }

    /// The levels a copy may be written at. zstd stops at 19: above it the
    /// window outgrows the 8 MiB that browsers decode.
    pub fn levels(self) -> RangeInclusive<i32> {
        match self {
            Coding::Gzip => 1..=9,
            Coding::Zstd => 1..=19,
        }
    }
}

/// Which copy uploads get: the coding and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyPolicy {
    pub coding: Coding,
    pub level: i32,
}

/// A copy is kept only when it saves at least this share of the original:
/// below that, the time a client saves does not pay for a second object.
pub const MIN_SAVING_PERCENT: u64 = 20;

/// Whether `encoded` bytes save enough over `original` ones.
pub fn worth_keeping(original: u64, encoded: u64) -> bool {
    encoded.saturating_mul(100) <= original.saturating_mul(100 - MIN_SAVING_PERCENT)
}

/// The key of the copy of the object at `key`.
pub fn copy_key(key: &str, coding: Coding) -> String {
    format!("{key}{}", coding.key_suffix())
}

/// A file's encoded copy, as its row records it.
#[derive(Debug, Clone, Copy)]
pub struct RecordedCopy<'a> {
    pub coding: Coding,
    pub key: &'a str,
    pub version: Option<&'a str>,
    pub size: u64,
}

/// The copy `file` has, if it has a complete record of one. A coding this
/// build does not know (a newer instance wrote it) is as good as none.
pub fn recorded_copy(file: &report_file::Model) -> Option<RecordedCopy<'_>> {
    let coding = Coding::from_token(file.content_encoding.as_deref()?)?;
    Some(RecordedCopy {
        coding,
        key: file.encoded_object_key.as_deref()?,
        version: file.encoded_storage_version.as_deref(),
        size: u64::try_from(file.encoded_size_bytes?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_must_save_a_fifth() {
        assert!(worth_keeping(100, 80));
        assert!(!worth_keeping(100, 81));
        assert!(!worth_keeping(10, 30), "tiny files grow when encoded");
        assert!(worth_keeping(u64::MAX, 1), "no overflow");
    }

    #[test]
    fn copies_sit_beside_their_original() {
        assert_eq!(
            copy_key("report-files/x", Coding::Zstd),
            "report-files/x.zst"
        );
        assert_eq!(
            copy_key("report-files/x", Coding::Gzip),
            "report-files/x.gz"
        );
    }
}
