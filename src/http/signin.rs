//! Signing in and out through an OpenID provider, for browsers:
//!
//! - `GET /auth/login[?provider=NAME][&returnTo=PATH]`: to the provider,
//!   with the flow in an encrypted cookie.
//! - `GET /auth/callback`: back from the provider; checks `state`,
//!   exchanges the code, validates the ID token, sets the session cookie
//!   and returns to `returnTo`.
//! - `POST /auth/logout[?returnTo=PATH]` (or `returnTo` in a form body):
//!   clears the session cookie, then ends the session at the provider when
//!   it has an end-session endpoint, which sends the browser back to
//!   `GET /auth/signed-out`, and that to `returnTo`.
//!
//! These are navigations, not API calls: errors are small HTML pages with
//! the right status, that say what went wrong and what to do. A refused
//! sign-in sets no cookie.

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    app::AppState,
    auth::{
        self, Claims,
        oidc::{self, Flow, NoFlow, SignInError, flow, return_to},
    },
    error::AppError,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/signed-out", get(signed_out))
}

#[derive(Deserialize)]
struct LoginQuery {
    provider: Option<String>,
    #[serde(rename = "returnTo")]
    return_to: Option<String>,
}

async fn login(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if app.oidc.is_empty() {
        return page(
            StatusCode::NOT_FOUND,
            "Sign-in is not set up",
            "This server has no sign-in provider configured (OIDC_ISSUER_URL).",
        );
    }
    let Some(provider) = app.oidc.get(q.provider.as_deref()) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown sign-in provider",
            "The link names a sign-in provider this server does not have. Use the sign-in link of the portal.",
        );
    };
    let return_to = match return_to::check(q.return_to.as_deref(), &app.config.cors.allowed_origins)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(reason = %e, "sign-in refused: returnTo");
            return page(
                StatusCode::BAD_REQUEST,
                "Cannot sign in",
                &format!("The sign-in link is wrong: {e}."),
            );
        }
    };
    match provider.begin(return_to).await {
        Ok((url, state)) => {
            let cookie = flow::set_cookie(&app.config.sessions, app.sessions.flow_key(), &state);
            redirect(url.as_str(), &[cookie])
        }
        Err(e) => sign_in_failed(provider.name(), &e),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let (provider_name, expected_state, nonce, verifier, return_to) =
        match flow::from_headers(&headers, &app.config.sessions, app.sessions.flow_key()) {
            Ok(Flow::SignIn {
                provider,
                state,
                nonce,
                pkce_verifier,
                return_to,
                ..
            }) => (provider, state, nonce, pkce_verifier, return_to),
            Ok(Flow::SignOut { .. }) => return no_flow(&NoFlow::Missing),
            Err(e) => return no_flow(&e),
        };
    // First of all: is this the answer to this browser's own sign-in?
    // Anything else (a forged link, an old tab) is nobody's business.
    if !q.state.as_deref().is_some_and(|s| same(s, &expected_state)) {
        tracing::info!(reason = "state does not match", "sign-in refused");
        return restart_page(
            StatusCode::BAD_REQUEST,
            "The answer from the sign-in service does not belong to the sign-in this browser started (its state does not match). \
             If you started signing in in another tab, finish there.",
        );
    }
    let Some(provider) = app.oidc.get(Some(&provider_name)) else {
        return restart_page(
            StatusCode::BAD_REQUEST,
            "The sign-in provider of this sign-in is no longer configured.",
        );
    };
    // RFC 9207: an answer says who sent it; it must be this flow's provider.
    if q.iss.as_deref().is_some_and(|iss| iss != provider.issuer()) {
        tracing::info!(
            reason = "iss of the authorization response",
            "sign-in refused"
        );
        return restart_page(
            StatusCode::BAD_REQUEST,
            "The answer came from another sign-in service than the one this sign-in went to.",
        );
    }
    if let Some(error) = q.error {
        tracing::info!(provider = %provider_name, %error, "sign-in ended at the provider");
        let (status, text) = if error == "access_denied" {
            (
                StatusCode::FORBIDDEN,
                "The sign-in was cancelled or access was not allowed at the sign-in service."
                    .to_string(),
            )
        } else {
            (
                StatusCode::BAD_REQUEST,
                format!("The sign-in service ended the sign-in: {}.", plain(&error)),
            )
        };
        return restart_page(status, &text);
    }
    let Some(code) = q.code else {
        return restart_page(
            StatusCode::BAD_REQUEST,
            "The answer from the sign-in service has no authorization code.",
        );
    };
    let identity = match provider.finish(&code, &nonce, &verifier).await {
        Ok(identity) => identity,
        Err(e) => return sign_in_failed(&provider_name, &e),
    };
    let claims = Claims {
        sub: identity.subject,
        iss: provider.issuer().to_string(),
        aud: Vec::new(),
        exp: 0,
        nbf: None,
        email: identity.email,
        name: identity.name,
    };
    let user = match app.gate.sign_in(&claims).await {
        Ok(user) => user,
        Err(e) => return app_error_page(e),
    };
    tracing::info!(provider = %provider_name, user_id = user.id, "signed in");
    let (session, max_age) = app.sessions.issue(&claims, Some(provider.name()), None);
    redirect(
        &return_to,
        &[
            auth::session_cookie(&app.config.sessions, &session, max_age),
            flow::clear_cookie(&app.config.sessions),
        ],
    )
}

async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
    body: Bytes,
) -> Response {
    // A page of another site could otherwise sign people out.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site")
    {
        return page(
            StatusCode::FORBIDDEN,
            "Cannot sign out",
            "Signing out must start from the portal itself.",
        );
    }
    let from_form = form_value(&headers, &body, "returnTo");
    let return_to = match return_to::check(
        from_form.as_deref().or(q.return_to.as_deref()),
        &app.config.cors.allowed_origins,
    ) {
        Ok(r) => r,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Cannot sign out",
                &format!("The sign-out form is wrong: {e}."),
            );
        }
    };
    let idp = auth::token_from_headers(&headers, &app.config.sessions.cookie_name)
        .filter(|(_, source)| *source == auth::CredentialSource::Cookie)
        .and_then(|(token, _)| app.sessions.verify(token).ok())
        .and_then(|session| session.idp);
    let clear = auth::clear_session_cookie(&app.config.sessions);
    let end_session = idp
        .and_then(|name| app.oidc.get(Some(&name)))
        .and_then(oidc::Provider::end_session_url);
    match end_session {
        Some(url) => {
            let state = Flow::SignOut {
                return_to,
                started: auth::now_secs(),
            };
            let remember = flow::set_cookie(&app.config.sessions, app.sessions.flow_key(), &state);
            redirect(url.as_str(), &[clear, remember])
        }
        None => redirect(&return_to, &[clear]),
    }
}

/// Back from the provider's sign-out page.
async fn signed_out(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match flow::from_headers(&headers, &app.config.sessions, app.sessions.flow_key()) {
        Ok(Flow::SignOut { return_to, .. }) => {
            redirect(&return_to, &[flow::clear_cookie(&app.config.sessions)])
        }
        _ => page(StatusCode::OK, "Signed out", "You are signed out."),
    }
}

/// `name` from an `application/x-www-form-urlencoded` body.
fn form_value(headers: &HeaderMap, body: &[u8], name: &str) -> Option<String> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form || body.len() > 8192 {
        return None;
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Compares without an early exit, so timing tells nothing of `expected`.
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn redirect(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            headers.insert(header::LOCATION, v);
        }
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Cannot continue",
                "The address to return to is not valid.",
            );
        }
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie.clone());
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn no_flow(e: &NoFlow) -> Response {
    tracing::info!(reason = %e, "sign-in refused");
    restart_page(
        StatusCode::BAD_REQUEST,
        &format!("This sign-in cannot be completed: {e}."),
    )
}

fn sign_in_failed(provider: &str, e: &SignInError) -> Response {
    match e {
        SignInError::Unavailable { reason, .. } => {
            tracing::warn!(%provider, %reason, "sign-in provider unavailable");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                &format!(
                    "{}. Try again in a few minutes; if you are signed in already, you can go on working.",
                    capitalise(&e.to_string())
                ),
            )
        }
        SignInError::Refused { .. } => {
            tracing::info!(%provider, reason = %e, "sign-in refused");
            restart_page(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{}: the sign-in link may have been used already or have expired.",
                    capitalise(&e.to_string())
                ),
            )
        }
        SignInError::BadIdToken(_) | SignInError::BadResponse(_) => {
            tracing::warn!(%provider, reason = %e, "sign-in refused");
            restart_page(
                StatusCode::BAD_GATEWAY,
                &format!("{}.", capitalise(&e.to_string())),
            )
        }
    }
}

/// A database or other server error during sign-in.
fn app_error_page(e: AppError) -> Response {
    let status = e.status();
    e.log();
    let text = if status == StatusCode::SERVICE_UNAVAILABLE {
        "The portal cannot record the sign-in right now. Try again in a few minutes."
    } else {
        "The sign-in could not be recorded because of an error on this server."
    };
    page(status, "Sign-in failed", text)
}

fn restart_page(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<p>{}</p><p><a href=\"/auth/login\">Sign in again</a></p>",
        plain(text)
    );
    html(status, "Sign-in failed", &body)
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, title, &format!("<p>{}</p>", plain(text)))
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let document = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
         <body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = plain(title)
    );
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `text` escaped for HTML.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(
            plain("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_return_address_may_come_from_a_form() {
        let mut headers = HeaderMap::new();
        assert_eq!(form_value(&headers, b"returnTo=%2Fx", "returnTo"), None);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            form_value(&headers, b"a=1&returnTo=%2Fx", "returnTo").as_deref(),
            Some("/x")
        );
    }
}
