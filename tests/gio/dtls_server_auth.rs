//! Client authentication on our server: authentication-mode none /
//! requested / required × the client's certificate good (client.pem,
//! signed by ca.pem, the server's database) / missing / untrusted
//! (signed by other-ca, or self-signed), with the exact results on both
//! sides; `accept-certificate` on the server; a NULL database.

use std::sync::OnceLock;
use std::sync::{Arc, Mutex};

use gio::prelude::*;
use gio::TlsAuthenticationMode as Mode;
use gio::TlsCertificateFlags as F;

use crate::common::{self, cert, pki};
use crate::dtls_server::{
    ca_db, client_cert, handshake_both, link, openssl_cli, scratch_dir, self_signed,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Good,
    Missing,
    /// Signed by other-ca (clientAuth).
    OtherCa,
    SelfSigned,
}

/// A client certificate (clientAuth) signed by other-ca, made once.
fn other_ca_client() -> gio::TlsCertificate {
    static PATHS: OnceLock<(String, String)> = OnceLock::new();
    let (c, k) = PATHS.get_or_init(|| {
        let dir = scratch_dir("client-other-ca");
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        std::fs::write(
            p("ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        openssl_cli(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("csr.pem"),
            "-subj",
            "/CN=client.example.com",
        ]);
        openssl_cli(&[
            "x509",
            "-req",
            "-in",
            &p("csr.pem"),
            "-CA",
            &pki("other-ca.pem"),
            "-CAkey",
            &pki("other-ca.key"),
            "-set_serial",
            "4242",
            "-days",
            "30",
            "-extfile",
            &p("ext"),
            "-out",
            &p("cert.pem"),
        ]);
        (p("cert.pem"), p("key.pem"))
    });
    gio::TlsCertificate::from_files(c, k).unwrap()
}

fn certificate(which: Client) -> Option<gio::TlsCertificate> {
    match which {
        Client::Good => Some(client_cert()),
        Client::Missing => None,
        Client::OtherCa => Some(other_ca_client()),
        Client::SelfSigned => Some(self_signed("client.example.com")),
    }
}

struct Outcome {
    conn: gio::DtlsClientConnection,
    client: Result<(), glib::Error>,
    server: Result<(), glib::Error>,
    /// Flags of each accept-certificate emission on the server.
    asked: Vec<F>,
    peer: Option<gio::TlsCertificate>,
    errors: F,
    accepted_cas: Vec<Vec<u8>>,
}

/// One handshake; `accept`: the server's accept-certificate answer (None:
/// no handler); `database`: whether the server has ca.pem's database.
fn run(mode: Mode, which: Client, accept: Option<bool>, database: bool) -> Outcome {
    let (client, server) = link();
    server.set_authentication_mode(mode);
    if database {
        server.set_database(Some(&ca_db()));
    } else {
        server.set_database(None::<&gio::TlsDatabase>);
    }
    for conn in [
        client.upcast_ref::<gio::DtlsConnection>(),
        server.upcast_ref(),
    ] {
        conn.set_property("handshake-timeout", 10_000u32);
    }
    let mine = certificate(which);
    if let Some(c) = &mine {
        client.set_certificate(c);
    }
    let asked = Arc::new(Mutex::new(Vec::new()));
    if let Some(answer) = accept {
        let a = asked.clone();
        server.connect_accept_certificate(move |_, _, errors| {
            a.lock().unwrap().push(errors);
            answer
        });
    }
    let (c, s) = handshake_both(&client, &server);
    if let (Some(peer), Some(mine)) = (server.peer_certificate(), &mine) {
        assert!(
            peer.is_same(mine),
            "the server's peer-certificate is the client's"
        );
    }
    let asked = asked.lock().unwrap().clone();
    Outcome {
        conn: client.clone(),
        client: c,
        server: s,
        asked,
        peer: server.peer_certificate(),
        errors: server.peer_certificate_errors(),
        accepted_cas: client.accepted_cas().iter().map(|b| b.to_vec()).collect(),
    }
}

fn ca_name() -> Vec<u8> {
    openssl::x509::X509::from_der(&common::der(&cert("ca.pem")))
        .unwrap()
        .subject_name()
        .to_der()
        .unwrap()
}

/// Mode none: the client is never asked, whatever it holds.
#[test]
fn mode_none_never_asks() {
    for which in [
        Client::Good,
        Client::Missing,
        Client::OtherCa,
        Client::SelfSigned,
    ] {
        let o = run(Mode::None, which, Some(false), true);
        o.client.unwrap();
        o.server.unwrap();
        assert!(o.peer.is_none(), "{which:?}");
        assert_eq!(o.errors, F::empty(), "{which:?}");
        assert!(o.asked.is_empty(), "{which:?}");
        assert!(
            o.accepted_cas.is_empty(),
            "{which:?}: no CertificateRequest"
        );
    }
}

/// Requested and required: a good certificate is verified (client
/// purpose) without asking anyone; the CertificateRequest names the CA.
#[test]
fn good_client_certificate() {
    for mode in [Mode::Requested, Mode::Required] {
        let o = run(mode, Client::Good, Some(false), true);
        o.client.unwrap();
        o.server.unwrap();
        assert!(o.peer.is_some(), "{mode:?}");
        assert_eq!(o.errors, F::empty(), "{mode:?}");
        assert!(o.asked.is_empty(), "{mode:?}: nothing to decide");
        assert_eq!(o.accepted_cas, [ca_name()], "{mode:?}");
    }
}

/// Missing: requested → success without a peer certificate; required →
/// CERTIFICATE_REQUIRED on both sides.
#[test]
fn missing_client_certificate() {
    let o = run(Mode::Requested, Client::Missing, Some(false), true);
    o.client.unwrap();
    o.server.unwrap();
    assert!(o.peer.is_none());
    assert_eq!(o.errors, F::empty());
    assert!(o.asked.is_empty());
    assert_eq!(o.accepted_cas, [ca_name()], "asked, with the CA's name");

    let o = run(Mode::Required, Client::Missing, Some(true), true);
    let s = o.server.unwrap_err();
    assert!(s.matches(gio::TlsError::CertificateRequired), "{s}");
    let c = o.client.unwrap_err();
    assert!(c.matches(gio::TlsError::CertificateRequired), "{c}");
    assert!(o.peer.is_none());
    assert!(o.asked.is_empty(), "nothing to accept");
}

/// Untrusted (other CA, self-signed): UNKNOWN_CA, and accept-certificate
/// on the server decides; without a handler it is refused.
#[test]
fn untrusted_client_certificate() {
    for mode in [Mode::Requested, Mode::Required] {
        for which in [Client::OtherCa, Client::SelfSigned] {
            let case = format!("{mode:?} {which:?}");
            let o = run(mode, which, Some(true), true);
            o.client.unwrap();
            o.server.unwrap();
            assert!(o.peer.is_some(), "{case}");
            assert_eq!(o.errors, F::UNKNOWN_CA, "{case}");
            assert_eq!(o.asked, [F::UNKNOWN_CA], "{case}");

            for accept in [Some(false), None] {
                let o = run(mode, which, accept, true);
                let s = o.server.unwrap_err();
                assert!(s.matches(gio::TlsError::BadCertificate), "{case}: {s}");
                assert_eq!(o.errors, F::UNKNOWN_CA, "{case}");
                assert_eq!(o.asked.len(), accept.is_some() as usize, "{case}");
                // The client's handshake ended before the verdict (the
                // server sends the last flight); it then receives the
                // server's close_notify: end-of-stream.
                o.client.unwrap();
                let eos = crate::common::dtls::recv(&o.conn, 64, 5_000_000).unwrap();
                assert_eq!(eos, b"", "{case}: end-of-stream");
            }
        }
    }
}

/// With database NULL nothing is trusted: even client.pem is UNKNOWN_CA,
/// and accept-certificate alone decides; no CA names are sent.
#[test]
fn null_database_accept_certificate_decides() {
    for mode in [Mode::Requested, Mode::Required] {
        for which in [Client::Good, Client::SelfSigned] {
            let case = format!("{mode:?} {which:?}");
            let o = run(mode, which, Some(true), false);
            o.client.unwrap();
            o.server.unwrap();
            assert_eq!(o.errors, F::UNKNOWN_CA, "{case}");
            assert_eq!(o.asked, [F::UNKNOWN_CA], "{case}");
            assert!(o.accepted_cas.is_empty(), "{case}");
            let o = run(mode, which, Some(false), false);
            let s = o.server.unwrap_err();
            assert!(s.matches(gio::TlsError::BadCertificate), "{case}: {s}");
        }
    }
    // Missing stays as without a database.
    let o = run(Mode::Requested, Client::Missing, Some(false), false);
    o.server.unwrap();
    assert!(o.peer.is_none() && o.asked.is_empty());
}
