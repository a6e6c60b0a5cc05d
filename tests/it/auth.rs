//! Tokens: which are accepted, which are refused, and the session cookie.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::{TestApp, db_tests, error_codes, fixture, header, now_secs};

const ME: &str = "{ me { subject status } }";

fn claims(app: &TestApp) -> Value {
    json!({
        "sub": "someone",
        "iss": app.jwt_issuer(),
        "aud": app.jwt_audience(),
        "exp": now_secs() + 600,
    })
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn rs256(claims: &Value, kid: Option<&str>) -> String {
    let key =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key).unwrap()
}

fn es256(claims: &Value, kid: Option<&str>) -> String {
    let key = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec_private.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &key).unwrap()
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let body = app.gql(Some(token), ME, json!({})).await;
    assert_eq!(error_codes(&body), vec!["UNAUTHENTICATED"], "{why}: {body}");
    assert_eq!(body["data"]["me"], Value::Null, "{why}");
}

async fn a_valid_token_makes_a_new_subject_a_pending_user(app: TestApp) {
    let token = app.token("first-timer");
    for _ in 0..2 {
        let body = app.gql(Some(&token), ME, json!({})).await;
        assert_eq!(
            body["data"]["me"],
            json!({ "subject": "first-timer", "status": "PENDING" })
        );
    }
    let (_, admin) = app.admin().await;
    let users = app
        .gql(
            Some(&admin),
            "{ users(status: PENDING) { subject email } }",
            json!({}),
        )
        .await;
    assert_eq!(
        users["data"]["users"],
        json!([{ "subject": "first-timer", "email": "first-timer@example.gov" }])
    );
}

async fn bad_tokens_are_refused(app: TestApp) {
    let secret = app.hs256_secret();
    let good = claims(&app);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let now = now_secs();
    let cases: Vec<(String, &str)> = vec![
        (hs256(&with("exp", json!(now - 120)), &secret), "expired"),
        (
            hs256(&with("nbf", json!(now + 600)), &secret),
            "not yet valid",
        ),
        (
            hs256(&good, b"another-secret-another-secret-another"),
            "wrong signature",
        ),
        (
            hs256(&with("aud", json!("someone-else")), &secret),
            "wrong audience",
        ),
        (
            hs256(&with("iss", json!("https://evil.example")), &secret),
            "wrong issuer",
        ),
        (hs256(&without("exp"), &secret), "no exp"),
        (hs256(&without("aud"), &secret), "no aud"),
        (hs256(&with("sub", json!("")), &secret), "empty subject"),
        (rs256(&good, None), "RS256 when only HS256 is configured"),
        ("garbage".into(), "garbage"),
        ("a.b.c".into(), "three garbage parts"),
        (String::new(), "empty"),
    ];
    for (token, why) in &cases {
        assert_refused(&app, token, why).await;
    }
    // alg: none, with and without a signature part.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    assert_refused(&app, &format!("{header}.{payload}."), "alg none").await;
    assert_refused(&app, &format!("{header}.{payload}"), "alg none, two parts").await;
    // A valid token whose signature was cut off.
    let valid = hs256(&good, &secret);
    let cut = &valid[..valid.rfind('.').unwrap() + 1];
    assert_refused(&app, cut, "signature removed").await;
    // The same valid token is accepted: the refusals above are the claims'.
    let ok = app.gql(Some(&valid), ME, json!({})).await;
    assert_eq!(ok["data"]["me"]["subject"], "someone");
}

async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused(app: TestApp) {
    // The classic key-confusion attack: the attacker knows the public key.
    let public_pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let forged = hs256(&claims(&app), &public_pem);
    assert_refused(&app, &forged, "HS256 with the RSA public key as secret").await;
    // RS256 with the real private key is accepted by this configuration.
    let ok = app
        .gql(Some(&rs256(&claims(&app), None)), ME, json!({}))
        .await;
    assert_eq!(ok["data"]["me"]["subject"], "someone", "{ok}");
}

async fn jwks_keys_verify_rs256_and_es256_by_kid(app: TestApp) {
    let c = claims(&app);
    for token in [
        rs256(&c, Some("test-rsa")),
        es256(&c, Some("test-ec")),
        es256(&c, None),
    ] {
        let ok = app.gql(Some(&token), ME, json!({})).await;
        assert_eq!(ok["data"]["me"]["subject"], "someone", "{ok}");
    }
    assert_refused(&app, &rs256(&c, Some("test-ec")), "kid of another key").await;
    assert_refused(
        &app,
        &hs256(&c, b"0123456789abcdef0123456789abcdef"),
        "HS256 is not configured",
    )
    .await;
}

async fn login_sets_an_http_only_cookie_that_authenticates(app: TestApp) {
    let token = app.token("cookie-user");
    let res = app
        .post("/graphql")
        .json(&json!({ "query": "mutation($t: String!) { login(token: $t) { subject lastLoginAt } }", "variables": { "t": token } }))
        .send()
        .await
        .unwrap();
    let cookie = header(&res, "set-cookie").unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["login"]["subject"], "cookie-user");
    assert!(body["data"]["login"]["lastLoginAt"].is_string());
    // The cookie holds a session of the server's own, not the token, and
    // ends when the token does (it has an hour left).
    let value = cookie
        .strip_prefix("reportfiles_session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{cookie}"));
    assert_ne!(value, token);
    let session: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(value.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(session["iss"], "reportfiles-session");
    assert_eq!(session["sub"], "cookie-user");
    let max_age: u64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&max_age), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "development cookies work over plain HTTP"
    );

    let pair = cookie.split(';').next().unwrap();
    let me: Value = app
        .post("/graphql")
        .header("cookie", pair)
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["me"]["subject"], "cookie-user");
}

async fn login_with_a_bad_token_sets_no_cookie(app: TestApp) {
    let res = app
        .post("/graphql")
        .json(&json!({ "query": "mutation { login(token: \"nope\") { subject } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "set-cookie"), None);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_codes(&body), vec!["UNAUTHENTICATED"]);
}

async fn logout(app: &TestApp) -> reqwest::Response {
    app.post("/graphql")
        .json(&json!({ "query": "mutation { logout }" }))
        .send()
        .await
        .unwrap()
}

async fn logout_clears_the_cookie(app: TestApp) {
    let res = logout(&app).await;
    let cookie = header(&res, "set-cookie").unwrap().to_string();
    assert!(cookie.starts_with("reportfiles_session=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["logout"], true);
}

async fn cross_site_form_posts_cannot_use_the_cookie(app: TestApp) {
    let (target, _) = app.pending("victim-target").await;
    let (_, admin) = app.admin().await;
    let session = app.session_cookie(&admin).await;
    let mutation = format!(
        "mutation {{ setUserAccess(userId: \"{}\", role: SYSTEM_ADMIN, status: APPROVED) {{ id }} }}",
        target.id
    );
    let json_body = json!({ "query": mutation }).to_string();
    // Form encodings are refused (415); multipart, which uploads use, needs a
    // header no form can set (400).
    for (content_type, status) in [
        ("application/x-www-form-urlencoded", 415),
        ("text/plain", 415),
        ("multipart/form-data; boundary=x", 400),
    ] {
        let res = app
            .post("/graphql")
            .header("cookie", &session)
            .header("content-type", content_type)
            .header("origin", "https://evil.example")
            .body(json_body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{content_type}");
    }
    let users = app
        .gql(
            Some(&admin),
            "{ users(status: PENDING) { subject } }",
            json!({}),
        )
        .await;
    assert_eq!(
        users["data"]["users"],
        json!([{ "subject": "victim-target" }]),
        "nothing changed"
    );
}

async fn a_token_in_the_cookie_is_no_session_and_a_session_is_no_bearer_token(app: TestApp) {
    let token = app.token("someone");
    let me = app
        .me_with_cookie(&format!("reportfiles_session={token}"))
        .await;
    assert_eq!(me, Value::Null, "a bearer token is not a session");
    let session = app.session_cookie(&token).await;
    assert_eq!(app.me_with_cookie(&session).await["subject"], "someone");
    let value = session.split_once('=').unwrap().1;
    assert_refused(&app, value, "a session token as a bearer token").await;
}

mod sqlite_only {
    use super::*;

    #[tokio::test]
    async fn production_cookies_are_secure() {
        let app = TestApp::sqlite_with(&[
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "HS256"),
            ("AV_SCAN", "off"),
        ])
        .await;
        let res = logout(&app).await;
        assert!(header(&res, "set-cookie").unwrap().contains("; Secure"));
    }

    /// A server that verifies `algorithms`, with `var` naming the fixture `file`.
    async fn verifying(algorithms: &str, var: &str, file: &str) -> TestApp {
        let path = fixture(file);
        TestApp::sqlite_with(&[("JWT_ALGORITHMS", algorithms), (var, &path)]).await
    }

    #[tokio::test]
    async fn key_confusion_is_refused_with_rs256_and_hs256_both_on() {
        let app = verifying("HS256,RS256", "JWT_PUBLIC_KEY_FILE", "rsa_public.pem").await;
        an_hs256_token_signed_with_the_rsa_public_key_is_refused(app).await;
    }

    #[tokio::test]
    async fn key_confusion_is_refused_with_rs256_only() {
        let app = verifying("RS256", "JWT_PUBLIC_KEY_FILE", "rsa_public.pem").await;
        an_hs256_token_signed_with_the_rsa_public_key_is_refused(app).await;
    }

    #[tokio::test]
    async fn jwks_file_verifies_tokens() {
        let app = verifying("RS256,ES256", "JWT_JWKS_FILE", "jwks.json").await;
        jwks_keys_verify_rs256_and_es256_by_kid(app).await;
    }
}

db_tests!(
    a_valid_token_makes_a_new_subject_a_pending_user,
    bad_tokens_are_refused,
    login_sets_an_http_only_cookie_that_authenticates,
    login_with_a_bad_token_sets_no_cookie,
    logout_clears_the_cookie,
    cross_site_form_posts_cannot_use_the_cookie,
    a_token_in_the_cookie_is_no_session_and_a_session_is_no_bearer_token,
);

/// A refused token is answered with why (RFC 6750), never with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_says_why() {
    let app = TestApp::sqlite().await;
    let (_, token) = app.analyst("analyst", crate::common::ALABAMA).await;
    let file = app
        .upload_file(
            &token,
            crate::common::ALABAMA,
            "a.txt",
            crate::common::text(10),
        )
        .await;
    let mut expired = claims(&app);
    expired["exp"] = json!(now_secs() - 3600);
    let expired = hs256(&expired, &app.hs256_secret());
    for (authorization, reason) in [
        (format!("Bearer {expired}"), "the token has expired"),
        ("Bearer not.a.jwt".to_string(), "the token is not a JWT"),
        (
            format!("Basic {expired}"),
            "the Authorization header must be `Bearer <token>`",
        ),
    ] {
        let res = app
            .get(&file.url)
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            challenge,
            format!("Bearer error=\"invalid_token\", error_description=\"{reason}\""),
        );
        let res = app
            .post("/graphql")
            .header("authorization", &authorization)
            .json(&json!({ "query": "{ me { subject } }" }))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(body["errors"][0]["extensions"]["reason"], reason);
        assert!(!body.to_string().contains(&expired), "the token was echoed");
    }
    // No credentials at all: a plain challenge.
    let res = app.get(&file.url).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

/// A user who is not allowed hears why, and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_says_why() {
    let app = TestApp::sqlite().await;
    let (_, pending) = app.pending("pending").await;
    let body = app
        .gql(
            Some(&pending),
            "{ reportFiles(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("waiting for approval"), "{message}");
    let (_, analyst) = app.analyst("analyst", crate::common::ALABAMA).await;
    let (_, body) = app
        .upload(
            Some(&analyst),
            crate::common::upload_input(crate::common::ALASKA),
            "a.txt",
            crate::common::text(10),
        )
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("your own STT"), "{message}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}
