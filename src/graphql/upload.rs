//! Uploads in the schema: the `Upload` scalar, the input of
//! `uploadReportFile`, and the file part waiting for its resolver. Reading
//! the multipart request itself is `http::multipart`'s job.

use async_graphql::{InputObject, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use bytes::Bytes;
use entity::{Quarter, Section};
use futures_util::stream::BoxStream;
use tokio::sync::Mutex;

use crate::error::{AppError, AppResult};

/// A file sent in the multipart request; the value names its part.
pub struct Upload(pub String);

#[Scalar(name = "Upload")]
impl ScalarType for Upload {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Upload(s)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

#[derive(InputObject)]
pub struct UploadReportFileInput {
    pub stt_id: i32,
    /// Federal fiscal year, e.g. 2026 (Q1 is October–December 2025).
    pub fiscal_year: i32,
    pub quarter: Quarter,
    pub section: Section,
}

/// The file part of a multipart request, not yet read.
pub struct FilePart {
    /// The part's name, which the `Upload` variable refers to.
    pub part: String,
    pub filename: String,
    /// The part's bytes; transport failures (the client hanging up, a
    /// malformed body) arrive as `AppError`s.
    pub body: BoxStream<'static, AppResult<Bytes>>,
}

/// The file part waiting for its resolver.
pub struct PendingUpload(Mutex<Option<FilePart>>);

impl PendingUpload {
    pub fn new(part: FilePart) -> Self {
        PendingUpload(Mutex::new(Some(part)))
    }

    /// Takes the file part that `upload` refers to; a part can be read once.
    pub async fn take(&self, upload: &Upload) -> AppResult<FilePart> {
        let mut slot = self.0.lock().await;
        match slot.take() {
            Some(part) if part.part == upload.0 => Ok(part),
            other => {
                *slot = other;
                Err(AppError::bad_input("the file is not in this request"))
            }
        }
    }
}
