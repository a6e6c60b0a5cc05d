//! Receiving a file: name and content checks, and streaming it into storage
//! while its size and SHA-256 are computed. Nothing touches local disk and
//! at most a few parts are held in memory.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::{
    access::{NewReportFile, UploadGrant},
    config::UploadConfig,
    error::{AppError, AppResult},
    storage::Storage,
};

/// The slot an upload is for; the STT comes from the grant.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub fiscal_year: i32,
    pub quarter: entity::Quarter,
    pub section: entity::Section,
}

/// Everything an upload needs besides its bytes.
pub struct Receiver<'a> {
    pub storage: &'a Storage,
    pub policy: &'a UploadConfig,
}

impl Receiver<'_> {
    /// Checks the name, streams the bytes into an object of their own, then
    /// records the next version of the slot. Whatever fails, no row and no
    /// object are left.
    pub async fn receive<S, E>(
        &self,
        grant: &UploadGrant,
        target: Target,
        filename: &str,
        body: S,
    ) -> AppResult<entity::report_file::Model>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<AppError>,
    {
        let filename = clean_filename(filename)?;
        let extension = allowed_extension(&filename, &self.policy.allowed_extensions)?;
        let id = uuid::Uuid::new_v4();
        let stored = store(
            self.storage,
            self.policy,
            format!("report-files/{id}"),
            body,
        )
        .await?;
        let new = NewReportFile {
            id,
            fiscal_year: target.fiscal_year,
            quarter: target.quarter,
            section: target.section,
            original_filename: filename,
            extension,
            content_type: "text/plain".into(),
            size_bytes: stored.size as i64,
            sha256: stored.sha256,
            object_key: stored.key.clone(),
            storage_version: stored.version,
            etag: stored.e_tag,
        };
        match grant.insert_next_version(new).await {
            Ok(file) => Ok(file),
            Err(e) => {
                self.storage.delete(&stored.key).await;
                Err(e)
            }
        }
    }
}

/// What a finished upload left in storage.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

/// The last path segment of a client's file name, checked: no control
/// characters, not empty, at most 255 bytes.
pub fn clean_filename(raw: &str) -> AppResult<String> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if name.is_empty() || name == "." || name == ".." {
        return Err(AppError::bad_input("the file has no name"));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::bad_input("the file name has control characters"));
    }
    if name.len() > 255 {
        return Err(AppError::bad_input(
            "the file name is longer than 255 bytes",
        ));
    }
    Ok(name.to_string())
}

/// The lower-cased extension of `filename` when the allow-list has it.
pub fn allowed_extension(filename: &str, allowed: &[String]) -> AppResult<String> {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let matches = |pattern: &str| {
        pattern.len() == ext.len()
            && pattern.chars().zip(ext.chars()).all(|(p, c)| match p {
                '#' => c.is_ascii_digit(),
                p => p == c,
            })
    };
    if !ext.is_empty() && allowed.iter().any(|p| matches(p)) {
        Ok(ext)
    } else {
        Err(AppError::bad_input(format!(
            "files of this type are not accepted; allowed extensions: {}",
            allowed.join(", ").replace('#', "N")
        )))
    }
}

/// How much of the start of a file is checked for binary content.
const SNIFF_BYTES: usize = 64 * 1024;

const MAGIC: &[(&[u8], &str)] = &[
    (b"\x89PNG", "a PNG image"),
    (b"\xFF\xD8\xFF", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1F\x8B", "a gzip archive"),
    (b"BM", "a bitmap image"),
];

/// Refuses content that is not a text data file: NUL bytes, or the magic
/// number of an image or archive at the start.
fn check_text(start: &[u8], at_file_start: bool) -> AppResult<()> {
    if at_file_start {
        for (magic, what) in MAGIC {
            // "BM" alone starts ordinary text too; a bitmap's header follows.
            let is_bmp = *magic == b"BM";
            if start.starts_with(magic) && (!is_bmp || start.get(6..10) == Some(&[0, 0, 0, 0])) {
                return Err(AppError::bad_input(format!(
                    "the file is {what}, not a text data file"
                )));
            }
        }
    }
    if start.contains(&0) {
        return Err(AppError::bad_input(
            "the file has NUL bytes: it is binary, not a text data file",
        ));
    }
    Ok(())
}

/// Streams `body` into a new object at `key`. On any failure (too large,
/// empty, binary, client gone, storage gone) the multipart upload is
/// aborted, so no object is left behind.
pub async fn store<S, E>(
    storage: &Storage,
    policy: &UploadConfig,
    key: String,
    body: S,
) -> AppResult<StoredObject>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    let mut writer = storage.writer(&key).await?;
    match copy(&mut writer, policy, body).await {
        Ok((size, sha256)) => {
            let put = writer.finish().await?;
            Ok(StoredObject {
                key,
                size,
                sha256,
                e_tag: put.e_tag,
                version: put.version,
            })
        }
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

async fn copy<S, E>(
    writer: &mut crate::storage::ObjectWriter,
    policy: &UploadConfig,
    mut body: S,
) -> AppResult<(u64, String)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Into::into)?;
        if chunk.is_empty() {
            continue;
        }
        if (size as usize) < SNIFF_BYTES {
            let end = chunk.len().min(SNIFF_BYTES - size as usize);
            check_text(&chunk[..end], size == 0)?;
        }
        size += chunk.len() as u64;
        if size > policy.max_bytes {
            return Err(AppError::PayloadTooLarge {
                limit: policy.max_bytes,
            });
        }
        hasher.update(&chunk);
        writer.write(chunk).await?;
    }
    if size == 0 {
        return Err(AppError::bad_input("the file is empty"));
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageBackend, StorageConfig, UploadConfig};
    use futures_util::stream;

    fn allowed() -> Vec<String> {
        ["txt", "ts##", "ts###", "ms##"].map(String::from).to_vec()
    }

    fn policy(max: u64) -> UploadConfig {
        UploadConfig {
            max_bytes: max,
            allowed_extensions: allowed(),
            part_size: 5 << 20,
            part_concurrency: 2,
        }
    }

    fn memory() -> Storage {
        let cfg = StorageConfig {
            backend: StorageBackend::Memory,
            connect_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
        };
        Storage::new(&cfg, &policy(1)).unwrap()
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, AppError>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn objects(storage: &Storage) -> usize {
        storage.store().list(None).count().await
    }

    #[test]
    fn extensions_follow_the_allow_list() {
        for ok in ["a.txt", "A.TXT", "x.ts01", "x.ts123", "x.ms12", "a.b.txt"] {
            assert!(allowed_extension(ok, &allowed()).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "a.",
            "a.exe",
            "a.ts1",
            "a.ts1234",
            "a.tsab",
            "a.ms1",
            "a.txt.exe",
            "txt",
        ] {
            assert!(allowed_extension(bad, &allowed()).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names_lose_their_paths_and_keep_the_rest() {
        assert_eq!(
            clean_filename("C:\\Users\\me\\data.txt").unwrap(),
            "data.txt"
        );
        assert_eq!(
            clean_filename("../../etc/passwd.txt").unwrap(),
            "passwd.txt"
        );
        assert_eq!(
            clean_filename("Données été \"q1\";.txt").unwrap(),
            "Données été \"q1\";.txt"
        );
        assert!(clean_filename("a\r\nb.txt").is_err());
        assert!(clean_filename("").is_err());
        assert!(clean_filename("dir/").is_err());
        assert!(clean_filename(&"a".repeat(300)).is_err());
    }

    #[tokio::test]
    async fn a_text_file_is_stored_with_its_size_and_hash() {
        let storage = memory();
        let stored = store(
            &storage,
            &policy(100),
            "k".into(),
            chunks(&[b"hello ", b"world"]),
        )
        .await
        .unwrap();
        assert_eq!(stored.size, 11);
        // sha256("hello world")
        assert_eq!(
            stored.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(objects(&storage).await, 1);
    }

    #[tokio::test]
    async fn refused_content_leaves_no_object() {
        let storage = memory();
        let cases: Vec<(&[&'static [u8]], &str)> = vec![
            (&[], "BAD_USER_INPUT"),
            (&[b""], "BAD_USER_INPUT"),
            (&[b"abc\0def"], "BAD_USER_INPUT"),
            (&[b"\x89PNG\r\n\x1a\n"], "BAD_USER_INPUT"),
            (&[b"GIF89a..."], "BAD_USER_INPUT"),
            (&[b"fine ", b"then \0 nul"], "BAD_USER_INPUT"),
            (&[b"0123456789", b"0"], "PAYLOAD_TOO_LARGE"),
        ];
        for (parts, code) in cases {
            let err = store(&storage, &policy(10), "k".into(), chunks(parts))
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{parts:?}");
        }
        assert_eq!(objects(&storage).await, 0);
    }

    #[tokio::test]
    async fn a_stream_that_breaks_leaves_no_object() {
        let storage = memory();
        let body = stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(AppError::bad_input("the upload was interrupted")),
        ]);
        let err = store(&storage, &policy(100), "k".into(), body)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert_eq!(objects(&storage).await, 0);
    }

    #[test]
    fn text_that_merely_starts_with_bm_is_text() {
        assert!(check_text(b"BM001 report line", true).is_ok());
        assert!(check_text(b"BM\x36\x00\x0c\x00\x00\x00\x00\x00", true).is_err());
    }
}
