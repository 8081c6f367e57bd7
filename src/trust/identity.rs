//! Who the peer should be, and whether a certificate says it is that peer.
//!
//! One function for every path (database `verify_chain`, certificate
//! `verify`, the handshake through either of them): RFC 6125 rules, decided
//! here rather than by OpenSSL's `X509_check_host`, which reads a leading
//! dot in the reference name as "any subdomain" and skips the check for an
//! empty name.
//!
//! - The reference identity is a host name or an IP address. Empty,
//!   dots-only, leading-dot, doubled-dot names, names with characters other
//!   than letters, digits, `-` and `_`, labels over 63 octets, names over 253,
//!   and names whose last label is all digits (IPv4 look-alikes such as
//!   `127.1`) are refused: they match nothing (`BAD_IDENTITY`).
//! - One trailing dot is the same name with or without it, on either side.
//! - Unicode names are compared in their A-label (punycode) form, converted
//!   by GLib's `g_hostname_to_ascii` (what GIO resolves); comparison is
//!   ASCII case-insensitive. Presented names must already be ASCII: a U-label
//!   or a NUL in a certificate name matches nothing.
//! - A wildcard matches only as the whole left-most label of a presented name
//!   with at least two more labels after it (`*.example.com`), and stands for
//!   exactly one label; no partial wildcards (`f*.example.com`), no suffix
//!   matches.
//! - IP addresses match only `iPAddress` subject-alternative names, octet for
//!   octet (an IPv4-mapped IPv6 address is not the IPv4 address); never DNS
//!   names, never the common name, never wildcards.
//! - The subject's common name is consulted only when the certificate has no
//!   subjectAltName extension at all and its subject holds exactly one CN.

use std::net::{IpAddr, Ipv6Addr};

use gio::prelude::*;
use openssl::nid::Nid;
use openssl::x509::X509Ref;

/// Longest host name (without the trailing dot), RFC 1035.
const MAX_NAME: usize = 253;
/// Longest label, RFC 1035.
const MAX_LABEL: usize = 63;

/// Who the peer should be: a valid host name (lower-case A-label form, no
/// trailing dot) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Host(String),
    Ip(IpAddr),
}

impl Identity {
    /// The host name or address a GSocketConnectable names; `None` when it
    /// names none or a malformed one (which matches no certificate).
    pub fn from_connectable(c: &gio::SocketConnectable) -> Option<Identity> {
        if let Some(a) = c.downcast_ref::<gio::NetworkAddress>() {
            Identity::parse(&a.hostname())
        } else if let Some(s) = c.downcast_ref::<gio::NetworkService>() {
            Identity::parse(&s.domain())
        } else if let Some(a) = c.downcast_ref::<gio::InetSocketAddress>() {
            Some(Identity::Ip(match a.address().to_bytes()? {
                gio::InetAddressBytes::V4(b) => IpAddr::from(*b),
                gio::InetAddressBytes::V6(b) => IpAddr::from(*b),
            }))
        } else {
            None
        }
    }

    /// An IP address when `s` is an address literal (IPv6 optionally in
    /// brackets and with a `%zone`), else a host name; `None` if malformed.
    pub fn parse(s: &str) -> Option<Identity> {
        // Brackets enclose IPv6 literals only.
        if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            return ipv6_literal(inner).map(|ip| Identity::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Identity::Ip(ip));
        }
        if let Some(ip) = ipv6_literal(s) {
            return Some(Identity::Ip(IpAddr::V6(ip)));
        }
        reference_host(s).map(Identity::Host)
    }

    /// Whether `cert` (the leaf) is a certificate for this identity.
    pub fn matches(&self, cert: &X509Ref) -> bool {
        let sans = cert.subject_alt_names();
        match self {
            Identity::Ip(ip) => {
                let want: Vec<u8> = match ip {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                sans.iter()
                    .flatten()
                    .filter_map(|n| n.ipaddress())
                    .any(|got| got == want.as_slice())
            }
            Identity::Host(host) => {
                if has_san_extension(cert) {
                    // Judged by its SANs alone (RFC 6125 §6.4.4), even when
                    // they cannot be parsed or hold no DNS name.
                    return sans
                        .iter()
                        .flatten()
                        .filter_map(|n| n.dnsname())
                        .any(|presented| host_matches(host, presented));
                }
                let mut cns = cert.subject_name().entries_by_nid(Nid::COMMONNAME);
                let (Some(cn), None) = (cns.next(), cns.next()) else {
                    return false;
                };
                // to_string keeps an interior NUL, which presented_host refuses.
                cn.data()
                    .to_string()
                    .ok()
                    .and_then(|cn| presented_host(&cn))
                    .is_some_and(|presented| wildcard_match(host, &presented))
            }
        }
    }
}

/// An IPv6 literal, with an optional `%zone` (which says which interface,
/// not who the peer is).
fn ipv6_literal(s: &str) -> Option<Ipv6Addr> {
    let addr = s.split_once('%').map_or(s, |(addr, _zone)| addr);
    addr.parse().ok()
}

/// Whether `cert` carries a subjectAltName extension, parseable or not: a
/// certificate with a broken SAN must not fall back to its common name.
fn has_san_extension(cert: &X509Ref) -> bool {
    crate::ossl::has_extension(cert, Nid::SUBJECT_ALT_NAME)
}

/// The reference identity for host name `s`, or `None` if it is malformed.
fn reference_host(s: &str) -> Option<String> {
    if s.is_empty() || s.contains('\0') {
        return None;
    }
    let ascii = if s.is_ascii() {
        s.to_string()
    } else {
        // IDNA (nameprep, punycode): the name GIO resolves.
        glib::hostname_to_ascii(s)?.to_string()
    };
    let name = normalise(&ascii)?;
    let last = name.rsplit('.').next()?;
    if last.bytes().all(|b| b.is_ascii_digit()) {
        // 127.1, 1.2.3.4.5: not a host name, not an address we parse.
        return None;
    }
    Some(name)
}

/// A presented DNS name (dNSName or common name) in comparable form, or
/// `None` if malformed. The left-most label may be the wildcard `*` (checked
/// by [`wildcard_match`]). Presented names must be ASCII (A-labels): a
/// dNSName is an IA5String, and a U-label or a NUL in one matches nothing.
fn presented_host(s: &str) -> Option<String> {
    if !s.is_ascii() || s.contains('\0') {
        return None;
    }
    normalise_presented(s)
}

fn normalise_presented(s: &str) -> Option<String> {
    match s.strip_prefix("*.") {
        Some(rest) => normalise(rest).map(|r| format!("*.{r}")),
        None => normalise(s),
    }
}

/// Lower-case, one trailing dot removed, every label checked.
fn normalise(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    name.split('.').all(valid_label).then(|| name.to_string())
}

/// Whether dNSName `presented` names `host` (already a reference identity).
fn host_matches(host: &str, presented: &str) -> bool {
    presented_host(presented).is_some_and(|p| wildcard_match(host, &p))
}

/// `presented` is normalised and may start with `*.`; `host` is a reference
/// identity. The wildcard stands for exactly one label and needs at least
/// two labels after it.
fn wildcard_match(host: &str, presented: &str) -> bool {
    match presented.strip_prefix("*.") {
        None => host == presented,
        Some(rest) => {
            if !rest.contains('.') {
                return false;
            }
            match host.split_once('.') {
                Some((first, parent)) => !first.is_empty() && parent == rest,
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Option<Identity> {
        Some(Identity::Host(s.into()))
    }

    #[test]
    fn parsing_reference_identities() {
        assert_eq!(Identity::parse("example.com"), host("example.com"));
        assert_eq!(Identity::parse("Example.COM."), host("example.com"));
        assert_eq!(Identity::parse("localhost"), host("localhost"));
        assert_eq!(
            Identity::parse("bücher.example.com"),
            host("xn--bcher-kva.example.com")
        );
        assert_eq!(
            Identity::parse("BÜCHER.example.com."),
            host("xn--bcher-kva.example.com")
        );
        assert_eq!(
            Identity::parse("127.0.0.1"),
            Some(Identity::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            Identity::parse("[::1]"),
            Some(Identity::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            Identity::parse("0:0:0:0:0:0:0:1"),
            Some(Identity::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            Identity::parse("fe80::1%eth0"),
            Some(Identity::Ip("fe80::1".parse().unwrap()))
        );
        for bad in [
            "",
            ".",
            "..",
            "...",
            ".example.com",
            "..example.com",
            "example..com",
            "example.com..",
            "*.example.com",
            "a*.example.com",
            "exa mple.com",
            "example.com/",
            "-example.com",
            "example-.com",
            "127.1",
            "1.2.3.4.5",
            "[example.com]",
            "[127.0.0.1",
            "[127.0.0.1]",
            "。example.com",
        ] {
            assert_eq!(Identity::parse(bad), None, "{bad:?}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert_eq!(Identity::parse(&long_label), None);
        let longest = format!("{}com", "abcdefghi.".repeat(25));
        assert_eq!(longest.len(), 253);
        assert!(Identity::parse(&longest).is_some());
        let long_name = format!("{longest}x");
        assert_eq!(Identity::parse(&long_name), None);
    }

    #[test]
    fn matching_presented_names() {
        let m = |host: &str, presented: &str| {
            let Some(Identity::Host(h)) = Identity::parse(host) else {
                panic!("{host}");
            };
            host_matches(&h, presented)
        };
        assert!(m("example.com", "example.com"));
        assert!(m("example.com", "EXAMPLE.com"));
        assert!(m("example.com.", "example.com"));
        assert!(m("example.com", "example.com."));
        assert!(m("example.com.", "example.com."));
        assert!(!m("example.com", "example.com.."));
        assert!(!m("example.com", ".example.com"));
        assert!(m("a.example.com", "*.example.com"));
        assert!(m("a.example.com.", "*.example.com."));
        assert!(!m("a.b.example.com", "*.example.com"));
        assert!(!m("example.com", "*.example.com"));
        assert!(!m("a.com", "*.com"));
        assert!(!m("foo.example.com", "f*.example.com"));
        assert!(!m("foo.example.com", "*o.example.com"));
        assert!(!m("a.b.example.com", "a.*.example.com"));
        assert!(!m("a.b.example.com", "*.*.example.com"));
        assert!(!m("evil.example.com", "example.com"));
        assert!(!m("example.com", "evil.example.com"));
        assert!(!m("example.com", "example.com\0.evil.com"));
        assert!(m("bücher.example.com", "xn--bcher-kva.example.com"));
        assert!(m("xn--bcher-kva.example.com", "xn--bcher-kva.example.com"));
        assert!(m("bücher.example.com", "*.example.com"));
        assert!(!m("bücher.example.com", "bücher.example.com"));
    }
}
