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

// ---------------------------------------------------------------------------
// Real peers: `openssl s_server` and `gnutls-cli`.

const T: Duration = Duration::from_secs(10);

/// Two connections in sequence to one `openssl s_server -dtls1_2` (it
/// serves them one after another on one socket): the second resumes, as
/// both sides report, and the certificate is verified again.
#[test]
fn our_client_resumes_with_openssl_s_server() {
    use crate::common::peers::{OpensslServer, OpensslServerOpts};
    let server = OpensslServer::start(OpensslServerOpts::new(&common::init().pki));
    let mut seen = Vec::new();
    for round in 1..=2 {
        let conn = trusting_client(server.addr());
        conn.handshake(gio::Cancellable::NONE)
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", server.output()));
        server.wait_handshake(round, T).unwrap();
        assert!(conn
            .peer_certificate()
            .unwrap()
            .is_same(&cert("server.pem")));
        assert_eq!(
            conn.peer_certificate_errors(),
            gio::TlsCertificateFlags::empty()
        );
        let line = format!("round-{round}:data");
        send(&conn, format!("{line}\n").as_bytes(), -1).unwrap();
        server.wait_for(&line, T).unwrap();
        seen.push(resumed(&conn));
        conn.close(gio::Cancellable::NONE).unwrap();
    }
    assert_eq!(seen, [false, true], "our client: session-resumed");
    // s_server prints "Reused session-id" after a resumed handshake's
    // "CIPHER is" line; every line of the first connection came before.
    server.wait_for("Reused session-id", T).unwrap();
    let marks: Vec<String> = server
        .lines()
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.starts_with("CIPHER is ") || l == "Reused session-id")
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        marks,
        ["CIPHER", "CIPHER", "Reused"],
        "as s_server saw it:\n{}",
        server.output()
    );
}

/// A connection handed to another thread (our connections lock their state).
struct SendConn(gio::DtlsConnection);
// SAFETY: see above.
unsafe impl Send for SendConn {}

impl SendConn {
    /// Takes the connection out (a method, so that a closure moves the
    /// whole `SendConn`, not just its field).
    fn into_inner(self) -> gio::DtlsConnection {
        self.0
    }
}

/// What the listener's peers report: peer number, then the handshake's
/// outcome with `session-resumed`, or how the echo loop ended.
enum PeerEvent {
    Handshake(usize, Result<bool, String>),
    Ended(usize, String),
}

/// `gnutls-cli --udp --resume` against our many-peer listener: it connects,
/// says goodbye, connects again from a new port offering the session, and
/// reports the resumption; the listener saw two peers, the second resumed.
#[test]
fn gnutls_cli_resumes_with_our_listener() {
    use crate::common::peers::{GnutlsClient, GnutlsClientOpts};
    let api = crate::listener::api();
    let (tx, events) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let listener = std::thread::spawn(move || {
        let ctx = glib::MainContext::new();
        ctx.with_thread_default(|| {
            use glib::translate::*;
            // SAFETY: registers the type.
            let _ = unsafe { (api.get_type)() };
            let socket = bound(&gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap());
            let port = socket
                .local_address()
                .unwrap()
                .downcast::<gio::InetSocketAddress>()
                .unwrap()
                .port();
            let certificate = cert("server-key.pem");
            // SAFETY: a valid socket and certificate; errors ignored (NULL
            // is checked).
            let raw = unsafe {
                (api.new)(
                    socket.to_glib_none().0,
                    certificate.to_glib_none().0,
                    std::ptr::null_mut(),
                )
            };
            assert!(!raw.is_null(), "dtls_openssl_server_new failed");
            // SAFETY: a new object, transfer full.
            let server: glib::Object = unsafe { from_glib_full(raw) };
            let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            server.connect_closure(
                "incoming",
                false,
                glib::closure!(move |_s: glib::Object, conn: glib::Object| -> bool {
                    let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let conn = SendConn(conn.downcast().unwrap());
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        let conn = conn.into_inner();
                        let hs = conn
                            .handshake(gio::Cancellable::NONE)
                            .map(|()| resumed(&conn))
                            .map_err(|e| e.to_string());
                        let ok = hs.is_ok();
                        let _ = tx.send(PeerEvent::Handshake(i, hs));
                        if !ok {
                            return;
                        }
                        let end = loop {
                            match recv(&conn, 2048, 10_000_000) {
                                Ok(d) if d.is_empty() => break "eof".to_owned(),
                                Ok(d) => {
                                    if let Err(e) = send(&conn, &d, 10_000_000) {
                                        break e.to_string();
                                    }
                                }
                                Err(e) => break e.to_string(),
                            }
                        };
                        let _ = tx.send(PeerEvent::Ended(i, end));
                    });
                    true
                }),
            );
            // SAFETY: our live listener.
            assert_ne!(unsafe { (api.start)(raw, std::ptr::null_mut()) }, 0);
            ready_tx.send((port, ctx.clone())).unwrap();
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                ctx.iteration(true);
            }
        })
        .unwrap();
    });
    /// Ends the listener thread (also when the test fails).
    struct Stop(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        glib::MainContext,
        Option<std::thread::JoinHandle<()>>,
    );
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            self.1.wakeup();
            if let Some(t) = self.2.take() {
                let _ = t.join();
            }
        }
    }
    let (port, ctx): (u16, glib::MainContext) = ready_rx.recv_timeout(T).expect("listener started");
    let _stop = Stop(stop, ctx, Some(listener));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let mut gnutls = GnutlsClient::start(
        addr,
        GnutlsClientOpts::new(&common::init().pki).arg("--resume"),
    );
    gnutls.wait_handshake(T).unwrap();
    let line = gnutls
        .wait_line(T, |_, l| {
            l == "*** This is a resumed session"
                || l.starts_with("*** Previous session was NOT resumed")
                || l.starts_with("*** Fatal error")
                || l.starts_with("*** Handshake has failed")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", gnutls.output()));
    assert_eq!(line, "*** This is a resumed session", "{}", gnutls.output());
    assert!(gnutls.has_line("- Resume Handshake was completed"));
    assert_eq!(
        gnutls.status().as_deref(),
        Some("The certificate is trusted."),
        "the first, full handshake verified the certificate"
    );
    gnutls.send_line("after resumption");
    gnutls.wait_data("after resumption", T).unwrap();
    gnutls.stop(T).unwrap();

    // Two peers (a new source port each time), each ended by close_notify.
    let mut handshakes = std::collections::BTreeMap::new();
    let mut ended = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + T;
    while handshakes.len() < 2 || ended.len() < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(PeerEvent::Handshake(i, r)) => {
                handshakes.insert(i, r);
            }
            Ok(PeerEvent::Ended(i, why)) => {
                ended.insert(i, why);
            }
            Err(_) => panic!("listener: handshakes {handshakes:?}, ended {ended:?}"),
        }
    }
    let hs: Vec<_> = handshakes.into_values().collect();
    assert_eq!(
        hs,
        [Ok(false), Ok(true)],
        "the listener's connections: session-resumed"
    );
    assert_eq!(ended.into_values().collect::<Vec<_>>(), ["eof", "eof"]);
    assert!(events.try_recv().is_err(), "no third peer");
}
