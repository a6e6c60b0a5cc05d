//! Who the client of a request is. Every deployment sits behind a load
//! balancer or a platform router, so the TCP peer is that balancer; the
//! client's own address comes from the header the balancer adds. That
//! header is believed only when the peer is a trusted proxy
//! (`TRUSTED_PROXIES`): anyone else could write any address into it.
//!
//! From a trusted peer, the chain in `X-Forwarded-For` (or RFC 7239
//! `Forwarded`, per `TRUSTED_PROXY_HEADER`) is walked from the right, the
//! hop nearest to this server, past every trusted proxy; the first address
//! that is not one is the client. Nothing left of that hop counts: it is
//! what the client wrote itself, so junk, fake hops or a malformed value
//! there never hide the client's real address (and at most [`MAX_HOPS`]
//! hops of [`MAX_HOP_BYTES`] each are parsed at all). Where the walk meets
//! something malformed on its way, or more than [`MAX_HOPS`] trusted hops,
//! the header is ignored and the peer is the client: never an error.
//!
//! The resolved [`Client`] is put in the request's extensions by
//! [`identify`]; the download audit, scan records, the per-caller limit and
//! the log line take it from there.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::Response,
};
use cookie::Cookie;

use crate::{
    app::AppState,
    config::{ForwardedHeader, ProxyConfig, TrustedProxies},
};

/// Hops of a chain read at most: a real chain has a few, so more trusted
/// hops than this are not a deployment but a loop or an attack.
pub const MAX_HOPS: usize = 32;
/// The longest hop read: an address with its port (and, in `Forwarded`,
/// `proto=` and `by=`) is far shorter.
const MAX_HOP_BYTES: usize = 256;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// The client of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer, or the address that trusted proxies forwarded.
    pub ip: IpAddr,
    /// A trusted proxy said that the client's request came over https.
    /// Only ever adds `Secure` to cookies (see [`identify`]).
    pub https: bool,
}

impl Client {
    pub fn of(peer: IpAddr, headers: &HeaderMap, proxies: &ProxyConfig) -> Client {
        let peer = peer.to_canonical();
        let direct = Client {
            ip: peer,
            https: false,
        };
        if !proxies.trusted.contains(peer) {
            return direct;
        }
        match proxies.header {
            ForwardedHeader::XForwardedFor => Client {
                ip: walk(peer, x_forwarded_for(headers), &proxies.trusted).map_or(peer, |e| e.ip),
                https: x_forwarded_proto_is_https(headers),
            },
            ForwardedHeader::Forwarded => {
                walk(peer, forwarded(headers), &proxies.trusted).map_or(direct, |end| Client {
                    ip: end.ip,
                    https: end.https,
                })
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, StatusCode> {
        parts.extensions.get::<Client>().copied().ok_or_else(|| {
            tracing::error!("a route that needs the client runs without the `identify` layer");
            StatusCode::INTERNAL_SERVER_ERROR
        })
    }
}

/// The layer that finds each request's [`Client`] once. When a trusted
/// proxy says the client came over https, every cookie of the response is
/// made `Secure`, even where the configuration would not (a development-
/// like setup behind a TLS-terminating balancer). Nothing is ever taken
/// away: a proxy saying http leaves `Secure` cookies as they are, and no
/// URL is built from the scheme (sign-in URLs are configured absolutely).
pub async fn identify(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let client = Client::of(peer.ip(), req.headers(), &app.config.proxies);
    req.extensions_mut().insert(client);
    let mut response = next.run(req).await;
    if client.https {
        secure_cookies(response.headers_mut());
    }
    response
}

fn secure_cookies(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if name == header::SET_COOKIE
            && let Some(secure) = made_secure(value)
        {
            *value = secure;
        }
    }
}

/// `value` with `Secure` added, unless it has it already.
fn made_secure(value: &HeaderValue) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let cookie = Cookie::parse(text).ok()?;
    if cookie.secure() == Some(true) {
        return None;
    }
    HeaderValue::from_str(&format!("{text}; Secure")).ok()
}

/// One hop of a chain: the node a proxy received the request from, as
/// that proxy wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hop {
    node: Node,
    /// `proto=https` in the same `Forwarded` element.
    https: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`) or no `for=`: the
    /// proxy did not say.
    Hidden,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// Where a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct End {
    ip: IpAddr,
    https: bool,
}

/// Walks `hops` (nearest first) from the trusted `peer`: past trusted
/// proxies, to the first hop that is not one. A hop that does not name its
/// node leaves the nearest address known: the proxy that wrote it. A chain
/// of trusted proxies only ends at its last (leftmost) one. `None`: the
/// header is ignored (malformed where read, or too many hops).
fn walk(peer: IpAddr, hops: Vec<Result<Hop, Malformed>>, trusted: &TrustedProxies) -> Option<End> {
    let mut nearest = End {
        ip: peer,
        https: false,
    };
    for (read, hop) in hops.into_iter().enumerate() {
        if read == MAX_HOPS {
            return None;
        }
        let hop = hop.ok()?;
        match hop.node {
            Node::Ip(ip) if trusted.contains(ip) => {
                nearest = End {
                    ip,
                    https: hop.https,
                };
            }
            Node::Ip(ip) => {
                return Some(End {
                    ip,
                    https: hop.https,
                });
            }
            Node::Hidden => {
                return Some(End {
                    ip: nearest.ip,
                    https: hop.https,
                });
            }
        }
    }
    Some(nearest)
}

/// Hops as they are read, nearest first: reading stops after the first
/// malformed one, or one past [`MAX_HOPS`] (which [`walk`] refuses).
#[derive(Default)]
struct Chain(Vec<Result<Hop, Malformed>>);

impl Chain {
    /// Adds a hop; `false` when reading should stop.
    fn push(&mut self, hop: Result<Hop, Malformed>) -> bool {
        let go_on = hop.is_ok() && self.0.len() < MAX_HOPS;
        self.0.push(hop);
        go_on
    }
}

/// The hops of `X-Forwarded-For` (every line, in order), nearest first.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Result<Hop, Malformed>> {
    let mut chain = Chain::default();
    'lines: for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = line.to_str() else {
            chain.push(Err(Malformed));
            break;
        };
        for entry in text.rsplit(',').map(ows).filter(|e| !e.is_empty()) {
            if !chain.push(x_forwarded_for_hop(entry)) {
                break 'lines;
            }
        }
    }
    chain.0
}

fn x_forwarded_for_hop(entry: &str) -> Result<Hop, Malformed> {
    if entry.len() > MAX_HOP_BYTES {
        return Err(Malformed);
    }
    let node = if entry.eq_ignore_ascii_case("unknown") {
        Node::Hidden
    } else {
        Node::Ip(address(entry).ok_or(Malformed)?)
    };
    Ok(Hop { node, https: false })
}

/// An address as proxies write it in `X-Forwarded-For`: `192.0.2.7`,
/// `192.0.2.7:4711`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn address(text: &str) -> Option<IpAddr> {
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// `X-Forwarded-Proto` from a trusted peer says https. Where proxies append
/// to it, the first value is the one of the proxy that faced the client.
/// A client can only make its own cookies `Secure` with it.
fn x_forwarded_proto_is_https(headers: &HeaderMap) -> bool {
    headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| ows(p).eq_ignore_ascii_case("https"))
}

/// The elements of `Forwarded` (every line, in order), nearest first.
fn forwarded(headers: &HeaderMap) -> Vec<Result<Hop, Malformed>> {
    let mut chain = Chain::default();
    'lines: for line in headers.get_all(header::FORWARDED).iter().rev() {
        let Ok(mut rest) = line.to_str() else {
            chain.push(Err(Malformed));
            break;
        };
        loop {
            let (before, element) = match split_last(rest) {
                Ok(split) => split,
                Err(e) => {
                    chain.push(Err(e));
                    break 'lines;
                }
            };
            let element = ows(element);
            if !element.is_empty() && !chain.push(forwarded_hop(element)) {
                break 'lines;
            }
            match before {
                Some(before) => rest = before,
                None => break,
            }
        }
    }
    chain.0
}

/// Splits `text` at its last comma outside a quoted string, reading from
/// the right only as far as that comma: (what is before it, the last
/// element). A last element longer than [`MAX_HOP_BYTES`], or a quote left
/// open, is malformed.
fn split_last(text: &str) -> Result<(Option<&str>, &str), Malformed> {
    let bytes = text.as_bytes();
    let mut quoted = false;
    for i in (0..bytes.len()).rev() {
        if bytes.len() - i > MAX_HOP_BYTES + 1 {
            return Err(Malformed);
        }
        match bytes[i] {
            b'"' if !quoted => quoted = true,
            b'"' => {
                // The opening quote, unless escaped (an odd number of
                // backslashes before it).
                let slashes = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
                quoted = slashes % 2 == 1;
            }
            b',' if !quoted => return Ok((Some(&text[..i]), &text[i + 1..])),
            _ => {}
        }
    }
    if quoted || text.len() > MAX_HOP_BYTES {
        return Err(Malformed);
    }
    Ok((None, text))
}

/// One `Forwarded` element: `for=...;proto=...;by=...` (RFC 7239 §4).
/// Parameter names are case-insensitive and each may appear once.
fn forwarded_hop(element: &str) -> Result<Hop, Malformed> {
    let mut node = None;
    let mut https = None;
    for (name, value) in pairs(element)? {
        let repeated = match name.to_ascii_lowercase().as_str() {
            "for" => node.replace(for_node(&value).ok_or(Malformed)?).is_some(),
            "proto" => https.replace(value.eq_ignore_ascii_case("https")).is_some(),
            // `by`, `host` and extensions say nothing about the client.
            _ => false,
        };
        if repeated {
            return Err(Malformed);
        }
    }
    Ok(Hop {
        node: node.unwrap_or(Node::Hidden),
        https: https.unwrap_or(false),
    })
}

/// The `name=value` pairs of an element, quoted values unquoted. Empty
/// pairs (`;;`) are allowed, as RFC 7239 allows them. Lenient where being
/// lenient is unambiguous: an unquoted value may hold `:` and brackets
/// (`for=192.0.2.7:4711`), which strictly needs quotes.
fn pairs(element: &str) -> Result<Vec<(&str, String)>, Malformed> {
    let mut pairs = Vec::new();
    let mut rest = element;
    loop {
        rest = ows(rest);
        if rest.is_empty() {
            return Ok(pairs);
        }
        if let Some(after) = rest.strip_prefix(';') {
            rest = after;
            continue;
        }
        let name_end = rest.find(|c: char| !is_tchar(c)).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        let after = after.strip_prefix('=').ok_or(Malformed)?;
        if name.is_empty() {
            return Err(Malformed);
        }
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let end = after
                    .find(|c: char| matches!(c, ';' | '"') || c.is_ascii_whitespace())
                    .unwrap_or(after.len());
                if end == 0 {
                    return Err(Malformed);
                }
                (after[..end].to_string(), &after[end..])
            }
        };
        pairs.push((name, value));
        rest = ows(after);
        if !(rest.is_empty() || rest.starts_with(';')) {
            return Err(Malformed);
        }
    }
}

/// A quoted string's content (after its opening quote), and what follows
/// its closing quote.
fn unquote(text: &str) -> Result<(String, &str), Malformed> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => value.push(chars.next().ok_or(Malformed)?.1),
            c => value.push(c),
        }
    }
    Err(Malformed)
}

/// A `for=` node: `192.0.2.7`, `"[2001:db8::1]"`, either with a port
/// (`:4711`, or obfuscated `:_p`), `unknown`, or an obfuscated name
/// (`_hidden`). A bare IPv6 address (RFC 7239 wants brackets) is taken
/// too: it cannot be mistaken for anything else.
fn for_node(value: &str) -> Option<Node> {
    if let Ok(v6) = value.parse::<Ipv6Addr>() {
        return Some(Node::Ip(IpAddr::V6(v6).to_canonical()));
    }
    let (name, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            let ip = v6.parse::<Ipv6Addr>().ok()?;
            return port_ok(port).then_some(Node::Ip(IpAddr::V6(ip).to_canonical()));
        }
        None => match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        },
    };
    if !port_ok(port) {
        return None;
    }
    if name.eq_ignore_ascii_case("unknown") || is_obfuscated(name) {
        return Some(Node::Hidden);
    }
    name.parse::<std::net::Ipv4Addr>()
        .ok()
        .map(|v4| Node::Ip(IpAddr::V4(v4)))
}

fn port_ok(port: Option<&str>) -> bool {
    port.is_none_or(|p| {
        ((1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())) || is_obfuscated(p)
    })
}

/// `_` and then letters, digits, `.`, `_` or `-` (RFC 7239 §6.3).
fn is_obfuscated(text: &str) -> bool {
    text.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// `text` without optional whitespace (spaces and tabs) around it.
fn ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(trusted: &str, header: ForwardedHeader) -> ProxyConfig {
        ProxyConfig {
            trusted: TrustedProxies::parse(trusted).unwrap(),
            header,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;
    const PEER: &str = "10.0.0.1";

    /// The client of a request from `PEER` with these headers.
    fn client(trusted: &str, header: ForwardedHeader, pairs: &[(&str, &str)]) -> Client {
        Client::of(ip(PEER), &headers(pairs), &proxies(trusted, header))
    }

    fn client_ip(trusted: &str, header: ForwardedHeader, pairs: &[(&str, &str)]) -> String {
        client(trusted, header, pairs).ip.to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let spoofed = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9;proto=https"),
            ("x-forwarded-proto", "https"),
        ];
        for header in [XFF, FWD] {
            for trusted in ["", "10.0.0.2, 192.168.0.0/16"] {
                let c = client(trusted, header, &spoofed);
                assert_eq!(
                    c,
                    Client {
                        ip: ip(PEER),
                        https: false
                    },
                    "{trusted}"
                );
            }
        }
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        let t = "10.0.0.0/24";
        let xff = |v| client_ip(t, XFF, &[("x-forwarded-for", v)]);
        assert_eq!(xff("203.0.113.9"), "203.0.113.9");
        // The client's own spoofed entries stand left of its real address.
        assert_eq!(xff("1.2.3.4, 203.0.113.9"), "203.0.113.9");
        // Two trusted proxies: the client is left of both.
        assert_eq!(xff("203.0.113.9, 10.0.0.7"), "203.0.113.9");
        // An untrusted hop in the middle: the walk stops there.
        assert_eq!(xff("203.0.113.9, 198.51.100.4, 10.0.0.7"), "198.51.100.4");
        // Only trusted hops: the leftmost is the client.
        assert_eq!(xff("10.0.0.9, 10.0.0.7"), "10.0.0.9");
        // No header: the peer.
        assert_eq!(client_ip(t, XFF, &[]), PEER);
    }

    #[test]
    fn x_forwarded_for_entries_take_spaces_ports_and_brackets() {
        let t = "10.0.0.0/24, 2001:db8:1::/48";
        let xff = |v| client_ip(t, XFF, &[("x-forwarded-for", v)]);
        assert_eq!(xff("  203.0.113.9\t"), "203.0.113.9");
        assert_eq!(xff("203.0.113.9:4711"), "203.0.113.9");
        assert_eq!(xff("2001:db8::9"), "2001:db8::9");
        assert_eq!(xff("[2001:db8::9]"), "2001:db8::9");
        assert_eq!(xff("[2001:db8::9]:4711"), "2001:db8::9");
        assert_eq!(xff("2001:db8::9,[2001:db8:1::2]:80"), "2001:db8::9");
        assert_eq!(xff("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(xff("203.0.113.9,,, "), "203.0.113.9");
    }

    #[test]
    fn several_header_lines_are_one_list_in_order() {
        let t = "10.0.0.0/24";
        let h = [
            ("x-forwarded-for", "203.0.113.9, 198.51.100.4"),
            ("x-forwarded-for", "10.0.0.7"),
        ];
        assert_eq!(client_ip(t, XFF, &h), "198.51.100.4");
        let h = [
            ("forwarded", "for=203.0.113.9"),
            ("forwarded", "for=10.0.0.7, for=10.0.0.8"),
        ];
        assert_eq!(client_ip(t, FWD, &h), "203.0.113.9");
    }

    #[test]
    fn garbage_where_the_walk_reads_falls_back_to_the_peer() {
        let t = "10.0.0.0/24";
        for garbage in [
            "garbage",
            "203.0.113.9, not-an-address",
            "1.2.3.4.5",
            "\"203.0.113.9\"",
            "203.0.113.9:port",
            "[2001:db8::9",
            "fe80::1%eth0, 10.0.0.7",
            &"9".repeat(300),
        ] {
            assert_eq!(
                client_ip(t, XFF, &[("x-forwarded-for", garbage)]),
                PEER,
                "{garbage}"
            );
        }
        let mut bad = headers(&[]);
        bad.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(
            Client::of(ip(PEER), &bad, &proxies(t, XFF)).ip.to_string(),
            PEER
        );
    }

    #[test]
    fn garbage_left_of_the_client_changes_nothing() {
        let t = "10.0.0.0/24";
        let junk = format!("{}, \"unbalanced, 203.0.113.9", "x".repeat(10_000));
        assert_eq!(
            client_ip(t, XFF, &[("x-forwarded-for", &junk)]),
            "203.0.113.9"
        );
        // 100 trusted-looking hops written by the client, then its real
        // address, appended by the balancer.
        let fake_hops = format!("{}203.0.113.9", "10.0.0.5, ".repeat(100));
        assert_eq!(
            client_ip(t, XFF, &[("x-forwarded-for", &fake_hops)]),
            "203.0.113.9"
        );
        let fwd = format!("{}, for=\"unbalanced, for=203.0.113.9", "x".repeat(10_000));
        assert_eq!(client_ip(t, FWD, &[("forwarded", &fwd)]), "203.0.113.9");
    }

    #[test]
    fn more_than_the_cap_of_trusted_hops_is_ignored() {
        let t = "10.0.0.0/24";
        let hops = |n: usize| {
            let mut list = vec!["203.0.113.9".to_string()];
            list.extend((0..n).map(|i| format!("10.0.0.{}", i % 200 + 2)));
            list.join(", ")
        };
        assert_eq!(
            client_ip(t, XFF, &[("x-forwarded-for", &hops(MAX_HOPS - 1))]),
            "203.0.113.9"
        );
        assert_eq!(
            client_ip(t, XFF, &[("x-forwarded-for", &hops(MAX_HOPS))]),
            PEER
        );
    }

    #[test]
    fn forwarded_elements_with_quotes_ports_and_ipv6() {
        let t = "10.0.0.0/24, 2001:db8:1::/48";
        let fwd = |v| client_ip(t, FWD, &[("forwarded", v)]);
        assert_eq!(fwd("for=203.0.113.9"), "203.0.113.9");
        assert_eq!(fwd("For=\"203.0.113.9\""), "203.0.113.9");
        assert_eq!(fwd("for=\"203.0.113.9:4711\""), "203.0.113.9");
        assert_eq!(fwd("for=203.0.113.9:4711"), "203.0.113.9");
        assert_eq!(fwd("for=\"[2001:db8::1]:4711\""), "2001:db8::1");
        assert_eq!(fwd("for=\"[2001:db8::1]\""), "2001:db8::1");
        assert_eq!(fwd("for=\"2001:db8::1\""), "2001:db8::1");
        assert_eq!(
            fwd("for=192.0.2.60;proto=http;by=203.0.113.43"),
            "192.0.2.60"
        );
        assert_eq!(
            fwd("for=\"[2001:db8::1]:4711\";proto=https, for=\"[2001:db8:1::7]\""),
            "2001:db8::1"
        );
        assert_eq!(
            fwd("for=203.0.113.9, for=198.51.100.4;proto=https, for=10.0.0.7"),
            "198.51.100.4"
        );
        assert_eq!(fwd(" for=203.0.113.9 ; proto=https ;; "), "203.0.113.9");
        // A quoted comma does not split elements.
        assert_eq!(
            fwd("for=203.0.113.9;ext=\"a,b\\\"c,\", for=10.0.0.7"),
            "203.0.113.9"
        );
    }

    #[test]
    fn hidden_forwarded_nodes_leave_the_proxy_that_hid_them() {
        let t = "10.0.0.0/24";
        let fwd = |v| client_ip(t, FWD, &[("forwarded", v)]);
        assert_eq!(fwd("for=unknown"), PEER);
        assert_eq!(fwd("for=_hidden, for=10.0.0.7"), "10.0.0.7");
        assert_eq!(fwd("for=\"_hidden:_port\", for=10.0.0.7"), "10.0.0.7");
        assert_eq!(fwd("for=\"unknown:80\""), PEER);
        assert_eq!(fwd("proto=https, for=10.0.0.7"), "10.0.0.7");
    }

    #[test]
    fn malformed_forwarded_elements_fall_back_to_the_peer() {
        let t = "10.0.0.0/24";
        for garbage in [
            "garbage",
            "for=",
            "for=\"203.0.113.9",
            "for=203.0.113.9;for=198.51.100.4",
            "for=203.0.113.9;proto=https;proto=http",
            "for=\"[2001:db8::1\"",
            "for=\"[2001:db8::1]:port\"",
            "for=_",
            "for=hostname",
            "for=203.0.113.9 junk",
            "=203.0.113.9",
            "for=203.0.113.9, for=\"10.0.0.7",
        ] {
            assert_eq!(
                client_ip(t, FWD, &[("forwarded", garbage)]),
                PEER,
                "{garbage}"
            );
        }
        let long = format!("for=203.0.113.9;ext=\"{}\"", "x".repeat(300));
        assert_eq!(client_ip(t, FWD, &[("forwarded", &long)]), PEER);
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let t = "10.0.0.0/24";
        let both = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.4"),
        ];
        assert_eq!(client_ip(t, XFF, &both), "203.0.113.9");
        assert_eq!(client_ip(t, FWD, &both), "198.51.100.4");
    }

    #[test]
    fn the_scheme_comes_from_trusted_proxies_only() {
        let t = "10.0.0.0/24";
        let https = |header, pairs: &[(&str, &str)]| client(t, header, pairs).https;
        assert!(https(XFF, &[("x-forwarded-proto", "https")]));
        assert!(https(XFF, &[("x-forwarded-proto", " HTTPS , http")]));
        assert!(!https(XFF, &[("x-forwarded-proto", "http")]));
        assert!(!https(XFF, &[("forwarded", "for=203.0.113.9;proto=https")]));
        assert!(!https(XFF, &[]));
        // Forwarded: the proto of the element where the walk ended.
        assert!(https(FWD, &[("forwarded", "for=203.0.113.9;proto=https")]));
        assert!(https(
            FWD,
            &[(
                "forwarded",
                "for=203.0.113.9;proto=https, for=10.0.0.7;proto=http"
            )]
        ));
        assert!(!https(FWD, &[("forwarded", "for=203.0.113.9;proto=http")]));
        assert!(!https(FWD, &[("x-forwarded-proto", "https")]));
        let untrusted = client("", XFF, &[("x-forwarded-proto", "https")]);
        assert!(!untrusted.https);
    }

    #[test]
    fn an_ipv4_peer_seen_through_an_ipv6_socket_is_its_ipv4_address() {
        let c = Client::of(
            ip("::ffff:10.0.0.1"),
            &headers(&[("x-forwarded-for", "203.0.113.9")]),
            &proxies("10.0.0.1", XFF),
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
        let c = Client::of(ip("::ffff:192.0.2.1"), &headers(&[]), &proxies("", XFF));
        assert_eq!(c.ip, ip("192.0.2.1"));
    }

    #[test]
    fn cookies_are_made_secure_once() {
        let mut h = headers(&[
            (
                "set-cookie",
                "s=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=60",
            ),
            ("set-cookie", "f=enc%2F+; Path=/; Secure"),
            ("content-type", "text/plain"),
        ]);
        secure_cookies(&mut h);
        let cookies: Vec<_> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            cookies,
            [
                "s=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=60; Secure",
                "f=enc%2F+; Path=/; Secure",
            ]
        );
        assert_eq!(h["content-type"], "text/plain");
    }
}
