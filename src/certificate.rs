//! `DtlsOpensslCertificate`: a GTlsCertificate over an OpenSSL X509 and key.
//!
//! Constructed the GIO way (`g_initable_new` with the construct properties
//! GLib 2.74 defines); everything is parsed and checked in `init`, so a
//! certificate that exists is valid. PKCS #11 URIs are refused. A certificate
//! made with plain `g_object_new` (no `g_initable_init`, as glib-networking's
//! tests and some applications do) is parsed from its construct properties,
//! whatever order they came in, the first time it is used.

use std::sync::{Mutex, OnceLock};

use gio::prelude::*;
use gio::subclass::prelude::*;
use glib::translate::*;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509NameRef, X509};

use crate::error;
use crate::iface::tls_certificate::TlsCertificateImpl;
use crate::iface::values;
use crate::trust::TrustStore;

/// Longest issuer chain we follow; protects against cycles.
const MAX_CHAIN: usize = 16;

glib::wrapper! {
    /// A GTlsCertificate backed by OpenSSL.
    pub struct Certificate(ObjectSubclass<imp::Certificate>)
        @extends gio::TlsCertificate,
        @implements gio::Initable;
}

impl Certificate {
    /// Wraps an already parsed certificate (a database entry, a peer's).
    pub fn from_x509(x509: X509, issuer: Option<&gio::TlsCertificate>) -> Certificate {
        // Already parsed: hand it to init directly instead of a DER round
        // trip through the construct properties.
        PREPARSED.with(|p| {
            *p.borrow_mut() = Some(Parsed {
                x509,
                key: None,
                issuer: issuer.cloned(),
            })
        });
        gio::Initable::builder::<Certificate>()
            .build(gio::Cancellable::NONE)
            .expect("a pre-parsed certificate initialises")
    }

    /// The OpenSSL certificate (None only if its construct properties hold
    /// no valid certificate and `init` was never run).
    pub fn x509(&self) -> Option<X509> {
        self.imp().parsed().map(|p| p.x509.clone())
    }

    /// The private key, if one was given.
    pub fn private_key(&self) -> Option<PKey<Private>> {
        self.imp().parsed().and_then(|p| p.key.clone())
    }
}

/// The X509 of any GTlsCertificate, ours or another backend's (through its DER).
pub(crate) fn x509_of(cert: &gio::TlsCertificate) -> Result<X509, glib::Error> {
    if let Some(ours) = cert.downcast_ref::<Certificate>() {
        if let Some(x) = ours.x509() {
            return Ok(x);
        }
    }
    let der: Option<glib::ByteArray> = cert.property("certificate");
    let der =
        der.ok_or_else(|| error::tls(gio::TlsError::BadCertificate, "Certificate has no data"))?;
    X509::from_der(&der).map_err(|e| error::bad_certificate("Could not parse certificate", &e))
}

/// `cert` followed by its issuers, as far as the `issuer` links go.
pub(crate) fn chain_of(cert: &gio::TlsCertificate) -> Result<Vec<X509>, glib::Error> {
    let mut chain = vec![x509_of(cert)?];
    let mut next = cert.issuer();
    while let Some(c) = next {
        if chain.len() >= MAX_CHAIN {
            break;
        }
        chain.push(x509_of(&c)?);
        next = c.issuer();
    }
    Ok(chain)
}

/// Whether each certificate of `chain` names the next as issuer and carries
/// its signature (whether the issuer may issue is OpenSSL's check, later).
fn links_are_sound(chain: &[X509]) -> bool {
    chain.windows(2).all(|pair| {
        let (subject, issuer) = (&pair[0], &pair[1]);
        issuer
            .subject_name()
            .try_cmp(subject.issuer_name())
            .map(|o| o.is_eq())
            .unwrap_or(false)
            && issuer
                .public_key()
                .and_then(|k| subject.verify(&k))
                .unwrap_or(false)
    })
}

/// Seconds since the epoch of an ASN.1 time.
pub(crate) fn unix_time(t: &Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    Some(diff.days as i64 * 86_400 + diff.secs as i64)
}

/// A distinguished name as `KEY=value` pairs joined by commas, with RFC 4514
/// escaping, in the certificate's own (ASN.1) order — the form
/// glib-networking's GnuTLS backend, Debian's default, gives: e.g.
/// `C=FR,O=Org,CN=host`.
pub(crate) fn name_to_string(name: &X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .map(|e| {
            let nid = e.object().nid();
            let key = match nid.short_name() {
                Ok(s) if nid != Nid::UNDEF => s.to_string(),
                _ => e.object().to_string(),
            };
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={}", escape_dn_value(&value))
        })
        .collect();
    parts.join(",")
}

fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

thread_local! {
    /// Set by [`Certificate::from_x509`] just before it constructs; taken by
    /// the `init` that follows on the same thread.
    static PREPARSED: std::cell::RefCell<Option<Parsed>> = const { std::cell::RefCell::new(None) };
}

/// What `init` parsed.
#[derive(Debug)]
struct Parsed {
    x509: X509,
    key: Option<PKey<Private>>,
    issuer: Option<gio::TlsCertificate>,
}

/// Construct properties as given, before `init` checks them.
#[derive(Debug, Default)]
struct Construct {
    der: Option<Vec<u8>>,
    pem: Option<String>,
    key_der: Option<Vec<u8>>,
    key_pem: Option<String>,
    issuer: Option<gio::TlsCertificate>,
    pkcs12: Option<Vec<u8>>,
    password: Option<String>,
    pkcs11_uri: Option<String>,
    key_pkcs11_uri: Option<String>,
}

fn parse_key(c: &Construct) -> Result<Option<PKey<Private>>, glib::Error> {
    let bad_key = |e| {
        error::tls(
            gio::TlsError::BadCertificate,
            format!("Could not parse private key: {}", error::reason(&e)),
        )
    };
    if let Some(der) = &c.key_der {
        // PKCS #8 or PKCS #1/SEC1, as GIO documents.
        return PKey::private_key_from_der(der).map(Some).map_err(bad_key);
    }
    if let Some(pem) = &c.key_pem {
        return PKey::private_key_from_pem(pem.as_bytes())
            .map(Some)
            .map_err(bad_key);
    }
    Ok(None)
}

fn parse_certificate(c: &Construct) -> Result<X509, glib::Error> {
    let fail = |e| error::bad_certificate("Could not parse certificate", &e);
    if let Some(der) = &c.der {
        return X509::from_der(der).map_err(fail);
    }
    if let Some(pem) = &c.pem {
        return X509::from_pem(pem.as_bytes()).map_err(fail);
    }
    Err(error::tls(
        gio::TlsError::BadCertificate,
        "No certificate data provided",
    ))
}

/// Password errors get their own code so applications can ask again.
fn parse_pkcs12(data: &[u8], password: Option<&str>) -> Result<Parsed, glib::Error> {
    let p12 = Pkcs12::from_der(data)
        .map_err(|e| error::bad_certificate("Could not parse PKCS #12 data", &e))?;
    let parsed = p12.parse2(password.unwrap_or("")).map_err(|e| {
        const ERR_LIB_PKCS12: i32 = 35;
        const PKCS12_R_MAC_VERIFY_FAILURE: i32 = 113;
        let wrong_password = e.errors().iter().any(|err| {
            err.library_code() == ERR_LIB_PKCS12 && err.reason_code() == PKCS12_R_MAC_VERIFY_FAILURE
        });
        if wrong_password {
            error::tls(
                gio::TlsError::BadCertificatePassword,
                "Wrong password for the PKCS #12 data",
            )
        } else {
            error::bad_certificate("Could not parse PKCS #12 data", &e)
        }
    })?;
    let x509 = parsed.cert.ok_or_else(|| {
        error::tls(
            gio::TlsError::BadCertificate,
            "PKCS #12 data holds no certificate",
        )
    })?;
    let key = parsed.pkey.ok_or_else(|| {
        error::tls(
            gio::TlsError::BadCertificate,
            "PKCS #12 data holds no private key",
        )
    })?;
    let extra: Vec<X509> = parsed
        .ca
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    let issuer = issuer_chain(&x509, &extra);
    Ok(Parsed {
        x509,
        key: Some(key),
        issuer,
    })
}

/// Links the certificates of `pool` that issued `leaf`, transitively.
fn issuer_chain(leaf: &X509, pool: &[X509]) -> Option<gio::TlsCertificate> {
    let mut path: Vec<X509> = Vec::new();
    let mut current = leaf.clone();
    while path.len() < MAX_CHAIN {
        let self_signed = current.issued(&current) == openssl::x509::X509VerifyResult::OK;
        if self_signed {
            break;
        }
        let Some(issuer) = pool
            .iter()
            .find(|c| c.issued(&current) == openssl::x509::X509VerifyResult::OK)
        else {
            break;
        };
        if path.iter().any(|p| p == issuer) {
            break;
        }
        path.push(issuer.clone());
        current = issuer.clone();
    }
    path.into_iter()
        .rev()
        .fold(None, |above: Option<gio::TlsCertificate>, x| {
            Some(Certificate::from_x509(x, above.as_ref()).upcast())
        })
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct Certificate {
        construct: Mutex<Construct>,
        pub(super) parsed: OnceLock<Parsed>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Certificate {
        const NAME: &'static str = "DtlsOpensslCertificate";
        type Type = super::Certificate;
        type ParentType = gio::TlsCertificate;
        type Interfaces = (gio::Initable,);
    }

    impl Certificate {
        /// What `init` parsed; parsed now if `init` was never run (plain
        /// `g_object_new`). `None` if the construct properties do not make a
        /// valid certificate.
        pub(super) fn parsed(&self) -> Option<&Parsed> {
            if let Some(p) = self.parsed.get() {
                return Some(p);
            }
            match self.parse_construct() {
                Ok(p) => {
                    let _ = self.parsed.set(p);
                    *self.construct.lock().unwrap() = Construct::default();
                }
                Err(e) => crate::debug!("certificate used without g_initable_init: {}", e),
            }
            self.parsed.get()
        }

        /// Parses and checks the construct properties.
        fn parse_construct(&self) -> Result<Parsed, glib::Error> {
            let c = self.construct.lock().unwrap();
            if c.pkcs11_uri.is_some() || c.key_pkcs11_uri.is_some() {
                return Err(error::io(
                    gio::IOErrorEnum::NotSupported,
                    "PKCS #11 certificates are not supported by the dtls-openssl backend",
                ));
            }
            if let Some(data) = &c.pkcs12 {
                return parse_pkcs12(data, c.password.as_deref());
            }
            let x509 = parse_certificate(&c)?;
            let key = parse_key(&c)?;
            if let Some(k) = &key {
                let public = x509
                    .public_key()
                    .map_err(|e| error::bad_certificate("Could not read public key", &e))?;
                if !public.public_eq(k) {
                    return Err(error::tls(
                        gio::TlsError::BadCertificate,
                        "The private key does not match the certificate",
                    ));
                }
            }
            Ok(Parsed {
                x509,
                key,
                issuer: c.issuer.clone(),
            })
        }
    }

    impl ObjectImpl for Certificate {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> =
                std::sync::LazyLock::new(|| {
                    [
                        "certificate",
                        "certificate-pem",
                        "private-key",
                        "private-key-pem",
                        "issuer",
                        "pkcs11-uri",
                        "private-key-pkcs11-uri",
                        "not-valid-before",
                        "not-valid-after",
                        "subject-name",
                        "issuer-name",
                        "dns-names",
                        "ip-addresses",
                        "pkcs12-data",
                        "password",
                    ]
                    .into_iter()
                    .map(glib::ParamSpecOverride::for_class::<gio::TlsCertificate>)
                    .collect()
                });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let bytes = || {
                value
                    .get::<Option<glib::ByteArray>>()
                    .ok()
                    .flatten()
                    .map(|b| b.to_vec())
            };
            let string = || value.get::<Option<String>>().ok().flatten();
            let mut c = self.construct.lock().unwrap();
            match pspec.name() {
                "certificate" => c.der = bytes(),
                "certificate-pem" => c.pem = string(),
                "private-key" => c.key_der = bytes(),
                "private-key-pem" => c.key_pem = string(),
                "issuer" => c.issuer = value.get().ok().flatten(),
                "pkcs11-uri" => c.pkcs11_uri = string(),
                "private-key-pkcs11-uri" => c.key_pkcs11_uri = string(),
                "pkcs12-data" => c.pkcs12 = bytes(),
                "password" => c.password = string(),
                other => glib::g_warning!(crate::LOG_DOMAIN, "property {} is not writable", other),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let Some(p) = self.parsed() else {
                // No valid certificate data: nothing to report.
                return glib::Value::from_type(pspec.value_type());
            };
            let x = &p.x509;
            match pspec.name() {
                "certificate" => x
                    .to_der()
                    .ok()
                    .map(|d| glib::ByteArray::from(d.as_slice()))
                    .to_value(),
                "certificate-pem" => x
                    .to_pem()
                    .ok()
                    .and_then(|p| String::from_utf8(p).ok())
                    .to_value(),
                "private-key" => p
                    .key
                    .as_ref()
                    .and_then(|k| k.private_key_to_pkcs8().ok())
                    .map(|d| glib::ByteArray::from(d.as_slice()))
                    .to_value(),
                "private-key-pem" => p
                    .key
                    .as_ref()
                    .and_then(|k| k.private_key_to_pem_pkcs8().ok())
                    .and_then(|p| String::from_utf8(p).ok())
                    .to_value(),
                "issuer" => p.issuer.to_value(),
                "pkcs11-uri" | "private-key-pkcs11-uri" => None::<String>.to_value(),
                "not-valid-before" => date_time(x.not_before()).to_value(),
                "not-valid-after" => date_time(x.not_after()).to_value(),
                "subject-name" => name_to_string(x.subject_name()).to_value(),
                "issuer-name" => name_to_string(x.issuer_name()).to_value(),
                "dns-names" => {
                    let names = x
                        .subject_alt_names()
                        .map(|s| {
                            s.iter()
                                .filter_map(|n| n.dnsname())
                                .map(|d| glib::Bytes::from(d.as_bytes()))
                                .collect()
                        })
                        .unwrap_or_default();
                    values::bytes_array(names)
                }
                "ip-addresses" => {
                    let addrs = x
                        .subject_alt_names()
                        .map(|s| {
                            s.iter()
                                .filter_map(|n| n.ipaddress())
                                .filter_map(inet_address)
                                .collect()
                        })
                        .unwrap_or_default();
                    values::object_array::<gio::InetAddress>(addrs)
                }
                _ => glib::Value::from_type(pspec.value_type()),
            }
        }
    }

    fn date_time(t: &Asn1TimeRef) -> Option<glib::DateTime> {
        glib::DateTime::from_unix_utc(unix_time(t)?).ok()
    }

    fn inet_address(raw: &[u8]) -> Option<gio::InetAddress> {
        let bytes = match raw.len() {
            4 => gio::InetAddressBytes::V4(raw.try_into().ok()?),
            16 => gio::InetAddressBytes::V6(raw.try_into().ok()?),
            _ => return None,
        };
        Some(gio::InetAddress::from_bytes(bytes))
    }

    impl InitableImpl for Certificate {
        fn init(&self, _cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
            if self.parsed.get().is_some() {
                return Ok(());
            }
            if let Some(p) = PREPARSED.with(|p| p.borrow_mut().take()) {
                let _ = self.parsed.set(p);
                return Ok(());
            }
            let parsed = self.parse_construct()?;
            *self.construct.lock().unwrap() = Construct::default();
            let _ = self.parsed.set(parsed);
            Ok(())
        }
    }

    impl TlsCertificateImpl for Certificate {
        fn verify(
            &self,
            identity: Option<&gio::SocketConnectable>,
            trusted_ca: Option<&gio::TlsCertificate>,
        ) -> gio::TlsCertificateFlags {
            use gio::TlsCertificateFlags as F;
            let result = (|| -> Result<F, glib::Error> {
                let chain = chain_of(self.obj().upcast_ref())?;
                let anchors = match trusted_ca {
                    Some(ca) => vec![x509_of(ca)?],
                    None => Vec::new(),
                };
                let store = TrustStore::from_anchors(anchors)
                    .map_err(|e| error::bad_certificate("Could not build trust store", &e))?;
                let mut flags = store
                    .verify_connectable(&chain[0], &chain[1..], "", identity)
                    .map_err(|e| error::bad_certificate("Verification failed", &e))?;
                if trusted_ca.is_some() && !links_are_sound(&chain) {
                    // The chain as linked does not lead to the CA, even if
                    // OpenSSL finds a shortcut through it: GLib relies on this
                    // to reject misordered PEM chains.
                    flags |= F::UNKNOWN_CA;
                }
                if trusted_ca.is_none() {
                    // GIO: without a trusted CA, UNKNOWN_CA is never reported.
                    flags.remove(F::UNKNOWN_CA);
                }
                Ok(flags)
            })();
            result.unwrap_or_else(|e| {
                crate::debug!("certificate verification failed: {}", e);
                F::GENERIC_ERROR
            })
        }
    }
}

// SAFETY: the class struct of DtlsOpensslCertificate is a GTlsCertificateClass;
// we chain up to the parent's class_init first.
#[allow(unsafe_code)]
unsafe impl IsSubclassable<imp::Certificate> for gio::TlsCertificate {
    fn class_init(class: &mut glib::Class<Self>) {
        Self::parent_class_init::<imp::Certificate>(class);
        crate::iface::tls_certificate::init::<imp::Certificate>(class.as_mut());
    }
}
