//! `DtlsOpensslServerConnection` through GIO: our client ↔ our server in
//! one process, over a pair of connected UDP GSockets.

use std::time::Duration;

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::dtls::{recv, send};
use crate::common::{self, cert, pki};

/// Two UDP GSockets on 127.0.0.1, each connected to the other.
pub fn socket_pair() -> (gio::Socket, gio::Socket) {
    common::init();
    let bind = || {
        let s = gio::Socket::new(
            gio::SocketFamily::Ipv4,
            gio::SocketType::Datagram,
            gio::SocketProtocol::Udp,
        )
        .unwrap();
        let any = gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap();
        s.bind(&any, false).unwrap();
        s
    };
    let (a, b) = (bind(), bind());
    SocketExt::connect(&a, &b.local_address().unwrap(), gio::Cancellable::NONE).unwrap();
    SocketExt::connect(&b, &a.local_address().unwrap(), gio::Cancellable::NONE).unwrap();
    (a, b)
}

fn server_cert() -> gio::TlsCertificate {
    cert("server-key.pem")
}

fn client_cert() -> gio::TlsCertificate {
    gio::TlsCertificate::from_files(pki("client.pem"), pki("client.key")).unwrap()
}

fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

/// A client (trusting the test CA, for server.example.com) and a server
/// (with server-key.pem) linked over `socket_pair`.
pub fn link() -> (gio::DtlsClientConnection, gio::DtlsServerConnection) {
    let (a, b) = socket_pair();
    let id = gio::NetworkAddress::new("server.example.com", 443);
    let client = gio::DtlsClientConnection::new(&a, Some(&id)).unwrap();
    client.set_database(Some(&ca_db()));
    let server = gio::DtlsServerConnection::new(&b, Some(&server_cert())).unwrap();
    (client, server)
}

/// A connection of ours, which GIO documents as usable from several
/// threads (gio-rs's interface wrappers are not `Send`).
struct Shared<T>(T);
// SAFETY: our connections lock all their state (see src/connection/base.rs).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(&self) -> &T {
        &self.0
    }
}

/// Runs both handshakes, the server's on its own thread.
fn handshake_both(
    client: &gio::DtlsClientConnection,
    server: &gio::DtlsServerConnection,
) -> (Result<(), glib::Error>, Result<(), glib::Error>) {
    let server = Shared(server.clone());
    std::thread::scope(|s| {
        let t = s.spawn(|| Shared(server.get().handshake(gio::Cancellable::NONE)));
        let c = client.handshake(gio::Cancellable::NONE);
        (c, t.join().unwrap().0)
    })
}

#[test]
fn server_connection_is_ours() {
    let (client, server) = link();
    assert_eq!(server.type_().name(), "DtlsOpensslServerConnection");
    assert!(server.is::<gio::DtlsConnection>() && server.is::<gio::DatagramBased>());
    assert_eq!(
        server.authentication_mode(),
        gio::TlsAuthenticationMode::None
    );
    assert!(server.property::<bool>("cookie-exchange"));
    drop(client);
}

#[test]
fn our_client_and_our_server_across_two_threads() {
    let (client, server) = link();
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    for conn in [
        client.upcast_ref::<gio::DtlsConnection>(),
        server.upcast_ref(),
    ] {
        assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
        assert!(conn.ciphersuite_name().is_some());
    }
    assert_eq!(client.peer_certificate_errors(), F::empty());
    assert!(
        server.peer_certificate().is_none(),
        "no client certificate asked"
    );
    for i in 0..200u32 {
        let msg = format!("to the server {i}");
        send(&client, msg.as_bytes(), -1).unwrap();
        assert_eq!(recv(&server, 2048, 5_000_000).unwrap(), msg.as_bytes());
        let msg = format!("to the client {i}");
        send(&server, msg.as_bytes(), -1).unwrap();
        assert_eq!(recv(&client, 2048, 5_000_000).unwrap(), msg.as_bytes());
    }
    client.close(gio::Cancellable::NONE).unwrap();
    let err = recv(&server, 2048, 5_000_000);
    assert_eq!(err.unwrap(), b"", "close_notify is end-of-stream");
}

#[test]
fn required_client_certificate() {
    // Missing: the server fails with CERTIFICATE_REQUIRED, the client
    // learns why.
    let (client, server) = link();
    server.set_authentication_mode(gio::TlsAuthenticationMode::Required);
    server.set_database(Some(&ca_db()));
    let (c, s) = handshake_both(&client, &server);
    let s = s.unwrap_err();
    assert!(s.matches(gio::TlsError::CertificateRequired), "{s}");
    let c = c.unwrap_err();
    assert!(c.matches(gio::TlsError::CertificateRequired), "{c}");

    // Given and trusted: verified for the client purpose.
    let (client, server) = link();
    server.set_authentication_mode(gio::TlsAuthenticationMode::Required);
    server.set_database(Some(&ca_db()));
    client.set_certificate(&client_cert());
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    assert!(server.peer_certificate().unwrap().is_same(&client_cert()));
    assert_eq!(server.peer_certificate_errors(), F::empty());
    // The CertificateRequest named the database's anchor.
    let cas = client.accepted_cas();
    assert_eq!(cas.len(), 1, "{cas:?}");
    let _ = Duration::ZERO;
}
