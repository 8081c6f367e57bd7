//! Session resumption: our client keeps the session of a server it
//! verified and offers it when it connects to that server again; our server
//! resumes it (tickets). The resumed handshake is verified like a full one.

use std::time::Duration;

use gio::prelude::*;

use crate::common::dtls::{client, recv, send};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::{self, cert, pki};

fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

fn trusting_client(addr: std::net::SocketAddr) -> gio::DtlsClientConnection {
    let c = client(addr, Some("server.example.com"));
    c.set_database(Some(&ca_db()));
    c
}

fn resumed(conn: &impl IsA<gio::DtlsConnection>) -> bool {
    conn.property("session-resumed")
}

#[test]
fn our_client_resumes_with_an_openssl_server() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&common::init().pki).max_connections(3));
    let first = trusting_client(peer.addr());
    first.handshake(gio::Cancellable::NONE).unwrap();
    assert!(!resumed(&first));
    first.close(gio::Cancellable::NONE).unwrap();

    // Same server, same name, a new socket: resumed, and still verified.
    let second = trusting_client(peer.addr());
    second.handshake(gio::Cancellable::NONE).unwrap();
    assert!(resumed(&second), "the second handshake resumes");
    assert!(second
        .peer_certificate()
        .unwrap()
        .is_same(&cert("server.pem")));
    assert_eq!(
        second.peer_certificate_errors(),
        gio::TlsCertificateFlags::empty()
    );
    send(&second, b"resumed", -1).unwrap();
    assert_eq!(recv(&second, 64, 5_000_000).unwrap(), b"resumed");
    second.close(gio::Cancellable::NONE).unwrap();

    // Resumption off: a full handshake.
    let third = trusting_client(peer.addr());
    third.set_property("session-resumption", false);
    third.handshake(gio::Cancellable::NONE).unwrap();
    assert!(!resumed(&third));
    third.close(gio::Cancellable::NONE).unwrap();

    let log = peer
        .wait(Duration::from_secs(5), |l| {
            l.conns.len() == 3 && l.conns.iter().all(|c| c.closed_by_client)
        })
        .unwrap();
    let reused: Vec<bool> = log.conns.iter().map(|c| c.session_reused).collect();
    assert_eq!(reused, [false, true, false], "as the server saw it");
}

#[test]
fn a_resumed_session_is_verified_again() {
    // The session was verified against the test CA; a client that trusts
    // nothing resumes it but rejects the (same) certificate.
    let peer = EchoPeer::start(EchoPeerOpts::new(&common::init().pki).max_connections(2));
    let first = trusting_client(peer.addr());
    first.handshake(gio::Cancellable::NONE).unwrap();
    first.close(gio::Cancellable::NONE).unwrap();
    let second = client(peer.addr(), Some("server.example.com"));
    second.set_database(None::<&gio::TlsDatabase>);
    let err = second.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
    assert!(resumed(&second));
    assert!(second
        .peer_certificate_errors()
        .contains(gio::TlsCertificateFlags::UNKNOWN_CA));
}

/// A UDP GSocket bound to `addr` (port 0: any), address reuse allowed.
fn bound(addr: &gio::InetSocketAddress) -> gio::Socket {
    let s = gio::Socket::new(
        gio::SocketFamily::Ipv4,
        gio::SocketType::Datagram,
        gio::SocketProtocol::Udp,
    )
    .unwrap();
    s.bind(addr, true).unwrap();
    s
}

/// Our client and our server: the server's shared context issues tickets,
/// so a second connection to the same server address resumes.
#[test]
fn our_server_resumes_our_client() {
    common::init();
    let any = gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap();
    let first_server_sock = bound(&any);
    let server_addr: gio::InetSocketAddress = first_server_sock
        .local_address()
        .unwrap()
        .downcast()
        .unwrap();
    let mut server_sock = Some(first_server_sock);
    let mut results = Vec::new();
    for round in 0..2 {
        let sock = server_sock.take().unwrap_or_else(|| bound(&server_addr));
        let client_sock = bound(&any);
        SocketExt::connect(&client_sock, &server_addr, gio::Cancellable::NONE).unwrap();
        SocketExt::connect(
            &sock,
            &client_sock.local_address().unwrap(),
            gio::Cancellable::NONE,
        )
        .unwrap();
        let server = gio::DtlsServerConnection::new(&sock, Some(&cert("server-key.pem"))).unwrap();
        let id = gio::NetworkAddress::new("server.example.com", 0);
        let client = gio::DtlsClientConnection::new(&client_sock, Some(&id)).unwrap();
        client.set_database(Some(&ca_db()));
        let ctx = glib::MainContext::new();
        ctx.with_thread_default(|| {
            let done = std::rc::Rc::new(std::cell::RefCell::new(0));
            for conn in [
                client.upcast_ref::<gio::DtlsConnection>(),
                server.upcast_ref(),
            ] {
                let d = done.clone();
                conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
                    r.unwrap();
                    *d.borrow_mut() += 1;
                });
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while *done.borrow() < 2 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: handshakes"
                );
                ctx.iteration(true);
            }
        })
        .unwrap();
        results.push((resumed(&client), resumed(&server)));
        assert!(client.peer_certificate().is_some());
        send(&client, b"x", -1).unwrap();
        assert_eq!(recv(&server, 64, 5_000_000).unwrap(), b"x");
    }
    assert_eq!(results, [(false, false), (true, true)]);
}
