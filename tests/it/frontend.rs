//! What a browser frontend relies on at the HTTP level: CORS for the
//! configured origins only, and GraphiQL served without any CDN. The same
//! paths are driven by a real browser in `clients/` (scripts/test-clients).

use reqwest::Response;
use serde_json::json;

use crate::common::{TestApp, error_codes, header};

const FRONTEND: &str = "https://portal.example.gov";

async fn cors_app() -> TestApp {
    TestApp::sqlite_with(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://portal.example.gov,http://localhost:3000",
    )])
    .await
}

async fn preflight(app: &TestApp, origin: &str, headers: &str) -> Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_origin_passes_the_preflight_with_credentials() {
    let app = cors_app().await;
    let res = preflight(&app, FRONTEND, "content-type,apollo-require-preflight").await;
    assert!(res.status().is_success());
    assert_eq!(header(&res, "access-control-allow-origin"), Some(FRONTEND));
    assert_eq!(
        header(&res, "access-control-allow-credentials"),
        Some("true")
    );
    let allowed = header(&res, "access-control-allow-headers").unwrap();
    for h in ["content-type", "authorization", "apollo-require-preflight"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert!(
        header(&res, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers() {
    let app = cors_app().await;
    for origin in [
        "https://evil.example",
        "https://portal.example.gov.evil.example",
        "http://portal.example.gov",
        "http://localhost:3001",
        "null",
    ] {
        let res = preflight(&app, origin, "content-type").await;
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            None,
            "{origin}"
        );
        let res = app
            .post("/graphql")
            .header("origin", origin)
            .json(&json!({ "query": "{ regions { id } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn responses_to_an_allowed_origin_expose_the_download_filename() {
    let app = cors_app().await;
    let res = app
        .get("/healthz")
        .header("origin", FRONTEND)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), Some(FRONTEND));
    assert!(
        header(&res, "access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-disposition")
    );
    assert!(
        res.headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin")),
        "caches must key on Origin"
    );
}

#[tokio::test]
async fn without_configured_origins_there_is_no_cors() {
    let app = TestApp::sqlite().await;
    let res = preflight(&app, FRONTEND, "content-type").await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
}

/// Every `src` and `href` in an HTML page.
fn urls_in(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').unwrap();
            urls.push(rest[..end].to_string());
        }
    }
    urls
}

/// What a browser gets when it opens `/graphql`.
async fn graphiql_page(app: &TestApp) -> Response {
    app.get("/graphql")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_graphiql_page_loads_only_assets_of_this_server() {
    let app = TestApp::sqlite().await;
    let res = graphiql_page(&app).await;
    assert_eq!(res.status().as_u16(), 200);
    let csp = header(&res, "content-security-policy").unwrap().to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = res.text().await.unwrap();
    // `data:` URLs (the empty favicon) need no network.
    let urls: Vec<String> = urls_in(&html)
        .into_iter()
        .filter(|u| !u.starts_with("data:"))
        .collect();
    assert_eq!(urls.len(), 5, "four scripts and a stylesheet: {urls:?}");
    for url in urls {
        assert!(url.starts_with("/graphiql/"), "{url} is not local");
        let asset = app.get(&url).send().await.unwrap();
        assert_eq!(asset.status().as_u16(), 200, "{url}");
        let expected = if url.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(header(&asset, "content-type"), Some(expected), "{url}");
        assert_eq!(
            header(&asset, "cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        assert!(asset.bytes().await.unwrap().len() > 100, "{url}");
    }
}

#[tokio::test]
async fn graphiql_assets_of_another_version_are_not_found() {
    let app = TestApp::sqlite().await;
    let res = app
        .get("/graphiql/0.0.1/graphiql.min.js")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn graphiql_and_its_assets_are_gone_when_disabled() {
    let app = TestApp::sqlite_with(&[("GRAPHIQL_ENABLED", "false")]).await;
    let page = graphiql_page(&app).await;
    assert_ne!(page.status().as_u16(), 200);
    assert!(!page.text().await.unwrap().contains("graphiql.min.js"));
    let enabled = TestApp::sqlite().await;
    let html = enabled.get_text("/graphql").await;
    for url in urls_in(&html).iter().filter(|u| u.starts_with('/')) {
        let res = app.get(url).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404, "{url}");
    }
}

/// graphql-js's `getIntrospectionQuery()`, which GraphiQL sends on load.
const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
  fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
  fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
  fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

#[tokio::test]
async fn graphiql_can_load_the_schema_despite_the_depth_limit() {
    let app = TestApp::sqlite().await;
    let body = app.gql(None, INTROSPECTION, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "ReportFile"));
}

#[tokio::test]
async fn introspection_whose_type_lists_fan_out_is_refused() {
    let app = TestApp::sqlite().await;
    let fan_out = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }";
    let body = app.gql(None, fan_out, json!({})).await;
    assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{body}");
    assert!(body.get("data").is_none(), "{body}");
}
