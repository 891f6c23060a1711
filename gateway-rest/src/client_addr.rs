//! Which address a request comes from, for per-client limits. The peer of
//! the connection, unless the peer is a proxy the operator trusts
//! (`--trusted-proxy`): then the rightmost address of `X-Forwarded-For` that
//! is not itself a trusted proxy. A forwarded address from anyone else is
//! ignored, so no client can pick the budget it spends.

use std::net::IpAddr;

/// A set of trusted proxy networks, each `ADDRESS` or `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// An IPv4-mapped IPv6 address as IPv4; everything else as is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    /// Parses `--trusted-proxy` values.
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in raw {
            let entry = entry.as_ref().trim();
            let (addr, prefix) = entry.split_once('/').map_or((entry, None), |(a, p)| (a, Some(p)));
            let addr: IpAddr = addr.parse().map_err(|_| format!("--trusted-proxy {entry:?}: not an IP address"))?;
            let max = bits(addr).1;
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("--trusted-proxy {entry:?}: prefix must be 0 to {max}"))?,
            };
            nets.push((canonical(addr), prefix));
        }
        Ok(Self(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (ip, width) = bits(canonical(ip));
        self.0.iter().any(|(net, prefix)| {
            let (net, net_width) = bits(*net);
            let mask = if *prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(*prefix)) };
            net_width == width && (ip & mask) == (net & mask)
        })
    }

    /// The client behind `peer`, given the request's `X-Forwarded-For`.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let hops = forwarded_for.unwrap_or("").rsplit(',').map(str::trim).filter(|h| !h.is_empty());
        for hop in hops {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.contains(ip) => continue,
                Ok(ip) => return canonical(ip),
                // A hop we cannot read: trust nothing to its left.
                Err(_) => return peer,
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(trusted.client(ip("192.0.2.7"), Some("203.0.113.9")), ip("192.0.2.7"), "untrusted peer");
        assert_eq!(trusted.client(ip("10.1.2.3"), Some("203.0.113.9, 10.9.9.9")), ip("203.0.113.9"));
        assert_eq!(trusted.client(ip("10.1.2.3"), None), ip("10.1.2.3"));
        assert_eq!(trusted.client(ip("::ffff:10.1.2.3"), Some("198.51.100.1")), ip("198.51.100.1"), "mapped v4");
        assert_eq!(trusted.client(ip("10.1.2.3"), Some("junk, 198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(trusted.client(ip("10.1.2.3"), Some("198.51.100.1, junk")), ip("10.1.2.3"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local"]).is_err());
    }
}
