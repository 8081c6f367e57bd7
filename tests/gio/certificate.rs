//! GTlsCertificate on our backend: construction, properties, verify, bad input.

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::{self, cert, der, host, ip, new_cert, pki};

fn string_prop(c: &gio::TlsCertificate, name: &str) -> Option<String> {
    c.property::<Option<String>>(name)
}

#[test]
fn properties_of_a_server_certificate() {
    let c = cert("server.pem");
    assert_eq!(c.type_().name(), "DtlsOpensslCertificate");
    let subject = c.subject_name().unwrap();
    assert_eq!(subject, "O=gio-dtls-openssl tests,CN=server.example.com");
    assert!(subject.contains("O=gio-dtls-openssl tests"), "{subject}");
    assert!(c.issuer_name().unwrap().contains("CN=Test Root CA"));

    let before = c.not_valid_before().unwrap();
    let after = c.not_valid_after().unwrap();
    let now = glib::DateTime::now_utc().unwrap();
    assert!(before <= now && now < after, "{before:?} {now:?} {after:?}");

    let dns: Vec<String> = c
        .dns_names()
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    assert_eq!(dns, ["server.example.com", "localhost"]);
    let ips: Vec<String> = c
        .ip_addresses()
        .iter()
        .map(|a| a.to_string().to_string())
        .collect();
    assert_eq!(ips, ["127.0.0.1", "::1"]);

    assert_eq!(der(&c), std::fs::read(pki("server.der")).unwrap());
    // No key was loaded.
    assert!(c.private_key().is_none());
    assert!(c.private_key_pem().is_none());
    assert!(c.issuer().is_none());
    assert!(string_prop(&c, "pkcs11-uri").is_none());
}

#[test]
fn pem_round_trip_and_is_same() {
    let c = cert("server.pem");
    let pem = c.certificate_pem().unwrap();
    let again = gio::TlsCertificate::from_pem(&pem).unwrap();
    assert!(c.is_same(&again));
    assert!(!c.is_same(&cert("client.pem")));
    let from_der = new_cert(&[(
        "certificate",
        glib::ByteArray::from(der(&c).as_slice()).into(),
    )])
    .unwrap();
    assert!(from_der.is_same(&c));
}

#[test]
fn private_key_from_files_and_from_pem() {
    let c = gio::TlsCertificate::from_files(pki("server.pem"), pki("server.key")).unwrap();
    let key_pem = c.private_key_pem().unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS #8 expected: {key_pem}"
    );
    assert!(!c.private_key().unwrap().is_empty());
    let combined = gio::TlsCertificate::from_file(pki("server-key.pem")).unwrap();
    assert!(combined.private_key().is_some());
    // Re-import the exported key.
    let both = format!("{}{}", c.certificate_pem().unwrap(), key_pem);
    assert!(gio::TlsCertificate::from_pem(&both)
        .unwrap()
        .private_key()
        .is_some());
}

fn chain_len(c: &gio::TlsCertificate) -> usize {
    let mut n = 1;
    let mut next = c.issuer();
    while let Some(i) = next {
        n += 1;
        next = i.issuer();
    }
    n
}

#[test]
fn chains_from_multi_certificate_pem() {
    let full = cert("chain-full.pem");
    assert_eq!(chain_len(&full), 3);
    assert!(full.issuer().unwrap().is_same(&cert("intermediate.pem")));
    assert!(full
        .issuer()
        .unwrap()
        .issuer()
        .unwrap()
        .is_same(&cert("ca.pem")));
    assert_eq!(chain_len(&cert("chain-leaf-int.pem")), 2);
    // Out of order: our verify() refuses the links, so GIO keeps only the
    // first certificate (as with GnuTLS).
    assert_eq!(chain_len(&cert("chain-unordered.pem")), 1);
    let list = gio::TlsCertificate::list_new_from_file(pki("chain-full.pem")).unwrap();
    assert_eq!(list.len(), 3);
    assert!(list[0].is_same(&cert("leaf-int.pem")));
}

#[test]
fn pkcs12_with_and_without_password() {
    let c = gio::TlsCertificate::from_file_with_password(pki("server.p12"), "secret").unwrap();
    assert_eq!(c.type_().name(), "DtlsOpensslCertificate");
    assert!(c.is_same(&cert("server.pem")));
    assert!(c.private_key().is_some());
    // The CA in the bundle becomes the issuer.
    assert!(c.issuer().unwrap().is_same(&cert("ca.pem")));

    let err = gio::TlsCertificate::from_file_with_password(pki("server.p12"), "wrong").unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificatePassword), "{err}");
    let err = gio::TlsCertificate::from_file(pki("server.p12")).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificatePassword), "{err}");

    let nopass = gio::TlsCertificate::from_file(pki("server-nopass.p12")).unwrap();
    assert!(nopass.is_same(&cert("server.pem")));
    assert!(nopass.private_key().is_some());
}

#[test]
fn verify_reports_exact_flags() {
    let ca = cert("ca.pem");
    let server = cert("server.pem");
    let v = |c: &gio::TlsCertificate,
             id: Option<gio::SocketConnectable>,
             ca: Option<&gio::TlsCertificate>| { c.verify(id.as_ref(), ca) };
    assert_eq!(
        v(&server, Some(host("server.example.com")), Some(&ca)),
        F::empty()
    );
    assert_eq!(v(&server, Some(host("localhost")), Some(&ca)), F::empty());
    assert_eq!(
        v(&server, Some(host("wrong.example.com")), Some(&ca)),
        F::BAD_IDENTITY
    );
    assert_eq!(v(&server, Some(ip("127.0.0.1")), Some(&ca)), F::empty());
    assert_eq!(v(&server, Some(ip("::1")), Some(&ca)), F::empty());
    assert_eq!(v(&server, Some(ip("10.1.2.3")), Some(&ca)), F::BAD_IDENTITY);
    // An IP literal given as a host name is matched as an address.
    assert_eq!(v(&server, Some(host("127.0.0.1")), Some(&ca)), F::empty());
    assert_eq!(v(&server, None, Some(&ca)), F::empty());
    assert_eq!(
        v(&cert("server-other-ca.pem"), None, Some(&ca)),
        F::UNKNOWN_CA
    );
    assert_eq!(v(&cert("self-signed.pem"), None, Some(&ca)), F::UNKNOWN_CA);
    assert_eq!(v(&cert("server-expired.pem"), None, Some(&ca)), F::EXPIRED);
    assert_eq!(
        v(&cert("server-future.pem"), None, Some(&ca)),
        F::NOT_ACTIVATED
    );
    assert_eq!(v(&cert("server-weak.pem"), None, Some(&ca)), F::INSECURE);
    // Several problems at once are all reported.
    assert_eq!(
        v(
            &cert("server-expired.pem"),
            Some(host("wrong.example.com")),
            Some(&ca)
        ),
        F::EXPIRED | F::BAD_IDENTITY
    );
    // Without a trusted CA, UNKNOWN_CA is never set (GIO's documented rule).
    assert_eq!(v(&server, None, None), F::empty());
    assert_eq!(v(&cert("server-expired.pem"), None, None), F::EXPIRED);
    // Through an intermediate: the chain's issuer links are followed.
    assert_eq!(
        v(
            &cert("chain-leaf-int.pem"),
            Some(host("server.example.com")),
            Some(&ca)
        ),
        F::empty()
    );
    assert_eq!(v(&cert("leaf-int.pem"), None, Some(&ca)), F::UNKNOWN_CA);
    // Issuer links that do not chain up are refused even when the CA signed
    // the leaf directly.
    let misordered = crate::common::cert_with_issuer("leaf-int.pem", Some(&ca));
    assert_eq!(
        v(&misordered, None, Some(&cert("intermediate.pem"))),
        F::UNKNOWN_CA
    );
    // A self-signed certificate trusted as its own CA (pinning).
    let ss = cert("self-signed.pem");
    assert_eq!(v(&ss, None, Some(&ss)), F::empty());
}

/// A certificate "issued" by a leaf that is not a CA is a generic error.
#[test]
fn verify_flags_a_non_ca_issuer_as_generic_error() {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, x509::X509};
    let issuer_cert = X509::from_pem(&std::fs::read(pki("server.pem")).unwrap()).unwrap();
    let issuer_key =
        PKey::private_key_from_pem(&std::fs::read(pki("server.key")).unwrap()).unwrap();
    let key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "under-a-leaf.example.com")
        .unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_issuer_name(issuer_cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&issuer_key, MessageDigest::sha256()).unwrap();
    let pem = String::from_utf8(b.build().to_pem().unwrap()).unwrap();

    let server = cert("server.pem");
    let leaf = new_cert(&[("certificate-pem", pem.into()), ("issuer", server.into())]).unwrap();
    let flags = leaf.verify(None::<&gio::SocketConnectable>, Some(&cert("ca.pem")));
    assert_eq!(flags, F::GENERIC_ERROR);
}

#[test]
fn bad_input_gets_the_documented_errors() {
    common::init();
    for file in ["garbage.pem", "truncated.pem"] {
        let err = gio::TlsCertificate::from_file(pki(file)).unwrap_err();
        assert!(err.matches(gio::TlsError::BadCertificate), "{file}: {err}");
    }
    let err = gio::TlsCertificate::from_file(pki("does-not-exist.pem")).unwrap_err();
    assert!(err.matches(glib::FileError::Noent), "{err}");

    let garbage = std::fs::read(pki("garbage.der")).unwrap();
    let err = new_cert(&[(
        "certificate",
        glib::ByteArray::from(garbage.as_slice()).into(),
    )])
    .unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
    let err =
        new_cert(&[("certificate", glib::ByteArray::from(&garbage[..0]).into())]).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
    let err = new_cert(&[]).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");

    let err = gio::TlsCertificate::from_file(pki("mismatch-key.pem")).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
    assert!(err.message().contains("does not match"), "{err}");
    let err = gio::TlsCertificate::from_files(pki("server.pem"), pki("client.key")).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");

    let err = new_cert(&[
        (
            "certificate-pem",
            std::fs::read_to_string(pki("server.pem")).unwrap().into(),
        ),
        (
            "private-key-pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
        ),
    ])
    .unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");

    let err = gio::TlsCertificate::from_pkcs11_uris("pkcs11:token=x", None).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::NotSupported), "{err}");

    let err = gio::TlsCertificate::from_pkcs12(b"not pkcs12", None).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
}

/// `g_object_new (type, "certificate", der, "issuer", prev, NULL)` without
/// g_initable_init, as glib-networking's tests do: the issuer is kept,
/// whatever order the construct properties come in.
#[test]
fn certificates_made_by_plain_g_object_new_keep_their_issuer() {
    use glib::prelude::*;
    let ty = crate::common::backend().certificate_type();
    let plain = |first: (&str, glib::Value), second: (&str, glib::Value)| {
        let mut props = [first, second];
        // SAFETY: what C callers do with g_object_new; the object is used
        // only through the GTlsCertificate API afterwards.
        let o = unsafe { glib::Object::new_internal(ty, &mut props) };
        o.downcast::<gio::TlsCertificate>().unwrap()
    };
    let der_of = |name: &str| glib::ByteArray::from(der(&cert(name)).as_slice());
    // glib-networking's verify-with-incorrect-root-in-chain: the wrong root
    // at the top; the database trusts the right one.
    let root = plain(
        ("certificate", der_of("other-ca.pem").to_value()),
        ("issuer", None::<gio::TlsCertificate>.to_value()),
    );
    let int = plain(
        ("issuer", root.to_value()),
        ("certificate", der_of("intermediate.pem").to_value()),
    );
    let leaf = plain(
        ("certificate", der_of("leaf-int.pem").to_value()),
        ("issuer", int.to_value()),
    );
    assert_eq!(chain_len(&leaf), 3);
    assert!(leaf.issuer().unwrap().is_same(&cert("intermediate.pem")));
    assert!(leaf
        .issuer()
        .unwrap()
        .issuer()
        .unwrap()
        .is_same(&cert("other-ca.pem")));
    let subject: Option<String> = leaf.property("subject-name");
    assert!(subject.unwrap().contains("CN=server.example.com"));
    let db: gio::TlsDatabase = gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast();
    let flags = db
        .verify_chain(
            &leaf,
            "1.3.6.1.5.5.7.3.1",
            Some(&host("server.example.com")),
            None::<&gio::TlsInteraction>,
            gio::TlsDatabaseVerifyFlags::NONE,
            gio::Cancellable::NONE,
        )
        .unwrap();
    assert_eq!(flags, F::empty());
    assert_eq!(
        leaf.verify(Some(&host("server.example.com")), Some(&cert("ca.pem"))),
        F::UNKNOWN_CA,
        "the links lead to the wrong root"
    );
    // PEM, issuer first.
    let pem: String = cert("leaf-int.pem").property("certificate-pem");
    let by_pem = plain(
        ("issuer", cert("intermediate.pem").to_value()),
        ("certificate-pem", pem.to_value()),
    );
    assert_eq!(chain_len(&by_pem), 2);
    assert_eq!(
        by_pem.verify(Some(&host("server.example.com")), Some(&cert("ca.pem"))),
        F::empty()
    );
}
