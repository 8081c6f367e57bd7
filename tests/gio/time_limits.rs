//! Retransmission and handshake time limits: `retransmit-timeout`,
//! `max-retransmit-timeout`, `handshake-timeout`.

use std::time::{Duration, Instant};

use gio::prelude::*;

use crate::common::dtls::{client, silent_peer};

/// Datagrams the silent peer received, with when they arrived.
fn drain(peer: &std::net::UdpSocket) -> usize {
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok((len, _)) = peer.recv_from(&mut buf) {
        assert_eq!(buf[0], 22, "a handshake record");
        assert!(len > 13);
        n += 1;
    }
    n
}

fn limited_client(peer: &std::net::UdpSocket) -> gio::DtlsClientConnection {
    let conn = client(peer.local_addr().unwrap(), Some("server.example.com"));
    conn.set_property("retransmit-timeout", 50u32);
    conn.set_property("max-retransmit-timeout", 100u32);
    conn.set_property("handshake-timeout", 400u32);
    conn
}

#[test]
fn defaults() {
    let peer = silent_peer();
    let conn = client(peer.local_addr().unwrap(), None);
    assert_eq!(conn.property::<u32>("retransmit-timeout"), 1000);
    assert_eq!(conn.property::<u32>("max-retransmit-timeout"), 6000);
    assert_eq!(conn.property::<u32>("handshake-timeout"), 60_000);
}

#[test]
fn a_silent_peer_fails_the_handshake_at_the_handshake_timeout() {
    let peer = silent_peer();
    let conn = limited_client(&peer);
    let started = Instant::now();
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    let took = started.elapsed();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(err.message().contains("handshake-timeout"), "{err}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // ClientHello at 0, then copies at 50, 150, 250, 350 ms: steps doubling
    // from 50 ms, capped at 100 ms.
    let sent = drain(&peer);
    assert!((4..=6).contains(&sent), "{sent} ClientHellos in {took:?}");
    // Sticky, and the implicit handshake of I/O reports it too: as
    // TIMED_OUT where the operation has a timeout, else (GIO asserts that
    // only a positive timeout may time out) as a failed handshake.
    let again = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_eq!(again.message(), err.message());
    let e = crate::common::dtls::send(&conn, b"x", 1_000_000).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::TimedOut), "{e}");
    for timeout in [-1, 0] {
        let e = crate::common::dtls::send(&conn, b"x", timeout).unwrap_err();
        assert!(e.matches(gio::TlsError::Handshake), "{e}");
        assert_eq!(e.message(), err.message());
    }
}

#[test]
fn the_async_handshake_has_the_same_limit() {
    let peer = silent_peer();
    let conn = limited_client(&peer);
    let ctx = glib::MainContext::new();
    let started = Instant::now();
    let result = ctx
        .with_thread_default(|| {
            let done = std::rc::Rc::new(std::cell::RefCell::new(None));
            let d = done.clone();
            conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
                *d.borrow_mut() = Some(r)
            });
            while done.borrow().is_none() && started.elapsed() < Duration::from_secs(10) {
                ctx.iteration(true);
            }
            let r = done.borrow_mut().take();
            r
        })
        .unwrap();
    let err = result.expect("handshake_async finished").unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(drain(&peer) >= 4);
}

#[test]
fn no_handshake_timeout_leaves_the_caller_s_timeout_in_charge() {
    let peer = silent_peer();
    let conn = limited_client(&peer);
    conn.set_property("handshake-timeout", 0u32);
    let started = Instant::now();
    let err = crate::common::dtls::recv(&conn, 100, 600_000).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    assert!(!err.message().contains("handshake-timeout"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(600));
}
