//! The test OpenID Provider (`tests/oidc-provider/provider.mjs`, the npm
//! package oidc-provider): the shared instance that `scripts/services.sh`
//! (`ensure_oidc_provider`) starts, or a private one for a test that
//! rotates its keys, forges its tokens or stops it. And a browser's way
//! through a sign-in over plain HTTP: the provider's real login and consent
//! forms, its cookies in a jar; the server's cookies handled by hand, since
//! the tests look at each of them.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use serde_json::{Value, json};

use super::{TestApp, fixture, header};

/// Every test user's password at the test provider.
pub const PASSWORD: &str = "test-password";
/// The resource (audience) of the provider's access tokens for API clients.
pub const API_RESOURCE: &str = "urn:reportfiles:api";
const BASIC_SECRET: &str = "reportfiles-basic-test-secret-0123456789";
const API_SECRET: &str = "reportfiles-api-test-secret-0123456789";
/// The registered redirect URI. The test provider takes it on any port;
/// the tests send the browser's way back to their own server's address.
pub const REDIRECT_URL: &str = "http://127.0.0.1/auth/callback";

pub struct OidcProvider {
    pub issuer: String,
    child: Option<Child>,
    http: reqwest::Client,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl OidcProvider {
    /// The shared instance. A missing one fails the test: it never skips.
    pub fn shared() -> Self {
        let issuer = std::env::var("TEST_OIDC_ISSUER").unwrap_or_else(|_| {
            panic!(
                "TEST_OIDC_ISSUER is unset: start the test OpenID Provider with \
                 `. scripts/services.sh && ensure_oidc_provider` (scripts/test does)"
            )
        });
        OidcProvider {
            issuer,
            child: None,
            http: no_redirects(),
        }
    }

    /// A provider of this test's own, on a free port.
    pub async fn private() -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
        assert!(
            std::path::Path::new(dir)
                .join("node_modules/oidc-provider")
                .exists(),
            "{dir}/node_modules is missing: run `. scripts/services.sh && ensure_oidc_provider`"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(dir)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (Node.js >= 20.19) runs the test OpenID Provider");
        let stdout = child.stdout.take().unwrap();
        let issuer = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            // Whatever it prints later must not fill the pipe.
            std::thread::spawn(move || lines.for_each(drop));
            first
        })
        .await
        .unwrap();
        let issuer = issuer
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the test OpenID Provider did not start: {issuer:?}"))
            .to_string();
        OidcProvider {
            issuer,
            child: Some(child),
            http: no_redirects(),
        }
    }

    /// A server's settings for this provider, as the `reportfiles` client
    /// (private_key_jwt), with the provider's access tokens accepted as
    /// bearer tokens beside HS256 development tokens.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("OIDC_ISSUER_URL", self.issuer.as_str()),
            ("OIDC_CLIENT_ID", "reportfiles"),
            (
                "OIDC_CLIENT_PRIVATE_KEY_FILE",
                &fixture("oidc_client_private.pem"),
            ),
            ("OIDC_REDIRECT_URL", REDIRECT_URL),
            ("JWT_ALGORITHMS", "HS256,RS256"),
            ("JWT_AUDIENCE", API_RESOURCE),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same as the `reportfiles-basic` client (client_secret_basic).
    pub fn basic_client_vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<_> = self
            .vars()
            .into_iter()
            .filter(|(k, _)| k != "OIDC_CLIENT_PRIVATE_KEY_FILE" && k != "OIDC_CLIENT_ID")
            .collect();
        vars.push(("OIDC_CLIENT_ID".into(), "reportfiles-basic".into()));
        vars.push(("OIDC_CLIENT_SECRET".into(), BASIC_SECRET.into()));
        vars
    }

    async fn admin(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.issuer);
        let req = match body {
            Some(body) => self.http.post(url).json(&body),
            None if path.starts_with("/admin/keys") => self.http.get(url),
            None => self.http.post(url),
        };
        let res = req.send().await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// A new signing key (the kid it gets): it signs from now on. `keep`:
    /// the previous keys stay published.
    pub async fn rotate(&self, keep: bool) -> String {
        let path = if keep {
            "/admin/rotate"
        } else {
            "/admin/rotate?keep=0"
        };
        self.admin(path, None).await["kid"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The kids published now.
    pub async fn kids(&self) -> Vec<String> {
        serde_json::from_value(self.admin("/admin/keys", None).await["kids"].clone()).unwrap()
    }

    /// The next ID token gets `claims` (and, `expired`, an `exp` and `iat`
    /// in the past), re-signed with the provider's key.
    pub async fn tamper(&self, claims: Value, expired: bool) {
        self.admin(
            "/admin/tamper",
            Some(json!({ "claims": claims, "expired": expired })),
        )
        .await;
    }

    /// An access token (a JWT for [`API_RESOURCE`]) for the API client
    /// `reportfiles-api`, by client credentials: what an API client sends.
    pub async fn api_token(&self) -> String {
        let res = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth("reportfiles-api", Some(API_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", API_RESOURCE),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {body}"))
            .to_string()
    }

    /// Stops a private provider, as an outage would.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("a private provider");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A browser: the provider's cookies in a jar; never follows redirects.
pub struct Browser {
    provider: reqwest::Client,
    server: reqwest::Client,
}

/// Where `/auth/login` sent the browser.
pub struct Started {
    pub authorize_url: String,
    /// `name=value` of the flow cookie.
    pub flow_cookie: String,
}

/// The `name=value` of the cookie `name` that `res` sets, if it does.
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// Every `Set-Cookie` of `res`.
pub fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

pub fn location(res: &reqwest::Response) -> String {
    header(res, "location")
        .unwrap_or_else(|| panic!("{} without Location", res.status()))
        .to_string()
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            provider: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            server: no_redirects(),
        }
    }
}

impl Browser {
    /// `GET /auth/login?query` on `base`.
    pub async fn login(&self, base: &str, query: &str) -> reqwest::Response {
        self.server
            .get(format!("{base}/auth/login?{query}"))
            .send()
            .await
            .unwrap()
    }

    /// `/auth/login`, expected to send the browser to the provider.
    pub async fn start(&self, base: &str, query: &str) -> Started {
        let res = self.login(base, query).await;
        assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
        Started {
            authorize_url: location(&res),
            flow_cookie: set_cookie(&res, "reportfiles_session_flow").expect("a flow cookie"),
        }
    }

    /// Through the provider's pages as `user` (login, then consent, when
    /// the provider asks): the query of the redirect back to the server.
    pub async fn at_provider(&self, authorize_url: &str, user: &str) -> String {
        let mut url = authorize_url.to_string();
        for _ in 0..10 {
            if let Some(query) = url.strip_prefix(&format!("{REDIRECT_URL}?")) {
                return query.to_string();
            }
            let res = self.provider.get(&url).send().await.unwrap();
            let status = res.status().as_u16();
            if status == 303 || status == 302 {
                url = absolute(&url, &location(&res));
                continue;
            }
            let page = res.text().await.unwrap();
            assert_eq!(status, 200, "{url}: {page}");
            let action = if page.contains("name=\"password\"") {
                format!("{url}/login")
            } else if page.contains("/confirm\"") {
                format!("{url}/confirm")
            } else {
                panic!("an unexpected page at {url}: {page}")
            };
            let form: &[(&str, &str)] = &[("login", user), ("password", PASSWORD)];
            let res = self.provider.post(&action).form(form).send().await.unwrap();
            assert_eq!(
                res.status().as_u16(),
                303,
                "{action}: {}",
                res.text().await.unwrap()
            );
            url = absolute(&url, &location(&res));
        }
        panic!("no way back from the provider after 10 steps (last: {url})")
    }

    /// The first page the provider shows this browser for `url` (it must
    /// show one rather than send the browser straight back).
    pub async fn provider_page(&self, url: &str) -> String {
        let mut url = url.to_string();
        for _ in 0..10 {
            assert!(
                !url.starts_with(REDIRECT_URL),
                "the provider sent the browser straight back"
            );
            let res = self.provider.get(&url).send().await.unwrap();
            if res.status().is_redirection() {
                url = absolute(&url, &location(&res));
                continue;
            }
            return res.text().await.unwrap();
        }
        panic!("redirected in circles from {url}")
    }

    /// The provider's sign-out page at `url` (where `/auth/logout` sent the
    /// browser), confirmed: where the provider sends the browser back.
    pub async fn sign_out_at_provider(&self, url: &str) -> String {
        let res = self.provider.get(url).send().await.unwrap();
        let page = res.text().await.unwrap();
        let form = page
            .split("<form")
            .nth(1)
            .unwrap_or_else(|| panic!("no sign-out form: {page}"));
        let action = attribute(form, "action");
        let xsrf = form
            .split("name=\"xsrf\"")
            .nth(1)
            .map(|rest| attribute(rest, "value"))
            .expect("the form's xsrf field");
        let res = self
            .provider
            .post(absolute(url, &action))
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
        location(&res)
    }

    /// `GET /auth/callback?query` on `base`, with `cookie` (`name=value`).
    pub async fn callback(
        &self,
        base: &str,
        query: &str,
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.server.get(format!("{base}/auth/callback?{query}"));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.send().await.unwrap()
    }

    /// A whole sign-in as `user` on `base`, expected to succeed: the
    /// callback's answer.
    pub async fn sign_in(&self, base: &str, user: &str, query: &str) -> reqwest::Response {
        let started = self.start(base, query).await;
        let back = self.at_provider(&started.authorize_url, user).await;
        self.callback(base, &back, Some(&started.flow_cookie)).await
    }

    /// [`Browser::sign_in`], and the `name=value` of the session cookie.
    pub async fn session(&self, base: &str, user: &str) -> String {
        let res = self.sign_in(base, user, "").await;
        assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
        set_cookie(&res, "reportfiles_session").expect("a session cookie")
    }
}

/// The value of the first `name="..."` attribute in `html`.
fn attribute(html: &str, name: &str) -> String {
    let start = html
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + name.len()
        + 2;
    let len = html[start..].find('"').unwrap();
    html[start..start + len].replace("&amp;", "&")
}

fn absolute(base: &str, location: &str) -> String {
    reqwest::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

impl TestApp {
    /// A server of this kind signing in through `provider`, with `vars` on
    /// top.
    pub async fn with_provider(provider: &OidcProvider, vars: &[(&str, &str)]) -> TestApp {
        let mut all: Vec<(String, String)> = provider.vars();
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        TestApp::sqlite_with(&all).await
    }

    /// The `name=value` session cookie that `login(token)` sets.
    pub async fn session_cookie(&self, token: &str) -> String {
        let res = self
            .post("/graphql")
            .json(&json!({ "query": "mutation($t: String!) { login(token: $t) { id } }", "variables": { "t": token } }))
            .send()
            .await
            .unwrap();
        set_cookie(&res, "reportfiles_session").expect("login sets the session cookie")
    }

    /// `{ me { subject email name status } }` with a session cookie.
    pub async fn me_with_cookie(&self, cookie: &str) -> Value {
        let body: Value = self
            .post("/graphql")
            .header("cookie", cookie)
            .json(&json!({ "query": "{ me { subject email name status } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"]["me"].clone()
    }
}
