//! Behind load balancers (issue #14): the download audit, scan records and
//! the per-request log line name the client that trusted proxies
//! forwarded, and never an address that an untrusted peer claims.
//!
//! The proxies are real: Debian's nginx with `proxy_set_header
//! X-Forwarded-For $proxy_add_x_forwarded_for`, as a deployment has it.
//! Each hop has an address of its own on loopback (127.0.0.0/8, nginx's
//! `proxy_bind`, reqwest's local address), so the address in the audit
//! tells which hop the server believed. IPv6 loopback has one address
//! only (`::1`), so chains of IPv6 proxies are written by hand, from a
//! trusted peer, rather than built from several nginx.

use std::net::IpAddr;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{
    ALABAMA, Nginx, NginxSpec, TestApp, UPLOAD_MAP, clamd::clamd, text, upload_input,
    upload_operations, with_headers,
};

/// The browser.
const CLIENT: &str = "127.0.0.9";
/// The outer proxy of a chain (the one the browser reaches), as the next
/// hop sees it.
const EDGE: &str = "127.0.0.3";
/// The proxy nearest the server, as the server sees it.
const INNER: &str = "127.0.0.2";
/// The test's plain client.
const DIRECT: &str = "127.0.0.1";

/// What a client may write to pass for someone else, and for https.
const SPOOFED: [(&str, &str); 3] = [
    ("x-forwarded-for", "203.0.113.66"),
    ("forwarded", "for=203.0.113.66;proto=https"),
    ("x-forwarded-proto", "https"),
];

/// A client whose connections come from `ip`. It accepts the TLS proxy's
/// self-signed certificate and never goes through an HTTP proxy.
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .unwrap()
}

/// `host:port` of a server, for `proxy_pass`.
fn authority(base: &str) -> &str {
    base.trim_start_matches("http://")
}

struct File {
    id: uuid::Uuid,
    url: String,
}

/// An analyst's token, and a file they may download.
async fn a_file(app: &TestApp) -> (String, File) {
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let f = app.upload_file(&token, ALABAMA, "a.txt", text(1000)).await;
    (
        token,
        File {
            id: f.id,
            url: f.url,
        },
    )
}

/// Downloads `file` through `base` with `client` and `headers`: the client
/// address its DownloadEvent recorded.
async fn audited(
    app: &TestApp,
    client: &reqwest::Client,
    base: &str,
    (token, file): &(String, File),
    headers: &[(&str, &str)],
) -> String {
    let before = app.download_events_now(file.id).await.len();
    let req = client.get(format!("{base}{}", file.url)).bearer_auth(token);
    let res = with_headers(req, headers).send().await.unwrap();
    assert_eq!(res.status(), 200, "download through {base}");
    res.bytes().await.unwrap();
    let events = app.download_events(file.id, before + 1).await;
    events[before]
        .client_addr
        .clone()
        .expect("a client address")
}

/// The session cookie that `login` sets, through `base`.
async fn session_cookie(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> String {
    let req = client.post(format!("{base}/graphql")).json(&json!({
        "query": "mutation($t: String!) { login(token: $t) { subject } }",
        "variables": { "t": token },
    }));
    let res = with_headers(req, headers).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("reportfiles_session="))
        .expect("login sets the session cookie")
}

fn is_secure(cookie: &str) -> bool {
    cookie
        .split(';')
        .any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"))
}

async fn nginx_to(upstream: &str, source: Option<&str>) -> Nginx {
    Nginx::start(NginxSpec {
        upstream,
        source,
        ..NginxSpec::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_are_ignored() {
    for vars in [
        vec![],
        vec![("TRUSTED_PROXIES", INNER)],
        vec![
            ("TRUSTED_PROXIES", INNER),
            ("TRUSTED_PROXY_HEADER", "forwarded"),
        ],
    ] {
        let app = TestApp::sqlite_with(&vars).await;
        let file = a_file(&app).await;
        let direct = from(DIRECT);
        assert_eq!(
            audited(&app, &direct, &app.base, &file, &SPOOFED).await,
            DIRECT,
            "{vars:?}"
        );
        let cookie = session_cookie(&direct, &app.base, &file.0, &SPOOFED).await;
        assert!(!is_secure(&cookie), "{vars:?}: {cookie}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_nginx_forwards_the_client_whatever_the_client_wrote() {
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", INNER)]).await;
    let file = a_file(&app).await;
    let nginx = nginx_to(authority(&app.base), Some(INNER)).await;
    let browser = from(CLIENT);
    assert_eq!(
        audited(&app, &browser, &nginx.base, &file, &[]).await,
        CLIENT
    );
    // What a client writes itself stands left of what nginx appends.
    assert_eq!(
        audited(&app, &browser, &nginx.base, &file, &SPOOFED).await,
        CLIENT
    );
    // Junk and a flood of trusted-looking hops there hide nothing.
    let flood = format!("{}{INNER}", format!("{INNER}, ").repeat(100));
    for junk in ["garbage, \"[unbalanced", &flood] {
        let headers = [("x-forwarded-for", junk), ("forwarded", junk)];
        assert_eq!(
            audited(&app, &browser, &nginx.base, &file, &headers).await,
            CLIENT,
            "{junk}"
        );
    }
    // Straight to the server, the same browser is its own peer: believed
    // for nothing.
    assert_eq!(
        audited(&app, &browser, &app.base, &file, &SPOOFED).await,
        CLIENT
    );
}

/// The browser -> `edge` nginx -> `inner` nginx -> the server.
async fn chain(app: &TestApp) -> (Nginx, Nginx) {
    let inner = Nginx::start(NginxSpec {
        upstream: authority(&app.base),
        source: Some(INNER),
        // Behind another proxy: the edge's word on the scheme is kept.
        proto: "$http_x_forwarded_proto",
        ..NginxSpec::default()
    })
    .await;
    let edge = nginx_to(&inner.authority, Some(EDGE)).await;
    (edge, inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_two_trusted_proxies_forwards_the_client() {
    // 127.0.0.2/31: INNER and EDGE.
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", "127.0.0.2/31")]).await;
    let file = a_file(&app).await;
    let (edge, _inner) = chain(&app).await;
    let browser = from(CLIENT);
    assert_eq!(
        audited(&app, &browser, &edge.base, &file, &[]).await,
        CLIENT
    );
    assert_eq!(
        audited(&app, &browser, &edge.base, &file, &SPOOFED).await,
        CLIENT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_stops_at_an_untrusted_hop() {
    // The edge proxy is not trusted: it could have written anything left
    // of its own address, so the walk stops at it.
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", INNER)]).await;
    let file = a_file(&app).await;
    let (edge, _inner) = chain(&app).await;
    let browser = from(CLIENT);
    assert_eq!(audited(&app, &browser, &edge.base, &file, &[]).await, EDGE);
    assert_eq!(
        audited(&app, &browser, &edge.base, &file, &SPOOFED).await,
        EDGE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_through_a_trusted_nginx() {
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", INNER)]).await;
    let file = a_file(&app).await;
    let nginx = Nginx::start(NginxSpec {
        listen: "[::1]",
        upstream: authority(&app.base),
        source: Some(INNER),
        ..NginxSpec::default()
    })
    .await;
    let browser = from("::1");
    assert_eq!(
        audited(&app, &browser, &nginx.base, &file, &[]).await,
        "::1"
    );
    assert_eq!(
        audited(&app, &browser, &nginx.base, &file, &SPOOFED).await,
        "::1"
    );
}

/// The real binary on IPv6 loopback, trusting `::1`, with nginx passing to
/// it over IPv6: the trusted peer is an IPv6 address, and the log line of
/// each request names the forwarded client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_trusted_proxy_and_the_log_line() {
    let app = TestApp::sqlite().await;
    let file = a_file(&app).await;
    let server = app
        .spawn_process_on(
            "[::1]",
            &[
                ("TRUSTED_PROXIES", "::1/128"),
                ("RUST_LOG", "info"),
                ("LOG_JSON", "true"),
            ],
        )
        .await;
    let nginx = nginx_to(authority(&server.base), None).await;
    let browser = from(CLIENT);
    assert_eq!(
        audited(&app, &browser, &nginx.base, &file, &SPOOFED).await,
        CLIENT
    );
    let line = crate::common::wait_for(
        std::time::Duration::from_secs(5),
        "the download's log line",
        async || {
            server
                .output()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["fields"]["route"] == "/v1/report-files/{id}/download")
        },
    )
    .await;
    assert_eq!(line["fields"]["client"], CLIENT, "{line}");
}

/// IPv6 proxies of a chain, and `Forwarded`, written by hand from a
/// trusted peer (the test's own client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_hops_and_forwarded_from_a_trusted_peer() {
    let trusted = "127.0.0.1, 2001:db8:1::/48";
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", trusted)]).await;
    let file = a_file(&app).await;
    let direct = from(DIRECT);
    let xff = |v| [("x-forwarded-for", v)];
    for (chain, client) in [
        ("2001:db8::9, [2001:db8:1::2]:443", "2001:db8::9"),
        (
            "203.0.113.5, 2001:db8:ffff::1, 2001:db8:1::2",
            "2001:db8:ffff::1",
        ),
        ("[2001:db8::9]:4711", "2001:db8::9"),
    ] {
        assert_eq!(
            audited(&app, &direct, &app.base, &file, &xff(chain)).await,
            client,
            "{chain}"
        );
    }

    let app = TestApp::sqlite_with(&[
        ("TRUSTED_PROXIES", trusted),
        ("TRUSTED_PROXY_HEADER", "Forwarded"),
    ])
    .await;
    let file = a_file(&app).await;
    let forwarded = [(
        "forwarded",
        "for=\"[2001:db8::9]:4711\";proto=https, for=\"[2001:db8:1::2]\"",
    )];
    assert_eq!(
        audited(&app, &direct, &app.base, &file, &forwarded).await,
        "2001:db8::9"
    );
    // proto=https of the client's hop: the session cookie is Secure.
    let cookie = session_cookie(&direct, &app.base, &file.0, &forwarded).await;
    assert!(is_secure(&cookie), "{cookie}");
    // In this setup X-Forwarded-For is a header like any other.
    assert_eq!(
        audited(&app, &direct, &app.base, &file, &xff("203.0.113.5")).await,
        DIRECT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_forwarding_headers_fall_back_to_the_peer() {
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", DIRECT)]).await;
    let file = a_file(&app).await;
    let direct = from(DIRECT);
    let too_many = format!("203.0.113.5{}", ", 127.0.0.1".repeat(40));
    for garbage in [
        "garbage",
        "203.0.113.5, not-an-address",
        "203.0.113.5:port",
        "[2001:db8::9",
        &"9".repeat(1000),
        &too_many,
    ] {
        assert_eq!(
            audited(
                &app,
                &direct,
                &app.base,
                &file,
                &[("x-forwarded-for", garbage)]
            )
            .await,
            DIRECT,
            "{garbage}"
        );
    }
    let app = TestApp::sqlite_with(&[
        ("TRUSTED_PROXIES", DIRECT),
        ("TRUSTED_PROXY_HEADER", "forwarded"),
    ])
    .await;
    let file = a_file(&app).await;
    for garbage in [
        "for=\"203.0.113.5",
        "for=203.0.113.5;for=203.0.113.6",
        "for=",
        "203.0.113.5",
        "for=host.example",
    ] {
        assert_eq!(
            audited(&app, &direct, &app.base, &file, &[("forwarded", garbage)]).await,
            DIRECT,
            "{garbage}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_at_a_trusted_balancer_makes_cookies_secure() {
    // A development setup (cookies not Secure by configuration) behind a
    // TLS-terminating nginx.
    let app = TestApp::sqlite_with(&[("TRUSTED_PROXIES", INNER)]).await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let tls = Nginx::start(NginxSpec {
        upstream: authority(&app.base),
        source: Some(INNER),
        tls: true,
        ..NginxSpec::default()
    })
    .await;
    let plain = nginx_to(authority(&app.base), Some(INNER)).await;
    let browser = from(CLIENT);
    let cookie = session_cookie(&browser, &tls.base, &token, &[]).await;
    assert!(is_secure(&cookie), "{cookie}");
    assert_eq!(cookie.matches("Secure").count(), 1, "{cookie}");
    let cookie = session_cookie(&browser, &plain.base, &token, &[]).await;
    assert!(!is_secure(&cookie), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_records_name_the_forwarded_client() {
    let clamd = clamd().to_string();
    let app = TestApp::sqlite_with(&[
        ("TRUSTED_PROXIES", INNER),
        ("AV_SCAN", "required"),
        ("CLAMD_ADDR", &clamd),
    ])
    .await;
    let (_, token) = app.analyst("analyst", ALABAMA).await;
    let nginx = nginx_to(authority(&app.base), Some(INNER)).await;
    let part = Part::bytes(text(200_000))
        .file_name("scanned.txt")
        .mime_str("text/plain")
        .unwrap();
    let form = Form::new()
        .text("operations", upload_operations(&upload_input(ALABAMA)))
        .text("map", UPLOAD_MAP)
        .part("0", part);
    let req = from(CLIENT)
        .post(format!("{}/graphql", nginx.base))
        .bearer_auth(&token)
        .header("apollo-require-preflight", "true")
        .multipart(form);
    let res = with_headers(req, &SPOOFED).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(body["data"]["uploadReportFile"]["id"].is_string(), "{body}");

    let (_, admin) = app.admin().await;
    let scans = app
        .gql(
            Some(&admin),
            "{ scanEvents(first: 5) { edges { node { result clientAddress } } } }",
            json!({}),
        )
        .await;
    let node = &scans["data"]["scanEvents"]["edges"][0]["node"];
    assert_eq!(node["result"], "CLEAN", "{scans}");
    assert_eq!(node["clientAddress"], CLIENT, "{scans}");
}
