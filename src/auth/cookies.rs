//! Where a request's token is: the `Authorization: Bearer` header, or the
//! HttpOnly session cookie that `login` sets.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use crate::config::SessionConfig;

/// Where a request's credentials came from: cookie-borne requests need CSRF
/// protection, bearer-borne ones cannot be forged by another site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Bearer,
    Cookie,
}

/// The raw token of a request: the `Authorization: Bearer` header wins over
/// the session cookie. Two session cookies make the request anonymous:
/// browsers send the cookie with the longer path first, so a sibling
/// subdomain that planted its own (a `Domain=` cookie) could otherwise pick
/// whose session a request runs in.
pub fn token_from_headers<'a>(
    headers: &'a HeaderMap,
    cookie_name: &str,
) -> Option<(&'a str, CredentialSource)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim(), CredentialSource::Bearer));
    }
    let mut sessions = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == cookie_name);
    let session = sessions.next()?;
    if sessions.next().is_some() {
        tracing::info!("two session cookies in one request: treated as signed out");
        return None;
    }
    session
        .value_raw()
        .map(|value| (value.trim_matches('"'), CredentialSource::Cookie))
}

/// `Set-Cookie` for a new session: HttpOnly so scripts never see the token,
/// SameSite=Lax so other sites' sub-requests do not carry it.
pub fn session_cookie(config: &SessionConfig, token: &str, max_age_secs: u64) -> HeaderValue {
    let cookie = Cookie::build((config.cookie_name.as_str(), token))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .secure(config.cookie_secure)
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_session_cookie(config: &SessionConfig) -> HeaderValue {
    session_cookie(config, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_header_wins_over_cookie() {
        let h = headers(&[
            (header::AUTHORIZATION, "Bearer abc"),
            (header::COOKIE, "s=def"),
        ]);
        assert_eq!(
            token_from_headers(&h, "s"),
            Some(("abc", CredentialSource::Bearer))
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[(header::COOKIE, "a=1; s=tok; b=2")]);
        assert_eq!(
            token_from_headers(&h, "s"),
            Some(("tok", CredentialSource::Cookie))
        );
        let h = headers(&[(header::COOKIE, "ss=tok")]);
        assert_eq!(token_from_headers(&h, "s"), None);
        let h = headers(&[(header::COOKIE, "junk; s=\"tok\"")]);
        assert_eq!(
            token_from_headers(&h, "s"),
            Some(("tok", CredentialSource::Cookie))
        );
    }

    #[test]
    fn two_session_cookies_are_no_session() {
        let h = headers(&[(header::COOKIE, "s=planted; s=mine")]);
        assert_eq!(token_from_headers(&h, "s"), None);
        let h = headers(&[(header::COOKIE, "s=planted"), (header::COOKIE, "s=mine")]);
        assert_eq!(token_from_headers(&h, "s"), None);
    }

    #[test]
    fn other_authorization_schemes_are_not_tokens() {
        let h = headers(&[(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")]);
        assert_eq!(token_from_headers(&h, "s"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_lax_and_secure_outside_development() {
        let dev = config(&[]).unwrap().sessions;
        let cookie = session_cookie(&dev, "tok", 60);
        let text = cookie.to_str().unwrap();
        for part in [
            "reportfiles_session=tok",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("Secure"), "{text}");
        let prod = config(&[
            ("APP_ENV", "production"),
            ("JWT_ALGORITHMS", "HS256"),
            ("AV_SCAN", "off"),
        ])
        .unwrap()
        .sessions;
        assert!(
            session_cookie(&prod, "tok", 60)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        let cleared = clear_session_cookie(&dev);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }
}
