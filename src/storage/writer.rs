//! Writing an object part by part, cancel-safely: an upload that does not
//! finish (refused, failed, client gone, timed out, shut down, or its future
//! simply dropped) has its multipart upload aborted, and the abort is retried
//! while storage is down.

use std::time::Duration;

use bytes::Bytes;
use object_store::{MultipartUpload, PutPayloadMut, PutResult};
use tokio::{sync::watch, task::JoinSet, time::Instant};

use super::unavailable;
use crate::error::{AppError, AppResult};

/// The first wait between two attempts at an abort, and the longest.
const ABORT_FIRST_BACKOFF: Duration = Duration::from_millis(250);
const ABORT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many multipart uploads are open or being aborted. Shutdown waits for
/// this to reach zero, so that the process does not exit with an abort
/// still to send.
#[derive(Clone)]
pub(super) struct Pending(std::sync::Arc<watch::Sender<usize>>);

impl Default for Pending {
    fn default() -> Self {
        Pending(std::sync::Arc::new(watch::Sender::new(0)))
    }
}

impl Pending {
    /// Counts one more until the guard is dropped.
    pub(super) fn enter(&self) -> PendingGuard {
        self.0.send_modify(|n| *n += 1);
        PendingGuard(self.clone())
    }

    pub(super) fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Whether the count reached zero `within` this time.
    pub(super) async fn settled(&self, within: Duration) -> bool {
        let mut rx = self.0.subscribe();
        tokio::time::timeout(within, rx.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

pub(super) struct PendingGuard(Pending);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// An object being written part by part; nothing is visible until `finish`.
/// Dropped unfinished, it aborts its multipart upload in the background.
pub struct ObjectWriter {
    /// `None` once completed or handed to an abort.
    upload: Option<Box<dyn MultipartUpload>>,
    /// Bytes of the part being filled.
    buffer: PutPayloadMut,
    part_size: usize,
    concurrency: usize,
    /// Parts on their way to storage.
    parts: JoinSet<object_store::Result<()>>,
    key: String,
    abort_retry_for: Duration,
    pending: Option<PendingGuard>,
}

impl ObjectWriter {
    pub(super) fn new(
        upload: Box<dyn MultipartUpload>,
        key: &str,
        part_size: usize,
        concurrency: usize,
        abort_retry_for: Duration,
        pending: PendingGuard,
    ) -> Self {
        ObjectWriter {
            upload: Some(upload),
            buffer: PutPayloadMut::new(),
            part_size,
            concurrency,
            parts: JoinSet::new(),
            key: key.to_string(),
            abort_retry_for,
            pending: Some(pending),
        }
    }

    /// Buffers `bytes`, first waiting while `concurrency` parts are in
    /// flight, so memory stays bounded whatever the object's size.
    pub async fn write(&mut self, mut bytes: Bytes) -> AppResult<()> {
        self.wait_for_parts(self.concurrency).await?;
        while !bytes.is_empty() {
            let room = self.part_size - self.buffer.content_length();
            if bytes.len() < room {
                self.buffer.push(bytes);
                break;
            }
            self.buffer.push(bytes.split_to(room));
            self.send_part()?;
        }
        Ok(())
    }

    /// Sends the last part, waits for every part, and completes the upload.
    /// On failure the upload is aborted.
    pub async fn finish(mut self) -> AppResult<PutResult> {
        let result = self.complete().await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn complete(&mut self) -> AppResult<PutResult> {
        if !self.buffer.is_empty() {
            self.send_part()?;
        }
        self.wait_for_parts(0).await?;
        let upload = self.upload.as_mut().ok_or_else(finished)?;
        let result = upload.complete().await.map_err(unavailable)?;
        // Complete: nothing left to abort if this writer is dropped now.
        self.upload = None;
        Ok(result)
    }

    /// Discards every part written so far. Waits for one attempt; if storage
    /// does not answer, keeps trying in the background. The attempt runs in
    /// a task of its own, so it goes on even if this future is dropped (a
    /// connection cut at shutdown) while it waits.
    pub async fn abort(mut self) {
        let Some(job) = self.take_abort() else {
            return;
        };
        let (tried, first_attempt) = tokio::sync::oneshot::channel();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(job.retry(Some(tried)));
                let _ = first_attempt.await;
            }
            Err(_) => job.spawn_retries(),
        }
    }

    fn send_part(&mut self) -> AppResult<()> {
        let upload = self.upload.as_mut().ok_or_else(finished)?;
        let part = std::mem::take(&mut self.buffer);
        self.parts.spawn(upload.put_part(part.into()));
        Ok(())
    }

    /// Waits until at most `max` parts are in flight; a failed part fails
    /// the upload.
    async fn wait_for_parts(&mut self, max: usize) -> AppResult<()> {
        while self.parts.len() > max {
            match self.parts.join_next().await {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => return Err(unavailable(e)),
                Some(Err(e)) => return Err(AppError::internal(e)),
            }
        }
        Ok(())
    }

    fn take_abort(&mut self) -> Option<AbortJob> {
        let upload = self.upload.take()?;
        Some(AbortJob {
            upload,
            parts: std::mem::take(&mut self.parts),
            key: std::mem::take(&mut self.key),
            retry_for: self.abort_retry_for,
            _pending: self.pending.take(),
        })
    }
}

impl Drop for ObjectWriter {
    /// The upload's future was dropped before it finished (the client went
    /// away, a timeout or shutdown cut it): abort in the background.
    fn drop(&mut self) {
        if let Some(job) = self.take_abort() {
            job.spawn_retries();
        }
    }
}

fn finished() -> AppError {
    AppError::internal("the multipart upload is already complete or aborted")
}

/// Aborting one multipart upload, until it is done or the time is up.
struct AbortJob {
    upload: Box<dyn MultipartUpload>,
    parts: JoinSet<object_store::Result<()>>,
    key: String,
    retry_for: Duration,
    /// Keeps the upload counted until the abort is over.
    _pending: Option<PendingGuard>,
}

impl AbortJob {
    /// One attempt: whether the upload is gone.
    async fn attempt(&mut self) -> bool {
        // A part still on its way could land after the abort and be kept.
        self.parts.shutdown().await;
        match self.upload.abort().await {
            // Not found: an earlier attempt went through, its answer lost.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => true,
            Err(e) => {
                tracing::warn!(error = %e, key = %self.key, "could not abort a multipart upload; retrying");
                false
            }
        }
    }

    /// Retries with a growing backoff in a task of its own, so that the
    /// request (or the dropped future) does not wait for storage to return.
    fn spawn_retries(self) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(self.retry(None));
            }
            Err(_) => tracing::error!(
                key = %self.key,
                "no runtime to abort a multipart upload: `reportfiles storage sweep` will"
            ),
        }
    }

    /// Tries until the upload is gone or the time is up; `tried` hears
    /// when the first attempt is over, whatever its outcome.
    async fn retry(mut self, mut tried: Option<tokio::sync::oneshot::Sender<()>>) {
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = ABORT_FIRST_BACKOFF;
        loop {
            let gone = self.attempt().await;
            if let Some(tried) = tried.take() {
                let _ = tried.send(());
            }
            if gone {
                return;
            }
            if Instant::now() + backoff > deadline {
                tracing::error!(
                    key = %self.key,
                    retried_for = ?self.retry_for,
                    "gave up aborting a multipart upload: `reportfiles storage sweep` will"
                );
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(ABORT_MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use futures_util::FutureExt;
    use object_store::{PutPayload, UploadPart};

    use super::*;

    /// A multipart upload whose abort fails `failures` times, then works.
    #[derive(Debug)]
    struct FlakyUpload {
        failures: usize,
        aborts: Arc<AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl MultipartUpload for FlakyUpload {
        fn put_part(&mut self, _data: PutPayload) -> UploadPart {
            futures_util::future::ready(Ok(())).boxed()
        }

        async fn complete(&mut self) -> object_store::Result<PutResult> {
            Ok(PutResult {
                e_tag: None,
                version: None,
                extensions: Default::default(),
            })
        }

        async fn abort(&mut self) -> object_store::Result<()> {
            if self.aborts.fetch_add(1, Ordering::SeqCst) < self.failures {
                Err(object_store::Error::Generic {
                    store: "test",
                    source: "storage is down".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    fn writer(failures: usize, pending: &Pending) -> (ObjectWriter, Arc<AtomicUsize>) {
        let aborts = Arc::new(AtomicUsize::new(0));
        let upload = Box::new(FlakyUpload {
            failures,
            aborts: aborts.clone(),
        });
        let w = ObjectWriter::new(upload, "k", 5, 2, Duration::from_secs(60), pending.enter());
        (w, aborts)
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_writer_aborts_and_retries_until_storage_answers() {
        let pending = Pending::default();
        let (mut w, aborts) = writer(3, &pending);
        w.write(Bytes::from_static(b"0123456789ab")).await.unwrap();
        assert_eq!(pending.count(), 1);
        drop(w);
        assert!(pending.settled(Duration::from_secs(30)).await);
        assert_eq!(
            aborts.load(Ordering::SeqCst),
            4,
            "three failures, then done"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_writer_aborts_nothing() {
        let pending = Pending::default();
        let (mut w, aborts) = writer(0, &pending);
        w.write(Bytes::from_static(b"hello")).await.unwrap();
        w.finish().await.unwrap();
        assert!(pending.settled(Duration::ZERO).await);
        assert_eq!(aborts.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_gives_up_after_its_time() {
        let pending = Pending::default();
        let (w, aborts) = writer(usize::MAX, &pending);
        w.abort().await;
        assert!(!pending.settled(Duration::from_secs(30)).await);
        assert!(pending.settled(Duration::from_secs(60)).await);
        assert!(aborts.load(Ordering::SeqCst) > 5);
    }
}
