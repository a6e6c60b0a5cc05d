//! The storage facade: one streaming API over S3, a local folder and memory.
//! Object keys and store details stay in here and in the database; they never
//! reach a client.

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutResult, WriteMultipart,
    aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory, path::Path,
    prefix::PrefixStore,
};
use secrecy::ExposeSecret;

use crate::{
    config::{S3Config, StorageBackend, StorageConfig, UploadConfig},
    error::{AppError, AppResult},
};

#[derive(Debug, thiserror::Error)]
#[error("STORAGE_URL: {0}")]
pub struct StorageConfigError(String);

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    part_size: usize,
    part_concurrency: usize,
}

/// A byte stream from storage. An `Err` item means the store failed midway.
pub type ByteStream = BoxStream<'static, Result<Bytes, object_store::Error>>;

impl Storage {
    pub fn new(cfg: &StorageConfig, upload: &UploadConfig) -> Result<Self, StorageConfigError> {
        let store: Arc<dyn ObjectStore> = match &cfg.backend {
            StorageBackend::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageConfigError(format!("cannot create {}: {e}", dir.display()))
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| StorageConfigError(e.to_string()))?,
                )
            }
            StorageBackend::S3(s3) => s3_store(s3, cfg)?,
            StorageBackend::Memory => Arc::new(InMemory::new()),
        };
        Ok(Storage {
            store,
            part_size: upload.part_size,
            part_concurrency: upload.part_concurrency,
        })
    }

    /// The underlying store, for tests and tools that list what is there.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Reachable and answering: a missing probe object is a fine answer.
    pub async fn check(&self) -> AppResult<()> {
        match self.store.head(&Path::from("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
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
            Err(e @ object_store::Error::NotFound { .. }) => Err(AppError::internal(format!(
                "object of a recorded file is missing: {e}"
            ))),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Starts a multipart upload to `key`.
    pub async fn writer(&self, key: &str) -> AppResult<ObjectWriter> {
        let upload = self
            .store
            .put_multipart(&Path::from(key))
            .await
            .map_err(unavailable)?;
        Ok(ObjectWriter {
            inner: WriteMultipart::new_with_chunk_size(upload, self.part_size),
            concurrency: self.part_concurrency,
        })
    }

    /// Best effort: the object is already unreferenced when this is called.
    pub async fn delete(&self, key: &str) {
        if let Err(e) = self.store.delete(&Path::from(key)).await {
            tracing::warn!(error = %e, key, "could not delete an unreferenced object");
        }
    }
}

fn s3_store(
    s3: &S3Config,
    cfg: &StorageConfig,
) -> Result<Arc<dyn ObjectStore>, StorageConfigError> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_allow_http(s3.allow_http)
        .with_virtual_hosted_style_request(s3.virtual_hosted_style)
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
    Ok(match &s3.prefix {
        None => Arc::new(store),
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix.as_str())),
    })
}

fn unavailable(e: object_store::Error) -> AppError {
    AppError::StorageUnavailable(Box::new(e))
}

/// An object being written part by part; nothing is visible until `finish`.
pub struct ObjectWriter {
    inner: WriteMultipart,
    concurrency: usize,
}

impl ObjectWriter {
    /// Buffers `bytes`, waiting while `concurrency` parts are in flight, so
    /// memory stays bounded whatever the object's size.
    pub async fn write(&mut self, bytes: Bytes) -> AppResult<()> {
        self.inner
            .wait_for_capacity(self.concurrency)
            .await
            .map_err(unavailable)?;
        self.inner.put(bytes);
        Ok(())
    }

    pub async fn finish(self) -> AppResult<PutResult> {
        self.inner.finish().await.map_err(unavailable)
    }

    /// Discards every part written so far.
    pub async fn abort(self) {
        if let Err(e) = self.inner.abort().await {
            tracing::warn!(error = %e, "could not abort a multipart upload");
        }
    }
}
