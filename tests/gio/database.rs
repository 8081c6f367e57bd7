//! GTlsDatabase on our backend: file and default databases, verify_chain,
//! lookups and handles, chains made of another backend's certificates.

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::{self, cert, cert_with_issuer, der, host, ip, pki};

const SERVER: &str = "1.3.6.1.5.5.7.3.1";
const CLIENT: &str = "1.3.6.1.5.5.7.3.2";

fn file_db(anchors: &str) -> gio::TlsDatabase {
    common::init();
    gio::TlsFileDatabase::new(pki(anchors)).unwrap().upcast()
}

fn verify(
    db: &gio::TlsDatabase,
    chain: &gio::TlsCertificate,
    purpose: &str,
    id: Option<gio::SocketConnectable>,
) -> F {
    db.verify_chain(
        chain,
        purpose,
        id.as_ref(),
        None::<&gio::TlsInteraction>,
        gio::TlsDatabaseVerifyFlags::NONE,
        gio::Cancellable::NONE,
    )
    .unwrap()
}

#[test]
fn file_database_properties() {
    let db = file_db("ca.pem");
    assert_eq!(db.type_().name(), "DtlsOpensslFileDatabase");
    let anchors: String = db.property("anchors");
    assert_eq!(anchors, pki("ca.pem"));
    assert!(db.is::<gio::TlsFileDatabase>());
}

#[test]
fn verify_chain_flags() {
    let db = file_db("ca.pem");
    let server = cert("server.pem");
    assert_eq!(
        verify(&db, &server, SERVER, Some(host("server.example.com"))),
        F::empty()
    );
    assert_eq!(
        verify(&db, &server, SERVER, Some(ip("127.0.0.1"))),
        F::empty()
    );
    assert_eq!(verify(&db, &server, SERVER, Some(ip("::1"))), F::empty());
    assert_eq!(
        verify(&db, &server, SERVER, Some(host("wrong.example.com"))),
        F::BAD_IDENTITY
    );
    assert_eq!(
        verify(&db, &server, SERVER, Some(ip("192.0.2.1"))),
        F::BAD_IDENTITY
    );
    assert_eq!(verify(&db, &server, SERVER, None), F::empty());
    let svc: gio::SocketConnectable =
        gio::NetworkService::new("coap", "udp", "server.example.com").upcast();
    assert_eq!(verify(&db, &server, SERVER, Some(svc)), F::empty());
    assert_eq!(
        verify(&db, &cert("server-other-ca.pem"), SERVER, None),
        F::UNKNOWN_CA
    );
    assert_eq!(
        verify(&db, &cert("self-signed.pem"), SERVER, None),
        F::UNKNOWN_CA
    );
    assert_eq!(
        verify(&db, &cert("server-expired.pem"), SERVER, None),
        F::EXPIRED
    );
    assert_eq!(
        verify(&db, &cert("server-future.pem"), SERVER, None),
        F::NOT_ACTIVATED
    );
    assert_eq!(
        verify(&db, &cert("server-weak.pem"), SERVER, None),
        F::INSECURE
    );
    // A client certificate for client authentication, and the wrong way round.
    assert_eq!(verify(&db, &cert("client.pem"), CLIENT, None), F::empty());
    assert_eq!(
        verify(&db, &cert("client.pem"), SERVER, None),
        F::GENERIC_ERROR
    );
    assert_eq!(verify(&db, &server, CLIENT, None), F::GENERIC_ERROR);
}

#[test]
fn verify_chain_through_intermediates() {
    let db = file_db("ca.pem");
    let id = || Some(host("server.example.com"));
    // leaf + intermediate, and with the (redundant) root included.
    assert_eq!(
        verify(&db, &cert("chain-leaf-int.pem"), SERVER, id()),
        F::empty()
    );
    assert_eq!(
        verify(&db, &cert("chain-full.pem"), SERVER, id()),
        F::empty()
    );
    // Without the intermediate there is no path.
    assert_eq!(
        verify(&db, &cert("leaf-int.pem"), SERVER, id()),
        F::UNKNOWN_CA
    );

    // Unordered: issuer links leaf → root → intermediate.
    let int = cert_with_issuer("intermediate.pem", None);
    let root = cert_with_issuer("ca.pem", Some(&int));
    let leaf = cert_with_issuer("leaf-int.pem", Some(&root));
    assert_eq!(verify(&db, &leaf, SERVER, id()), F::empty());

    // Duplicates: leaf → intermediate → intermediate → root.
    let root = cert_with_issuer("ca.pem", None);
    let int2 = cert_with_issuer("intermediate.pem", Some(&root));
    let int1 = cert_with_issuer("intermediate.pem", Some(&int2));
    let leaf = cert_with_issuer("leaf-int.pem", Some(&int1));
    assert_eq!(verify(&db, &leaf, SERVER, id()), F::empty());
}

/// A server in a root transition sends leaf → intermediate → ca cross-signed
/// by other-ca → other-ca. Clients trusting either root must accept it.
#[test]
fn verify_chain_finds_alternate_paths() {
    let other = cert_with_issuer("other-ca.pem", None);
    let cross = cert_with_issuer("ca-cross.pem", Some(&other));
    let int = cert_with_issuer("intermediate.pem", Some(&cross));
    let leaf = cert_with_issuer("leaf-int.pem", Some(&int));
    assert_eq!(verify(&file_db("ca.pem"), &leaf, SERVER, None), F::empty());
    assert_eq!(
        verify(&file_db("other-ca.pem"), &leaf, SERVER, None),
        F::empty()
    );
    assert_eq!(
        verify(&file_db("self-signed.pem"), &leaf, SERVER, None),
        F::UNKNOWN_CA
    );
}

#[test]
fn lookups_and_handles() {
    let db = file_db("ca.pem");
    let ca = cert("ca.pem");
    let none = gio::Cancellable::NONE;
    let no_i = None::<&gio::TlsInteraction>;
    let flags = gio::TlsDatabaseLookupFlags::NONE;

    let issuer = db
        .lookup_certificate_issuer(&cert("server.pem"), no_i, flags, none)
        .unwrap();
    assert!(issuer.is_same(&ca));
    assert!(lookup_issuer_raw(&db, &cert("server-other-ca.pem")).is_none());

    let ca_x509 = openssl::x509::X509::from_der(&der(&ca)).unwrap();
    let dn = ca_x509.subject_name().to_der().unwrap();
    let issued = db
        .lookup_certificates_issued_by(&glib::ByteArray::from(dn.as_slice()), no_i, flags, none)
        .unwrap();
    assert_eq!(issued.len(), 1);
    assert!(issued[0].is_same(&ca));
    let err = db
        .lookup_certificates_issued_by(&glib::ByteArray::from(&b"junk"[..]), no_i, flags, none)
        .unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::InvalidArgument), "{err}");

    let handle = db.create_certificate_handle(&ca).unwrap();
    let found = db
        .lookup_certificate_for_handle(&handle, no_i, flags, none)
        .unwrap();
    assert!(found.unwrap().is_same(&ca));
    assert!(db.create_certificate_handle(&cert("server.pem")).is_none());
    assert!(db
        .lookup_certificate_for_handle("nonsense", no_i, flags, none)
        .unwrap()
        .is_none());
}

#[test]
fn verify_chain_async_and_cancellation() {
    let db = file_db("ca.pem");
    let ctx = glib::MainContext::new();
    let result = ctx.block_on(db.verify_chain_future(
        &cert("server.pem"),
        SERVER,
        Some(&host("wrong.example.com")),
        None::<&gio::TlsInteraction>,
        gio::TlsDatabaseVerifyFlags::NONE,
    ));
    assert_eq!(result.unwrap(), F::BAD_IDENTITY);

    let cancellable = gio::Cancellable::new();
    cancellable.cancel();
    let err = db
        .verify_chain(
            &cert("server.pem"),
            SERVER,
            None::<&gio::SocketConnectable>,
            None::<&gio::TlsInteraction>,
            gio::TlsDatabaseVerifyFlags::NONE,
            Some(&cancellable),
        )
        .unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Cancelled), "{err}");
}

#[test]
fn default_database_uses_the_system_store() {
    let db = common::backend().default_database();
    // Our test CA is not a system anchor.
    assert_eq!(
        verify(
            &db,
            &cert("server.pem"),
            SERVER,
            Some(host("server.example.com"))
        ),
        F::UNKNOWN_CA
    );
    // A system anchor verifies against itself: take one from the bundle.
    let bundle =
        gio::TlsCertificate::list_new_from_file("/etc/ssl/certs/ca-certificates.crt").unwrap();
    let anchor = bundle.first().expect("Debian's ca-certificates bundle");
    assert_eq!(
        verify(&db, anchor, SERVER, None) & F::UNKNOWN_CA,
        F::empty()
    );
}

#[test]
fn database_errors() {
    common::init();
    let err = gio::TlsFileDatabase::new(pki("does-not-exist.pem")).unwrap_err();
    assert!(err.matches(glib::FileError::Noent), "{err}");
    let err = gio::TlsFileDatabase::new(pki("garbage.der")).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
}

/// Chains made of glib-networking's GnuTLS certificates verify too: we go
/// through their DER.
#[test]
fn verifies_certificates_of_another_backend() {
    common::init();
    let ep = gio::IOExtensionPoint::lookup("gio-tls-backend").unwrap();
    let gnutls = ep
        .extension_by_name("gnutls")
        .expect("glib-networking's GnuTLS module loaded");
    let backend: gio::TlsBackend = glib::Object::with_type(gnutls.type_()).downcast().unwrap();
    let ty = backend.certificate_type();
    assert_ne!(ty.name(), "DtlsOpensslCertificate");
    let pem = |f: &str| std::fs::read_to_string(pki(f)).unwrap();
    let make = |f: &str, issuer: Option<&gio::TlsCertificate>| -> gio::TlsCertificate {
        gio::Initable::builder_with_type(ty)
            .property("certificate-pem", pem(f))
            .property("issuer", issuer.cloned())
            .build(gio::Cancellable::NONE)
            .unwrap()
            .downcast()
            .unwrap()
    };
    let int = make("intermediate.pem", None);
    let leaf = make("leaf-int.pem", Some(&int));
    let db = file_db("ca.pem");
    assert_eq!(
        verify(&db, &leaf, SERVER, Some(host("server.example.com"))),
        F::empty()
    );
    assert_eq!(
        verify(&db, &make("server-expired.pem", None), SERVER, None),
        F::EXPIRED
    );
    // And our certificate's verify() accepts their CA.
    assert_eq!(
        cert("server.pem").verify(None::<&gio::SocketConnectable>, Some(&make("ca.pem", None))),
        F::empty()
    );
}

/// gio-rs maps a NULL "not found" to a panic; use the C call directly.
fn lookup_issuer_raw(
    db: &gio::TlsDatabase,
    c: &gio::TlsCertificate,
) -> Option<gio::TlsCertificate> {
    use glib::translate::*;
    let mut error = std::ptr::null_mut();
    // SAFETY: valid objects; NULL interaction and cancellable are allowed.
    let found: Option<gio::TlsCertificate> = unsafe {
        from_glib_full(gio::ffi::g_tls_database_lookup_certificate_issuer(
            db.to_glib_none().0,
            c.to_glib_none().0,
            std::ptr::null_mut(),
            gio::ffi::G_TLS_DATABASE_LOOKUP_NONE,
            std::ptr::null_mut(),
            &mut error,
        ))
    };
    assert!(error.is_null());
    found
}

/// glib-networking's handle form: the anchors file's URI, `#`, the SHA-256
/// of the certificate's DER in hex.
#[test]
fn file_database_handles_are_file_uris() {
    let db = file_db("ca-bundle.pem");
    let ca = cert("ca.pem");
    let none = gio::Cancellable::NONE;
    let no_i = None::<&gio::TlsInteraction>;
    let flags = gio::TlsDatabaseLookupFlags::NONE;
    let digest: String = openssl::sha::sha256(&der(&ca))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let uri = glib::filename_to_uri(pki("ca-bundle.pem"), None).unwrap();
    let expected = format!("{uri}#{digest}");
    assert!(expected.starts_with("file:///"), "{expected}");
    assert_eq!(
        db.create_certificate_handle(&ca).as_deref(),
        Some(&*expected)
    );
    let found = db
        .lookup_certificate_for_handle(&expected, no_i, flags, none)
        .unwrap()
        .expect("lookup by handle");
    assert!(found.is_same(&ca));
    let other = cert("other-ca.pem");
    let other_handle = db.create_certificate_handle(&other).unwrap();
    assert_ne!(other_handle, expected);
    assert!(db
        .lookup_certificate_for_handle(&other_handle, no_i, flags, none)
        .unwrap()
        .unwrap()
        .is_same(&other));
    // Another file's URI, or a digest not in the file: nothing.
    let elsewhere = format!(
        "{}#{digest}",
        glib::filename_to_uri(pki("ca.pem"), None).unwrap()
    );
    for h in [
        elsewhere.as_str(),
        &format!("{uri}#{}", "0".repeat(64)),
        &format!("{uri}#"),
        uri.as_str(),
    ] {
        assert!(
            db.lookup_certificate_for_handle(h, no_i, flags, none)
                .unwrap()
                .is_none(),
            "{h}"
        );
    }
    // The same file under another database instance gives the same handle.
    assert_eq!(
        file_db("ca-bundle.pem")
            .create_certificate_handle(&ca)
            .as_deref(),
        Some(&*expected)
    );
}

/// CRLs in the anchors file do not stop it from being an anchors file.
#[test]
fn anchors_file_with_a_crl_still_trusts_its_certificates() {
    common::init();
    let dir = common::init().pki.join("crl-anchors");
    std::fs::create_dir_all(&dir).unwrap();
    let crl = dir.join("ca.crl.pem");
    let conf = dir.join("openssl.cnf");
    std::fs::write(
        &conf,
        format!(
            "[ca]\ndefault_ca = c\n[c]\ndatabase = {}\ndefault_md = sha256\ndefault_crl_days = 7\n",
            dir.join("index.txt").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    let out = std::process::Command::new("openssl")
        .args(["ca", "-gencrl", "-config"])
        .arg(&conf)
        .arg("-cert")
        .arg(pki("ca.pem"))
        .arg("-keyfile")
        .arg(pki("ca.key"))
        .arg("-out")
        .arg(&crl)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anchors = dir.join("anchors.pem");
    let mut pem = std::fs::read(pki("ca.pem")).unwrap();
    pem.extend(std::fs::read(&crl).unwrap());
    std::fs::write(&anchors, pem).unwrap();
    let db: gio::TlsDatabase = gio::TlsFileDatabase::new(&anchors).unwrap().upcast();
    assert_eq!(
        verify(
            &db,
            &cert("server.pem"),
            SERVER,
            Some(host("server.example.com"))
        ),
        F::empty()
    );
    assert_eq!(
        verify(&db, &cert("server-other-ca.pem"), SERVER, None),
        F::UNKNOWN_CA
    );
}

#[test]
fn remembered_verdicts_answer_as_fresh_ones() {
    // A database remembers verdicts (same chain, purpose and security
    // level): asked again, in any order, with any identity, it must answer
    // exactly what a new database answers.
    let db = file_db("ca.pem");
    let cases = [
        "server.pem",
        "server-other-ca.pem",
        "self-signed.pem",
        "server-expired.pem",
        "server-future.pem",
        "server-weak.pem",
        "client.pem",
    ];
    let ids = || {
        [
            None,
            Some(host("server.example.com")),
            Some(host("wrong.example.com")),
            Some(ip("127.0.0.1")),
        ]
    };
    for round in 0..3 {
        for name in cases {
            for purpose in [SERVER, CLIENT] {
                for id in ids() {
                    let fresh = verify(&file_db("ca.pem"), &cert(name), purpose, id.clone());
                    assert_eq!(
                        verify(&db, &cert(name), purpose, id.clone()),
                        fresh,
                        "round {round}: {name} for {purpose} as {:?}",
                        id.map(|c| c.to_string())
                    );
                }
            }
        }
    }
}
