//! What a test asks of a [`TestApp`] over HTTP, and what it reads back from
//! the database and storage.

use std::time::Duration;

use entity::{Role, UserStatus, download_event, report_file, user};
use reqwest::{
    RequestBuilder, Response,
    multipart::{Form, Part},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use tokio::sync::mpsc;

use super::{ALABAMA, TestApp, upload_input, wait_for, wait_until, with_headers};

pub const UPLOAD: &str = "mutation($input: UploadReportFileInput!, $file: Upload!) {
  uploadReportFile(input: $input, file: $file) {
    id version sizeBytes sha256 originalFilename extension contentType downloadUrl
    uploadedBy { subject } stt { id }
  }
}";

/// The `map` part of an upload: file part `0` is `variables.file`.
pub const UPLOAD_MAP: &str = r#"{"0":["variables.file"]}"#;

/// The `operations` part of an upload of a file with this input.
pub fn upload_operations(input: &Value) -> String {
    json!({ "query": UPLOAD, "variables": { "input": input, "file": null } }).to_string()
}

/// A chunk of a request body fed through a channel.
pub type Chunk = Result<Vec<u8>, std::io::Error>;

/// A request body fed through a channel: the test decides when each chunk
/// goes, and a body whose sender is kept but silent is a stalled client.
pub fn channel_body() -> (mpsc::Sender<Chunk>, reqwest::Body) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, reqwest::Body::wrap_stream(stream))
}

/// A file uploaded through the API.
pub struct Uploaded {
    pub id: uuid::Uuid,
    pub url: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `path` on this server, to send.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    /// A POST to `path` on this server, to send.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    /// The body of a GET of `path`, whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).send().await.unwrap().text().await.unwrap()
    }

    /// POSTs a GraphQL request and returns the status and JSON body.
    pub async fn gql_status(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut req = self
            .post("/graphql")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_status(token, query, variables).await.1
    }

    /// Uploads `bytes` as apollo-upload-client would: operations, map, file.
    pub async fn upload(
        &self,
        token: Option<&str>,
        input: Value,
        filename: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        self.upload_to(&self.base, token, input, filename, bytes)
            .await
    }

    /// [`TestApp::upload`] to the server at `base`.
    pub async fn upload_to(
        &self,
        base: &str,
        token: Option<&str>,
        input: Value,
        filename: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let part = Part::stream(reqwest::Body::from(bytes));
        self.send_upload(base, token, &input, filename, part).await
    }

    /// Uploads a streamed body that promises `length` bytes.
    pub async fn upload_body(
        &self,
        token: Option<&str>,
        input: Value,
        filename: &str,
        body: reqwest::Body,
        length: u64,
    ) -> (u16, Value) {
        let part = Part::stream_with_length(body, length);
        self.send_upload(&self.base, token, &input, filename, part)
            .await
    }

    async fn send_upload(
        &self,
        base: &str,
        token: Option<&str>,
        input: &Value,
        filename: &str,
        part: Part,
    ) -> (u16, Value) {
        let res = self
            .upload_request(base, token, input, filename, part)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    /// The request of an upload of `part` to the server at `base`, to send
    /// (for tests in which the server may cut it).
    pub fn upload_request(
        &self,
        base: &str,
        token: Option<&str>,
        input: &Value,
        filename: &str,
        part: Part,
    ) -> RequestBuilder {
        let part = part
            .file_name(filename.to_string())
            .mime_str("text/plain")
            .unwrap();
        let form = Form::new()
            .text("operations", upload_operations(input))
            .text("map", UPLOAD_MAP)
            .part("0", part);
        let req = self
            .client
            .post(format!("{base}/graphql"))
            .header("apollo-require-preflight", "true")
            .multipart(form);
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Starts an upload for Alabama of a file promised to be `length` bytes
    /// long to the server at `base`, fed from the returned sender; the
    /// response (or the transport error of a server that went away)
    /// arrives on the handle.
    pub fn start_upload(
        &self,
        base: &str,
        token: &str,
        length: u64,
    ) -> (
        mpsc::Sender<Chunk>,
        tokio::task::JoinHandle<reqwest::Result<(u16, String)>>,
    ) {
        let (tx, body) = channel_body();
        let req = self.upload_request(
            base,
            Some(token),
            &upload_input(ALABAMA),
            "f.txt",
            Part::stream_with_length(body, length),
        );
        let response = tokio::spawn(async move {
            let res = req.send().await?;
            let status = res.status().as_u16();
            Ok((status, res.text().await?))
        });
        (tx, response)
    }

    /// Waits until the server has taken every chunk sent on `tx` so far and
    /// is streaming the upload (it waits for more).
    pub async fn wait_until_streaming(&self, tx: &mpsc::Sender<Chunk>) {
        wait_until(
            Duration::from_secs(10),
            "the server streams the upload",
            async || {
                tx.capacity() == tx.max_capacity()
                    && self.metric("reportfiles_active_uploads").await == 1
            },
        )
        .await;
    }

    /// Uploads `bytes` for `stt` in the fixed slot; the upload must succeed.
    pub async fn upload_file(&self, token: &str, stt: i32, name: &str, bytes: Vec<u8>) -> Uploaded {
        let (_, body) = self
            .upload(Some(token), upload_input(stt), name, bytes.clone())
            .await;
        let f = &body["data"]["uploadReportFile"];
        Uploaded {
            id: f["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
                .parse()
                .unwrap(),
            url: f["downloadUrl"].as_str().unwrap().to_string(),
            sha256: f["sha256"].as_str().unwrap().to_string(),
            bytes,
        }
    }

    /// GETs `path` with a bearer token and these headers.
    pub async fn download(&self, token: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        with_headers(self.get(path).bearer_auth(token), headers)
            .send()
            .await
            .unwrap()
    }

    /// The value of a metric line of `/metrics` (`name` with its labels).
    pub async fn metric(&self, name: &str) -> u64 {
        let metrics = self.get_text("/metrics").await;
        let prefix = format!("{name} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .parse()
            .unwrap()
    }

    /// The report file rows, oldest first.
    pub async fn report_files(&self) -> Vec<report_file::Model> {
        report_file::Entity::find()
            .order_by_asc(report_file::Column::Seq)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// Asserts that nothing was stored: no row and no object.
    pub async fn assert_nothing_stored(&self, why: &str) {
        assert_eq!(self.report_files().await.len(), 0, "{why}: a row was left");
        assert_eq!(
            self.objects().await,
            Vec::<String>::new(),
            "{why}: an object was left"
        );
    }

    /// The download events of a file written so far, oldest first.
    pub async fn download_events_now(&self, file: uuid::Uuid) -> Vec<download_event::Model> {
        download_event::Entity::find()
            .filter(download_event::Column::ReportFileId.eq(file))
            .order_by_asc(download_event::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// The download events of a file, waiting until `n` have been written
    /// (they are written when the response body is done with).
    pub async fn download_events(&self, file: uuid::Uuid, n: usize) -> Vec<download_event::Model> {
        let events = wait_for(
            Duration::from_secs(10),
            &format!("{n} download events of {file}"),
            async || {
                let events = self.download_events_now(file).await;
                (events.len() >= n).then_some(events)
            },
        )
        .await;
        assert_eq!(events.len(), n, "download events of {file}");
        events
    }

    pub async fn admin(&self) -> (user::Model, String) {
        self.user(
            "sysadmin",
            Some(Role::SystemAdmin),
            None,
            &[],
            UserStatus::Approved,
        )
        .await
    }

    pub async fn analyst(&self, sub: &str, stt: i32) -> (user::Model, String) {
        self.user(
            sub,
            Some(Role::DataAnalyst),
            Some(stt),
            &[],
            UserStatus::Approved,
        )
        .await
    }

    pub async fn regional(&self, sub: &str, regions: &[i32]) -> (user::Model, String) {
        self.user(
            sub,
            Some(Role::RegionalStaff),
            None,
            regions,
            UserStatus::Approved,
        )
        .await
    }

    pub async fn pending(&self, sub: &str) -> (user::Model, String) {
        self.user(sub, None, None, &[], UserStatus::Pending).await
    }
}
