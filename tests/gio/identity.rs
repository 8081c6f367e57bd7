//! Issue 13: verification nobody can talk around. Every case compares our
//! flags with the correct answer, through `g_tls_database_verify_chain` (a
//! GTlsFileDatabase trusting the CA) and `g_tls_certificate_verify` (the CA
//! as trusted_ca), and the security-relevant ones through a real DTLS
//! handshake against `openssl s_server -dtls1_2`. Revocation is checked
//! through file databases and, in a child process of this binary, through the
//! default database built from `SSL_CERT_DIR` / `SSL_CERT_FILE`.
//!
//! The certificates are made here, at test time, with the openssl crate:
//! subjectAltName extensions are encoded by hand so that malformed names
//! (NUL bytes, doubled dots, partial wildcards) can be presented.

use std::path::PathBuf;
use std::sync::OnceLock;

use gio::prelude::*;
use gio::TlsCertificateFlags as F;
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time, Asn1Type};
use openssl::bn::BigNum;
use openssl::dsa::Dsa;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Crl, X509CrlBuilder, X509Extension, X509Name, X509RevokedBuilder, X509};

use crate::common::dtls::{client, recv, send};
use crate::common::peers::{OpensslServer, OpensslServerOpts};
use crate::common::{self, host, ip};

const SERVER: &str = "1.3.6.1.5.5.7.3.1";
const DAY: i64 = 86_400;

// --- making certificates ------------------------------------------------------

/// A certificate and its key.
struct Issued {
    cert: X509,
    key: PKey<Private>,
}

fn ec_key(curve: Nid) -> PKey<Private> {
    let group = EcGroup::from_curve_name(curve).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn p256() -> PKey<Private> {
    ec_key(Nid::X9_62_PRIME256V1)
}

fn rsa_key(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

/// A subjectAltName entry: context tag and content octets.
#[derive(Clone)]
struct San(u8, Vec<u8>);

fn dns(name: &str) -> San {
    San(0x82, name.as_bytes().to_vec())
}

fn ip_san(addr: &str) -> San {
    let octets = match addr.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    San(0x87, octets)
}

fn uri(u: &str) -> San {
    San(0x86, u.as_bytes().to_vec())
}

fn email(e: &str) -> San {
    San(0x81, e.as_bytes().to_vec())
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A subjectAltName extension holding exactly `names` (possibly none).
fn san_extension(names: &[San]) -> X509Extension {
    let body: Vec<u8> = names.iter().flat_map(|San(t, v)| tlv(*t, v)).collect();
    let der = tlv(0x30, &body);
    X509Extension::new_from_der(
        &Asn1Object::from_str("2.5.29.17").unwrap(),
        false,
        &Asn1OctetString::new_from_bytes(&der).unwrap(),
    )
    .unwrap()
}

/// What to put in a certificate.
struct Spec {
    cns: Vec<String>,
    sans: Option<Vec<San>>,
    key: PKey<Private>,
    md: MessageDigest,
    ca: bool,
}

impl Spec {
    /// A server leaf with a P-256 key, SHA-256, no names.
    fn leaf() -> Spec {
        Spec {
            cns: Vec::new(),
            sans: None,
            key: shared_leaf_key().clone(),
            md: MessageDigest::sha256(),
            ca: false,
        }
    }

    fn ca(cn: &str) -> Spec {
        Spec {
            cns: vec![cn.into()],
            ca: true,
            key: p256(),
            ..Spec::leaf()
        }
    }

    fn cn(mut self, cn: &str) -> Spec {
        self.cns.push(cn.into());
        self
    }

    fn sans(mut self, names: &[San]) -> Spec {
        self.sans = Some(names.to_vec());
        self
    }

    fn key(mut self, key: PKey<Private>) -> Spec {
        self.key = key;
        self
    }

    fn md(mut self, md: MessageDigest) -> Spec {
        self.md = md;
        self
    }

    /// Signed by `issuer`, or self-signed when `None`.
    fn issue(self, issuer: Option<&Issued>) -> Issued {
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_nid_with_type(
            Nid::ORGANIZATIONNAME,
            "gio-dtls-openssl identity tests",
            Asn1Type::UTF8STRING,
        )
        .unwrap();
        for cn in &self.cns {
            // With its length: a NUL inside the name is kept.
            name.append_entry_by_nid_with_type(Nid::COMMONNAME, cn, Asn1Type::UTF8STRING)
                .unwrap();
        }
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial
            .rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)
            .unwrap();
        b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&*name, |i| i.cert.subject_name()))
            .unwrap();
        b.set_pubkey(&self.key).unwrap();
        let now = now();
        b.set_not_before(&Asn1Time::from_unix(now - DAY).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + 30 * DAY).unwrap())
            .unwrap();
        if self.ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
            let ski = SubjectKeyIdentifier::new()
                .build(&b.x509v3_context(None, None))
                .unwrap();
            b.append_extension(ski).unwrap();
        } else {
            b.append_extension(BasicConstraints::new().critical().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()
                    .unwrap(),
            )
            .unwrap();
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
                .unwrap();
        }
        if let Some(sans) = &self.sans {
            b.append_extension(san_extension(sans)).unwrap();
        }
        let signer = issuer.map_or(&self.key, |i| &i.key);
        b.sign(signer, self.md).unwrap();
        Issued {
            cert: b.build(),
            key: self.key,
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn shared_leaf_key() -> &'static PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(p256)
}

/// The CA every identity case is issued by.
fn root() -> &'static Issued {
    static ROOT: OnceLock<Issued> = OnceLock::new();
    ROOT.get_or_init(|| Spec::ca("Identity Test Root CA").issue(None))
}

/// A directory of this process's test PKI for our files.
fn dir() -> PathBuf {
    let d = common::init().pki.join("identity");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `pem` to a fresh file and returns its path.
fn write(name: &str, pem: &[u8]) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = dir().join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, pem).unwrap();
    path
}

/// A GTlsFileDatabase whose anchors file holds `certs` then `crls`.
fn file_db(certs: &[&X509], crls: &[&X509Crl]) -> gio::TlsDatabase {
    let mut pem = Vec::new();
    for c in certs {
        pem.extend(c.to_pem().unwrap());
    }
    for c in crls {
        pem.extend(c.to_pem().unwrap());
    }
    let path = write("anchors.pem", &pem);
    gio::TlsFileDatabase::new(path).unwrap().upcast()
}

/// `chain[0]` with issuer links to the rest, as our backend's certificate.
fn gio_chain(chain: &[&X509]) -> gio::TlsCertificate {
    let pem: Vec<u8> = chain.iter().flat_map(|c| c.to_pem().unwrap()).collect();
    common::init();
    gio::TlsCertificate::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap()
}

fn gio_cert(x: &X509) -> gio::TlsCertificate {
    gio_chain(&[x])
}

fn verify_chain(
    db: &gio::TlsDatabase,
    chain: &gio::TlsCertificate,
    id: Option<&gio::SocketConnectable>,
) -> F {
    db.verify_chain(
        chain,
        SERVER,
        id,
        None::<&gio::TlsInteraction>,
        gio::TlsDatabaseVerifyFlags::NONE,
        gio::Cancellable::NONE,
    )
    .unwrap()
}

fn root_db() -> &'static (gio::TlsDatabase, gio::TlsCertificate) {
    // GObjects are not Sync; keep one per thread instead.
    thread_local! {
        static DB: &'static (gio::TlsDatabase, gio::TlsCertificate) =
            Box::leak(Box::new((file_db(&[&root().cert], &[]), gio_cert(&root().cert))));
    }
    DB.with(|d| *d)
}

/// A GInetSocketAddress for `addr` exactly as written (an IPv4-mapped IPv6
/// address stays IPv6).
fn ip6(addr: &str) -> gio::SocketConnectable {
    let a = gio::InetAddress::from_string(addr).unwrap();
    assert_eq!(a.family(), gio::SocketFamily::Ipv6);
    gio::InetSocketAddress::new(&a, 0).upcast()
}

fn service(domain: &str) -> gio::SocketConnectable {
    gio::NetworkService::new("coap", "udp", domain).upcast()
}

/// Checks `cert` for `id` both ways; returns a description of any mismatch.
fn check(cert: &X509, id: &gio::SocketConnectable, want: F, what: &str) -> Option<String> {
    let (db, ca) = root_db();
    let gcert = gio_cert(cert);
    let by_db = verify_chain(db, &gcert, Some(id));
    let by_cert = gcert.verify(Some(id), Some(ca));
    (by_db != want || by_cert != want).then(|| {
        format!("{what}: want {want:?}, verify_chain gave {by_db:?}, g_tls_certificate_verify gave {by_cert:?}")
    })
}

fn describe(id: &gio::SocketConnectable) -> String {
    if let Some(a) = id.downcast_ref::<gio::NetworkAddress>() {
        format!("host {:?}", a.hostname().as_str())
    } else if let Some(s) = id.downcast_ref::<gio::NetworkService>() {
        format!("service domain {:?}", s.domain().as_str())
    } else if let Some(a) = id.downcast_ref::<gio::InetSocketAddress>() {
        format!("address {}", a.address())
    } else {
        "?".into()
    }
}

/// Runs a table of (identity, expected) against one certificate.
fn table(
    label: &str,
    cert: &X509,
    cases: &[(gio::SocketConnectable, F)],
    failures: &mut Vec<String>,
) {
    for (id, want) in cases {
        let what = format!("{label} / {}", describe(id));
        failures.extend(check(cert, id, *want, &what));
    }
}

const OK: F = F::empty();
const BAD: F = F::BAD_IDENTITY;

fn leaf_for(names: &[San]) -> X509 {
    Spec::leaf()
        .cn("example.com")
        .sans(names)
        .issue(Some(root()))
        .cert
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// --- identity -----------------------------------------------------------------

#[test]
fn identities_that_are_not_host_names_match_nothing() {
    let cert = leaf_for(&[dns("example.com"), dns("www.example.com")]);
    let mut failures = Vec::new();
    table(
        "SAN example.com",
        &cert,
        &[
            (host("example.com"), OK),
            (host("EXAMPLE.Com"), OK),
            (host("example.com."), OK),
            (service("example.com"), OK),
            (host(""), BAD),
            (host("."), BAD),
            (host(".."), BAD),
            (host("..."), BAD),
            (service("."), BAD),
            (service(""), BAD),
            (host("example.com.."), BAD),
            (service("example.com.."), BAD),
            (host(".example.com"), BAD),
            (host("..example.com"), BAD),
            (host("example..com"), BAD),
            (host("www..example.com"), BAD),
            (host("*.example.com"), BAD),
            (host("com"), BAD),
            (host("ample.com"), BAD),
            (host("example.co"), BAD),
            (host("example.com.evil"), BAD),
            (host("evil.example.com"), BAD),
            (host("example com"), BAD),
        ],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn a_leading_dot_is_not_any_subdomain() {
    let mut failures = Vec::new();
    let evil = leaf_for(&[dns("evil.example.com")]);
    table(
        "SAN evil.example.com",
        &evil,
        &[
            (host(".example.com"), BAD),
            (host(".com"), BAD),
            (service(".example.com"), BAD),
            (host("evil.example.com"), OK),
            (host("example.com"), BAD),
        ],
        &mut failures,
    );
    let deep = leaf_for(&[dns("a.b.evil.example.com")]);
    table(
        "SAN a.b.evil.example.com",
        &deep,
        &[
            (host(".example.com"), BAD),
            (host(".evil.example.com"), BAD),
            (host(".b.evil.example.com"), BAD),
            (host("a.b.evil.example.com"), OK),
        ],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn trailing_dots() {
    let mut failures = Vec::new();
    let dotted = leaf_for(&[dns("example.com.")]);
    table(
        "SAN example.com.",
        &dotted,
        &[
            (host("example.com"), OK),
            (host("example.com."), OK),
            (host("example.com.."), BAD),
        ],
        &mut failures,
    );
    let doubled = leaf_for(&[dns("example.com..")]);
    table(
        "SAN example.com..",
        &doubled,
        &[(host("example.com"), BAD), (host("example.com."), BAD)],
        &mut failures,
    );
    let leading = leaf_for(&[dns(".example.com")]);
    table(
        "SAN .example.com",
        &leading,
        &[
            (host("example.com"), BAD),
            (host("www.example.com"), BAD),
            (host(".example.com"), BAD),
        ],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn wildcards_only_as_the_whole_left_most_label() {
    let mut failures = Vec::new();
    let wild = leaf_for(&[dns("*.example.com")]);
    table(
        "SAN *.example.com",
        &wild,
        &[
            (host("a.example.com"), OK),
            (host("A.Example.COM."), OK),
            (host("xn--bcher-kva.example.com"), OK),
            (host("bücher.example.com"), OK),
            (host("a.b.example.com"), BAD),
            (host("example.com"), BAD),
            (host(".example.com"), BAD),
            (host("*.example.com"), BAD),
            (host("a.example.org"), BAD),
            (host("aexample.com"), BAD),
        ],
        &mut failures,
    );
    for (presented, id) in [
        ("f*.example.com", "foo.example.com"),
        ("*o.example.com", "foo.example.com"),
        ("f*o.example.com", "foo.example.com"),
        ("a.*.example.com", "a.b.example.com"),
        ("*.*.example.com", "a.b.example.com"),
        ("**.example.com", "a.example.com"),
        ("*.com", "example.com"),
        ("*", "localhost"),
        ("*.", "localhost"),
        ("xn--*.example.com", "xn--bcher-kva.example.com"),
    ] {
        let cert = leaf_for(&[dns(presented)]);
        table(
            &format!("SAN {presented}"),
            &cert,
            &[(host(id), BAD)],
            &mut failures,
        );
    }
    assert_no_failures(failures);
}

#[test]
fn the_common_name_only_without_any_san_and_alone() {
    let mut failures = Vec::new();
    let root = Some(root());
    let cn_only = Spec::leaf().cn("example.com").issue(root).cert;
    table(
        "CN example.com, no SAN",
        &cn_only,
        &[
            (host("example.com"), OK),
            (host("example.com."), OK),
            (host("www.example.com"), BAD),
            (host(".example.com"), BAD),
            (host(""), BAD),
        ],
        &mut failures,
    );
    let cn_wild = Spec::leaf().cn("*.example.com").issue(root).cert;
    table(
        "CN *.example.com, no SAN",
        &cn_wild,
        &[
            (host("www.example.com"), OK),
            (host("a.b.example.com"), BAD),
            (host("example.com"), BAD),
        ],
        &mut failures,
    );
    let two_cns = Spec::leaf()
        .cn("example.com")
        .cn("other.example.org")
        .issue(root)
        .cert;
    table(
        "CN example.com + CN other.example.org, no SAN",
        &two_cns,
        &[(host("example.com"), BAD), (host("other.example.org"), BAD)],
        &mut failures,
    );
    let with_san = |sans: &[San]| Spec::leaf().cn("example.com").sans(sans).issue(root).cert;
    for (label, cert) in [
        (
            "CN example.com, SAN IP only",
            with_san(&[ip_san("192.0.2.1")]),
        ),
        (
            "CN example.com, SAN URI only",
            with_san(&[uri("https://example.com/")]),
        ),
        (
            "CN example.com, SAN email only",
            with_san(&[email("a@example.com")]),
        ),
        (
            "CN example.com, SAN other.example.org",
            with_san(&[dns("other.example.org")]),
        ),
        ("CN example.com, empty SAN", with_san(&[])),
    ] {
        table(label, &cert, &[(host("example.com"), BAD)], &mut failures);
    }
    let cn_ip = Spec::leaf().cn("192.0.2.1").issue(root).cert;
    table(
        "CN 192.0.2.1, no SAN",
        &cn_ip,
        &[(ip("192.0.2.1"), BAD), (host("192.0.2.1"), BAD)],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn ip_addresses_match_ip_sans_octet_for_octet() {
    let mut failures = Vec::new();
    let cert = leaf_for(&[
        dns("example.com"),
        ip_san("192.0.2.1"),
        ip_san("2001:db8::1"),
    ]);
    table(
        "SAN IP 192.0.2.1, IP 2001:db8::1",
        &cert,
        &[
            (ip("192.0.2.1"), OK),
            (host("192.0.2.1"), OK),
            (ip("2001:db8::1"), OK),
            (host("2001:db8::1"), OK),
            (host("[2001:db8::1]"), OK),
            (ip("2001:0db8:0000:0000:0000:0000:0000:0001"), OK),
            (host("2001:db8:0:0:0:0:0:1"), OK),
            (ip("192.0.2.2"), BAD),
            (ip("2001:db8::2"), BAD),
            // IPv4-mapped IPv6 is another address (GLib's
            // g_inet_socket_address_new_from_string would turn it into
            // IPv4 itself: build it from a GInetAddress).
            (ip6("::ffff:192.0.2.1"), BAD),
            (host("::ffff:192.0.2.1"), BAD),
            // Not address literals, and not host names either.
            (host("192.0.2.1."), BAD),
            (host("192.0.2"), BAD),
            (host("[192.0.2.1]"), BAD),
        ],
        &mut failures,
    );
    let mapped = leaf_for(&[ip_san("::ffff:192.0.2.1")]);
    table(
        "SAN IP ::ffff:192.0.2.1",
        &mapped,
        &[
            (ip6("::ffff:192.0.2.1"), OK),
            (host("::ffff:192.0.2.1"), OK),
            (ip("192.0.2.1"), BAD),
            (host("192.0.2.1"), BAD),
        ],
        &mut failures,
    );
    let as_dns = leaf_for(&[dns("192.0.2.1"), dns("*.0.2.1"), dns("2001:db8::1")]);
    table(
        "SAN DNS 192.0.2.1, DNS *.0.2.1, DNS 2001:db8::1",
        &as_dns,
        &[
            (ip("192.0.2.1"), BAD),
            (host("192.0.2.1"), BAD),
            (ip("2001:db8::1"), BAD),
        ],
        &mut failures,
    );
    let wild_only = leaf_for(&[dns("*.example.com")]);
    table(
        "SAN *.example.com",
        &wild_only,
        &[(ip("192.0.2.1"), BAD)],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn unicode_names_compare_as_a_labels() {
    let mut failures = Vec::new();
    let cert = leaf_for(&[dns("xn--bcher-kva.example.com")]);
    table(
        "SAN xn--bcher-kva.example.com",
        &cert,
        &[
            (host("bücher.example.com"), OK),
            (host("BÜCHER.example.com"), OK),
            (host("bücher.example.com."), OK),
            (host("xn--bcher-kva.example.com"), OK),
            (host("XN--BCHER-KVA.EXAMPLE.COM"), OK),
            (host("bucher.example.com"), BAD),
            (host(".bücher.example.com"), BAD),
        ],
        &mut failures,
    );
    // A U-label is not a valid dNSName (IA5String): it matches nothing.
    let raw = leaf_for(&[dns("bücher.example.com")]);
    table(
        "SAN bücher.example.com (raw UTF-8)",
        &raw,
        &[
            (host("bücher.example.com"), BAD),
            (host("xn--bcher-kva.example.com"), BAD),
        ],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn names_with_nul_match_nothing() {
    let mut failures = Vec::new();
    let san = leaf_for(&[dns("example.com\0.evil.org"), dns("www.example.com\0")]);
    table(
        "SAN example.com\\0.evil.org, www.example.com\\0",
        &san,
        &[
            (host("example.com"), BAD),
            (host("evil.org"), BAD),
            (host("www.example.com"), BAD),
        ],
        &mut failures,
    );
    let cn = Spec::leaf()
        .cn("example.com\0.evil.org")
        .issue(Some(root()))
        .cert;
    table(
        "CN example.com\\0.evil.org, no SAN",
        &cn,
        &[(host("example.com"), BAD), (host("evil.org"), BAD)],
        &mut failures,
    );
    assert_no_failures(failures);
}

#[test]
fn without_an_identity_nothing_is_checked_and_other_flags_stay() {
    let (db, ca) = root_db();
    let cert = gio_cert(&leaf_for(&[dns("example.com")]));
    assert_eq!(verify_chain(db, &cert, None), OK);
    assert_eq!(cert.verify(None::<&gio::SocketConnectable>, Some(ca)), OK);
    // An untrusted chain with a bad identity reports both.
    let other = Spec::ca("Other Identity CA").issue(None);
    let stranger = Spec::leaf()
        .sans(&[dns("example.com")])
        .issue(Some(&other))
        .cert;
    assert_eq!(
        verify_chain(db, &gio_cert(&stranger), Some(&host(".example.com"))),
        F::UNKNOWN_CA | BAD
    );
}

// --- identity in a real handshake -----------------------------------------------

/// Serves `leaf` with `openssl s_server -dtls1_2`; a client trusting the
/// identity root connects for `identity`. Returns the peer-certificate errors,
/// the flags accept-certificate was asked with (if it was), and whether the
/// handshake succeeded (accept-certificate answers FALSE).
fn handshake(leaf: &Issued, identity: &str) -> (F, Option<F>, bool) {
    handshake_with(leaf, identity, &[])
}

/// [`handshake`] with more `openssl s_server` arguments.
fn handshake_with(leaf: &Issued, identity: &str, server_args: &[&str]) -> (F, Option<F>, bool) {
    let cert = write("leaf.pem", &leaf.cert.to_pem().unwrap());
    let key = write("leaf.key", &leaf.key.private_key_to_pem_pkcs8().unwrap());
    let mut opts = OpensslServerOpts::new(&common::init().pki)
        .cert(&cert, &key)
        .echo_prefix("ECHO:");
    for a in server_args {
        opts = opts.arg(a);
    }
    let server = OpensslServer::start(opts);
    let conn = client(server.addr(), Some(identity));
    conn.set_database(Some(&root_db().0));
    let asked = std::rc::Rc::new(std::cell::Cell::new(None));
    let a = asked.clone();
    conn.connect_accept_certificate(move |_, _, errors| {
        a.set(Some(errors));
        false
    });
    let result = conn.handshake(gio::Cancellable::NONE);
    if let Err(e) = &result {
        assert!(e.matches(gio::TlsError::BadCertificate), "{identity}: {e}");
    } else {
        // Really connected: data goes both ways.
        send(&conn, b"ECHO:hello\n", -1).unwrap();
        assert_eq!(recv(&conn, 64, 5_000_000).unwrap(), b"ECHO:hello\n");
    }
    (conn.peer_certificate_errors(), asked.get(), result.is_ok())
}

#[test]
fn handshake_refuses_empty_dotted_and_leading_dot_identities() {
    let root = Some(root());
    let exact = Spec::leaf().sans(&[dns("example.com")]).issue(root);
    let evil = Spec::leaf().sans(&[dns("evil.example.com")]).issue(root);
    let deep = Spec::leaf()
        .sans(&[dns("a.b.evil.example.com")])
        .issue(root);
    for (leaf, identity) in [
        (&exact, ""),
        (&exact, "."),
        (&exact, "..."),
        (&exact, "example.com.."),
        (&evil, ".example.com"),
        (&deep, ".example.com"),
        (&deep, ".evil.example.com"),
    ] {
        let (errors, asked, ok) = handshake(leaf, identity);
        assert_eq!(errors, BAD, "{identity:?}");
        assert_eq!(asked, Some(BAD), "{identity:?}: accept-certificate asked");
        assert!(!ok, "{identity:?}");
    }
}

#[test]
fn handshake_accepts_trailing_dot_and_unicode_identities() {
    let root = Some(root());
    let exact = Spec::leaf().sans(&[dns("example.com")]).issue(root);
    let idn = Spec::leaf()
        .sans(&[dns("xn--bcher-kva.example.com")])
        .issue(root);
    for (leaf, identity) in [
        (&exact, "example.com"),
        (&exact, "example.com."),
        (&idn, "bücher.example.com"),
    ] {
        let (errors, asked, ok) = handshake(leaf, identity);
        assert_eq!((errors, asked, ok), (OK, None, true), "{identity:?}");
    }
}

/// Serves each leaf for its identity and expects exactly `want` as the
/// peer-certificate errors; when not empty, accept-certificate must have been
/// asked with exactly those flags and (answering FALSE) the handshake fails
/// with `G_TLS_ERROR_BAD_CERTIFICATE`; when empty, it is not asked and data
/// flows.
fn expect_handshakes(cases: &[(&Issued, &str, F)], server_args: &[&str]) {
    let mut failures = Vec::new();
    for (leaf, identity, want) in cases {
        let (errors, asked, ok) = handshake_with(leaf, identity, server_args);
        let expected = if want.is_empty() {
            (OK, None, true)
        } else {
            (*want, Some(*want), false)
        };
        if (errors, asked, ok) != expected {
            failures.push(format!(
                "{identity:?}: want (errors, accept-certificate asked, connected) = \
                 {expected:?}, got {:?}",
                (errors, asked, ok)
            ));
        }
    }
    assert_no_failures(failures);
}

#[test]
fn handshake_wildcards_stand_for_exactly_one_whole_label() {
    let root = Some(root());
    let wild = Spec::leaf().sans(&[dns("*.example.com")]).issue(root);
    let partial = Spec::leaf().sans(&[dns("f*.example.com")]).issue(root);
    expect_handshakes(
        &[
            (&wild, "a.example.com", OK),
            (&wild, "example.com", BAD),
            (&wild, "a.b.example.com", BAD),
            (&partial, "foo.example.com", BAD),
        ],
        &[],
    );
}

#[test]
fn handshake_ignores_the_common_name_when_a_san_is_present() {
    let root = Some(root());
    let san_and_cn = Spec::leaf()
        .cn("target.example.com")
        .sans(&[dns("other.example.org")])
        .issue(root);
    let cn_only = Spec::leaf().cn("target.example.com").issue(root);
    expect_handshakes(
        &[
            (&san_and_cn, "target.example.com", BAD),
            (&san_and_cn, "other.example.org", OK),
            // The control: the same CN alone is the identity.
            (&cn_only, "target.example.com", OK),
        ],
        &[],
    );
}

#[test]
fn handshake_ip_identity_needs_an_ip_san() {
    let root = Some(root());
    let dns_only = Spec::leaf()
        .cn("127.0.0.1")
        .sans(&[dns("127.0.0.1"), dns("localhost")])
        .issue(root);
    let with_ip = Spec::leaf()
        .sans(&[dns("localhost"), ip_san("127.0.0.1")])
        .issue(root);
    let other_ip = Spec::leaf().sans(&[ip_san("127.0.0.2")]).issue(root);
    expect_handshakes(
        &[
            (&dns_only, "127.0.0.1", BAD),
            (&with_ip, "127.0.0.1", OK),
            (&other_ip, "127.0.0.1", BAD),
        ],
        &[],
    );
}

#[test]
fn handshake_with_an_rsa_1024_server_is_insecure() {
    let root = Some(root());
    let weak = Spec::leaf()
        .sans(&[dns("example.com")])
        .key(rsa_key(1024))
        .issue(root);
    let strong = Spec::leaf()
        .sans(&[dns("example.com")])
        .key(rsa_key(2048))
        .issue(root);
    // s_server itself refuses to load an RSA-1024 certificate at its
    // default security level 2.
    let level1 = ["-cipher", "DEFAULT@SECLEVEL=1"];
    expect_handshakes(
        &[
            (&weak, "example.com", F::INSECURE),
            (&weak, "wrong.example.com", F::INSECURE | BAD),
            (&strong, "example.com", OK),
        ],
        &level1,
    );
}

// --- key strength ----------------------------------------------------------------

/// Verifies `chain` (leaf first) against a file database trusting `anchor`,
/// and with `g_tls_certificate_verify` (anchor as trusted_ca); both must
/// agree.
fn chain_flags(chain: &[&X509], anchor: &X509) -> F {
    let db = file_db(&[anchor], &[]);
    let c = gio_chain(chain);
    let by_db = verify_chain(&db, &c, None);
    let by_cert = c.verify(None::<&gio::SocketConnectable>, Some(&gio_cert(anchor)));
    assert_eq!(
        by_db, by_cert,
        "verify_chain and g_tls_certificate_verify differ"
    );
    by_db
}

#[test]
fn keys_and_signatures_below_112_bits_are_insecure() {
    let root = root();
    let mut failures = Vec::new();
    let mut expect = |what: &str, chain: &[&X509], anchor: &X509, want: F| {
        let got = chain_flags(chain, anchor);
        if got != want {
            failures.push(format!("{what}: want {want:?}, got {got:?}"));
        }
    };
    let leaf = |key: PKey<Private>| Spec::leaf().key(key).issue(Some(root)).cert;
    expect("RSA-2048 leaf", &[&leaf(rsa_key(2048))], &root.cert, OK);
    expect(
        "RSA-1024 leaf",
        &[&leaf(rsa_key(1024))],
        &root.cert,
        F::INSECURE,
    );
    expect(
        "RSA-768 leaf",
        &[&leaf(rsa_key(768))],
        &root.cert,
        F::INSECURE,
    );
    expect(
        "RSA-512 leaf",
        &[&leaf(rsa_key(512))],
        &root.cert,
        F::INSECURE,
    );
    let dsa = PKey::from_dsa(Dsa::generate(1024).unwrap()).unwrap();
    expect("DSA-1024 leaf", &[&leaf(dsa)], &root.cert, F::INSECURE);
    expect(
        "EC P-224 leaf",
        &[&leaf(ec_key(Nid::SECP224R1))],
        &root.cert,
        OK,
    );
    expect(
        "EC P-192 leaf",
        &[&leaf(ec_key(Nid::X9_62_PRIME192V1))],
        &root.cert,
        F::INSECURE,
    );
    let sha1 = Spec::leaf()
        .md(MessageDigest::sha1())
        .issue(Some(root))
        .cert;
    expect("ecdsa-with-SHA1 leaf", &[&sha1], &root.cert, F::INSECURE);

    // An RSA root for the RSA-only digests.
    let rsa_root = Spec::ca("RSA Test Root").key(rsa_key(2048)).issue(None);
    let md5 = Spec::leaf()
        .md(MessageDigest::md5())
        .issue(Some(&rsa_root))
        .cert;
    expect("md5WithRSA leaf", &[&md5], &rsa_root.cert, F::INSECURE);
    let rsa_sha1 = Spec::leaf()
        .md(MessageDigest::sha1())
        .issue(Some(&rsa_root))
        .cert;
    expect(
        "sha1WithRSA leaf",
        &[&rsa_sha1],
        &rsa_root.cert,
        F::INSECURE,
    );
    let fine = Spec::leaf().issue(Some(&rsa_root)).cert;
    expect("sha256WithRSA leaf", &[&fine], &rsa_root.cert, OK);

    // A trust anchor's own SHA-1 self-signature does not matter ...
    let sha1_root = Spec::ca("SHA-1 Root")
        .key(rsa_key(2048))
        .md(MessageDigest::sha1())
        .issue(None);
    let under = Spec::leaf().issue(Some(&sha1_root)).cert;
    expect(
        "leaf under a SHA-1 self-signed anchor",
        &[&under],
        &sha1_root.cert,
        OK,
    );
    // ... an intermediate's SHA-1 signature does.
    let int = Spec::ca("SHA-1 signed intermediate")
        .md(MessageDigest::sha1())
        .issue(Some(root));
    let below = Spec::leaf().issue(Some(&int)).cert;
    expect(
        "intermediate signed with SHA-1",
        &[&below, &int.cert],
        &root.cert,
        F::INSECURE,
    );
    // A weak anchor key is weak.
    let small_root = Spec::ca("RSA-1024 Root").key(rsa_key(1024)).issue(None);
    let under_small = Spec::leaf().issue(Some(&small_root)).cert;
    expect(
        "RSA-1024 anchor",
        &[&under_small],
        &small_root.cert,
        F::INSECURE,
    );
    assert_no_failures(failures);
}

// --- revocation -------------------------------------------------------------------

/// A CRL by `issuer` revoking `revoked`, valid from `from` to `until`
/// (seconds from now).
fn crl(issuer: &Issued, revoked: &[&X509], from: i64, until: i64) -> X509Crl {
    crl_signed(&issuer.cert, &issuer.key, revoked, from, until)
}

/// A CRL naming `issuer` as its issuer, signed with `key`.
fn crl_signed(
    issuer: &X509,
    key: &PKey<Private>,
    revoked: &[&X509],
    from: i64,
    until: i64,
) -> X509Crl {
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(issuer.subject_name()).unwrap();
    let now = now();
    b.set_last_update(&Asn1Time::from_unix(now + from).unwrap())
        .unwrap();
    b.set_next_update(&Asn1Time::from_unix(now + until).unwrap())
        .unwrap();
    // authorityKeyIdentifier { keyIdentifier [0] } from the issuer's SKI.
    let ski = issuer.subject_key_id().expect("CA with a subject key id");
    let akid = tlv(0x30, &tlv(0x80, ski.as_slice()));
    // ... and cRLNumber 1.
    for (oid, der) in [("2.5.29.35", akid), ("2.5.29.20", vec![0x02, 0x01, 0x01])] {
        let ext = X509Extension::new_from_der(
            &Asn1Object::from_str(oid).unwrap(),
            false,
            &Asn1OctetString::new_from_bytes(&der).unwrap(),
        )
        .unwrap();
        b.append_extension(ext).unwrap();
    }
    for cert in revoked {
        let mut r = X509RevokedBuilder::new().unwrap();
        r.set_serial_number(cert.serial_number()).unwrap();
        r.set_revocation_date(&Asn1Time::from_unix(now - DAY).unwrap())
            .unwrap();
        b.add_revoked(r.build()).unwrap();
    }
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build().unwrap()
}

#[test]
fn crls_in_the_anchors_file_revoke() {
    let root = root();
    let int = Spec::ca("Revocation Test Intermediate").issue(Some(root));
    let revoked = Spec::leaf().issue(Some(root)).cert;
    let good = Spec::leaf().issue(Some(root)).cert;
    let under_int = Spec::leaf().issue(Some(&int)).cert;
    let revoked_under_int = Spec::leaf().issue(Some(&int)).cert;
    let id = host("example.com");
    let check = |db: &gio::TlsDatabase, chain: &[&X509]| verify_chain(db, &gio_chain(chain), None);

    let leaf_crl = crl(root, &[&revoked], -DAY, 7 * DAY);
    let db = file_db(&[&root.cert], &[&leaf_crl]);
    assert_eq!(check(&db, &[&revoked]), F::REVOKED, "revoked leaf");
    assert_eq!(check(&db, &[&good]), OK, "leaf not in the CRL");
    assert_eq!(
        check(&db, &[&under_int, &int.cert]),
        OK,
        "intermediate not in the CRL"
    );
    // Every problem is reported, revocation included.
    let other = gio_cert(&revoked).verify(Some(&id), None::<&gio::TlsCertificate>);
    assert_eq!(
        other, BAD,
        "g_tls_certificate_verify has no CRLs: identity only"
    );
    assert_eq!(
        verify_chain(&db, &gio_cert(&revoked), Some(&id)),
        F::REVOKED | BAD
    );

    // The root revokes the intermediate: everything under it is revoked.
    let int_crl = crl(root, &[&int.cert], -DAY, 7 * DAY);
    let db = file_db(&[&root.cert], &[&int_crl]);
    assert_eq!(
        check(&db, &[&under_int, &int.cert]),
        F::REVOKED,
        "revoked intermediate"
    );
    assert_eq!(check(&db, &[&good]), OK);

    // The intermediate's own CRL, found in the anchors file.
    let by_int = crl(&int, &[&revoked_under_int], -DAY, 7 * DAY);
    let db = file_db(&[&root.cert], &[&by_int]);
    assert_eq!(check(&db, &[&revoked_under_int, &int.cert]), F::REVOKED);
    assert_eq!(check(&db, &[&under_int, &int.cert]), OK);

    // A CRL out of its validity period is reported, not ignored.
    let expired = crl(root, &[], -7 * DAY, -DAY);
    let db = file_db(&[&root.cert], &[&expired]);
    assert_eq!(check(&db, &[&good]), F::GENERIC_ERROR, "expired CRL");
    let future = crl(root, &[], DAY, 7 * DAY);
    let db = file_db(&[&root.cert], &[&future]);
    assert_eq!(check(&db, &[&good]), F::GENERIC_ERROR, "CRL not yet valid");
    // A CRL signed by someone else is no revocation information.
    let stranger = Spec::ca("Stranger").issue(None);
    // Names the root as issuer, signed with another key.
    let forged = crl_signed(&root.cert, &stranger.key, &[&revoked], -DAY, 7 * DAY);
    let db = file_db(&[&root.cert], &[&forged]);
    // Reported (bad CRL signature), and the forged list revokes nothing.
    assert_eq!(check(&db, &[&revoked]), F::GENERIC_ERROR, "forged CRL");
}

#[test]
fn handshake_with_a_revoked_server_fails() {
    let root = root();
    let leaf = Spec::leaf().sans(&[dns("example.com")]).issue(Some(root));
    let db = file_db(&[&root.cert], &[&crl(root, &[&leaf.cert], -DAY, 7 * DAY)]);
    let cert = write("revoked.pem", &leaf.cert.to_pem().unwrap());
    let key = write("revoked.key", &leaf.key.private_key_to_pem_pkcs8().unwrap());
    let server =
        OpensslServer::start(OpensslServerOpts::new(&common::init().pki).cert(&cert, &key));
    let conn = client(server.addr(), Some("example.com"));
    conn.set_database(Some(&db));
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
    assert_eq!(conn.peer_certificate_errors(), F::REVOKED);
}

// --- revocation through the default database -------------------------------------

/// Set in a child process of this test binary: the directory holding the
/// leaves the child verifies through the default database.
const DEFAULT_DB_CHILD_ENV: &str = "DTLS_OPENSSL_TEST_DEFAULT_DB_DIR";

/// Runs the test `name` of this binary alone in a child process, with `env`
/// (and this process's GIO module set-up), so that the backend's default
/// database is created there, from that environment. Bounded: 120 s.
fn run_child_test(name: &str, env: &[(&str, &std::path::Path)]) {
    let mut cmd = common::child_test_command(&[name]);
    cmd.env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("DTLS_OPENSSL_SECURITY_LEVEL")
        .envs(env.iter().copied());
    common::run_child_tests(cmd, &[name], std::time::Duration::from_secs(120));
}

/// In the child: verifies `revoked.pem` and `good.pem` of the directory in
/// [`DEFAULT_DB_CHILD_ENV`] through `g_tls_backend_get_default_database()`.
fn default_database_child(dir: &std::path::Path) {
    glib::log_set_always_fatal(glib::LogLevels::LEVEL_CRITICAL | glib::LogLevels::LEVEL_WARNING);
    let backend = gio::TlsBackend::default();
    assert_eq!(backend.type_().name(), "DtlsOpensslBackend");
    let db = backend.default_database();
    let load = |name: &str| gio::TlsCertificate::from_file(dir.join(name)).unwrap();
    let id = host("example.com");
    assert_eq!(
        verify_chain(&db, &load("good.pem"), Some(&id)),
        OK,
        "a leaf of the CA in SSL_CERT_DIR/SSL_CERT_FILE, not revoked"
    );
    assert_eq!(
        verify_chain(&db, &load("revoked.pem"), Some(&id)),
        F::REVOKED,
        "the leaf revoked by the CA's CRL"
    );
    assert_eq!(
        verify_chain(&db, &load("revoked.pem"), Some(&host("other.example.org"))),
        F::REVOKED | BAD,
        "revocation and identity both reported"
    );
    // Only the CA of the environment is trusted (not the system's bundle).
    let stranger = load("stranger.pem");
    assert_eq!(verify_chain(&db, &stranger, Some(&id)), F::UNKNOWN_CA);
}

/// Writes the CA's leaves for the child: `good.pem`, `revoked.pem` and
/// `stranger.pem` (issued by a CA the child does not trust), and returns the
/// CRL revoking `revoked.pem`.
fn default_database_fixture(dir: &std::path::Path) -> X509Crl {
    std::fs::create_dir_all(dir).unwrap();
    let root = root();
    let leaf = || {
        Spec::leaf()
            .sans(&[dns("example.com")])
            .issue(Some(root))
            .cert
    };
    let (good, revoked) = (leaf(), leaf());
    let other = Spec::ca("Not In SSL_CERT_DIR").issue(None);
    let stranger = Spec::leaf()
        .sans(&[dns("example.com")])
        .issue(Some(&other))
        .cert;
    for (name, cert) in [
        ("good.pem", &good),
        ("revoked.pem", &revoked),
        ("stranger.pem", &stranger),
    ] {
        std::fs::write(dir.join(name), cert.to_pem().unwrap()).unwrap();
    }
    crl(root, &[&revoked], -DAY, 7 * DAY)
}

#[test]
fn default_database_finds_crls_in_ssl_cert_dir() {
    if let Some(dir) = std::env::var_os(DEFAULT_DB_CHILD_ENV) {
        return default_database_child(std::path::Path::new(&dir));
    }
    let base = dir().join(format!("default-db-dir-{}", now()));
    let crl = default_database_fixture(&base);
    // A c_rehash-style directory: `<subject hash>.0` for the CA and
    // `<issuer hash>.r0` for its CRL; no CA file at all.
    let certs = base.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let hash = root().cert.subject_name_hash();
    // The CRL's issuer is the CA's subject, so the same hash names it.
    assert_eq!(
        crl.issuer_name().to_der().unwrap(),
        root().cert.subject_name().to_der().unwrap()
    );
    std::fs::write(
        certs.join(format!("{hash:08x}.0")),
        root().cert.to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(certs.join(format!("{hash:08x}.r0")), crl.to_pem().unwrap()).unwrap();
    run_child_test(
        "identity::default_database_finds_crls_in_ssl_cert_dir",
        &[
            (DEFAULT_DB_CHILD_ENV, &base),
            ("SSL_CERT_DIR", &certs),
            ("SSL_CERT_FILE", &base.join("no-such-bundle.pem")),
        ],
    );
}

#[test]
fn default_database_finds_crls_in_ssl_cert_file() {
    if let Some(dir) = std::env::var_os(DEFAULT_DB_CHILD_ENV) {
        return default_database_child(std::path::Path::new(&dir));
    }
    let base = dir().join(format!("default-db-file-{}", now()));
    let crl = default_database_fixture(&base);
    let mut bundle = root().cert.to_pem().unwrap();
    bundle.extend(crl.to_pem().unwrap());
    let file = base.join("bundle.pem");
    std::fs::write(&file, bundle).unwrap();
    let empty = base.join("empty-dir");
    std::fs::create_dir_all(&empty).unwrap();
    run_child_test(
        "identity::default_database_finds_crls_in_ssl_cert_file",
        &[
            (DEFAULT_DB_CHILD_ENV, &base),
            ("SSL_CERT_FILE", &file),
            ("SSL_CERT_DIR", &empty),
        ],
    );
}
