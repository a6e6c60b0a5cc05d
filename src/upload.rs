//! Receiving a file: name and content checks, and streaming it into storage
//! while its size and SHA-256 are computed. Nothing touches local disk and
//! at most a few parts are held in memory.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::Utc;
use entity::ScanResult;
use futures_util::{Stream, StreamExt, stream};
use sha2::{Digest, Sha256};

use crate::{
    access::{NewReportFile, NewScanEvent, UploadGrant},
    app::Shutdown,
    config::UploadConfig,
    encoding::{EncodedCopy, StagedCopy, StoredCopy, copy_key},
    error::{AppError, AppResult},
    metrics::Metrics,
    scan::{ScanError, ScanSession, Scanner, Verdict},
    storage::{OBJECT_PREFIX, ObjectWriter, Storage},
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
    /// Ends the upload when the grace period after SIGTERM is over.
    pub shutdown: &'a Shutdown,
    /// Scans every upload while it streams, when scanning is required.
    pub scanner: Option<&'a Scanner>,
    /// The client's address, for the scan record.
    pub client: IpAddr,
    /// Counts scans by result, and how long they took.
    pub metrics: &'a Metrics,
}

impl Receiver<'_> {
    /// Checks the name, streams the bytes into an object of their own (and,
    /// side by side, into the virus scanner), then records the next version
    /// of the slot once the scan is clean. Whatever fails, no row and no
    /// object are left; every scan leaves a scan record.
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
        let mut record = ScanRecord::new(self, target, id, &filename);
        // Fail closed, and before a byte is read: no scanner, no upload.
        let mut scan = match self.scanner {
            Some(scanner) => match scanner.start().await {
                Ok(session) => Some(session),
                Err(e) => return Err(record.failed(grant, None, e).await),
            },
            None => None,
        };
        // What the scanner got, should the upload stop before its verdict.
        let progress = |scan: &Option<ScanSession>| {
            scan.as_ref()
                .map(|s| (s.bytes_sent(), s.engine_version().to_string()))
        };
        // The key is random and unrelated to the file's id: nothing a client
        // sees (the id is in every download URL) leads to the object.
        let key = format!("{OBJECT_PREFIX}{}", uuid::Uuid::new_v4());
        let staged = match stage(self, key, body, scan.as_mut()).await {
            Ok(staged) => staged,
            Err(Refused::Scan(e)) => {
                let progress = progress(&scan);
                return Err(record.failed(grant, progress, e).await);
            }
            Err(Refused::Other(e)) => {
                if let Some(progress) = progress(&scan) {
                    record.refused(grant, progress, &e).await;
                }
                return Err(e);
            }
        };
        record.size_bytes = staged.size;
        record.sha256 = Some(staged.sha256.clone());
        if let Some(session) = scan {
            let engine = session.engine_version().to_string();
            let verdict = session.finish().await;
            record.engine_version = Some(engine);
            match verdict {
                Ok(Verdict::Clean) => {
                    if let Err(e) = record.clean(grant).await {
                        // No record of a clean scan, no version.
                        staged.abort().await;
                        return Err(e);
                    }
                }
                Ok(Verdict::Infected { signature }) => {
                    staged.abort().await;
                    return Err(record.infected(grant, signature).await);
                }
                Err(e) => {
                    staged.abort().await;
                    return Err(record.failed(grant, None, e).await);
                }
            }
        }
        let stored = staged.finish(self.storage, self.shutdown).await?;
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
            storage_version: stored.version.clone(),
            etag: stored.e_tag,
            encoded: stored.encoded.clone(),
        };
        match grant.insert_next_version(new).await {
            Ok(file) => Ok(file),
            Err(e) => {
                // Exactly this version: in a versioned bucket a plain delete
                // would only hide the bytes behind a delete marker.
                self.storage
                    .delete_version(&stored.key, stored.version.as_deref())
                    .await;
                if let Some(copy) = &stored.encoded {
                    self.storage
                        .delete_version(&copy.key, copy.version.as_deref())
                        .await;
                }
                Err(e)
            }
        }
    }
}

/// The scan record of one upload, filled in as the upload goes. Writing it
/// also counts the scan in the metrics and logs it: one line per scan.
struct ScanRecord<'a> {
    event: NewScanEvent,
    size_bytes: u64,
    sha256: Option<String>,
    engine_version: Option<String>,
    metrics: &'a Metrics,
    /// For the duration; `started_at` is wall-clock time, which can jump.
    started: Instant,
}

impl<'a> ScanRecord<'a> {
    fn new(receiver: &Receiver<'a>, target: Target, id: uuid::Uuid, filename: &str) -> Self {
        ScanRecord {
            event: NewScanEvent {
                fiscal_year: Some(target.fiscal_year),
                quarter: Some(target.quarter),
                section: Some(target.section),
                report_file_id: Some(id),
                original_filename: filename.to_string(),
                size_bytes: 0,
                sha256: None,
                result: ScanResult::Failed,
                signature: None,
                engine_version: receiver
                    .scanner
                    .and_then(Scanner::cached_version)
                    .map(|v| v.to_string()),
                detail: None,
                started_at: Utc::now(),
                finished_at: Utc::now(),
                client_addr: Some(receiver.client.to_string()),
            },
            size_bytes: 0,
            sha256: None,
            engine_version: None,
            metrics: receiver.metrics,
            started: Instant::now(),
        }
    }

    async fn write(
        &mut self,
        grant: &UploadGrant,
        result: ScanResult,
        signature: Option<String>,
        detail: Option<String>,
    ) -> AppResult<i64> {
        let mut event = self.event.clone();
        event.result = result;
        event.signature = signature;
        event.detail = detail;
        event.size_bytes = self.size_bytes;
        event.sha256 = self.sha256.clone();
        if let Some(engine) = &self.engine_version {
            event.engine_version = Some(engine.clone());
        }
        event.finished_at = Utc::now();
        if result != ScanResult::Clean {
            event.report_file_id = None;
        }
        let took = self.started.elapsed();
        self.metrics.scan_finished(result, took);
        tracing::info!(
            result = result.as_str(),
            signature = event.signature.as_deref().unwrap_or("-"),
            detail = event.detail.as_deref().unwrap_or("-"),
            original_filename = %event.original_filename,
            size_bytes = event.size_bytes,
            sha256 = event.sha256.as_deref().unwrap_or("-"),
            stt_id = grant.stt_id(),
            uploader_id = grant.uploader_id(),
            duration_ms = took.as_millis() as u64,
            "scan"
        );
        grant.record_scan(event).await
    }

    async fn clean(&mut self, grant: &UploadGrant) -> AppResult<()> {
        self.write(grant, ScanResult::Clean, None, None)
            .await
            .map(drop)
    }

    /// Records the find; the error for the client names the signature.
    async fn infected(&mut self, grant: &UploadGrant, signature: String) -> AppError {
        // The refusal stands even if the record could not be written (its
        // fields are then in the error log).
        let _ = self
            .write(grant, ScanResult::Infected, Some(signature.clone()), None)
            .await;
        AppError::VirusDetected { signature }
    }

    /// The scanner failed: recorded, and the upload fails closed.
    /// `progress`: the bytes the scanner got and its engine version.
    async fn failed(
        &mut self,
        grant: &UploadGrant,
        progress: Option<(u64, String)>,
        e: ScanError,
    ) -> AppError {
        if let Some((scanned, engine)) = progress {
            self.size_bytes = scanned;
            self.engine_version = Some(engine);
        }
        let signature = e.signature().map(str::to_string);
        let _ = self
            .write(grant, ScanResult::Failed, signature, Some(e.summary()))
            .await;
        e.into()
    }

    /// The upload was refused for another reason while the scan ran: the
    /// scan is recorded as failed, with the reason.
    async fn refused(&mut self, grant: &UploadGrant, progress: (u64, String), e: &AppError) {
        let (scanned, engine) = progress;
        self.size_bytes = scanned;
        self.engine_version = Some(engine);
        let detail = format!("the upload was refused: {e}");
        let _ = self
            .write(grant, ScanResult::Failed, None, Some(detail))
            .await;
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
    /// The compressed copy, when one was kept.
    pub encoded: Option<StoredCopy>,
}

/// The last path segment of a client's file name, checked: no control
/// characters, not empty, at most 255 characters.
pub fn clean_filename(raw: &str) -> AppResult<String> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if name.is_empty() || name == "." || name == ".." {
        return Err(AppError::bad_input("the file has no name"));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::bad_input("the file name has control characters"));
    }
    // Characters, not bytes: a name of 255 letters with accents is fine.
    if name.chars().count() > 255 {
        return Err(AppError::bad_input(
            "the file name is longer than 255 characters",
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

/// How many bytes of the start the magic-number check needs: a bitmap's
/// header is recognised by bytes 6..10.
const MAGIC_BYTES: usize = 10;

/// Refuses the magic number of an image or archive at the start of a file.
fn check_magic(start: &[u8]) -> AppResult<()> {
    for (magic, what) in MAGIC {
        // "BM" alone starts ordinary text too; a bitmap's header follows.
        let is_bmp = *magic == b"BM";
        if start.starts_with(magic) && (!is_bmp || start.get(6..10) == Some(&[0, 0, 0, 0])) {
            return Err(AppError::bad_input(format!(
                "the file is {what}, not a text data file"
            )));
        }
    }
    Ok(())
}

/// Checks the start of a file however it is split into chunks: the magic
/// number once [`MAGIC_BYTES`] have arrived (or the file ended first), NUL
/// bytes in every chunk of the first [`SNIFF_BYTES`].
#[derive(Default)]
struct Sniffer {
    /// The first bytes, until the magic-number check has run.
    head: Vec<u8>,
    magic_checked: bool,
    seen: usize,
}

impl Sniffer {
    fn feed(&mut self, chunk: &[u8]) -> AppResult<()> {
        if !self.magic_checked {
            let take = chunk.len().min(MAGIC_BYTES - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() == MAGIC_BYTES {
                self.check_head()?;
            }
        }
        if self.seen < SNIFF_BYTES {
            let end = chunk.len().min(SNIFF_BYTES - self.seen);
            if chunk[..end].contains(&0) {
                return Err(AppError::bad_input(
                    "the file has NUL bytes: it is binary, not a text data file",
                ));
            }
        }
        self.seen = self.seen.saturating_add(chunk.len());
        Ok(())
    }

    /// The file ended: a start shorter than [`MAGIC_BYTES`] is checked now.
    fn finish(&mut self) -> AppResult<()> {
        if self.magic_checked {
            return Ok(());
        }
        self.check_head()
    }

    fn check_head(&mut self) -> AppResult<()> {
        self.magic_checked = true;
        check_magic(&std::mem::take(&mut self.head))
    }
}

/// `body`, ended with a `BAD_USER_INPUT` error when nothing arrives for
/// `idle`. Only the wait for the client counts: time spent waiting for
/// storage to take a part does not.
fn idle_limited<S, E>(body: S, idle: Duration) -> impl Stream<Item = AppResult<Bytes>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(item)) => Some((item.map_err(Into::into), Some(body))),
            Ok(None) => None,
            Err(_) => Some((Err(stalled(idle)), None)),
        }
    })
}

fn stalled(idle: Duration) -> AppError {
    AppError::bad_input(format!(
        "the upload stalled: nothing arrived for {} s",
        idle.as_secs_f64()
    ))
}

/// The error of an upload cut by the end of the grace period after SIGTERM.
fn shutting_down() -> AppError {
    AppError::StorageUnavailable("the server is shutting down".into())
}

/// Why staging an upload stopped.
enum Refused {
    /// The scanner failed (its own record says so).
    Scan(ScanError),
    Other(AppError),
}

impl From<AppError> for Refused {
    fn from(e: AppError) -> Self {
        Refused::Other(e)
    }
}

/// An upload whose bytes are all in storage, as parts of a multipart upload
/// not yet completed: nothing is visible until `finish`, and dropping it
/// aborts the upload.
struct Staged {
    writer: ObjectWriter,
    key: String,
    size: u64,
    sha256: String,
    encoded: Option<StagedCopy>,
}

impl Staged {
    /// Completes the multipart upload, then stores the copy: the objects
    /// exist from here on. The original first: without it a copy would
    /// only be an orphan.
    async fn finish(self, storage: &Storage, shutdown: &Shutdown) -> AppResult<StoredObject> {
        let Staged {
            writer,
            key,
            size,
            sha256,
            encoded,
        } = self;
        // Dropped by the select, the writers abort in the background.
        let (put, encoded) = tokio::select! {
            put = async {
                let put = writer.finish().await?;
                let encoded = match encoded {
                    Some(copy) => copy.complete(storage).await,
                    None => None,
                };
                Ok::<_, AppError>((put, encoded))
            } => put?,
            () = shutdown.grace_over() => return Err(shutting_down()),
        };
        Ok(StoredObject {
            key,
            size,
            sha256,
            e_tag: put.e_tag,
            version: put.version,
            encoded,
        })
    }

    /// Discards both uploads.
    async fn abort(self) {
        let Staged {
            writer, encoded, ..
        } = self;
        let copy = async {
            if let Some(copy) = encoded {
                copy.abort().await;
            }
        };
        tokio::join!(writer.abort(), copy);
    }
}

/// Streams `body` into a multipart upload at `key` (and into `scan`, side
/// by side). On any failure (too large, empty, binary, stalled, client gone,
/// storage or scanner gone, shutdown) the multipart upload is aborted, so no
/// object is left behind; the same happens, in the background, if this
/// future is dropped before it ends.
async fn stage<S, E>(
    receiver: &Receiver<'_>,
    key: String,
    body: S,
    scan: Option<&mut ScanSession>,
) -> Result<Staged, Refused>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    let policy = receiver.policy;
    let body = std::pin::pin!(idle_limited(body, policy.idle_timeout));
    let mut writer = receiver.storage.writer(&key).await?;
    let mut encoded = policy.encoded_copy.map(|p| {
        let key = copy_key(&key, p.coding);
        EncodedCopy::start(receiver.storage, key, p, policy.part_size)
    });
    let copied = tokio::select! {
        copied = copy(&mut writer, policy, body, scan, encoded.as_mut()) => copied,
        () = receiver.shutdown.grace_over() => Err(Refused::Other(shutting_down())),
    };
    match copied {
        Ok((size, sha256)) => Ok(Staged {
            writer,
            key,
            size,
            sha256,
            encoded: match encoded {
                Some(copy) => copy.finish_input().await,
                None => None,
            },
        }),
        Err(e) => {
            let copy = async {
                if let Some(copy) = encoded {
                    copy.abort().await;
                }
            };
            tokio::join!(writer.abort(), copy);
            Err(e)
        }
    }
}

/// Streams `body` into a new object at `key`, with no scan: `stage`, then
/// complete the upload.
pub async fn store<S, E>(
    storage: &Storage,
    policy: &UploadConfig,
    shutdown: &Shutdown,
    key: String,
    body: S,
) -> AppResult<StoredObject>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<AppError>,
{
    let receiver = Receiver {
        storage,
        policy,
        shutdown,
        scanner: None,
        client: IpAddr::from([127, 0, 0, 1]),
        metrics: &Metrics::default(),
    };
    match stage(&receiver, key, body, None).await {
        Ok(staged) => staged.finish(storage, shutdown).await,
        Err(Refused::Scan(e)) => Err(e.into()),
        Err(Refused::Other(e)) => Err(e),
    }
}

async fn copy<S>(
    writer: &mut ObjectWriter,
    policy: &UploadConfig,
    mut body: S,
    mut scan: Option<&mut ScanSession>,
    mut encoded: Option<&mut EncodedCopy>,
) -> Result<(u64, String), Refused>
where
    S: Stream<Item = AppResult<Bytes>> + Unpin,
{
    let mut hasher = Sha256::new();
    let mut sniffer = Sniffer::default();
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if chunk.is_empty() {
            continue;
        }
        sniffer.feed(&chunk)?;
        size += chunk.len() as u64;
        if size > policy.max_bytes {
            return Err(AppError::PayloadTooLarge {
                limit: policy.max_bytes,
            }
            .into());
        }
        hasher.update(&chunk);
        // Storage, the scanner and the compressor take the chunk side by
        // side; each waits while it is busy, so a slow one slows the upload
        // and nothing piles up in memory.
        let scanned = async {
            match scan.as_deref_mut() {
                Some(session) => session.feed(&chunk).await,
                None => Ok(()),
            }
        };
        let encoding = async {
            if let Some(copy) = encoded.as_deref_mut() {
                copy.feed(&chunk).await;
            }
        };
        let (stored, scanned, ()) = tokio::join!(writer.write(chunk.clone()), scanned, encoding);
        scanned.map_err(Refused::Scan)?;
        stored?;
    }
    if size == 0 {
        return Err(AppError::bad_input("the file is empty").into());
    }
    sniffer.finish()?;
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageBackend, StorageConfig, UploadConfig};

    fn allowed() -> Vec<String> {
        ["txt", "ts##", "ts###", "ms##"].map(String::from).to_vec()
    }

    fn policy(max: u64) -> UploadConfig {
        UploadConfig {
            max_bytes: max,
            allowed_extensions: allowed(),
            part_size: 5 << 20,
            part_concurrency: 2,
            idle_timeout: Duration::from_secs(2),
            encoded_copy: None,
        }
    }

    fn memory() -> Storage {
        let cfg = StorageConfig {
            backend: StorageBackend::Memory,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
            abort_retry_for: Duration::from_secs(1),
        };
        Storage::new(&cfg, &policy(1)).unwrap()
    }

    /// `store` with no shutdown coming.
    async fn put<S>(storage: &Storage, max: u64, body: S) -> AppResult<StoredObject>
    where
        S: Stream<Item = Result<Bytes, AppError>> + Unpin,
    {
        store(
            storage,
            &policy(max),
            &Shutdown::default(),
            "k".into(),
            body,
        )
        .await
    }

    /// One chunk, then nothing ever again: a stalled client.
    fn stalls_after(first: &'static [u8]) -> impl Stream<Item = Result<Bytes, AppError>> + Unpin {
        stream::iter([Ok(Bytes::from_static(first))]).chain(stream::pending())
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
        assert!(clean_filename(&"a".repeat(256)).is_err());
        let umlauts = format!("{}.txt", "ü".repeat(251));
        assert_eq!(umlauts.chars().count(), 255);
        assert_eq!(clean_filename(&umlauts).unwrap(), umlauts, "kept exactly");
    }

    #[tokio::test]
    async fn a_text_file_is_stored_with_its_size_and_hash() {
        let storage = memory();
        let stored = put(&storage, 100, chunks(&[b"hello ", b"world"]))
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
            let err = put(&storage, 10, chunks(parts)).await.unwrap_err();
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
        let err = put(&storage, 100, body).await.unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert_eq!(objects(&storage).await, 0);
    }

    #[test]
    fn text_that_merely_starts_with_bm_is_text() {
        assert!(check_magic(b"BM001 report line").is_ok());
        assert!(check_magic(b"BM\x36\x00\x0c\x00\x00\x00\x00\x00").is_err());
    }

    #[tokio::test]
    async fn magic_numbers_split_across_chunks_are_refused() {
        let storage = memory();
        let cases: Vec<&[&'static [u8]]> = vec![
            &[b"\x89", b"PNG\r\n\x1a\n rest"],
            &[b"%", b"PDF-1.7 rest"],
            &[b"P", b"K", b"\x03", b"\x04 rest"],
            &[b"\xFF\xD8", b"\xFF rest"],
            &[b"GIF8", b"9a rest"],
            &[b"BM\x36\x00", b"\x0c\x00", b"\x00\x00\x00\x00 rest"],
            // Whole files shorter than the check's window.
            &[b"%P", b"DF-"],
            &[b"\x1F", b"\x8B"],
        ];
        for parts in cases {
            let err = put(&storage, 100, chunks(parts)).await.unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{parts:?}");
            assert!(
                err.to_string().contains("not a text data file"),
                "{parts:?}"
            );
        }
        assert_eq!(objects(&storage).await, 0);
    }

    #[tokio::test]
    async fn text_split_into_small_chunks_is_text() {
        let storage = memory();
        for parts in [
            &[b"B" as &[u8], b"M", b"001 report line"] as &[&'static [u8]],
            &[b"h", b"i"],
            &[b"P", b"K is a name"],
        ] {
            put(&storage, 100, chunks(parts)).await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_ends_after_its_idle_timeout() {
        let storage = memory();
        let started = tokio::time::Instant::now();
        let err = put(&storage, 100, stalls_after(b"partial"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert_eq!(
            err.to_string(),
            "the upload stalled: nothing arrived for 2 s"
        );
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(3));
        assert!(storage.wait_for_aborts(Duration::ZERO).await);
        assert_eq!(objects(&storage).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_grace_period_ends_an_upload() {
        let storage = memory();
        let shutdown = Shutdown::default();
        let policy = policy(100);
        let upload = store(
            &storage,
            &policy,
            &shutdown,
            "k".into(),
            stalls_after(b"partial"),
        );
        let (result, ()) = tokio::join!(upload, async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            shutdown.end_grace();
        });
        assert_eq!(result.unwrap_err().code(), "STORAGE_UNAVAILABLE");
        assert!(storage.wait_for_aborts(Duration::ZERO).await);
        assert_eq!(objects(&storage).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_upload_is_aborted_in_the_background() {
        let storage = memory();
        let upload = put(&storage, 100, stalls_after(b"partial"));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), upload)
                .await
                .is_err()
        );
        assert!(storage.wait_for_aborts(Duration::from_secs(1)).await);
        assert_eq!(objects(&storage).await, 0);
    }
}
