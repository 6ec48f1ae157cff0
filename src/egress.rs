//! Requests to URLs that users give — campaigns' media URLs (checked by the API and the
//! worker) and tenants' webhook subscriptions — reach only public addresses, unless
//! `egress.allow_private_networks` is on (development and tests, where the sandbox serves
//! on 127.0.0.1). Otherwise anyone who can save a campaign or a subscription could make
//! Arauto request its own network: the cloud metadata service (169.254.169.254), Redis,
//! Postgres, the admin side of the gateway (a server-side request forgery, OWASP
//! "SSRF Prevention Cheat Sheet").
//!
//! Two guards, because a URL names an address either way: host names go through
//! [`PublicOnly`], a DNS resolver that drops non-public addresses (so the connection is made
//! to the very addresses checked: no DNS rebinding between check and use); IP literals, which
//! no resolver sees, are checked by [`check_url`] before the request and on each redirect
//! ([`redirect_policy`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918, IPv6 unique
/// local `fc00::/7`), link-local (`169.254.0.0/16`, the cloud metadata range, `fe80::/10`),
/// shared (CGNAT `100.64.0.0/10`), unspecified, broadcast, multicast, benchmarking or
/// documentation; an IPv4-mapped IPv6 address is judged as its IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && c == 0)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// Why a URL may not be requested: its host is an IP literal that is not public.
pub fn check_url(url: &reqwest::Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or("");
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    match literal {
        Some(ip) if !is_public(ip) => Err(format!("{ip} is not a public address")),
        _ => Ok(()),
    }
}

/// Follows at most `max` redirects, each to a URL [`check_url`] accepts.
pub fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= max {
            return attempt.error(format!("more than {max} redirects"));
        }
        match check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(format!("redirected to a private address: {why}")),
        }
    })
}

/// A DNS resolver that answers only the public addresses of a name (see the module
/// documentation); a name with none fails to resolve.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let why = format!("{host} resolves to no public address");
                return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, why).into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// `builder` guarded as the module documentation says, unless `allow_private` (then as it
/// is). Redirects are the caller's: use [`redirect_policy`] when they are followed.
pub fn guard(builder: reqwest::ClientBuilder, allow_private: bool) -> reqwest::ClientBuilder {
    if allow_private {
        builder
    } else {
        builder.dns_resolver(std::sync::Arc::new(PublicOnly))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!public(inside), "{inside} must not be public");
        }
        for outside in ["8.8.8.8", "151.101.1.69", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(public(outside), "{outside} is public");
        }
    }

    #[test]
    fn an_ip_literal_url_is_checked_and_a_host_name_left_to_the_resolver() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_url(&url("http://169.254.169.254/latest/meta-data")).is_err());
        assert!(check_url(&url("http://[::1]:6379/")).is_err());
        assert!(check_url(&url("https://8.8.8.8/a.png")).is_ok());
        assert!(check_url(&url("https://cdn.example.com/a.png")).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_private_addresses_does_not_resolve() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(PublicOnly.resolve(name).await.is_err());
    }
}
