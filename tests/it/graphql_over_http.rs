//! The MUST (and chosen SHOULD) rules of the GraphQL-over-HTTP specification
//! (https://graphql.github.io/graphql-over-http/draft/), one per test.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::common::{TestApp, error_codes, header, with_headers};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// GET /graphql with these URL parameters and headers.
async fn get(app: &TestApp, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Response {
    with_headers(app.get("/graphql").query(params), headers)
        .send()
        .await
        .unwrap()
}

/// POST /graphql with this body and headers.
async fn post(app: &TestApp, body: &str, headers: &[(&str, &str)]) -> Response {
    with_headers(app.post("/graphql").body(body.to_string()), headers)
        .send()
        .await
        .unwrap()
}

/// A request body asking for the regions: valid, public, and cheap.
const REGIONS: &str = r#"{"query":"{ regions { id } }"}"#;

const JSON: (&str, &str) = ("content-type", "application/json");
const ACCEPT_GRAPHQL: (&str, &str) = ("accept", GRAPHQL_RESPONSE_JSON);

#[tokio::test]
async fn get_executes_a_query_from_url_parameters() {
    let app = TestApp::sqlite().await;
    let (_, admin) = app.admin().await;
    let res = get(
        &app,
        &[("query", "{ me { subject } }")],
        &[("authorization", &format!("Bearer {admin}"))],
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "me": { "subject": "sysadmin" } } }));
}

#[tokio::test]
async fn get_takes_json_encoded_variables_and_an_operation_name() {
    let app = TestApp::sqlite().await;
    let query = "query States($type: SttType) { stts(type: $type) { postalCode } }
                 query Regions { regions { id } }";
    let (_, admin) = app.admin().await;
    let res = get(
        &app,
        &[
            ("query", query),
            ("operationName", "States"),
            ("variables", r#"{"type":"TERRITORY"}"#),
        ],
        &[("authorization", &format!("Bearer {admin}"))],
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    let stts = body["data"]["stts"].as_array().unwrap();
    assert_eq!(stts.len(), 3, "the three territories: {body}");
}

#[tokio::test]
async fn a_mutation_over_get_is_refused_with_405_and_not_run() {
    let app = TestApp::sqlite().await;
    let (_, admin) = app.admin().await;
    let session = app.session_cookie(&admin).await;
    let res = get(
        &app,
        &[("query", "mutation { logout }")],
        &[("cookie", &session)],
    )
    .await;
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(header(&res, "allow"), Some("POST"));
    assert!(
        header(&res, "set-cookie").is_none(),
        "logout ran: it cleared the cookie"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"]);
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn a_mutation_selected_by_operation_name_over_get_is_refused() {
    let app = TestApp::sqlite().await;
    let document = "query Me { me { id } } mutation Out { logout }";
    let res = get(
        &app,
        &[("query", document), ("operationName", "Out")],
        &[ACCEPT_GRAPHQL],
    )
    .await;
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(header(&res, "content-type"), Some(GRAPHQL_RESPONSE_JSON));

    let res = get(&app, &[("query", "mutation Out { logout }")], &[]).await;
    assert_eq!(res.status().as_u16(), 405, "the only operation, named");

    let res = get(&app, &[("query", document), ("operationName", "Me")], &[]).await;
    assert_eq!(
        res.status().as_u16(),
        200,
        "the query in the same document runs"
    );
}

#[tokio::test]
async fn get_without_a_query_parameter_is_400_when_graphiql_is_off() {
    let app = TestApp::sqlite_with(&[("GRAPHIQL_ENABLED", "false")]).await;
    let res = get(&app, &[], &[]).await;
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"]);
}

#[tokio::test]
async fn get_with_variables_that_are_not_a_json_object_is_400() {
    let app = TestApp::sqlite().await;
    for variables in ["{not json", "[1]", r#""x""#] {
        let res = get(
            &app,
            &[("query", "{ regions { id } }"), ("variables", variables)],
            &[],
        )
        .await;
        assert_eq!(res.status().as_u16(), 400, "{variables}");
    }
}

#[tokio::test]
async fn without_accept_the_response_is_application_json() {
    let app = TestApp::sqlite().await;
    let res = post(&app, REGIONS, &[JSON]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn a_wildcard_accept_gets_application_json() {
    let app = TestApp::sqlite().await;
    for accept in ["*/*", "application/*", "text/html, */*;q=0.8"] {
        let res = post(&app, REGIONS, &[JSON, ("accept", accept)]).await;
        assert_eq!(res.status().as_u16(), 200, "{accept}");
        assert_eq!(
            header(&res, "content-type"),
            Some("application/json"),
            "{accept}"
        );
    }
}

#[tokio::test]
async fn accept_graphql_response_json_gets_that_media_type() {
    let app = TestApp::sqlite().await;
    for accept in [
        GRAPHQL_RESPONSE_JSON,
        "application/graphql-response+json, application/json;q=0.9",
        "application/json, application/graphql-response+json",
        "application/graphql-response+json;charset=utf-8",
    ] {
        let res = post(&app, REGIONS, &[JSON, ("accept", accept)]).await;
        assert_eq!(res.status().as_u16(), 200, "{accept}");
        assert_eq!(
            header(&res, "content-type"),
            Some(GRAPHQL_RESPONSE_JSON),
            "{accept}"
        );
    }
}

#[tokio::test]
async fn the_client_preference_by_quality_is_honoured() {
    let app = TestApp::sqlite().await;
    let res = post(
        &app,
        REGIONS,
        &[
            JSON,
            (
                "accept",
                "application/graphql-response+json;q=0.5, application/json",
            ),
        ],
    )
    .await;
    assert_eq!(header(&res, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn an_accept_that_allows_neither_json_type_is_406() {
    let app = TestApp::sqlite().await;
    for accept in ["text/html", "application/xml", "application/json;q=0"] {
        let res = post(&app, REGIONS, &[JSON, ("accept", accept)]).await;
        assert_eq!(res.status().as_u16(), 406, "POST {accept}");
        let res = get(
            &app,
            &[("query", "{ regions { id } }")],
            &[("accept", accept)],
        )
        .await;
        assert_eq!(res.status().as_u16(), 406, "GET {accept}");
    }
}

#[tokio::test]
async fn a_post_in_another_media_type_is_415() {
    let app = TestApp::sqlite().await;
    let body = REGIONS;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/graphql",
    ] {
        let res = post(&app, body, &[("content-type", content_type)]).await;
        assert_eq!(res.status().as_u16(), 415, "{content_type}");
    }
    let res = post(&app, body, &[]).await;
    assert_eq!(res.status().as_u16(), 415, "no content type");
}

#[tokio::test]
async fn a_body_that_is_not_a_request_object_is_400_for_both_media_types() {
    let app = TestApp::sqlite().await;
    for accept in ["application/json", GRAPHQL_RESPONSE_JSON] {
        for body in [
            "[]",
            r#"[{"query":"{ regions { id } }"}]"#,
            r#""{ regions { id } }""#,
            "{",
            "{}",
            r#"{"query": 1}"#,
            r#"{"query":"{ regions { id } }","variables":"x"}"#,
            r#"{"query":"{ regions { id } }","operationName":[]}"#,
            r#"{"query":"{ regions { id } }","extensions":1}"#,
        ] {
            let res = post(&app, body, &[JSON, ("accept", accept)]).await;
            assert_eq!(res.status().as_u16(), 400, "{accept} {body}");
            assert_eq!(header(&res, "content-type"), Some(accept), "{body}");
            let json: Value = res.json().await.unwrap();
            assert_eq!(error_codes(&json), vec!["BAD_USER_INPUT"], "{body}");
            assert!(json.get("data").is_none(), "{body}: {json}");
        }
    }
}

#[tokio::test]
async fn null_variables_operation_name_and_extensions_are_absent_ones() {
    let app = TestApp::sqlite().await;
    let res = post(
        &app,
        r#"{"query":"{ __typename }","variables":null,"operationName":null,"extensions":null}"#,
        &[JSON],
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
}

#[tokio::test]
async fn application_json_answers_200_for_documents_that_never_ran() {
    let app = TestApp::sqlite().await;
    for query in ["{ regions { id ", "{ noSuchField }"] {
        let res = post(&app, &json!({ "query": query }).to_string(), &[JSON]).await;
        assert_eq!(res.status().as_u16(), 200, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{query}");
        assert!(body.get("data").is_none(), "{query}: {body}");
    }
}

#[tokio::test]
async fn graphql_response_json_answers_400_without_data_for_documents_that_never_ran() {
    let app = TestApp::sqlite().await;
    let cases = [
        json!({ "query": "{ regions { id " }),
        json!({ "query": "{ noSuchField }" }),
        json!({ "query": "query($t: SttType!) { stts(type: $t) { id } }", "variables": { "t": "PLANET" } }),
        json!({ "query": "query A { me { id } } query B { me { id } }" }),
    ];
    for request in cases {
        let res = post(&app, &request.to_string(), &[JSON, ACCEPT_GRAPHQL]).await;
        assert_eq!(res.status().as_u16(), 400, "{request}");
        assert_eq!(header(&res, "content-type"), Some(GRAPHQL_RESPONSE_JSON));
        let body: Value = res.json().await.unwrap();
        assert!(body.get("data").is_none(), "{request}: {body}");
        assert!(!error_codes(&body).is_empty(), "{request}: {body}");
    }
}

#[tokio::test]
async fn an_executed_request_is_2xx_with_data_even_when_a_field_failed() {
    let app = TestApp::sqlite().await;
    // `users` needs an admin: anonymous, the non-null field fails and data is null.
    let res = post(
        &app,
        r#"{"query":"{ users { id } }"}"#,
        &[JSON, ACCEPT_GRAPHQL],
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("data").is_some(), "{body}");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(error_codes(&body), vec!["UNAUTHENTICATED"]);
    assert_eq!(body["errors"][0]["path"], json!(["users"]));
}

#[tokio::test]
async fn every_response_is_an_object_of_data_errors_and_extensions_only() {
    let app = TestApp::sqlite().await;
    let requests = [
        (Method::POST, REGIONS),
        (Method::POST, r#"{"query":"{ nope }"}"#),
        (Method::POST, r#"[]"#),
        (Method::GET, "{ regions { id } }"),
        (Method::GET, "mutation { logout }"),
    ];
    for (method, payload) in requests {
        for accept in ["application/json", GRAPHQL_RESPONSE_JSON] {
            let res = if method == Method::GET {
                get(&app, &[("query", payload)], &[("accept", accept)]).await
            } else {
                post(&app, payload, &[JSON, ("accept", accept)]).await
            };
            let body: Value = res.json().await.unwrap();
            let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
            assert!(!keys.is_empty(), "{payload}");
            assert!(
                keys.iter()
                    .all(|k| ["data", "errors", "extensions"].contains(&k.as_str())),
                "{method} {payload} {accept}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn response_keys_follow_the_selection_order() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.admin().await;
    let res = app
        .post("/graphql")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"query":"{ stts(type: STATE) { name id } me { subject role status } reportFiles(first: 1) { totalCount } }"}"#)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    let at = |key: &str| text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
    assert!(
        at("\"stts\"") < at("\"me\"") && at("\"me\"") < at("\"reportFiles\""),
        "{text}"
    );
    assert!(
        at("\"subject\"") < at("\"role\"") && at("\"role\"") < at("\"status\""),
        "{text}"
    );
    assert!(at("\"name\"") < at("\"id\""), "{text}");
}

#[tokio::test]
async fn a_field_that_errors_is_null_and_a_non_null_one_nulls_its_parent() {
    let app = TestApp::sqlite().await;
    let (_, pending) = app.pending("pending").await;
    // reportFile is nullable: it is null beside `me`.
    let body = app
        .gql(
            Some(&pending),
            "{ me { subject } reportFile(id: \"x\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({ "me": { "subject": "pending" }, "reportFile": null }),
        "{body}"
    );
    // reportFiles is non-null: its error nulls the whole `data`.
    let body = app
        .gql(
            Some(&pending),
            "{ me { subject } reportFiles(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert!(
        body.get("data").is_some(),
        "data is there, and null: {body}"
    );
    assert_eq!(body["data"], Value::Null, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["reportFiles"]));
}
