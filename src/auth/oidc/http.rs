//! The HTTP client for identity providers: discovery, JWKS, the token and
//! userinfo endpoints. It is the client object_store already uses (reqwest
//! 0.13, named `s3_http` in Cargo.toml), made here with what talking to a
//! provider needs: no redirects (OAuth 2.0 clients must not follow them to
//! the token endpoint), short timeouts so that an outage answers fast, and a
//! cap on what a response may weigh.

use std::time::Duration;

use futures_util::StreamExt;
use openidconnect::{HttpRequest, HttpResponse};

/// No provider document or token response comes near this.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

#[derive(Clone)]
pub struct ProviderHttp {
    client: s3_http::Client,
}

impl ProviderHttp {
    pub fn new() -> Self {
        let client = s3_http::Client::builder()
            .redirect(s3_http::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .user_agent(concat!("reportfiles/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        ProviderHttp { client }
    }

    /// Sends one request (openidconnect's form of it) and reads the answer.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let response = self
            .client
            .request(parts.method, &url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError(format!("{url}: {}", describe(&e))))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| HttpError(format!("{url}: {}", describe(&e))))?;
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError(format!("{url}: the response is over 1 MiB")));
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// GETs `url`: the body of a 200 answer.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| format!("{url}: {e}"))?;
        let response = self.send(request).await.map_err(|e| e.0)?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("{url} answered {}", response.status()));
        }
        Ok(response.into_body())
    }

    /// The client as openidconnect calls it.
    pub fn client(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> futures_util::future::BoxFuture<'static, Result<HttpResponse, HttpError>>
    + '_ {
        move |request| {
            let me = self.clone();
            Box::pin(async move { me.send(request).await })
        }
    }
}

impl Default for ProviderHttp {
    fn default() -> Self {
        Self::new()
    }
}

/// reqwest's error with its causes (its own text is often only "error
/// sending request").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
