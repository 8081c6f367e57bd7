//! DTLS client behaviour that needs no working server: silent and absent
//! peers, timeouts, cancellation, bad arguments, closed connections.

use std::time::{Duration, Instant};

use gio::prelude::*;

use crate::common::dtls::{self, client, closed_port, recv, recv_vectored, send, silent_peer};

#[test]
fn client_connection_is_ours_and_has_its_properties() {
    let peer = silent_peer();
    let conn = client(peer.local_addr().unwrap(), Some("server.example.com"));
    assert_eq!(conn.type_().name(), "DtlsOpensslClientConnection");
    assert!(conn.is::<gio::DtlsConnection>() && conn.is::<gio::DatagramBased>());
    let id = conn.server_identity();
    assert_eq!(
        id.downcast::<gio::NetworkAddress>().unwrap().hostname(),
        "server.example.com"
    );
    assert!(conn.base_socket().unwrap().is::<gio::Socket>());
    // The default database is the backend's.
    assert_eq!(
        conn.database(),
        Some(gio::TlsBackend::default().default_database())
    );
    assert!(conn.requires_close_notify());
    assert_eq!(conn.property::<u32>("mtu"), 1400);
    assert!(conn.peer_certificate().is_none());
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Unknown);
    assert!(conn.ciphersuite_name().is_none());
    assert!(conn.negotiated_protocol().is_none());
}

#[test]
fn handshake_with_a_silent_peer_times_out() {
    let peer = silent_peer();
    let conn = client(peer.local_addr().unwrap(), Some("server.example.com"));
    let started = Instant::now();
    let err = recv(&conn, 100, 300_000).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The ClientHello went out (and was retransmitted by now or not: at
    // least once).
    let mut buf = [0u8; 2048];
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(buf[0], 22, "a DTLS handshake record");
    assert!(n > 13);
    // Timeout 0: the handshake is still pending, so it would block.
    let err = recv(&conn, 100, 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
    let err = send(&conn, b"x", 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
}

#[test]
fn no_server_is_a_clear_error_in_bounded_time() {
    let conn = client(closed_port(), Some("server.example.com"));
    let started = Instant::now();
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::ConnectionRefused), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Sticky.
    let again = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_eq!(again.message(), err.message());
    let err = send(&conn, b"x", -1).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::ConnectionRefused), "{err}");
}

#[test]
fn cancel_from_another_thread_stops_a_blocking_handshake() {
    let peer = silent_peer();
    let conn = client(peer.local_addr().unwrap(), Some("server.example.com"));
    let cancellable = gio::Cancellable::new();
    let c2 = cancellable.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        // Cancel once the handshake has really started (the peer saw it).
        let mut buf = [0u8; 2048];
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        peer.recv_from(&mut buf).unwrap();
        c2.cancel();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    });
    let err = conn.handshake(Some(&cancellable)).unwrap_err();
    tx.send(()).unwrap();
    waiter.join().unwrap();
    assert!(err.matches(gio::IOErrorEnum::Cancelled), "{err}");
}

#[test]
fn handshake_async_on_another_context_can_be_cancelled() {
    let peer = silent_peer();
    let addr = peer.local_addr().unwrap();
    // A thread with its own thread-default main context, as WebRTC-style
    // users have; cancelled mid-handshake (their ICE failed).
    let result = std::thread::spawn(move || {
        let ctx = glib::MainContext::new();
        ctx.with_thread_default(|| {
            let conn = client(addr, Some("server.example.com"));
            let cancellable = gio::Cancellable::new();
            let done = std::rc::Rc::new(std::cell::RefCell::new(None));
            let d = done.clone();
            conn.handshake_async(glib::Priority::DEFAULT, Some(&cancellable), move |r| {
                *d.borrow_mut() = Some(r);
            });
            // Wait until the ClientHello is out, then cancel.
            let mut buf = [0u8; 2048];
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            peer.recv_from(&mut buf).unwrap();
            assert!(
                done.borrow().is_none(),
                "handshake_async must not block or finish early"
            );
            cancellable.cancel();
            let deadline = Instant::now() + Duration::from_secs(5);
            while done.borrow().is_none() && Instant::now() < deadline {
                ctx.iteration(true);
            }
            let r = done.borrow_mut().take();
            r.expect("callback ran in the thread-default context")
        })
        .unwrap()
    })
    .join()
    .unwrap();
    let err = result.unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Cancelled), "{err}");
}

#[test]
fn flags_are_refused() {
    let peer = silent_peer();
    let conn = client(peer.local_addr().unwrap(), None);
    let err = recv_vectored(&conn, &[&[10]], 0x2 /* MSG_PEEK */, 0, None).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::InvalidArgument), "{err}");
}

#[test]
fn operations_after_close_fail_with_closed() {
    let peer = silent_peer();
    let conn = client(peer.local_addr().unwrap(), None);
    conn.close(gio::Cancellable::NONE).unwrap();
    let err = send(&conn, b"x", -1).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Closed), "{err}");
    let err = recv(&conn, 10, -1).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Closed), "{err}");
    // The base socket stays open.
    let socket: gio::Socket = conn.base_socket().unwrap().downcast().unwrap();
    assert!(!socket.is_closed());
}

#[test]
fn construction_without_a_base_socket_fails_cleanly() {
    crate::common::init();
    let ty = gio::TlsBackend::default().dtls_client_connection_type();
    let err = gio::Initable::builder_with_type(ty)
        .build(gio::Cancellable::NONE)
        .unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::InvalidArgument), "{err}");
    let _ = dtls::silent_peer();
}
