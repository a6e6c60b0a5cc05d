//! The sign-in flow cookie: what `/auth/callback` must check, kept by the
//! browser between `/auth/login` and the callback so that no store is
//! needed and any instance can finish a flow another began.
//!
//! It holds `state`, `nonce`, the PKCE verifier, the provider and where to
//! return, encrypted and authenticated with a key derived from
//! `SESSION_SECRET` (`cookie`'s private jar, AES-256-GCM): the browser can
//! neither read the verifier nor change a byte. HttpOnly, SameSite=Lax (the
//! provider's redirect back is a top-level GET, which Lax lets through),
//! ten minutes. `/auth/logout` uses the same cookie to remember where to
//! return after the provider's sign-out page.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{Deserialize, Serialize};

use crate::{auth::now_secs, config::SessionConfig};

/// How long a sign-in may take at the provider.
pub const FLOW_TTL_SECS: u64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Flow {
    /// Between `/auth/login` and `/auth/callback`.
    #[serde(rename = "in")]
    SignIn {
        #[serde(rename = "p")]
        provider: String,
        #[serde(rename = "s")]
        state: String,
        #[serde(rename = "n")]
        nonce: String,
        #[serde(rename = "v")]
        pkce_verifier: String,
        #[serde(rename = "r")]
        return_to: String,
        #[serde(rename = "t")]
        started: u64,
    },
    /// Between `/auth/logout` and `/auth/signed-out`.
    #[serde(rename = "out")]
    SignOut {
        #[serde(rename = "r")]
        return_to: String,
        #[serde(rename = "t")]
        started: u64,
    },
}

impl Flow {
    fn started(&self) -> u64 {
        match self {
            Flow::SignIn { started, .. } | Flow::SignOut { started, .. } => *started,
        }
    }
}

/// Why there is no flow to finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoFlow {
    #[error(
        "the sign-in cookie is missing: cookies may be blocked, or the sign-in was started elsewhere"
    )]
    Missing,
    #[error("two sign-in cookies came with the request")]
    Ambiguous,
    #[error("the sign-in cookie is not one this server made")]
    Invalid,
    #[error("the sign-in took longer than 10 minutes")]
    Expired,
}

/// The flow cookie's name: the session cookie's, with `_flow` (so a
/// `__Host-` session cookie has a `__Host-` flow cookie).
pub fn cookie_name(config: &SessionConfig) -> String {
    format!("{}_flow", config.cookie_name)
}

/// `Set-Cookie` for a new flow.
pub fn set_cookie(config: &SessionConfig, key: &Key, flow: &Flow) -> HeaderValue {
    let value = serde_json::to_string(flow).expect("a flow serializes");
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(
        Cookie::build((cookie_name(config), value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::seconds(FLOW_TTL_SECS as i64))
            .secure(config.cookie_secure),
    );
    let cookie = jar.delta().next().expect("the cookie just added");
    HeaderValue::from_str(&cookie.to_string()).expect("an encrypted cookie is plain ASCII")
}

/// `Set-Cookie` that ends the flow.
pub fn clear_cookie(config: &SessionConfig) -> HeaderValue {
    let cookie = Cookie::build((cookie_name(config), ""))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .secure(config.cookie_secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a plain cookie")
}

/// The flow of this request, if it carries exactly one valid flow cookie
/// younger than [`FLOW_TTL_SECS`].
pub fn from_headers(
    headers: &HeaderMap,
    config: &SessionConfig,
    key: &Key,
) -> Result<Flow, NoFlow> {
    let name = cookie_name(config);
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name);
    let cookie = found.next().ok_or(NoFlow::Missing)?.into_owned();
    if found.next().is_some() {
        return Err(NoFlow::Ambiguous);
    }
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    let plain = jar.private(key).get(&name).ok_or(NoFlow::Invalid)?;
    let flow: Flow = serde_json::from_str(plain.value()).map_err(|_| NoFlow::Invalid)?;
    if now_secs().saturating_sub(flow.started()) > FLOW_TTL_SECS {
        return Err(NoFlow::Expired);
    }
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn flow(started: u64) -> Flow {
        Flow::SignIn {
            provider: "default".into(),
            state: "st".into(),
            nonce: "no".into(),
            pkce_verifier: "ve".into(),
            return_to: "/".into(),
            started,
        }
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        headers
    }

    #[test]
    fn the_flow_comes_back_only_from_this_servers_own_cookie() {
        let cfg = config(&[]).unwrap().sessions;
        let key = Key::generate();
        let started = now_secs();
        let set = set_cookie(&cfg, &key, &flow(started));
        let text = set.to_str().unwrap();
        for part in [
            "reportfiles_session_flow=",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=600",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("\"st\""), "the value is encrypted: {text}");
        assert_eq!(
            from_headers(&request_with(&set), &cfg, &key),
            Ok(flow(started))
        );

        // Another key (another deployment), a changed byte, nothing, two.
        assert_eq!(
            from_headers(&request_with(&set), &cfg, &Key::generate()),
            Err(NoFlow::Invalid)
        );
        let mut tampered = set.to_str().unwrap().to_string();
        let at = tampered.find('=').unwrap() + 5;
        tampered.replace_range(
            at..at + 1,
            if &tampered[at..at + 1] == "A" {
                "B"
            } else {
                "A"
            },
        );
        let tampered = HeaderValue::from_str(&tampered).unwrap();
        assert_eq!(
            from_headers(&request_with(&tampered), &cfg, &key),
            Err(NoFlow::Invalid)
        );
        assert_eq!(
            from_headers(&HeaderMap::new(), &cfg, &key),
            Err(NoFlow::Missing)
        );
        let mut two = request_with(&set);
        two.append(header::COOKIE, request_with(&set)[header::COOKIE].clone());
        assert_eq!(from_headers(&two, &cfg, &key), Err(NoFlow::Ambiguous));
    }

    #[test]
    fn an_old_flow_has_expired() {
        let cfg = config(&[]).unwrap().sessions;
        let key = Key::generate();
        let set = set_cookie(&cfg, &key, &flow(now_secs() - FLOW_TTL_SECS - 1));
        assert_eq!(
            from_headers(&request_with(&set), &cfg, &key),
            Err(NoFlow::Expired)
        );
        assert!(clear_cookie(&cfg).to_str().unwrap().contains("Max-Age=0"));
    }
}
