//! The GraphQL endpoint: files, pagination, batching, and hostile requests.

use entity::{Quarter, Section};
use serde_json::{Value, json};

use crate::common::{ALABAMA, ALASKA, TestApp, db_tests, error_codes};

const PAGE: &str =
    "query($first: Int, $after: String, $last: Int, $before: String, $filter: ReportFileFilter) {
  reportFiles(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount
    edges { cursor node { id version } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

fn node_ids(body: &Value) -> Vec<String> {
    body["data"]["reportFiles"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges: {body}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// Inserts `n` files (one slot each) and returns their ids, newest first.
async fn files(app: &TestApp, n: usize) -> Vec<String> {
    let (admin, _) = app.admin().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let f = app
            .insert_file(
                &admin,
                ALABAMA,
                2000 + i as i32,
                Quarter::Q1,
                Section::ActiveCaseData,
            )
            .await;
        ids.push(f.id.to_string());
    }
    ids.reverse();
    ids
}

async fn files_are_listed_newest_first_with_every_field(app: TestApp) {
    let (admin_user, admin) = app.admin().await;
    let v1 = app
        .insert_file(
            &admin_user,
            ALABAMA,
            2026,
            Quarter::Q2,
            Section::ClosedCaseData,
        )
        .await;
    let v2 = app
        .insert_file(
            &admin_user,
            ALABAMA,
            2026,
            Quarter::Q2,
            Section::ClosedCaseData,
        )
        .await;
    let q = "{ reportFiles { edges { node {
        id stt { id name } fiscalYear quarter section version isLatest originalFilename extension
        contentType sizeBytes sha256 createdAt uploadedBy { subject } downloadUrl
        versions { version }
    } } } }";
    let body = app.gql(Some(&admin), q, json!({})).await;
    let edges = body["data"]["reportFiles"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    let newest = &edges[0]["node"];
    assert_eq!(newest["id"], v2.id.to_string());
    assert_eq!(newest["stt"], json!({ "id": ALABAMA, "name": "Alabama" }));
    assert_eq!(newest["fiscalYear"], 2026);
    assert_eq!(newest["quarter"], "Q2");
    assert_eq!(newest["section"], "CLOSED_CASE_DATA");
    assert_eq!(newest["version"], 2);
    assert_eq!(newest["isLatest"], true);
    assert_eq!(newest["extension"], "txt");
    assert_eq!(newest["contentType"], "text/plain");
    assert_eq!(newest["sizeBytes"], 10);
    assert_eq!(newest["uploadedBy"]["subject"], "sysadmin");
    assert_eq!(
        newest["downloadUrl"],
        format!("/v1/report-files/{}/download", v2.id)
    );
    assert_eq!(
        newest["versions"],
        json!([{ "version": 2 }, { "version": 1 }])
    );
    assert_eq!(edges[1]["node"]["id"], v1.id.to_string());
    assert_eq!(edges[1]["node"]["isLatest"], false);
    // Internal storage details never appear in the schema.
    for internal in ["objectKey", "storageVersion", "etag"] {
        let body = app
            .gql(
                Some(&admin),
                &format!("{{ reportFiles {{ edges {{ node {{ {internal} }} }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{internal}");
    }
}

async fn filters_narrow_the_list_and_the_count(app: TestApp) {
    let (admin_user, admin) = app.admin().await;
    let a1 = app
        .insert_file(
            &admin_user,
            ALABAMA,
            2026,
            Quarter::Q1,
            Section::ActiveCaseData,
        )
        .await;
    let a2 = app
        .insert_file(
            &admin_user,
            ALABAMA,
            2026,
            Quarter::Q1,
            Section::ActiveCaseData,
        )
        .await;
    let a3 = app
        .insert_file(
            &admin_user,
            ALABAMA,
            2025,
            Quarter::Q4,
            Section::AggregateData,
        )
        .await;
    let k1 = app
        .insert_file(&admin_user, ALASKA, 2026, Quarter::Q1, Section::StratumData)
        .await;
    let cases = [
        (json!({ "sttId": ALABAMA }), vec![&a3, &a2, &a1]),
        (
            json!({ "sttId": ALABAMA, "fiscalYear": 2026 }),
            vec![&a2, &a1],
        ),
        (json!({ "quarter": "Q1" }), vec![&k1, &a2, &a1]),
        (json!({ "section": "STRATUM_DATA" }), vec![&k1]),
        (json!({ "latestOnly": true }), vec![&k1, &a3, &a2]),
        (
            json!({ "sttId": ALABAMA, "latestOnly": true, "fiscalYear": 2026 }),
            vec![&a2],
        ),
        (json!({ "fiscalYear": 1999 }), vec![]),
    ];
    for (filter, want) in cases {
        let body = app
            .gql(Some(&admin), PAGE, json!({ "filter": filter }))
            .await;
        let want: Vec<String> = want.iter().map(|f| f.id.to_string()).collect();
        assert_eq!(node_ids(&body), want, "{filter}");
        assert_eq!(
            body["data"]["reportFiles"]["totalCount"],
            want.len(),
            "{filter}"
        );
    }
}

async fn versions_of_a_slot_are_consecutive(app: TestApp) {
    let (admin_user, _) = app.admin().await;
    let mut versions = Vec::new();
    for _ in 0..3 {
        versions.push(
            app.insert_file(
                &admin_user,
                ALABAMA,
                2026,
                Quarter::Q3,
                Section::AggregateData,
            )
            .await
            .version,
        );
    }
    let other_slot = app
        .insert_file(
            &admin_user,
            ALABAMA,
            2026,
            Quarter::Q4,
            Section::AggregateData,
        )
        .await;
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(other_slot.version, 1);
}

async fn forward_pagination_walks_every_file_once(app: TestApp) {
    let all = files(&app, 5).await;
    let (_, admin) = app.admin().await;
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let body = app
            .gql(Some(&admin), PAGE, json!({ "first": 2, "after": after }))
            .await;
        let conn = &body["data"]["reportFiles"];
        seen.extend(node_ids(&body));
        assert_eq!(conn["totalCount"], 5);
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], pages > 0);
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
}

async fn backward_pagination_walks_every_file_once(app: TestApp) {
    let all = files(&app, 5).await;
    let (_, admin) = app.admin().await;
    let first = app.gql(Some(&admin), PAGE, json!({ "last": 2 })).await;
    assert_eq!(node_ids(&first), all[3..].to_vec());
    assert_eq!(
        first["data"]["reportFiles"]["pageInfo"]["hasPreviousPage"],
        true
    );
    let before = first["data"]["reportFiles"]["pageInfo"]["startCursor"].clone();
    let second = app
        .gql(Some(&admin), PAGE, json!({ "last": 2, "before": before }))
        .await;
    assert_eq!(node_ids(&second), all[1..3].to_vec());
    assert_eq!(
        second["data"]["reportFiles"]["pageInfo"]["hasNextPage"],
        true
    );
    let before = second["data"]["reportFiles"]["pageInfo"]["startCursor"].clone();
    let third = app
        .gql(Some(&admin), PAGE, json!({ "last": 2, "before": before }))
        .await;
    assert_eq!(node_ids(&third), all[..1].to_vec());
    assert_eq!(
        third["data"]["reportFiles"]["pageInfo"]["hasPreviousPage"],
        false
    );
}

async fn cursors_stay_put_when_files_arrive(app: TestApp) {
    let all = files(&app, 4).await;
    let (admin_user, admin) = app.admin().await;
    let page1 = app.gql(Some(&admin), PAGE, json!({ "first": 2 })).await;
    let after = page1["data"]["reportFiles"]["pageInfo"]["endCursor"].clone();
    app.insert_file(
        &admin_user,
        ALASKA,
        2030,
        Quarter::Q1,
        Section::ActiveCaseData,
    )
    .await;
    let page2 = app
        .gql(Some(&admin), PAGE, json!({ "first": 2, "after": after }))
        .await;
    assert_eq!(node_ids(&page2), all[2..].to_vec());
}

async fn empty_pages_and_page_edges(app: TestApp) {
    let all = files(&app, 2).await;
    let (_, admin) = app.admin().await;
    let none = app.gql(Some(&admin), PAGE, json!({ "first": 0 })).await;
    assert_eq!(node_ids(&none), Vec::<String>::new());
    assert_eq!(none["data"]["reportFiles"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(none["data"]["reportFiles"]["totalCount"], 2);
    let exact = app.gql(Some(&admin), PAGE, json!({ "first": 2 })).await;
    assert_eq!(node_ids(&exact), all);
    assert_eq!(
        exact["data"]["reportFiles"]["pageInfo"]["hasNextPage"],
        false
    );
    let end = exact["data"]["reportFiles"]["pageInfo"]["endCursor"].clone();
    let past = app
        .gql(Some(&admin), PAGE, json!({ "first": 2, "after": end }))
        .await;
    assert_eq!(node_ids(&past), Vec::<String>::new());
    assert_eq!(
        past["data"]["reportFiles"]["pageInfo"]["hasNextPage"],
        false
    );
    assert_eq!(
        past["data"]["reportFiles"]["pageInfo"]["endCursor"],
        Value::Null
    );
}

async fn invalid_page_arguments_are_bad_user_input(app: TestApp) {
    files(&app, 1).await;
    let (_, admin) = app.admin().await;
    for vars in [
        json!({ "first": -1 }),
        json!({ "first": 101 }),
        json!({ "last": 1000 }),
        json!({ "first": 1, "last": 1 }),
        json!({ "after": "not-a-cursor" }),
        json!({ "after": "YzE6LTU" }),
        json!({ "before": "" }),
    ] {
        let body = app.gql(Some(&admin), PAGE, vars.clone()).await;
        assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{vars}: {body}");
    }
    let body = app
        .gql(
            Some(&admin),
            "{ reportFile(id: \"nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"]);
    let body = app
        .gql(
            Some(&admin),
            "{ reportFile(id: \"6d9c4c9e-9f0e-4c0e-8f53-0c1d2e3f4a5b\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["reportFile"], Value::Null);
    assert!(body["errors"].is_null());
}

async fn a_page_of_100_files_runs_a_constant_number_of_statements(app: TestApp) {
    let (_, admin) = app.admin().await;
    let mut uploaders = Vec::new();
    for i in 0..5 {
        uploaders.push(app.analyst(&format!("analyst{i}"), ALABAMA + i).await.0);
    }
    let query = "{ reportFiles(first: 100) { totalCount edges { node { id isLatest stt { name region { name } } uploadedBy { email } } } } }";
    let mut counts = Vec::new();
    for n in [10usize, 100] {
        for i in counts.len() * 10..n {
            let u = &uploaders[i % uploaders.len()];
            app.insert_file(
                u,
                u.stt_id.unwrap(),
                2000 + i as i32,
                Quarter::Q1,
                Section::ActiveCaseData,
            )
            .await;
        }
        // The caller is known (cached) after a first request; count a warm one.
        app.gql(Some(&admin), "{ me { id } }", json!({})).await;
        let before = app.sql_statements();
        let body = app.gql(Some(&admin), query, json!({})).await;
        let after = app.sql_statements();
        assert_eq!(
            body["data"]["reportFiles"]["edges"]
                .as_array()
                .unwrap()
                .len(),
            n.min(100)
        );
        counts.push(after - before);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements grew with the page: {counts:?}"
    );
    // Page (1) + count (1) + STTs, regions, users, latest (1 each).
    assert!(counts[1] <= 6, "{counts:?}");
}

async fn malformed_requests_get_clear_errors(app: TestApp) {
    let (_, admin) = app.admin().await;
    for (query, why) in [
        ("{ me { id ", "syntax error"),
        ("{ me { nonsense } }", "unknown field"),
        ("{ nonsense }", "unknown root field"),
        ("query($x: Int!) { me { id } }", "unused required variable"),
        ("mutation { uploadThings }", "unknown mutation"),
    ] {
        let (status, body) = app.gql_status(Some(&admin), query, json!({})).await;
        assert_eq!(status, 200, "{why}: application/json answers 200");
        assert_eq!(error_codes(&body)[0], "BAD_USER_INPUT", "{why}: {body}");
        assert_eq!(body["data"], Value::Null, "{why}");
    }
    let (status, body) = app
        .gql_status(Some(&admin), "{ me { id } }", json!("not an object"))
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn non_json_bodies_are_refused(app: TestApp) {
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("application/json", "[]"),
        ("application/json", ""),
    ] {
        let res = app
            .post("/graphql")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400, "{body}");
        let json: Value = res.json().await.unwrap();
        assert_eq!(error_codes(&json), vec!["BAD_USER_INPUT"]);
    }
    let res = app.post("/graphql").body("{}").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 415, "no content type");
}

async fn too_deep_and_too_complex_queries_are_refused(app: TestApp) {
    let (_, admin) = app.admin().await;
    // Introspection alone may nest deeper (GraphiQL needs it); next to data it may not.
    let deep = "{ me { id } __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
    let body = app.gql(Some(&admin), deep, json!({})).await;
    assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("deep"),
        "{body}"
    );

    // Aliases of a field that runs SQL: each costs a statement. (Aliases of
    // `me`, answered from memory, cost 2 each: 3000 of them fit.)
    let wide: String = (0..200)
        .map(|i| format!("a{i}: regions {{ id }} "))
        .collect();
    let body = app
        .gql(Some(&admin), &format!("{{ {wide} }}"), json!({}))
        .await;
    assert_eq!(
        error_codes(&body),
        vec!["BAD_USER_INPUT"],
        "{}",
        &body.to_string()[..200]
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{}",
        body["errors"]
    );

    let body = app.gql(Some(&admin), "{ reportFiles(first: 100) { edges { node { versions { versions { stt { region { id } } } } } } } }", json!({})).await;
    assert_eq!(
        error_codes(&body),
        vec!["BAD_USER_INPUT"],
        "a big page of nested lists is too complex: {body}"
    );
}

async fn oversized_bodies_are_refused_before_parsing(app: TestApp) {
    let (_, admin) = app.admin().await;
    let padding = " ".repeat(app.graphql_body_limit() + 1);
    let res = app
        .post("/graphql")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{{ me {{ id }} }}{padding}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
}

async fn graphql_response_media_type_gets_spec_status_codes(app: TestApp) {
    let send = |query: &'static str| {
        app.post("/graphql")
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query }))
            .send()
    };
    let bad = send("{ me { id ").await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        bad.headers()["content-type"],
        "application/graphql-response+json"
    );
    let ran = send("{ me { id } }").await.unwrap();
    assert_eq!(ran.status().as_u16(), 200, "a field error is still a 200");
}

db_tests!(
    files_are_listed_newest_first_with_every_field,
    filters_narrow_the_list_and_the_count,
    versions_of_a_slot_are_consecutive,
    forward_pagination_walks_every_file_once,
    backward_pagination_walks_every_file_once,
    cursors_stay_put_when_files_arrive,
    empty_pages_and_page_edges,
    invalid_page_arguments_are_bad_user_input,
    a_page_of_100_files_runs_a_constant_number_of_statements,
    malformed_requests_get_clear_errors,
    non_json_bodies_are_refused,
    too_deep_and_too_complex_queries_are_refused,
    oversized_bodies_are_refused_before_parsing,
    graphql_response_media_type_gets_spec_status_codes,
);
