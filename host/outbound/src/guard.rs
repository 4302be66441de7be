//! The address guard: which resolved addresses a request may connect to.
//!
//! Only globally routable unicast addresses pass. The guard runs on the
//! address the client actually connects to, after resolution, so a name that
//! resolves (or re-resolves) to an internal address is refused as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The reason `ip` may not be connected to, or `None` when it may.
///
/// Refused: unspecified, "this network" (0.0.0.0/8), loopback, private
/// (RFC 1918), shared (CGNAT, 100.64.0.0/10), link-local (169.254.0.0/16,
/// fe80::/10), site-local (fec0::/10), unique-local (fc00::/7), the cloud
/// metadata addresses (169.254.169.254, fd00:ec2::254), IETF protocol
/// assignments (192.0.0.0/24), documentation (192.0.2.0/24,
/// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20),
/// benchmarking (198.18.0.0/15, 2001:2::/48), reserved (240.0.0.0/4),
/// broadcast, multicast, discard-only (100::/64), local-use NAT64
/// (64:ff9b:1::/48), and the IPv4-mapped (::ffff:a.b.c.d),
/// IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms of every
/// refused IPv4 address.
pub fn address_refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => v4_refusal(ip),
        IpAddr::V6(ip) => v6_refusal(ip),
    }
}

fn v4_refusal(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if a == 0 {
        Some("\"this network\" (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT, 100.64.0.0/10)")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_documentation() {
        Some("documentation")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol assignment (192.0.0.0/24)")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking (198.18.0.0/15)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else {
        None
    }
}

fn v6_refusal(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("cloud metadata")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if let Some(v4) = embedded_v4(ip) {
        v4_refusal(v4)
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        Some("local-use NAT64 (64:ff9b:1::/48)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("unique-local")
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] & 0xf000 == 0) {
        Some("documentation")
    } else if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
        Some("benchmarking (2001:2::/48)")
    } else if s[0] == 0x100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
        Some("discard-only (100::/64)")
    } else {
        None
    }
}

/// The IPv4 address carried by an IPv4-mapped (::ffff:0:0/96),
/// IPv4-compatible (::/96) or NAT64 (64:ff9b::/96) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s[..6] {
        [0, 0, 0, 0, 0, 0xffff] | [0, 0, 0, 0, 0, 0] | [0x64, 0xff9b, 0, 0, 0, 0] => Some(low),
        _ => None,
    }
}

/// Why `address` cannot be in a [`PrivateOverride`], or `None` when it can:
/// it must be one internal address and port a service listens on. The
/// unspecified address would reach every local address (a connection to
/// `0.0.0.0` goes to the machine itself), port 0 and broadcast or
/// multicast addresses are no service's, and a public address needs no
/// override.
pub fn override_refusal(address: SocketAddr) -> Option<&'static str> {
    // An IPv4-mapped, -compatible or NAT64 address as the IPv4 address it carries.
    let ip = match address.ip() {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => {
            embedded_v4(v6).map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        ip => ip,
    };
    let unspecified = match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified(),
    };
    if unspecified {
        Some(
            "an unspecified address reaches every address of this machine; name the one the \
             service listens on (such as 127.0.0.1)",
        )
    } else if address.port() == 0 {
        Some("port 0 is no service's port")
    } else if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("a broadcast or multicast address is no service's address")
    } else if address_refusal(ip).is_none() {
        Some("it is not an internal address: procedures may reach it without an override")
    } else {
        None
    }
}

/// The development override: exact addresses and ports the guard lets
/// through (the server's repeatable `--http-allow-private-address
/// 127.0.0.1:8080`). Nothing wider: no ranges, no "any port". The host and
/// port must still be on the allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateOverride {
    addresses: Vec<SocketAddr>,
}

impl PrivateOverride {
    /// No override: the guard refuses every address it lists.
    pub fn none() -> Self {
        Self::default()
    }

    /// An override for exactly these addresses and ports; those
    /// [`override_refusal`] refuses are left out.
    pub fn new(addresses: impl IntoIterator<Item = SocketAddr>) -> Self {
        let mut list: Vec<SocketAddr> = Vec::new();
        for address in addresses {
            if override_refusal(address).is_none() && !list.contains(&address) {
                list.push(address);
            }
        }
        Self { addresses: list }
    }

    /// The addresses and ports let through.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The reason a connection to `address` is refused, or `None` when it
    /// may be made (a permitted address, or one listed in the override).
    pub fn refusal(&self, address: SocketAddr) -> Option<&'static str> {
        address_refusal(address.ip()).filter(|_| !self.addresses.contains(&address))
    }
}

impl FromIterator<SocketAddr> for PrivateOverride {
    fn from_iter<I: IntoIterator<Item = SocketAddr>>(iter: I) -> Self {
        Self::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(text: &str) -> Option<&'static str> {
        address_refusal(IpAddr::V4(text.parse().expect("IPv4")))
    }

    fn v6(text: &str) -> Option<&'static str> {
        address_refusal(IpAddr::V6(text.parse().expect("IPv6")))
    }

    /// Refused IPv4 ranges: (first address, last address, reason).
    const REFUSED_V4: &[(&str, &str, &str)] = &[
        ("0.0.0.0", "0.0.0.0", "unspecified"),
        ("0.0.0.1", "0.255.255.255", "\"this network\" (0.0.0.0/8)"),
        ("10.0.0.0", "10.255.255.255", "private (RFC 1918)"),
        (
            "100.64.0.0",
            "100.127.255.255",
            "shared (CGNAT, 100.64.0.0/10)",
        ),
        ("127.0.0.0", "127.255.255.255", "loopback"),
        ("169.254.0.0", "169.254.169.253", "link-local"),
        ("169.254.169.254", "169.254.169.254", "cloud metadata"),
        ("169.254.169.255", "169.254.255.255", "link-local"),
        ("172.16.0.0", "172.31.255.255", "private (RFC 1918)"),
        (
            "192.0.0.0",
            "192.0.0.255",
            "IETF protocol assignment (192.0.0.0/24)",
        ),
        ("192.0.2.0", "192.0.2.255", "documentation"),
        ("192.168.0.0", "192.168.255.255", "private (RFC 1918)"),
        (
            "198.18.0.0",
            "198.19.255.255",
            "benchmarking (198.18.0.0/15)",
        ),
        ("198.51.100.0", "198.51.100.255", "documentation"),
        ("203.0.113.0", "203.0.113.255", "documentation"),
        ("224.0.0.0", "239.255.255.255", "multicast"),
        ("240.0.0.0", "255.255.255.254", "reserved (240.0.0.0/4)"),
        ("255.255.255.255", "255.255.255.255", "broadcast"),
    ];

    /// Public addresses just outside refused ranges.
    const PUBLIC_V4: &[&str] = &[
        "1.0.0.0",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.0.3.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
    ];

    #[test]
    fn every_refused_ipv4_range_is_refused_at_both_ends() {
        for (first, last, reason) in REFUSED_V4 {
            assert_eq!(v4(first), Some(*reason), "{first}");
            assert_eq!(v4(last), Some(*reason), "{last}");
        }
    }

    #[test]
    fn public_ipv4_addresses_pass() {
        for ip in PUBLIC_V4 {
            assert_eq!(v4(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        let refused = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("fec0::1", "site-local"),
            ("fc00::", "unique-local"),
            ("fdff:ffff::1", "unique-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff:fff::1", "documentation"),
            ("2001:2::1", "benchmarking (2001:2::/48)"),
            ("100::1", "discard-only (100::/64)"),
            ("64:ff9b:1::1", "local-use NAT64 (64:ff9b:1::/48)"),
        ];
        for (ip, reason) in refused {
            assert_eq!(v6(ip), Some(reason), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:db9::1",
            "2001:3::1",
            "fbff::1",
            "4000::1",
            "100:0:0:1::1",
            "64:ff9b:2::1",
            "3fff:1000::1",
            "3ffe::1",
        ] {
            assert_eq!(v6(ip), None, "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_forms_follow_the_ipv4_verdict() {
        for (first, last, reason) in REFUSED_V4 {
            for ip in [first, last] {
                for form in ["::ffff:", "::", "64:ff9b::"] {
                    let text = format!("{form}{ip}");
                    if text == "::0.0.0.0" || text == "::0.0.0.1" {
                        continue; // `::` and `::1` have reasons of their own.
                    }
                    assert_eq!(v6(&text), Some(*reason), "{text}");
                }
            }
        }
        for ip in PUBLIC_V4 {
            for form in ["::ffff:", "::", "64:ff9b::"] {
                let text = format!("{form}{ip}");
                assert_eq!(v6(&text), None, "{text}");
            }
        }
        assert_eq!(v6("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(v6("::ffff:169.254.169.254"), Some("cloud metadata"));
        assert_eq!(v6("64:ff9b::10.0.0.1"), Some("private (RFC 1918)"));
    }

    #[test]
    fn the_override_lets_exact_address_and_port_through() {
        let allowed: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let overrides = PrivateOverride::new([allowed, allowed]);
        assert_eq!(overrides.addresses(), &[allowed]);
        assert_eq!(overrides.refusal(allowed), None);
        for other in [
            "127.0.0.1:8081",
            "127.0.0.2:8080",
            "[::ffff:127.0.0.1]:8080",
            "[::1]:8080",
        ] {
            let other: SocketAddr = other.parse().expect("addr");
            assert!(overrides.refusal(other).is_some(), "{other}");
        }
        assert_eq!(
            PrivateOverride::none().refusal("8.8.8.8:53".parse().expect("addr")),
            None
        );
        let collected: PrivateOverride = [allowed].into_iter().collect();
        assert_eq!(collected, overrides);
    }

    // An override names one internal service: not the unspecified address
    // (a connection to 0.0.0.0 reaches the machine itself, so it would
    // open loopback under another name), port 0, broadcast or multicast,
    // nor a public address; such entries are left out of the override.
    #[test]
    fn an_override_names_one_internal_service() {
        for refused in [
            "0.0.0.0:8080",
            "0.1.2.3:8080",
            "[::]:8080",
            "[::ffff:0.0.0.0]:8080",
            "[64:ff9b::]:8080",
            "[::ffff:224.0.0.1]:8080",
            "[::ffff:255.255.255.255]:8080",
            "127.0.0.1:0",
            "255.255.255.255:8080",
            "224.0.0.1:8080",
            "[ff02::1]:8080",
            "8.8.8.8:80",
        ] {
            let address: SocketAddr = refused.parse().expect("addr");
            assert!(override_refusal(address).is_some(), "{refused}");
            assert!(
                PrivateOverride::new([address]).addresses().is_empty(),
                "{refused}"
            );
            let loopback: SocketAddr =
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port());
            assert!(
                PrivateOverride::new([address]).refusal(loopback).is_some() || address.port() == 0
            );
        }
        for accepted in [
            "127.0.0.1:8080",
            "10.0.0.5:443",
            "[::1]:3000",
            "169.254.169.254:80",
        ] {
            let address: SocketAddr = accepted.parse().expect("addr");
            assert_eq!(override_refusal(address), None, "{accepted}");
        }
    }

    fn refused_v4_strategy() -> impl Strategy<Value = Ipv4Addr> {
        prop::sample::select(REFUSED_V4).prop_flat_map(|(first, last, _)| {
            let first = u32::from(first.parse::<Ipv4Addr>().expect("IPv4"));
            let last = u32::from(last.parse::<Ipv4Addr>().expect("IPv4"));
            (first..=last).prop_map(Ipv4Addr::from)
        })
    }

    proptest! {
        #[test]
        fn any_address_inside_a_refused_range_is_refused(ip in refused_v4_strategy()) {
            prop_assert!(v4_refusal(ip).is_some());
            prop_assert!(v6_refusal(ip.to_ipv6_mapped()).is_some());
            let nat64 = Ipv6Addr::from((0x64_u128 << 112) | (0xff9b_u128 << 96) | u128::from(u32::from(ip)));
            prop_assert!(v6_refusal(nat64).is_some());
            prop_assert!(v6_refusal(ip.to_ipv6_compatible()).is_some());
        }

        #[test]
        fn the_ipv6_forms_agree_with_ipv4(ip in any::<u32>().prop_map(Ipv4Addr::from)) {
            let verdict = v4_refusal(ip).is_some();
            prop_assert_eq!(v6_refusal(ip.to_ipv6_mapped()).is_some(), verdict);
            if u32::from(ip) > 1 {
                prop_assert_eq!(v6_refusal(ip.to_ipv6_compatible()).is_some(), verdict);
            }
        }

        #[test]
        fn an_override_lets_nothing_else_through(ip in any::<u32>(), port in any::<u16>()) {
            let listed: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
            let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
            let overrides = PrivateOverride::new([listed]);
            if address != listed {
                prop_assert_eq!(overrides.refusal(address), address_refusal(address.ip()));
            }
        }
    }
}
