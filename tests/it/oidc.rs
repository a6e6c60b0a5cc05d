//! Signing in through a real OpenID Provider (oidc-provider, a certified
//! implementation, on loopback): the authorization code flow with PKCE,
//! `state` and `nonce`, the server authenticating with private_key_jwt or a
//! client secret, the session cookie, signing out; every refusal; key
//! rotation at the provider; the provider down.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::common::{
    Browser, Db, OidcProvider, TestApp, header, location, set_cookie, set_cookies, wait_for,
    wait_until,
};

const REDIRECT_URL: &str = "http://127.0.0.1/auth/callback";

async fn app_on(db: Db, provider: &OidcProvider, vars: &[(&str, &str)]) -> TestApp {
    let mut all = provider.vars();
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::new(db, None, &all).await
}

/// A refused sign-in: an HTML page with `status` that says `says`, and no
/// cookie set.
async fn refused(res: reqwest::Response, status: u16, says: &str) {
    assert_eq!(res.status().as_u16(), status, "{says}");
    assert_eq!(set_cookies(&res), Vec::<String>::new(), "{says}: no cookie");
    assert!(
        header(&res, "content-type")
            .unwrap()
            .starts_with("text/html"),
        "{says}"
    );
    let page = res.text().await.unwrap();
    assert!(page.contains(says), "{says:?} in {page}");
}

/// The claims of a JWT, unverified.
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

/// `query` with `name` set to `value` (or removed, with `None`).
fn with_param(query: &str, name: &str, value: Option<&str>) -> String {
    let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
    let mut out = reqwest::Url::parse("http://x/").unwrap();
    {
        let mut pairs = out.query_pairs_mut();
        for (k, v) in url.query_pairs().filter(|(k, _)| k != name) {
            pairs.append_pair(&k, &v);
        }
        if let Some(value) = value {
            pairs.append_pair(name, value);
        }
    }
    out.query().unwrap().to_string()
}

async fn me_with_bearer(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), "{ me { subject status } }", json!({}))
        .await["data"]["me"]
        .clone()
}

async fn signing_in_makes_a_pending_user_and_a_session_of_the_servers_own(db: Db) {
    let provider = OidcProvider::shared();
    let app = app_on(db, &provider, &[]).await;
    let browser = Browser::default();
    let began = Instant::now();
    let started = browser
        .start(&app.base, "returnTo=%2Freports%3Fyear%3D2026")
        .await;

    let url = reqwest::Url::parse(&started.authorize_url).unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/auth?", provider.issuer)),
        "{url}"
    );
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "reportfiles");
    assert_eq!(q["redirect_uri"], REDIRECT_URL);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "a SHA-256, base64url");
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22, "{q:?}");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for scope in ["openid", "email", "profile"] {
        assert!(scopes.contains(&scope), "{scopes:?}");
    }
    // The flow cookie keeps state, nonce and verifier from the browser.
    assert!(!started.flow_cookie.contains(&q["state"]));
    assert!(!started.flow_cookie.contains(&q["nonce"]));

    let back = browser.at_provider(&started.authorize_url, "ana").await;
    let res = browser
        .callback(&app.base, &back, Some(&started.flow_cookie))
        .await;
    let round_trip = began.elapsed();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(location(&res), "/reports?year=2026");
    let cookies = set_cookies(&res);
    let session_header = cookies
        .iter()
        .find(|c| c.starts_with("reportfiles_session="))
        .expect("the session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"] {
        assert!(session_header.contains(attr), "{attr}: {session_header}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("reportfiles_session_flow=;") && c.contains("Max-Age=0")),
        "the flow is over: {cookies:?}"
    );
    let session = set_cookie(&res, "reportfiles_session").unwrap();
    // The server's own token: none of the provider's is kept or shown.
    let claims = payload(session.split_once('=').unwrap().1);
    assert_eq!(claims["iss"], "reportfiles-session");
    assert_eq!(claims["idp"], "default");
    assert!(claims.get("nonce").is_none(), "{claims}");

    // Email and name come from userinfo (the ID token has only `sub`).
    assert_eq!(
        app.me_with_cookie(&session).await,
        json!({ "subject": "ana", "email": "ana@example.gov", "name": "Ana", "status": "PENDING" })
    );
    eprintln!("sign-in round trip (login, provider login + consent, callback): {round_trip:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_makes_a_pending_user_and_a_session_sqlite() {
    signing_in_makes_a_pending_user_and_a_session_of_the_servers_own(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_makes_a_pending_user_and_a_session_postgres() {
    signing_in_makes_a_pending_user_and_a_session_of_the_servers_own(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_client_signs_in_too() {
    let provider = OidcProvider::shared();
    let vars = provider.basic_client_vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::sqlite_with(&vars).await;
    let session = Browser::default().session(&app.base, "basil").await;
    assert_eq!(app.me_with_cookie(&session).await["subject"], "basil");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_begun_on_one_instance_finishes_on_another() {
    let provider = OidcProvider::shared();
    let a = TestApp::with_provider(&provider, &[]).await;
    let b = a.sibling().await;
    let browser = Browser::default();
    let started = browser.start(&a.base, "").await;
    let back = browser.at_provider(&started.authorize_url, "ana").await;
    let res = browser
        .callback(&b.base, &back, Some(&started.flow_cookie))
        .await;
    assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
    let session = set_cookie(&res, "reportfiles_session").unwrap();
    assert_eq!(a.me_with_cookie(&session).await["subject"], "ana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_answers_set_no_cookie() {
    let provider = OidcProvider::shared();
    let app = TestApp::with_provider(&provider, &[]).await;
    let browser = Browser::default();

    // returnTo on another origin: refused before the provider is asked.
    for bad in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let query = with_param("", "returnTo", Some(bad));
        refused(browser.login(&app.base, &query).await, 400, "returnTo").await;
    }

    let started = browser.start(&app.base, "").await;
    let flow = started.flow_cookie.as_str();
    let back = browser.at_provider(&started.authorize_url, "ana").await;
    let cases = [
        (
            with_param(&back, "state", Some("forged-state")),
            Some(flow),
            400,
            "state does not match",
        ),
        (
            with_param(&back, "state", None),
            Some(flow),
            400,
            "state does not match",
        ),
        (back.clone(), None, 400, "sign-in cookie is missing"),
        (
            back.clone(),
            Some("reportfiles_session_flow=forged"),
            400,
            "not one this server made",
        ),
        (
            with_param(&back, "iss", Some("https://evil.example")),
            Some(flow),
            400,
            "another sign-in service",
        ),
        (
            with_param(&back, "code", None),
            Some(flow),
            400,
            "no authorization code",
        ),
    ];
    for (query, cookie, status, says) in cases {
        refused(
            browser.callback(&app.base, &query, cookie).await,
            status,
            says,
        )
        .await;
    }
    // None of those reached the provider: the answer still works, once.
    let ok = browser.callback(&app.base, &back, Some(flow)).await;
    assert_eq!(ok.status().as_u16(), 303);
    let replayed = browser.callback(&app.base, &back, Some(flow)).await;
    refused(replayed, 400, "used already").await;

    // The provider's answer when the user says no.
    let started = Browser::default().start(&app.base, "").await;
    let denied = with_param(
        &format!("state={}", {
            let url = reqwest::Url::parse(&started.authorize_url).unwrap();
            url.query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned()
        }),
        "error",
        Some("access_denied"),
    );
    refused(
        browser
            .callback(&app.base, &denied, Some(&started.flow_cookie))
            .await,
        403,
        "cancelled",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_that_fail_validation_are_refused() {
    let provider = OidcProvider::private().await;
    let app = TestApp::with_provider(&provider, &[]).await;
    for (claims, expired, says) in [
        (json!({ "nonce": "not-this-sign-ins" }), false, "nonce"),
        (
            json!({ "iss": "https://evil.example" }),
            false,
            "another issuer (iss)",
        ),
        (
            json!({ "aud": "another-client" }),
            false,
            "another client (aud)",
        ),
        (
            json!({ "aud": ["reportfiles", "another-client"] }),
            false,
            "another client (aud)",
        ),
        (json!({}), true, "expired"),
    ] {
        let browser = Browser::default();
        let started = browser.start(&app.base, "").await;
        let back = browser.at_provider(&started.authorize_url, "ana").await;
        provider.tamper(claims.clone(), expired).await;
        let res = browser
            .callback(&app.base, &back, Some(&started.flow_cookie))
            .await;
        refused(res, 502, says).await;
    }
    // The same provider, untampered: signs in.
    let session = Browser::default().session(&app.base, "ana").await;
    assert_eq!(app.me_with_cookie(&session).await["subject"], "ana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signing_key_is_fetched_when_a_token_names_it() {
    let provider = OidcProvider::private().await;
    // A TTL longer than the test: only an unknown kid (or a sign-in's look
    // at the provider) makes the server fetch the keys again.
    let app = TestApp::with_provider(&provider, &[("JWKS_CACHE_TTL_SECS", "3600")]).await;
    let first = provider.api_token().await;
    assert_eq!(
        me_with_bearer(&app, &first).await,
        json!({ "subject": "reportfiles-api", "status": "PENDING" })
    );

    let k2 = provider.rotate(true).await;
    let second = provider.api_token().await;
    assert_eq!(kid(&second), k2);
    let took = Instant::now();
    assert_eq!(
        me_with_bearer(&app, &second).await["subject"],
        "reportfiles-api"
    );
    eprintln!(
        "first request with a new kid (keys fetched again): {:?}",
        took.elapsed()
    );
    assert_eq!(
        me_with_bearer(&app, &first).await["subject"],
        "reportfiles-api",
        "the old key is still published"
    );

    // Another new key at once: no second fetch within 30 s for an unknown kid.
    let k3 = provider.rotate(true).await;
    let third = provider.api_token().await;
    assert_eq!(kid(&third), k3);
    assert_eq!(me_with_bearer(&app, &third).await, Value::Null);

    // An ID token with that key fetches the keys at once (it came from the
    // provider's token endpoint, no client made up its kid): the sign-in
    // goes through, and API tokens with the new key verify from then on.
    let session = Browser::default().session(&app.base, "ana").await;
    assert_eq!(app.me_with_cookie(&session).await["subject"], "ana");
    assert_eq!(
        me_with_bearer(&app, &third).await["subject"],
        "reportfiles-api"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_dropped_is_refused_after_the_ttl() {
    let provider = OidcProvider::private().await;
    let app = TestApp::with_provider(&provider, &[("JWKS_CACHE_TTL_SECS", "1")]).await;
    let old = provider.api_token().await;
    assert_eq!(
        me_with_bearer(&app, &old).await["subject"],
        "reportfiles-api"
    );

    let new_kid = provider.rotate(false).await;
    assert_eq!(provider.kids().await, vec![new_kid.clone()]);
    let dropped = Instant::now();
    wait_until(
        Duration::from_secs(5),
        "the dropped key's token is refused",
        async || me_with_bearer(&app, &old).await.is_null(),
    )
    .await;
    eprintln!(
        "a dropped key refused after {:?} (JWKS_CACHE_TTL_SECS=1)",
        dropped.elapsed()
    );

    let new = provider.api_token().await;
    assert_eq!(kid(&new), new_kid);
    assert_eq!(
        me_with_bearer(&app, &new).await["subject"],
        "reportfiles-api"
    );
    let session = Browser::default().session(&app.base, "ana").await;
    assert_eq!(app.me_with_cookie(&session).await["subject"], "ana");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_provider_down_sign_in_answers_503_and_sessions_go_on() {
    let mut provider = OidcProvider::private().await;
    let app = TestApp::with_provider(&provider, &[("JWKS_CACHE_TTL_SECS", "1")]).await;
    let session = Browser::default().session(&app.base, "ana").await;
    let token = provider.api_token().await;
    provider.stop();

    let browser = Browser::default();
    let answer = wait_for(
        Duration::from_secs(5),
        "/auth/login answers 503",
        async || {
            let began = Instant::now();
            let res = browser.login(&app.base, "").await;
            (res.status().as_u16() == 503).then(|| (res, began.elapsed()))
        },
    )
    .await;
    let (res, took) = answer;
    eprintln!("/auth/login with the provider down: 503 in {took:?}");
    refused(res, 503, "not answering").await;

    // Refreshes fail for a while; the last good keys stay.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.me_with_cookie(&session).await["subject"], "ana");
    assert_eq!(
        me_with_bearer(&app, &token).await["subject"],
        "reportfiles-api"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_while_its_provider_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let began = Instant::now();
    let app = TestApp::sqlite_with(&[
        ("OIDC_ISSUER_URL", &issuer),
        ("OIDC_CLIENT_ID", "reportfiles"),
        ("OIDC_CLIENT_SECRET", "s"),
        ("OIDC_REDIRECT_URL", REDIRECT_URL),
    ])
    .await;
    eprintln!("started with the provider down in {:?}", began.elapsed());
    let res = Browser::default().login(&app.base, "").await;
    refused(res, 503, "not answering").await;
    let token = app.token("dev");
    assert_eq!(me_with_bearer(&app, &token).await["subject"], "dev");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_here_and_at_the_provider() {
    let provider = OidcProvider::shared();
    let app = TestApp::with_provider(&provider, &[]).await;
    let browser = Browser::default();
    let session = browser.session(&app.base, "ana").await;
    let logout = |site: &'static str| {
        app.client
            .post(app.url("/auth/logout?returnTo=%2Fbye"))
            .header("cookie", &session)
            .header("sec-fetch-site", site)
    };
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Another site's page cannot sign anyone out.
    let res = no_redirects
        .execute(logout("cross-site").build().unwrap())
        .await
        .unwrap();
    refused(res, 403, "from the portal").await;

    let res = no_redirects
        .execute(logout("same-origin").build().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let to = reqwest::Url::parse(&location(&res)).unwrap();
    assert!(
        to.as_str()
            .starts_with(&format!("{}/session/end?", provider.issuer)),
        "{to}"
    );
    let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "reportfiles");
    assert_eq!(
        q["post_logout_redirect_uri"],
        "http://127.0.0.1/auth/signed-out"
    );
    let cookies = set_cookies(&res);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("reportfiles_session=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    let flow = set_cookie(&res, "reportfiles_session_flow").expect("where to return, kept");

    let back = browser.sign_out_at_provider(to.as_str()).await;
    assert_eq!(back, "http://127.0.0.1/auth/signed-out");
    let res = no_redirects
        .get(app.url("/auth/signed-out"))
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(location(&res), "/bye");
    // Without the cookie (another browser): a plain page.
    let plain = no_redirects
        .get(app.url("/auth/signed-out"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 200);

    // The provider's session is over too: the next sign-in in this
    // browser asks for the password again.
    let started = browser.start(&app.base, "").await;
    let page = browser.provider_page(&started.authorize_url).await;
    assert!(page.contains("name=\"password\""), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_chosen_by_name() {
    let provider = OidcProvider::shared();
    let key = crate::common::fixture("oidc_client_private.pem");
    let app = TestApp::sqlite_with(&[
        ("OIDC_PROVIDERS", "staff,public"),
        ("OIDC_STAFF_ISSUER_URL", &provider.issuer),
        ("OIDC_STAFF_CLIENT_ID", "reportfiles-basic"),
        (
            "OIDC_STAFF_CLIENT_SECRET",
            "reportfiles-basic-test-secret-0123456789",
        ),
        ("OIDC_STAFF_REDIRECT_URL", REDIRECT_URL),
        ("OIDC_PUBLIC_ISSUER_URL", &provider.issuer),
        ("OIDC_PUBLIC_CLIENT_ID", "reportfiles"),
        ("OIDC_PUBLIC_CLIENT_PRIVATE_KEY_FILE", &key),
        ("OIDC_PUBLIC_REDIRECT_URL", REDIRECT_URL),
    ])
    .await;
    let browser = Browser::default();
    let client_of = |url: &str| {
        reqwest::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "client_id")
            .unwrap()
            .1
            .into_owned()
    };
    let first = browser.start(&app.base, "").await;
    assert_eq!(
        client_of(&first.authorize_url),
        "reportfiles-basic",
        "the first listed"
    );
    let public = browser.start(&app.base, "provider=public").await;
    assert_eq!(client_of(&public.authorize_url), "reportfiles");
    let back = browser.at_provider(&public.authorize_url, "pat").await;
    let res = browser
        .callback(&app.base, &back, Some(&public.flow_cookie))
        .await;
    let session = set_cookie(&res, "reportfiles_session").expect("signed in through `public`");
    assert_eq!(payload(session.split_once('=').unwrap().1)["idp"], "public");
    refused(
        browser.login(&app.base, "provider=nope").await,
        404,
        "does not have",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_there_is_no_sign_in_page() {
    let app = TestApp::sqlite().await;
    refused(
        Browser::default().login(&app.base, "").await,
        404,
        "OIDC_ISSUER_URL",
    )
    .await;
}
