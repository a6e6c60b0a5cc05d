//! `/graphql` over HTTP, after the GraphQL-over-HTTP specification
//! (<https://graphql.github.io/graphql-over-http/draft/>):
//!
//! - POST takes `application/json` (and multipart uploads); GET takes
//!   `query`, `variables`, `operationName` and `extensions` in the URL and
//!   runs queries only: a mutation over GET is refused with 405, because GET
//!   must stay safe (a link or an `<img>` can send it with the cookie).
//! - The response type follows `Accept`: `application/json` (also for no
//!   `Accept` or a wildcard) or `application/graphql-response+json`; neither
//!   acceptable gives 406. With `application/json` every well-formed request
//!   gets 200; with `application/graphql-response+json` a request that never
//!   executed (parse, validation, variables) gets 400 and no `data` entry.
//!
//! CSRF: a POST must be `Content-Type: application/json`. A cross-site HTML
//! form can only send `application/x-www-form-urlencoded`, `multipart/form-data`
//! or `text/plain`, and a cross-site script that sets JSON triggers a CORS
//! preflight that other origins fail, so the session cookie (also
//! SameSite=Lax) cannot be used to run a mutation from another site.

use std::{net::IpAddr, time::Duration};

use async_graphql::{ErrorExtensionValues, ServerError, Variables, parser::types::OperationType};
use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, FromRef, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    client::Client,
    graphiql, multipart, shape,
    slots::{CallerKey, CallerSlots},
};
use crate::{
    access::{Access, Caller},
    app::AppState,
    config::Introspection,
    error::AppError,
    graphql::{self, AppSchema, RequestData, Schemas, introspection, upload::PendingUpload},
};

/// The endpoint's state: the application, the schemas it serves, and the
/// requests each caller has running.
#[derive(Clone)]
struct Endpoint {
    app: AppState,
    schemas: Schemas,
    slots: CallerSlots,
    /// The schema's field types, for null propagation.
    types: std::sync::Arc<shape::FieldTypes>,
}

impl FromRef<Endpoint> for AppState {
    fn from_ref(endpoint: &Endpoint) -> AppState {
        endpoint.app.clone()
    }
}

pub fn router(app: AppState) -> Router {
    let schemas = graphql::build_schema(app.clone());
    let limits = &app.config.graphql;
    let slots = CallerSlots::new(limits.max_concurrent_per_user.get(), limits.concurrent_wait);
    Router::new()
        .route("/graphql", get(get_request).post(post))
        // Bodies are limited per kind in `post`: JSON by size, uploads by
        // the upload limit while they stream.
        .layer(DefaultBodyLimit::disable())
        .with_state(Endpoint {
            types: std::sync::Arc::new(shape::FieldTypes::from_sdl(&graphql::sdl())),
            app,
            schemas,
            slots,
        })
}

/// How long a document refused before execution (unparsable, or over the
/// depth or cost limits) keeps its caller's slot after the answer. A
/// frontend sends the documents it was built with, which pass; a caller who
/// floods the server with refused ones (8 alias bombs at a time) would
/// otherwise keep both cores parsing them, and everyone else waiting. The
/// refusal itself is not delayed: only that caller's next requests wait
/// for a slot (`GRAPHQL_CONCURRENT_WAIT_MS`).
const REFUSED_DOCUMENT_HOLD: Duration = Duration::from_millis(250);

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

/// The two media types a response can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// The legacy type: status 200 for every well-formed request.
    Json,
    /// Status codes tell request errors (4xx) from executed requests (2xx).
    GraphqlResponseJson,
}

impl ResponseType {
    fn media_type(self) -> &'static str {
        match self {
            ResponseType::Json => APPLICATION_JSON,
            ResponseType::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
        }
    }
}

/// Picks the response type from `Accept`. `None`: neither is acceptable.
///
/// Each type takes the q-value of the most specific range that matches it.
/// On a tie `application/graphql-response+json` wins only when it is named
/// outright, so `*/*` (browsers, curl) keeps getting `application/json`.
pub fn negotiate(headers: &HeaderMap) -> Option<ResponseType> {
    let ranges: Vec<(String, f32)> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())?;
            Some((media, q))
        })
        .collect();
    if ranges.is_empty() {
        return Some(ResponseType::Json);
    }
    // (specificity, q) of the best-matching range for a media type.
    let rank = |media: &str| -> Option<(u8, f32)> {
        ranges
            .iter()
            .filter_map(|(range, q)| {
                let specificity = match range.as_str() {
                    r if r == media => 2,
                    "application/*" => 1,
                    "*/*" => 0,
                    _ => return None,
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .filter(|(_, q)| *q > 0.0)
    };
    match (rank(GRAPHQL_RESPONSE_JSON), rank(APPLICATION_JSON)) {
        (None, None) => None,
        (Some(_), None) => Some(ResponseType::GraphqlResponseJson),
        (None, Some(_)) => Some(ResponseType::Json),
        (Some((gs, gq)), Some((_, jq))) => {
            if gq > jq || (gq == jq && gs == 2) {
                Some(ResponseType::GraphqlResponseJson)
            } else {
                Some(ResponseType::Json)
            }
        }
    }
}

/// A request-level error (the query never ran), shaped as a GraphQL
/// response without `data`.
fn request_error(
    status: StatusCode,
    response_type: ResponseType,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    with_media_type(
        (status, axum::Json(body)).into_response(),
        response_type.media_type(),
    )
}

fn with_media_type(mut response: Response, media_type: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

fn not_acceptable() -> Response {
    request_error(
        StatusCode::NOT_ACCEPTABLE,
        ResponseType::Json,
        "BAD_USER_INPUT",
        "Accept must allow application/json or application/graphql-response+json",
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(APPLICATION_JSON))
}

/// The request parameters, as the specification names them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    extensions: Option<Map<String, Value>>,
}

impl Params {
    fn into_request(self) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(self.query);
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(variables) = self.variables {
            request = request.variables(Variables::from_json(Value::Object(variables)));
        }
        if let Some(extensions) = self.extensions {
            request.extensions = async_graphql::Extensions(
                extensions
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, async_graphql::Value::from_json(v).ok()?)))
                    .collect(),
            );
        }
        request
    }
}

/// A JSON object of parameters into a request; the error says what is wrong.
fn params_from_json(value: Value) -> Result<async_graphql::Request, String> {
    // serde would also build the parameters from a JSON array.
    if !value.is_object() {
        return Err("the body must be a JSON object".into());
    }
    serde_json::from_value::<Params>(value)
        .map(Params::into_request)
        .map_err(|e| format!("the body is not a GraphQL request: {e}"))
}

async fn get_request(
    State(endpoint): State<Endpoint>,
    client: Client,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    access: Result<Access, AppError>,
) -> Response {
    let pairs: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // A browser opening /graphql gets GraphiQL; a GET with a query is a request.
    if param("query").is_none() && endpoint.app.config.graphql.graphiql_enabled {
        return graphiql::page();
    }
    let Some(response_type) = negotiate(&headers) else {
        return not_acceptable();
    };
    let bad = |message: String| {
        request_error(
            StatusCode::BAD_REQUEST,
            response_type,
            "BAD_USER_INPUT",
            &message,
        )
    };
    let mut params = Map::new();
    for name in ["query", "operationName"] {
        if let Some(v) = param(name) {
            params.insert(name.into(), Value::String(v.into()));
        }
    }
    if param("query").is_none() {
        return bad("the `query` parameter is missing".into());
    }
    for name in ["variables", "extensions"] {
        if let Some(v) = param(name) {
            match serde_json::from_str::<Value>(v) {
                Ok(json @ (Value::Object(_) | Value::Null)) => {
                    params.insert(name.into(), json);
                }
                _ => return bad(format!("`{name}` must be a JSON-encoded object")),
            }
        }
    }
    let mut request = match params_from_json(Value::Object(params)) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let operation_name = request.operation_name.clone();
    if let Ok(document) = request.parsed_query()
        && let Some(operation) = graphql::selected_operation(document, operation_name.as_deref())
        && operation.ty != OperationType::Query
    {
        let mut response = request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            response_type,
            "BAD_USER_INPUT",
            "GET runs queries only; send mutations with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&endpoint, client.ip, access, request, None, response_type).await
}

async fn post(
    State(endpoint): State<Endpoint>,
    client: Client,
    headers: HeaderMap,
    access: Result<Access, AppError>,
    body: Body,
) -> Response {
    let Some(response_type) = negotiate(&headers) else {
        return not_acceptable();
    };
    if multipart::is_multipart(&headers) {
        return post_multipart(endpoint, client.ip, headers, access, body, response_type).await;
    }
    if !is_json(&headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            response_type,
            "BAD_USER_INPUT",
            "POST /graphql takes Content-Type: application/json",
        );
    }
    let limit = endpoint.app.config.graphql.body_limit_bytes;
    let too_large = || {
        request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            response_type,
            "PAYLOAD_TOO_LARGE",
            &format!("the body is larger than {limit} bytes"),
        )
    };
    if declared_length(&headers).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    // A body must arrive as promptly as a request head.
    let within = endpoint.app.config.server.connections.header_timeout;
    let body = match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return request_error(
                StatusCode::REQUEST_TIMEOUT,
                response_type,
                "BAD_USER_INPUT",
                &format!("the body did not arrive within {} s", within.as_secs()),
            );
        }
    };
    let request = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("the body is not JSON: {e}"))
        .and_then(params_from_json);
    match request {
        Ok(request) => execute(&endpoint, client.ip, access, request, None, response_type).await,
        Err(message) => request_error(
            StatusCode::BAD_REQUEST,
            response_type,
            "BAD_USER_INPUT",
            &message,
        ),
    }
}

async fn execute(
    endpoint: &Endpoint,
    client: IpAddr,
    access: Result<Access, AppError>,
    request: async_graphql::Request,
    upload: Option<PendingUpload>,
    response_type: ResponseType,
) -> Response {
    let access = match access {
        Ok(a) => a,
        Err(e) => {
            e.log();
            return request_error(e.status(), response_type, e.code(), &e.to_string());
        }
    };
    let mut request = request;
    // Held until the response is built; `None` for uploads.
    let slot = if is_upload(&mut request, upload.is_some()) {
        None
    } else {
        let key = CallerKey::of(&access, client);
        match endpoint.slots.acquire(key).await {
            Ok(slot) => Some(slot),
            Err(e) => return too_many_requests(&e, response_type),
        }
    };
    let (schema, request) = match choose_schema(endpoint, &access, request) {
        Ok(chosen) => chosen,
        Err(error) => {
            return respond(
                async_graphql::Response::from_errors(vec![error]),
                response_type,
            );
        }
    };
    let query = request.query.clone();
    let operation_name = request.operation_name.clone();
    let request = request.data(RequestData::new(access, upload, client));
    let mut response = schema.execute(request).await;
    if refused_before_execution(&response)
        && let Some(slot) = slot
    {
        tokio::spawn(async move {
            tokio::time::sleep(REFUSED_DOCUMENT_HOLD).await;
            drop(slot);
        });
    }
    shape_response(endpoint, &query, operation_name.as_deref(), &mut response);
    respond(response, response_type)
}

/// Whether the document was refused as a whole, before any field ran:
/// errors, no data, and no error of a field (those have a path).
fn refused_before_execution(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Keys in selection order, and nulls where fields errored (see `shape`).
fn shape_response(
    endpoint: &Endpoint,
    query: &str,
    operation_name: Option<&str>,
    response: &mut async_graphql::Response,
) {
    if response.data == async_graphql::Value::Null {
        return;
    }
    // Parsed again: the request's own parse went with it into execution.
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return;
    };
    shape::order(&document, operation_name, &mut response.data);
    let paths: Vec<_> = response
        .errors
        .iter()
        .filter(|e| !e.path.is_empty())
        .map(|e| e.path.clone())
        .collect();
    if !paths.is_empty() {
        shape::propagate(
            &endpoint.types,
            &document,
            operation_name,
            &mut response.data,
            &paths,
        );
    }
}

/// Whether `request` is an upload: a mutation with a file part. Uploads
/// take no slot of the per-caller limit: they stream for as long as the
/// file takes (a user sending the four sections of a quarter side by side
/// must still be able to browse), and the upload limits bound them.
fn is_upload(request: &mut async_graphql::Request, has_file: bool) -> bool {
    let operation_name = request.operation_name.clone();
    has_file
        && request.parsed_query().is_ok_and(|document| {
            graphql::selected_operation(document, operation_name.as_deref())
                .is_some_and(|op| op.ty == OperationType::Mutation)
        })
}

fn too_many_requests(e: &AppError, response_type: ResponseType) -> Response {
    let mut response = request_error(e.status(), response_type, e.code(), &e.to_string());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The schema that runs `request` for this caller (and the request, with
/// introspection turned off when the caller may not introspect), or the
/// error that refuses it.
///
/// With `GRAPHQL_INTROSPECTION=admins`, a caller who is not a signed-in
/// administrator gets a clear refusal for `__schema`/`__type`, and runs on
/// the schema without introspection and field suggestions.
fn choose_schema<'a>(
    endpoint: &'a Endpoint,
    access: &Access,
    mut request: async_graphql::Request,
) -> Result<(&'a AppSchema, async_graphql::Request), ServerError> {
    let operation_name = request.operation_name.clone();
    let restricted =
        endpoint.app.config.graphql.introspection == Introspection::Admins && !access.is_admin();
    let (kind, asks_for_schema) = match request.parsed_query() {
        Ok(document) => (
            introspection::classify(document, operation_name.as_deref()),
            introspection::asks_for_schema(document, operation_name.as_deref()),
        ),
        // Executing it reports the syntax error.
        Err(_) => (introspection::Kind::Data, false),
    };
    if restricted {
        if asks_for_schema {
            return Err(introspection_refused(access));
        }
        return Ok((
            &endpoint.schemas.restricted,
            request.disable_introspection(),
        ));
    }
    match kind {
        introspection::Kind::Data => Ok((&endpoint.schemas.data, request)),
        introspection::Kind::Introspection => Ok((&endpoint.schemas.introspection, request)),
        introspection::Kind::TooNested => Err(ServerError::new(
            "introspection nests fields, inputFields, interfaces or possibleTypes too deeply",
            None,
        )),
    }
}

fn introspection_refused(access: &Access) -> ServerError {
    let code = match access.caller() {
        Caller::Anonymous => AppError::Unauthenticated.code(),
        Caller::User(_) => AppError::Forbidden.code(),
    };
    let mut error = ServerError::new(
        "introspection is available to signed-in administrators only: \
         ask for the schema (schema.graphql) instead",
        None,
    );
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

async fn post_multipart(
    endpoint: Endpoint,
    client: IpAddr,
    headers: HeaderMap,
    access: Result<Access, AppError>,
    body: Body,
    response_type: ResponseType,
) -> Response {
    if !multipart::has_preflight_header(&headers) {
        return request_error(
            StatusCode::BAD_REQUEST,
            response_type,
            "BAD_USER_INPUT",
            "multipart requests need the header `Apollo-Require-Preflight: true`",
        );
    }
    // Nothing of the body is read before the caller is known to be someone
    // who may upload, and the body is refused unread when it says it is too
    // large.
    let refuse = |e: AppError| request_error(e.status(), response_type, e.code(), &e.to_string());
    let access = match access.and_then(|a| a.uploader().map(|()| a)) {
        Ok(access) => access,
        Err(e) => return refuse(e),
    };
    let config = &endpoint.app.config;
    let text_limit = config.graphql.body_limit_bytes;
    let max_upload = config.uploads.max_bytes;
    if declared_length(&headers)
        .is_some_and(|n| n > multipart::max_request_bytes(text_limit, max_upload))
    {
        return refuse(AppError::PayloadTooLarge { limit: max_upload });
    }
    // The parts before the file must arrive as promptly as a request head.
    let within = config.server.connections.header_timeout;
    let parts = tokio::time::timeout(
        within,
        multipart::read_parts(&headers, body, text_limit, max_upload),
    )
    .await
    .unwrap_or_else(|_| {
        Err(AppError::bad_input(format!(
            "the `operations` and `map` parts did not arrive within {} s",
            within.as_secs()
        )))
    });
    match parts {
        Ok((request, pending)) => {
            execute(
                &endpoint,
                client,
                Ok(access),
                request,
                pending,
                response_type,
            )
            .await
        }
        Err(e) => refuse(e),
    }
}

/// The request's `Content-Length`, when it has a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn respond(mut response: async_graphql::Response, response_type: ResponseType) -> Response {
    // Resolver errors carry a code already; the ones async-graphql makes
    // itself (syntax, validation, limits) get one here.
    for error in &mut response.errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            let code = if error.path.is_empty() {
                "BAD_USER_INPUT"
            } else {
                "INTERNAL"
            };
            ext.set("code", code);
        }
    }
    // A response without data whose errors have no path never executed:
    // the document failed to parse or validate, or its variables did not
    // fit. Such a response has no `data` entry at all.
    let never_executed = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = match response_type {
        ResponseType::GraphqlResponseJson if never_executed => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let mut body = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
    if never_executed && let Some(map) = body.as_object_mut() {
        map.remove("data");
    }
    let mut out = with_media_type(
        (status, axum::Json(body)).into_response(),
        response_type.media_type(),
    );
    for (name, value) in response.http_headers.iter() {
        out.headers_mut().append(name, value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<ResponseType> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&h)
    }

    #[test]
    fn no_accept_or_a_wildcard_gets_application_json() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(ResponseType::Json));
        assert_eq!(accept("*/*"), Some(ResponseType::Json));
        assert_eq!(accept("application/*"), Some(ResponseType::Json));
        assert_eq!(
            accept("text/html, application/xhtml+xml, */*;q=0.8"),
            Some(ResponseType::Json)
        );
    }

    #[test]
    fn graphql_response_json_named_outright_wins_a_tie() {
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(ResponseType::GraphqlResponseJson)
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json"),
            Some(ResponseType::GraphqlResponseJson)
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json"),
            Some(ResponseType::GraphqlResponseJson)
        );
    }

    #[test]
    fn quality_values_decide() {
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Some(ResponseType::Json)
        );
        assert_eq!(
            accept("application/json;q=0.1, application/graphql-response+json;q=0.9"),
            Some(ResponseType::GraphqlResponseJson)
        );
        assert_eq!(
            accept("application/json;q=0, */*"),
            Some(ResponseType::GraphqlResponseJson),
            "a refused application/json leaves the wildcard to the other type"
        );
    }

    #[test]
    fn an_accept_that_allows_neither_is_none() {
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/xml, text/*"), None);
        assert_eq!(accept("*/*;q=0"), None);
    }

    #[test]
    fn a_range_with_a_malformed_quality_is_ignored() {
        assert_eq!(
            accept("application/json;q=nonsense"),
            Some(ResponseType::Json),
            "as if there were no Accept at all"
        );
        assert_eq!(
            accept("application/graphql-response+json;q=x, text/html"),
            None
        );
    }
}
