//! Where the browser goes after signing in or out (`returnTo`): a path on
//! this server's origin, or a page of one of the frontend origins the
//! server already trusts with its cookie (`CORS_ALLOWED_ORIGINS`). Anything
//! else would make the sign-in an open redirect.

use openidconnect::url::Url;

/// The longest `returnTo` taken.
const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReturnTo {
    #[error("returnTo is over {MAX_LEN} characters")]
    TooLong,
    #[error(
        "returnTo must be a path on this server (starting with a single `/`) or a page of an allowed frontend origin"
    )]
    NotAllowed,
}

/// Checks `raw` (as the browser sent it, decoded from the query) and gives
/// what to put in `Location`. `None` is the root of this server.
pub fn check(raw: Option<&str>, allowed_origins: &[String]) -> Result<String, BadReturnTo> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok("/".into());
    };
    if raw.len() > MAX_LEN {
        return Err(BadReturnTo::TooLong);
    }
    // Browsers drop tabs and newlines in URLs and treat `\` as `/`: refuse
    // them all rather than guess what a browser would make of them.
    if raw
        .chars()
        .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
    {
        return Err(BadReturnTo::NotAllowed);
    }
    if raw.starts_with('/') {
        // `//host` and `/\host` are other origins to a browser.
        if raw.starts_with("//") {
            return Err(BadReturnTo::NotAllowed);
        }
        // Resolved against a placeholder origin, a path must stay on it.
        let base = Url::parse("http://this.invalid/").expect("a valid base");
        let resolved = base.join(raw).map_err(|_| BadReturnTo::NotAllowed)?;
        if resolved.origin() != base.origin() {
            return Err(BadReturnTo::NotAllowed);
        }
        return Ok(raw.to_string());
    }
    let url = Url::parse(raw).map_err(|_| BadReturnTo::NotAllowed)?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(BadReturnTo::NotAllowed);
    }
    let origin = url.origin().ascii_serialization();
    if allowed_origins.contains(&origin) {
        Ok(url.to_string())
    } else {
        Err(BadReturnTo::NotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONTEND: &str = "https://portal.example.gov";

    fn ok(raw: &str) -> String {
        check(Some(raw), &[FRONTEND.to_string()]).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn refused(raw: &str) {
        assert!(
            check(Some(raw), &[FRONTEND.to_string()]).is_err(),
            "{raw} was accepted"
        );
    }

    #[test]
    fn paths_on_this_server_are_kept() {
        assert_eq!(check(None, &[]).unwrap(), "/");
        assert_eq!(check(Some(""), &[]).unwrap(), "/");
        for path in [
            "/",
            "/reports?year=2026#q1",
            "/a/b/../c",
            "/%2F%2Fevil.example",
        ] {
            assert_eq!(ok(path), path);
        }
    }

    #[test]
    fn pages_of_allowed_frontends_are_kept() {
        assert_eq!(
            ok("https://portal.example.gov/files?q=1"),
            "https://portal.example.gov/files?q=1"
        );
        assert_eq!(
            ok("https://portal.example.gov"),
            "https://portal.example.gov/"
        );
    }

    #[test]
    fn other_origins_are_refused() {
        for raw in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://portal.example.gov.evil.example/",
            "https://portal.example.gov:444/",
            "http://portal.example.gov/",
            "https://user@portal.example.gov/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "evil.example",
            " /x",
        ] {
            refused(raw);
        }
        assert_eq!(
            check(Some(&format!("/{}", "a".repeat(MAX_LEN))), &[]).unwrap_err(),
            BadReturnTo::TooLong
        );
    }
}
