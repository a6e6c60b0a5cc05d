//! The load balancers in front of the server: which peers may say who the
//! client is (`TRUSTED_PROXIES`), and in which header they say it
//! (`TRUSTED_PROXY_HEADER`). How a request's client is found from them is
//! `http::client`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ConfigError, Vars};

const TRUSTED_PROXIES: &str = "TRUSTED_PROXIES";
const TRUSTED_PROXY_HEADER: &str = "TRUSTED_PROXY_HEADER";

#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// The peers whose forwarding headers are believed. Empty (the default):
    /// none, and the TCP peer is always the client.
    pub trusted: TrustedProxies,
    /// The one header the trusted proxies maintain. Only one is read: a
    /// proxy that appends to `X-Forwarded-For` passes a client's own
    /// `Forwarded` through untouched (and the other way round), so reading
    /// both would let any client write its audit address.
    pub header: ForwardedHeader,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, with the scheme in `X-Forwarded-Proto` (nginx,
    /// most cloud balancers and platform routers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`, with the scheme in its `proto=` parameter.
    Forwarded,
}

/// Addresses and networks (IPv4 and IPv6) of trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is one of them. IPv4 addresses seen through an IPv6
    /// socket (`::ffff:10.0.0.1`) count as the IPv4 address they are.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the comma-separated list: addresses (`10.0.0.7`, `::1`) and
    /// networks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = network(entry)?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(TrustedProxies(nets))
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{net}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for ForwardedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ForwardedHeader::XForwardedFor => "X-Forwarded-For",
            ForwardedHeader::Forwarded => "Forwarded",
        })
    }
}

impl ProxyConfig {
    /// Who the server takes for the client, for the banner.
    pub fn describe(&self) -> String {
        if self.trusted.is_empty() {
            "the TCP peer (TRUSTED_PROXIES is empty)".into()
        } else {
            format!("{} from {}", self.header, self.trusted)
        }
    }
}

/// One entry of the list.
fn network(entry: &str) -> Result<IpNet, String> {
    let net = match entry.parse::<IpAddr>() {
        Ok(ip) => IpNet::from(ip),
        Err(_) => entry.parse::<IpNet>().map_err(|_| {
            format!("`{entry}` is not an IP address or a network like 10.0.0.0/8 or fd00::/8")
        })?,
    };
    // `10.1.2.3/8` is either a typo for /32 or means 10.0.0.0/8: for a
    // setting that decides whom the audit believes, neither is guessed.
    if net.trunc() != net {
        return Err(format!(
            "`{entry}` has bits set past its prefix: write {} for the network, or the address alone",
            net.trunc()
        ));
    }
    if net.prefix_len() == 0 {
        return Err(format!(
            "`{entry}` trusts every address, so any client could write its own address into the audit: \
             list the balancers' addresses or subnets"
        ));
    }
    if let IpNet::V6(v6) = net
        && v6.network().to_ipv4_mapped().is_some()
    {
        return Err(format!(
            "`{entry}` is an IPv4-mapped IPv6 address: write the IPv4 address or network"
        ));
    }
    Ok(net)
}

impl ProxyConfig {
    pub(crate) fn parse(env: &Vars<'_>) -> Result<Self, ConfigError> {
        let trusted = TrustedProxies::parse(&env.get(TRUSTED_PROXIES).unwrap_or_default())
            .map_err(|reason| ConfigError::new(TRUSTED_PROXIES, reason))?;
        let header = match env.get(TRUSTED_PROXY_HEADER) {
            None => ForwardedHeader::default(),
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "x-forwarded-for" => ForwardedHeader::XForwardedFor,
                "forwarded" => ForwardedHeader::Forwarded,
                _ => {
                    return Err(ConfigError::new(
                        TRUSTED_PROXY_HEADER,
                        format!("`{raw}` is not `X-Forwarded-For` or `Forwarded`"),
                    ));
                }
            },
        };
        Ok(ProxyConfig { trusted, header })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let c = config(&[]).unwrap().proxies;
        assert!(c.trusted.is_empty());
        assert!(!c.trusted.contains(ip("127.0.0.1")));
        assert_eq!(c.header, ForwardedHeader::XForwardedFor);
        assert_eq!(c.describe(), "the TCP peer (TRUSTED_PROXIES is empty)");
    }

    #[test]
    fn addresses_and_networks_of_both_families() {
        let c = config(&[(
            TRUSTED_PROXIES,
            " 10.0.0.0/8, 192.0.2.7 ,2001:db8:1::/48,::1,,",
        )])
        .unwrap()
        .proxies;
        for inside in [
            "10.1.2.3",
            "192.0.2.7",
            "2001:db8:1:ffff::9",
            "::1",
            "::ffff:10.9.9.9",
        ] {
            assert!(c.trusted.contains(ip(inside)), "{inside}");
        }
        for outside in ["11.0.0.1", "192.0.2.8", "2001:db8:2::1", "127.0.0.1", "::2"] {
            assert!(!c.trusted.contains(ip(outside)), "{outside}");
        }
        assert_eq!(
            c.describe(),
            "X-Forwarded-For from 10.0.0.0/8, 192.0.2.7/32, 2001:db8:1::/48, ::1/128"
        );
    }

    #[test]
    fn the_header_is_chosen_by_name() {
        for (raw, header) in [
            ("X-Forwarded-For", ForwardedHeader::XForwardedFor),
            ("forwarded", ForwardedHeader::Forwarded),
            (" Forwarded ", ForwardedHeader::Forwarded),
        ] {
            let c = config(&[(TRUSTED_PROXY_HEADER, raw)]).unwrap();
            assert_eq!(c.proxies.header, header, "{raw}");
        }
        let err = config(&[(TRUSTED_PROXY_HEADER, "X-Real-IP")]).unwrap_err();
        assert_eq!(err.name, TRUSTED_PROXY_HEADER);
    }

    #[test]
    fn a_wrong_entry_is_refused_naming_the_variable_and_the_entry() {
        for (bad, says) in [
            ("10.0.0.0/8, balancer.internal", "balancer.internal"),
            ("10.0.0.256", "not an IP address"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("0.0.0.0/0", "every address"),
            ("::/0", "every address"),
            ("::ffff:10.0.0.1", "IPv4-mapped"),
            ("10.0.0.1:8080", "10.0.0.1:8080"),
        ] {
            let err = config(&[(TRUSTED_PROXIES, bad)]).unwrap_err();
            assert_eq!(err.name, TRUSTED_PROXIES, "{bad}");
            let text = err.to_string();
            assert!(text.contains(TRUSTED_PROXIES), "{bad}: {text}");
            assert!(text.contains(says), "{bad}: {text}");
        }
    }
}
