//! Edges of the DTLS client: a base GSocket with its own timeout
//! (`g_socket_set_timeout`), and a handshake after close.
//!
//! GLib 2.74's GSocket refuses every GDatagramBased call while a timeout is
//! set (receive/send return 0 with an error, which GIO's wrapper reports as
//! a CRITICAL — fatal here — and −1 without an error; create_source returns
//! NULL). Before the fix, the first handshake on such a socket crashed.

use std::time::{Duration, Instant};

use gio::prelude::*;

use crate::common::dtls::{connected_socket, recv, send, silent_peer};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::peers::{GnutlsServer, GnutlsServerOpts, OpensslServer, OpensslServerOpts};
use crate::common::{self, pki};

const SECOND: i64 = 1_000_000;

/// A client trusting the test CA over a UDP GSocket connected to `addr`
/// whose own timeout is `timeout_s` seconds.
fn client_with_socket_timeout(
    addr: std::net::SocketAddr,
    timeout_s: u32,
) -> (gio::DtlsClientConnection, gio::Socket) {
    common::init();
    let socket = connected_socket(addr);
    socket.set_timeout(timeout_s);
    let id = gio::NetworkAddress::new("server.example.com", addr.port());
    let conn = gio::DtlsClientConnection::new(&socket, Some(&id)).unwrap();
    conn.set_database(Some(&gio::TlsFileDatabase::new(pki("ca.pem")).unwrap()));
    (conn, socket)
}

fn echo_peer() -> EchoPeer {
    EchoPeer::start(EchoPeerOpts::new(&common::init().pki))
}

/// Runs `handshake_async` on a fresh thread-default context and iterates
/// it until the callback ran (or 20 s passed).
fn handshake_async_in(
    ctx: &glib::MainContext,
    conn: &gio::DtlsClientConnection,
) -> Result<(), glib::Error> {
    ctx.with_thread_default(|| {
        let done = std::rc::Rc::new(std::cell::RefCell::new(None));
        let d = done.clone();
        conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
            *d.borrow_mut() = Some(r);
        });
        let limit = Instant::now() + Duration::from_secs(20);
        while done.borrow().is_none() && Instant::now() < limit {
            ctx.iteration(true);
        }
        let r = done.borrow_mut().take();
        r.expect("handshake_async finished")
    })
    .unwrap()
}

/// A socket timeout longer than needed changes nothing: the blocking
/// handshake and echoes work, also after the connection sat idle for longer
/// than the timeout.
#[test]
fn socket_timeout_sync_handshake_and_echo() {
    let peer = echo_peer();
    let (conn, socket) = client_with_socket_timeout(peer.addr(), 1);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
    for i in 0..3 {
        let m = format!("timeout-ed socket {i}");
        send(&conn, m.as_bytes(), -1).unwrap();
        assert_eq!(recv(&conn, 64, -1).unwrap(), m.as_bytes());
    }
    // The connection sits idle for longer than the socket's timeout with
    // an echo waiting (the scenario, not synchronisation: the wait on the
    // socket is); the timeout counts per operation, so nothing times out.
    send(&conn, b"late", -1).unwrap();
    let arrived =
        socket.condition_timed_wait(glib::IOCondition::IN, 2 * SECOND, gio::Cancellable::NONE);
    assert!(arrived.is_ok(), "the echo arrives: {arrived:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(recv(&conn, 64, -1).unwrap(), b"late");
    send(&conn, b"after idle", 5 * SECOND).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"after idle");
}

/// GDatagramBased operations keep their own timeouts: GIO forbids
/// TIMED_OUT for timeout −1 (GLib's wrapper logs a CRITICAL, fatal here),
/// so a blocking receive outlives the socket's timeout; shorter timeouts
/// and timeout 0 behave as usual.
#[test]
fn socket_timeout_leaves_datagram_timeouts_alone() {
    let server = OpensslServer::start(OpensslServerOpts::new(&common::init().pki));
    let (conn, _socket) = client_with_socket_timeout(server.addr(), 1);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    server.wait_handshake(1, Duration::from_secs(5)).unwrap();
    // The server speaks 1.5 s from now, longer than the socket's timeout
    // (the delay is the scenario, not synchronisation).
    let speaker = {
        let stdin = server.stdin_writer();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            stdin.write(b"late line\n").unwrap();
        })
    };
    let started = Instant::now();
    assert_eq!(recv(&conn, 64, -1).unwrap(), b"late line\n");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    speaker.join().unwrap();
    // A shorter per-call timeout times out; timeout 0 would block.
    let started = Instant::now();
    let err = recv(&conn, 64, 200_000).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(started.elapsed() < Duration::from_millis(900));
    let err = recv(&conn, 64, 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
    send(&conn, b"to s_server\n", -1).unwrap();
    server
        .wait_for("to s_server", Duration::from_secs(5))
        .unwrap();
}

/// The async handshake, then non-blocking I/O driven by the connection's
/// own GSource, over a timeout-ed GSocket, against gnutls-serv.
#[test]
fn socket_timeout_async_handshake_and_io() {
    let server = GnutlsServer::start(GnutlsServerOpts::new(&common::init().pki));
    let (conn, _socket) = client_with_socket_timeout(server.addr(), 5);
    let ctx = glib::MainContext::new();
    handshake_async_in(&ctx, &conn).unwrap();
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);

    assert_eq!(
        crate::common::dtls::exchange_via_source(&conn, &ctx, &[b"one", b"two", b"three"]),
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

/// Against a silent peer, the socket's timeout ends the handshake with
/// G_IO_ERROR_TIMED_OUT (sync and async), without a CRITICAL.
#[test]
fn socket_timeout_expires_against_a_silent_peer() {
    let peer = silent_peer();
    let (conn, _socket) = client_with_socket_timeout(peer.local_addr().unwrap(), 1);
    let started = Instant::now();
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    let took = started.elapsed();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(took >= Duration::from_millis(950), "too early: {took:?}");
    assert!(took < Duration::from_secs(5), "too late: {took:?}");
    // The ClientHello did go out through the timeout-ed socket.
    let mut buf = [0u8; 2048];
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert!(n > 13 && buf[0] == 22, "a DTLS handshake record");

    // A time-out is not sticky; the async handshake times out the same way.
    let started = Instant::now();
    let err = handshake_async_in(&glib::MainContext::new(), &conn).unwrap_err();
    let took = started.elapsed();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(took >= Duration::from_millis(950), "too early: {took:?}");
    assert!(took < Duration::from_secs(5), "too late: {took:?}");

    // Implicit handshakes follow the operation's timeout.
    let err = send(&conn, b"x", 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
    let err = recv(&conn, 64, 300_000).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
}

fn assert_closed(r: Result<(), glib::Error>, what: &str) {
    let err = r.expect_err(what);
    assert!(err.matches(gio::IOErrorEnum::Closed), "{what}: {err}");
}

/// A handshake after close is G_IO_ERROR_CLOSED, sync and async, whether
/// the connection had shaken hands or not.
#[test]
fn handshake_after_close_is_closed() {
    let peer = echo_peer();
    let (conn, _socket) = client_with_socket_timeout(peer.addr(), 0);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    conn.close(gio::Cancellable::NONE).unwrap();
    assert_closed(
        conn.handshake(gio::Cancellable::NONE),
        "sync, after a handshake",
    );
    let ctx = glib::MainContext::new();
    assert_closed(handshake_async_in(&ctx, &conn), "async, after a handshake");

    // Never shaken hands: closing it, then a handshake sends nothing.
    // (A socket timeout, so that a handshake that did start would end.)
    let silent = silent_peer();
    let (conn, _socket) = client_with_socket_timeout(silent.local_addr().unwrap(), 1);
    conn.close(gio::Cancellable::NONE).unwrap();
    assert_closed(conn.handshake(gio::Cancellable::NONE), "sync, fresh");
    assert_closed(handshake_async_in(&ctx, &conn), "async, fresh");
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        silent.recv_from(&mut buf).is_err(),
        "no ClientHello after close"
    );

    // Shutting one direction down is enough (glib-networking does the same).
    let (conn, _socket) = client_with_socket_timeout(silent.local_addr().unwrap(), 1);
    conn.shutdown(false, true, gio::Cancellable::NONE).unwrap();
    assert_closed(
        conn.handshake(gio::Cancellable::NONE),
        "sync, write side shut",
    );
}
