//! Compressing an upload while it streams, into an object of its own.
//!
//! The compressor runs on a blocking thread of its own, fed through a short
//! channel: it uses the second core while the request's task hashes, scans
//! and stores the original, and when it falls behind the upload waits for
//! it instead of piling chunks up in memory. Encoded bytes go to storage a
//! part at a time; a copy smaller than one part (most files) is written
//! with one plain PUT once the upload is clean, so it never exists as an
//! incomplete multipart upload at all.
//!
//! The copy is an optimization: if it fails (or does not save enough) it is
//! discarded and the file is stored without it. Whatever ends it, whatever
//! was written of it is aborted: when the upload fails, is refused, or its
//! future is dropped.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use bytes::Bytes;
use tokio::{runtime::Handle, sync::mpsc, task::JoinHandle};

use super::{Coding, CopyPolicy, encoder::Encoder, worth_keeping};
use crate::storage::{ObjectWriter, Storage};

/// Chunks waiting for the compressor: enough to ride out a pause, few
/// enough that memory stays a few request chunks.
const QUEUE: usize = 4;

/// After this much input, a copy that does not save enough yet is given up:
/// incompressible content does not cost the compressor's CPU to the end.
const PROBE_BYTES: u64 = 4 << 20;

/// Encoded bytes are moved out of the compressor this many at a time.
const FLUSH_BYTES: usize = 256 << 10;

/// Parts of the copy in flight at once. The copy is smaller than the
/// original, which has the configured number in flight beside it: one is
/// enough to keep up, and keeps an upload's memory within its bound.
const COPY_PARTS_IN_FLIGHT: usize = 1;

/// A copy being written while the upload streams.
pub struct EncodedCopy {
    tx: Option<mpsc::Sender<Bytes>>,
    worker: Option<JoinHandle<Option<StagedCopy>>>,
    /// Set when the upload ends without finishing the copy: the worker then
    /// aborts what it wrote instead of keeping it.
    cancelled: Arc<AtomicBool>,
}

/// A copy whose every byte is encoded, not yet stored as a complete object.
pub struct StagedCopy {
    coding: Coding,
    key: String,
    size: u64,
    /// The encoded bytes not yet handed to storage.
    tail: Vec<Bytes>,
    /// The multipart upload, once the copy outgrew one part.
    writer: Option<ObjectWriter>,
}

/// A copy stored as an object.
#[derive(Debug, Clone)]
pub struct StoredCopy {
    pub coding: Coding,
    pub key: String,
    pub size: u64,
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

impl EncodedCopy {
    /// Starts the compressor for a copy at `key`; `part_size` encoded bytes
    /// go to storage at a time.
    pub fn start(storage: &Storage, key: String, policy: CopyPolicy, part_size: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let cancelled = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            storage: storage.clone(),
            runtime: Handle::current(),
            key,
            policy,
            part_size,
            cancelled: cancelled.clone(),
        };
        EncodedCopy {
            tx: Some(tx),
            worker: Some(tokio::task::spawn_blocking(move || worker.run(rx))),
            cancelled,
        }
    }

    /// Hands `chunk` to the compressor, waiting while it is behind. A copy
    /// given up takes no more.
    pub async fn feed(&mut self, chunk: &Bytes) {
        let gone = match &self.tx {
            Some(tx) => tx.send(chunk.clone()).await.is_err(),
            None => false,
        };
        if gone {
            self.tx = None;
        }
    }

    /// The upload's bytes are all in: the copy, if it is worth keeping.
    pub async fn finish_input(mut self) -> Option<StagedCopy> {
        self.tx = None;
        // Awaited in place: if this future is dropped meanwhile, `drop`
        // still sees the worker and cancels the copy.
        let joined = self.worker.as_mut()?.await;
        self.worker = None;
        match joined {
            Ok(staged) => staged,
            Err(e) => {
                tracing::error!(error = %e, "the compressor of an upload failed");
                None
            }
        }
    }

    /// The upload failed: aborts whatever the copy wrote, and waits for the
    /// first attempt.
    pub async fn abort(mut self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.await;
        }
    }
}

impl Drop for EncodedCopy {
    /// The upload's future was dropped (client gone, shutdown): the worker
    /// sees its input end and aborts instead of finishing.
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.cancelled.store(true, Ordering::SeqCst);
        }
    }
}

/// The compressor's thread.
struct Worker {
    storage: Storage,
    runtime: Handle,
    key: String,
    policy: CopyPolicy,
    part_size: usize,
    cancelled: Arc<AtomicBool>,
}

/// Where the encoded bytes are: held, or in the copy's multipart upload.
#[derive(Default)]
struct Out {
    /// Encoded bytes so far.
    size: u64,
    /// Encoded bytes not yet in storage.
    held: Vec<Bytes>,
    writer: Option<ObjectWriter>,
}

impl Out {
    fn held_len(&self) -> usize {
        self.held.iter().map(Bytes::len).sum()
    }
}

/// Why a copy was given up.
enum GaveUp {
    NotWorthIt,
    Failed(String),
}

impl Worker {
    fn run(self, mut rx: mpsc::Receiver<Bytes>) -> Option<StagedCopy> {
        let mut out = Out::default();
        let result = self.encode(&mut rx, &mut out);
        // Whatever ends the copy early, the channel closes: the upload's
        // `feed` stops waiting for a compressor that is gone.
        drop(rx);
        match result {
            Ok(staged) if !self.cancelled.load(Ordering::SeqCst) => Some(staged),
            Ok(staged) => {
                self.discard(staged.writer);
                None
            }
            Err(why) => {
                if let GaveUp::Failed(e) = why {
                    tracing::warn!(key = %self.key, error = %e, "the encoded copy of an upload failed; the file is stored without it");
                }
                self.discard(out.writer);
                None
            }
        }
    }

    fn encode(&self, rx: &mut mpsc::Receiver<Bytes>, out: &mut Out) -> Result<StagedCopy, GaveUp> {
        let failed = |e: &dyn std::fmt::Display| GaveUp::Failed(e.to_string());
        let mut encoder = Encoder::new(self.policy).map_err(|e| failed(&e))?;
        let mut input: u64 = 0;
        let mut probed = false;
        while let Some(chunk) = rx.blocking_recv() {
            if self.cancelled.load(Ordering::SeqCst) {
                return Err(GaveUp::NotWorthIt);
            }
            input += chunk.len() as u64;
            encoder.write(&chunk).map_err(|e| failed(&e))?;
            if !probed && input >= PROBE_BYTES {
                probed = true;
                if !worth_keeping(input, out.size + encoder.buffered() as u64) {
                    return Err(GaveUp::NotWorthIt);
                }
            }
            if encoder.buffered() >= FLUSH_BYTES {
                self.send(out, encoder.take())?;
            }
        }
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(GaveUp::NotWorthIt);
        }
        let last = Bytes::from(encoder.finish().map_err(|e| failed(&e))?);
        out.size += last.len() as u64;
        out.held.push(last);
        if input == 0 || !worth_keeping(input, out.size) {
            return Err(GaveUp::NotWorthIt);
        }
        Ok(StagedCopy {
            coding: self.policy.coding,
            key: self.key.clone(),
            size: out.size,
            tail: std::mem::take(&mut out.held),
            writer: out.writer.take(),
        })
    }

    /// Holds encoded bytes until they make a part; from then on, they go
    /// to the copy's multipart upload, begun then.
    fn send(&self, out: &mut Out, bytes: Bytes) -> Result<(), GaveUp> {
        let failed = |e: crate::error::AppError| GaveUp::Failed(e.to_string());
        out.size += bytes.len() as u64;
        out.held.push(bytes);
        if out.writer.is_none() {
            if out.held_len() < self.part_size {
                return Ok(());
            }
            let begun = self
                .runtime
                .block_on(self.storage.writer_with(&self.key, COPY_PARTS_IN_FLIGHT));
            out.writer = Some(begun.map_err(failed)?);
        }
        let Some(w) = out.writer.as_mut() else {
            return Ok(());
        };
        for bytes in std::mem::take(&mut out.held) {
            self.runtime.block_on(w.write(bytes)).map_err(failed)?;
        }
        Ok(())
    }

    fn discard(&self, writer: Option<ObjectWriter>) {
        if let Some(w) = writer {
            self.runtime.block_on(w.abort());
        }
    }
}

impl StagedCopy {
    /// Stores the copy as a complete object. A failure leaves nothing and
    /// only costs the copy: the file is stored without it.
    pub async fn complete(self, storage: &Storage) -> Option<StoredCopy> {
        let put = match self.writer {
            Some(mut w) => {
                let mut written = Ok(());
                for bytes in self.tail {
                    written = w.write(bytes).await;
                    if written.is_err() {
                        break;
                    }
                }
                match written {
                    Ok(()) => w.finish().await,
                    Err(e) => {
                        w.abort().await;
                        Err(e)
                    }
                }
            }
            None => {
                storage
                    .put(&self.key, self.tail.into_iter().collect())
                    .await
            }
        };
        match put {
            Ok(put) => Some(StoredCopy {
                coding: self.coding,
                key: self.key,
                size: self.size,
                e_tag: put.e_tag,
                version: put.version,
            }),
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "could not store the encoded copy of an upload; the file is stored without it");
                None
            }
        }
    }

    /// The upload was refused after its bytes were in: nothing of the copy
    /// is kept.
    pub async fn abort(self) {
        if let Some(w) = self.writer {
            w.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, time::Duration};

    use futures_util::StreamExt;

    use super::*;
    use crate::config::{StorageBackend, StorageConfig, UploadConfig};

    fn memory() -> Storage {
        let cfg = StorageConfig {
            backend: StorageBackend::Memory,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
            abort_retry_for: Duration::from_secs(1),
        };
        let uploads = UploadConfig {
            max_bytes: 1 << 30,
            allowed_extensions: vec![],
            part_size: 5 << 20,
            part_concurrency: 2,
            idle_timeout: Duration::from_secs(1),
            encoded_copy: None,
        };
        Storage::new(&cfg, &uploads).unwrap()
    }

    const ZSTD: CopyPolicy = CopyPolicy {
        coding: Coding::Zstd,
        level: 3,
    };

    /// Records with some variety: compresses well, not absurdly.
    fn text(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| match i % 157 {
                156 => b'\n',
                n if n < 30 => b'0' + ((i / 157 * 7 + n * 13) % 10) as u8,
                _ => b' ',
            })
            .collect()
    }

    async fn keys(storage: &Storage) -> Vec<String> {
        let mut keys: Vec<String> = storage
            .store()
            .list(None)
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await;
        keys.sort();
        keys
    }

    async fn feed_all(copy: &mut EncodedCopy, bytes: &[u8]) {
        for chunk in bytes.chunks(64 << 10) {
            copy.feed(&Bytes::copy_from_slice(chunk)).await;
        }
    }

    /// Uploads `bytes` as a copy with parts of `part` bytes.
    async fn stored(storage: &Storage, bytes: &[u8], part: usize) -> Option<StoredCopy> {
        let mut copy = EncodedCopy::start(storage, "c.zst".into(), ZSTD, part);
        feed_all(&mut copy, bytes).await;
        copy.finish_input().await?.complete(storage).await
    }

    async fn read(storage: &Storage, key: &str) -> Vec<u8> {
        let mut stream = storage.open(key, None, None).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    fn unzstd(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_copy_is_one_put_and_a_large_one_a_multipart_upload() {
        let storage = memory();
        let bytes = text(3 << 20);
        for part in [64 << 20, 16 << 10] {
            let copy = stored(&storage, &bytes, part).await.expect("worth keeping");
            assert_eq!(copy.coding, Coding::Zstd);
            let encoded = read(&storage, &copy.key).await;
            assert_eq!(encoded.len() as u64, copy.size, "part size {part}");
            assert!(unzstd(&encoded) == bytes, "part size {part}");
        }
        assert!(storage.wait_for_aborts(Duration::ZERO).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_that_saves_too_little_is_not_kept() {
        let storage = memory();
        // Incompressible text: a random stream of 94 printable characters
        // (6.55 bits each: about 18% to save, under the fifth required).
        let mut noise = Vec::new();
        let mut state = 0x9e3779b97f4a7c15u64;
        while noise.len() < 6 << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Below 188 only: every character equally likely.
            noise.extend(
                state
                    .to_le_bytes()
                    .iter()
                    .filter(|b| **b < 188)
                    .map(|b| b'!' + b % 94),
            );
        }
        assert!(stored(&storage, &noise, 1 << 20).await.is_none());
        assert!(stored(&storage, b"tiny", 1 << 20).await.is_none());
        assert!(storage.wait_for_aborts(Duration::from_secs(5)).await);
        assert_eq!(keys(&storage).await, Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_aborted_or_dropped_copy_leaves_nothing() {
        let storage = memory();
        let bytes = text(2 << 20);
        let mut copy = EncodedCopy::start(&storage, "a.zst".into(), ZSTD, 16 << 10);
        feed_all(&mut copy, &bytes).await;
        copy.abort().await;

        let mut copy = EncodedCopy::start(&storage, "b.zst".into(), ZSTD, 16 << 10);
        feed_all(&mut copy, &bytes).await;
        drop(copy);

        let mut copy = EncodedCopy::start(&storage, "c.zst".into(), ZSTD, 16 << 10);
        feed_all(&mut copy, &bytes).await;
        let staged = copy.finish_input().await.expect("worth keeping");
        staged.abort().await;

        assert!(storage.wait_for_aborts(Duration::from_secs(5)).await);
        assert_eq!(keys(&storage).await, Vec::<String>::new());
    }
}
