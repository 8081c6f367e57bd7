//! Hostile datagrams through GIO: forged records from the server's address
//! (the relay injects them) before, during and after the handshake leave
//! the connection working. The engine's own tests cover every suite and
//! record shape; this proves the path from the socket.

use std::time::Duration;

use gio::prelude::*;

use crate::common::dtls::{client, recv, send};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::relay::{Direction, Relay};
use crate::common::{self, pki};

/// A DTLS 1.2 record with the given header fields and body.
fn forged(content_type: u8, epoch: u16, body: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 0xfe, 0xfd];
    r.extend_from_slice(&epoch.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0, 0, 42]);
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn hostile() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..=40)
        .map(|len| forged(23, 1, &vec![0x41; len]))
        .collect();
    // A handshake fragment longer than its record, and one of 16 MiB.
    out.push(forged(22, 0, &[2, 0, 0, 10, 0, 1, 0, 0, 0, 0, 0, 20, 1, 2]));
    out.push(forged(
        22,
        0,
        &[2, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 2, 1, 2],
    ));
    out.push(b"definitely not DTLS".to_vec());
    out.push(vec![0x17; 65_507]);
    out
}

fn trusting_client(relay: &Relay) -> gio::DtlsClientConnection {
    let conn = client(relay.addr(), Some("server.example.com"));
    let db = gio::TlsFileDatabase::new(pki("ca.pem")).unwrap();
    conn.set_database(Some(&db));
    conn
}

fn assert_echo(conn: &gio::DtlsClientConnection, what: &[u8]) {
    send(conn, what, -1).unwrap();
    assert_eq!(recv(conn, 2048, 5_000_000).unwrap(), what);
}

#[test]
fn forged_datagrams_after_the_handshake_leave_the_link_working() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&common::init().pki));
    let relay = Relay::start(peer.addr());
    let conn = trusting_client(&relay);
    assert_echo(&conn, b"before");
    for d in hostile() {
        relay.inject(Direction::ToClient, &d);
    }
    // Nothing of it is data: the next receive sees the genuine echo.
    assert_echo(&conn, b"after");
    let err = recv(&conn, 2048, 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
    assert_eq!(peer.log().conns[0].echoed.len(), 2);
}

#[test]
fn forged_datagrams_during_the_handshake_are_dropped() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&common::init().pki));
    let relay = std::sync::Arc::new(Relay::start(peer.addr()));
    let conn = trusting_client(&relay);
    // Inject as soon as the ClientHello went out, while the handshake runs.
    let injector = {
        let relay = relay.clone();
        std::thread::spawn(move || {
            relay
                .wait_count(Direction::ToServer, 1, Duration::from_secs(5))
                .unwrap();
            for d in hostile() {
                relay.inject(Direction::ToClient, &d);
            }
        })
    };
    conn.handshake(gio::Cancellable::NONE).unwrap();
    injector.join().unwrap();
    for d in hostile() {
        relay.inject(Direction::ToClient, &d);
    }
    assert_echo(&conn, b"through the noise");
}
