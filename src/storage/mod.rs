//! The storage facade: one streaming API over S3, a local folder and memory.
//! Object keys and store details stay in here and in the database; they never
//! reach a client.
//!
//! | module | concern |
//! | --- | --- |
//! | `writer` | multipart uploads that abort when they do not finish |
//! | `signed` | S3 calls object_store has no API for, as signed requests |
//! | `inventory` | what storage holds: versions, incomplete uploads, staging files |
//! | `sweep` | reconciling the bucket with the table (`reportfiles storage sweep`) |

mod inventory;
mod signed;
mod sweep;
mod writer;

use std::{ops::Range, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    PutResult, RetryConfig, aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory,
    path::Path, prefix::PrefixStore,
};
use secrecy::ExposeSecret;

pub use inventory::{IncompleteUpload, StoredVersion};
pub use sweep::{RecordedObject, SweepOptions, SweepReport};
pub use writer::ObjectWriter;

use crate::{
    config::{S3Config, StorageBackend, StorageConfig, UploadConfig},
    error::{AppError, AppResult},
};

/// Where every object the server writes lives: the sweep looks nowhere else.
pub const OBJECT_PREFIX: &str = "report-files/";

/// `/readyz` answers within a second: storage gets this long to answer.
const CHECK_WITHIN: Duration = Duration::from_millis(800);

#[derive(Debug, thiserror::Error)]
#[error("STORAGE_URL: {0}")]
pub struct StorageConfigError(String);

/// An error of the operator's tools (the sweep), with its details: unlike
/// `AppError`, it is shown to whoever runs the command.
pub type ToolError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Signed S3 requests (versioned deletes, listings); S3 only.
    signed: Option<Arc<signed::SignedS3>>,
    /// The folder of the local backend, for its multipart staging files.
    local_dir: Option<PathBuf>,
    part_size: usize,
    part_concurrency: usize,
    abort_retry_for: Duration,
    /// Multipart uploads open or being aborted.
    pending: writer::Pending,
}

/// A byte stream from storage. An `Err` item means the store failed midway.
pub type ByteStream = BoxStream<'static, Result<Bytes, object_store::Error>>;

impl Storage {
    pub fn new(cfg: &StorageConfig, upload: &UploadConfig) -> Result<Self, StorageConfigError> {
        let mut signed = None;
        let mut local_dir = None;
        let store: Arc<dyn ObjectStore> = match &cfg.backend {
            StorageBackend::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageConfigError(format!("cannot create {}: {e}", dir.display()))
                })?;
                local_dir = Some(dir.clone());
                Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| StorageConfigError(e.to_string()))?,
                )
            }
            StorageBackend::S3(s3) => {
                let (store, api) = s3_store(s3, cfg)?;
                signed = Some(Arc::new(api));
                store
            }
            StorageBackend::Memory => Arc::new(InMemory::new()),
        };
        Ok(Storage {
            store,
            signed,
            local_dir,
            part_size: upload.part_size,
            part_concurrency: upload.part_concurrency,
            abort_retry_for: cfg.abort_retry_for,
            pending: writer::Pending::default(),
        })
    }

    /// The underlying store, for tests and tools that list what is there.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Reachable and answering within a second: a missing probe object is a
    /// fine answer.
    pub async fn check(&self) -> AppResult<()> {
        let probe = Path::from("readyz-probe");
        match tokio::time::timeout(CHECK_WITHIN, self.store.head(&probe)).await {
            Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(AppError::StorageUnavailable(
                format!("no answer within {CHECK_WITHIN:?}").into(),
            )),
        }
    }

    /// Opens `key` (or `range` of it) for streaming, at `version` where the
    /// bucket keeps versions. Resolves once storage has answered, so a dead
    /// store is an error before any byte is sent.
    pub async fn open(
        &self,
        key: &str,
        version: Option<&str>,
        range: Option<Range<u64>>,
    ) -> AppResult<ByteStream> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            version: version.map(str::to_string),
            ..Default::default()
        };
        match self.store.get_opts(&Path::from(key), options).await {
            Ok(result) => Ok(result.into_stream()),
            // A row whose object is not where this server looks: most often
            // STORAGE_URL changed since the file was stored. Storage as this
            // server is configured cannot serve it: 503, and a log line that
            // says what is missing (`storage sweep` lists every such row).
            Err(e @ object_store::Error::NotFound { .. }) => {
                tracing::error!(
                    key,
                    version = version.unwrap_or("-"),
                    error = %e,
                    "the object of a recorded file is missing from storage (was STORAGE_URL changed?)"
                );
                Err(AppError::StorageUnavailable(
                    "the object of a recorded file is missing".into(),
                ))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Starts a multipart upload to `key`. Until it finishes, it counts as
    /// pending (see [`Storage::wait_for_aborts`]).
    pub async fn writer(&self, key: &str) -> AppResult<ObjectWriter> {
        self.writer_with(key, self.part_concurrency).await
    }

    /// [`Storage::writer`] with at most `concurrency` parts in flight.
    pub async fn writer_with(&self, key: &str, concurrency: usize) -> AppResult<ObjectWriter> {
        // Counted from before the upload exists: shutdown must also wait
        // for one whose creation is on its way.
        let pending = self.pending.enter();
        let upload = self
            .store
            .put_multipart(&Path::from(key))
            .await
            .map_err(unavailable)?;
        Ok(ObjectWriter::new(
            upload,
            key,
            self.part_size,
            concurrency.max(1),
            self.abort_retry_for,
            pending,
        ))
    }

    /// Writes a small object at `key` in one request: a completed object,
    /// or none at all.
    pub async fn put(&self, key: &str, payload: PutPayload) -> AppResult<PutResult> {
        self.store
            .put(&Path::from(key), payload)
            .await
            .map_err(unavailable)
    }

    /// Waits, at most `within`, until no multipart upload is open or being
    /// aborted: the last step before the process exits. Whatever is left is
    /// logged, for `reportfiles storage sweep`. Whether none was left.
    pub async fn wait_for_aborts(&self, within: Duration) -> bool {
        let settled = self.pending.settled(within).await;
        if !settled {
            tracing::error!(
                uploads = self.pending.count(),
                ?within,
                "multipart uploads still open or not aborted: `reportfiles storage sweep` will abort them"
            );
        }
        settled
    }

    /// Deletes the object at `key`, exactly `version` of it where the bucket
    /// keeps versions (a plain delete there would only add a delete marker
    /// and keep the bytes). Best effort: the object is already unreferenced
    /// when this is called, and the sweep catches what fails.
    pub async fn delete_version(&self, key: &str, version: Option<&str>) {
        let result: Result<(), ToolError> = match (&self.signed, version) {
            (Some(signed), Some(version)) => signed.delete_version(key, version).await,
            _ => self
                .store
                .delete(&Path::from(key))
                .await
                .map_err(Into::into),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, key, ?version, "could not delete an unreferenced object");
        }
    }

    /// Removes the local backend's multipart staging files (`<key>#<n>`):
    /// at start, any there are were left by a process that died mid-upload.
    /// A local folder belongs to one server process.
    pub async fn remove_stale_staging_files(&self) {
        let Some(dir) = self.local_dir.clone() else {
            return;
        };
        match inventory::remove_all_staging_files(dir).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed multipart staging files left by a crash"),
            Err(e) => tracing::warn!(error = %e, "could not remove multipart staging files"),
        }
    }
}

/// The S3 store, and the signer for the calls it has no API for. The
/// signer is the bare `AmazonS3`: it needs the full key, prefix included,
/// where the store's `PrefixStore` adds the prefix itself.
fn s3_store(
    s3: &S3Config,
    cfg: &StorageConfig,
) -> Result<(Arc<dyn ObjectStore>, signed::SignedS3), StorageConfigError> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_allow_http(s3.allow_http)
        .with_virtual_hosted_style_request(s3.virtual_hosted_style)
        .with_retry(retry_config(cfg))
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(s3.allow_http)
                .with_connect_timeout(cfg.connect_timeout)
                // The default 30 s covers a whole response body, which
                // would cut every long download: only idle time is bounded.
                .with_timeout_disabled()
                .with_read_timeout(cfg.read_timeout),
        );
    if let Some(e) = &s3.endpoint {
        b = b.with_endpoint(e);
    }
    if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
        b = b
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose_secret());
    }
    if let Some(t) = &s3.session_token {
        b = b.with_token(t.expose_secret());
    }
    let store = b.build().map_err(|e| StorageConfigError(e.to_string()))?;
    let api = signed::SignedS3::new(store.clone(), s3.prefix.clone(), cfg)
        .map_err(|e| StorageConfigError(e.to_string()))?;
    let store: Arc<dyn ObjectStore> = match &s3.prefix {
        None => Arc::new(store),
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix.as_str())),
    };
    Ok((store, api))
}

/// Few, quick retries: object_store's default (10 retries over up to three
/// minutes) turns a storage outage into requests that hang for seconds
/// before their 503.
fn retry_config(cfg: &StorageConfig) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(250),
            base: 2.0,
        },
        max_retries: cfg.max_retries,
        retry_timeout: cfg.retry_timeout,
    }
}

fn unavailable(e: object_store::Error) -> AppError {
    AppError::StorageUnavailable(Box::new(e))
}
