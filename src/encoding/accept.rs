//! `Accept-Encoding` (RFC 9110 §12.5.3): whether a request takes a coding
//! in preference to the original bytes. Anything malformed counts as not
//! said: a client never gets a coding it did not clearly ask for.

use axum::http::{HeaderMap, header};

use super::Coding;

/// How many list elements are read, over all `Accept-Encoding` lines. Real
/// clients send at most a handful; a hostile list of thousands costs no
/// more than this.
const MAX_ELEMENTS: usize = 32;

/// A weight in thousandths: `q=0.5` is 500.
type Weight = u16;

const FULL: Weight = 1000;

/// Whether the request prefers `coding` to the original bytes: the client
/// gives it a weight above zero, by name or through `*`, and does not give
/// `identity` a higher one by name. No header, or an empty one, means the
/// original bytes.
pub fn accepts(headers: &HeaderMap, coding: Coding) -> bool {
    let elements = || {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .take(MAX_ELEMENTS)
            .filter_map(element)
    };
    // The first mention of a name is the one that counts.
    let weight_of = |name: &str| elements().find(|(n, _)| *n == name).map(|(_, w)| w);
    let named = match coding {
        // RFC 9110 §8.4.1.3: a recipient should take x-gzip as gzip.
        Coding::Gzip => weight_of("gzip").or_else(|| weight_of("x-gzip")),
        Coding::Zstd => weight_of("zstd"),
    };
    let weight = named.or_else(|| weight_of("*")).unwrap_or(0);
    if weight == 0 {
        return false;
    }
    match weight_of("identity") {
        Some(identity) => weight >= identity,
        None => true,
    }
}

/// One list element, `name` or `name;q=weight`, lower-cased; `None` when
/// it is not well formed.
fn element(raw: &str) -> Option<(String, Weight)> {
    let mut parts = raw.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return None;
    }
    let mut weight = FULL;
    for param in parts {
        let (key, value) = param.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            weight = qvalue(value.trim())?;
        }
    }
    Some((name.to_ascii_lowercase(), weight))
}

/// `0`, `0.` and up to three digits, `1`, or `1.` and up to three zeros.
fn qvalue(raw: &str) -> Option<Weight> {
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: Weight = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(FULL),
        _ => None,
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn takes(values: &[&str], coding: Coding) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts(&h, coding)
    }

    #[test]
    fn what_browsers_and_tools_send() {
        let chrome = "gzip, deflate, br, zstd";
        assert!(takes(&[chrome], Coding::Gzip));
        assert!(takes(&[chrome], Coding::Zstd));
        assert!(takes(&["gzip, deflate"], Coding::Gzip));
        assert!(!takes(&["gzip, deflate"], Coding::Zstd));
        assert!(!takes(&[], Coding::Gzip), "no header: the original");
        assert!(!takes(&[""], Coding::Gzip), "empty: no coding wanted");
        assert!(!takes(&["identity"], Coding::Gzip));
        assert!(takes(&["x-gzip"], Coding::Gzip));
        assert!(takes(&["GZIP"], Coding::Gzip), "names are case-insensitive");
    }

    #[test]
    fn weights_decide() {
        assert!(!takes(&["gzip;q=0"], Coding::Gzip));
        assert!(!takes(&["gzip;q=0.000"], Coding::Gzip));
        assert!(takes(&["gzip;q=0.001"], Coding::Gzip));
        assert!(takes(&["gzip ; Q=0.5"], Coding::Gzip));
        assert!(!takes(&["gzip;q=0.5, identity"], Coding::Gzip));
        assert!(takes(&["gzip;q=0.5, identity;q=0.5"], Coding::Gzip));
        assert!(takes(&["gzip, identity;q=0"], Coding::Gzip));
        assert!(takes(&["identity;q=0, zstd"], Coding::Zstd));
        assert!(!takes(&["gzip;q=0, *"], Coding::Gzip), "a name beats *");
        assert!(takes(&["*"], Coding::Zstd));
        assert!(!takes(&["*;q=0"], Coding::Zstd));
        assert!(!takes(&["*;q=0.3, identity"], Coding::Zstd));
    }

    #[test]
    fn several_header_lines_are_one_list() {
        assert!(takes(&["br", "zstd"], Coding::Zstd));
        assert!(
            !takes(&["zstd;q=0", "zstd"], Coding::Zstd),
            "the first counts"
        );
    }

    #[test]
    fn malformed_elements_count_as_not_said() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.0001",
            "gzip;q=",
            "gzip;q=abc",
            "gzip;q=-1",
            "gzip;q",
            "gz ip",
            "gzip\"",
            ";q=1",
            "gzip;q=1.001",
        ] {
            assert!(!takes(&[bad], Coding::Gzip), "{bad}");
        }
        assert!(takes(&["gzip;q=1.000"], Coding::Gzip));
        assert!(takes(&["gzip;q=1."], Coding::Gzip));
        assert!(
            takes(&["gzip;foo=bar"], Coding::Gzip),
            "other parameters are ignored"
        );
    }

    #[test]
    fn huge_lists_are_read_only_so_far() {
        let mut list = vec!["x-junk;q=0.5"; 10_000];
        list.push("gzip");
        assert!(!takes(&[&list.join(",")], Coding::Gzip));
        assert!(takes(
            &[&format!("gzip,{}", vec!["x;q=0.1"; 10_000].join(","))],
            Coding::Gzip
        ));
        let later = format!("{},identity", vec!["gzip"; 100].join(","));
        assert!(
            takes(&[&later], Coding::Gzip),
            "identity past the cap is not read"
        );
    }
}
