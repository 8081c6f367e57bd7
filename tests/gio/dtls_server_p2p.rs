//! The WebRTC-style peer link, as GIO DTLS's main public user makes it:
//! the server from `g_dtls_server_connection_new (socket, cert)` with
//! authentication-mode REQUIRED, the client from
//! `g_dtls_client_connection_new (socket, NULL)` with its own certificate;
//! both self-signed (made at test time), `database` NULL, the peer pinned
//! by the SHA-256 fingerprint of its certificate in `accept-certificate`,
//! `handshake_async` on a private main context, then 200 datagrams each
//! way — over plain connected GSockets and over StrictSocket on both ends
//! (non-blocking only, WOULD_BLOCK on every other send, no
//! condition_check/condition_wait).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::strict_socket::StrictSocket;
use crate::dtls_server::{
    exchange_non_blocking, fingerprint, handshake_async_both, in_private_context, self_signed,
    socket_pair,
};

/// The flags each `accept-certificate` call saw.
type Seen = Arc<Mutex<Vec<F>>>;

struct P2p {
    client: gio::DtlsClientConnection,
    server: gio::DtlsServerConnection,
    client_saw: Seen,
    server_saw: Seen,
    strict: Option<(StrictSocket, StrictSocket)>,
}

/// Pins `pin` on `conn`: accepts a peer whose certificate's DER hashes to it.
fn pin(conn: &impl IsA<gio::DtlsConnection>, pin: [u8; 32]) -> Seen {
    let seen = Seen::default();
    let s = seen.clone();
    conn.connect_accept_certificate(move |_, peer, errors| {
        s.lock().unwrap().push(errors);
        fingerprint(peer) == pin
    });
    seen
}

/// The link; `wrong_pin_on`: "server" or "client" pins a certificate other
/// than its peer's.
fn p2p(strict: bool, wrong_pin_on: Option<&str>) -> P2p {
    let (a, b) = socket_pair();
    let strict = strict.then(|| (StrictSocket::new(&a), StrictSocket::new(&b)));
    let (client_base, server_base): (gio::DatagramBased, gio::DatagramBased) = match &strict {
        Some((sa, sb)) => (sa.clone().upcast(), sb.clone().upcast()),
        None => (a.upcast(), b.upcast()),
    };
    let server_cert = self_signed("server-peer");
    let client_cert = self_signed("client-peer");
    let stranger = fingerprint(&self_signed("stranger"));

    let server = gio::DtlsServerConnection::new(&server_base, Some(&server_cert)).unwrap();
    server.set_authentication_mode(gio::TlsAuthenticationMode::Required);
    server.set_database(None::<&gio::TlsDatabase>);
    let client =
        gio::DtlsClientConnection::new(&client_base, None::<&gio::SocketConnectable>).unwrap();
    client.set_certificate(&client_cert);
    client.set_database(None::<&gio::TlsDatabase>);
    for conn in [
        client.upcast_ref::<gio::DtlsConnection>(),
        server.upcast_ref(),
    ] {
        conn.set_property("handshake-timeout", 10_000u32);
    }
    let server_saw = pin(
        &server,
        if wrong_pin_on == Some("server") {
            stranger
        } else {
            fingerprint(&client_cert)
        },
    );
    let client_saw = pin(
        &client,
        if wrong_pin_on == Some("client") {
            stranger
        } else {
            fingerprint(&server_cert)
        },
    );
    P2p {
        client,
        server,
        client_saw,
        server_saw,
        strict,
    }
}

fn pinned_link(strict: bool) {
    let l = p2p(strict, None);
    in_private_context(|ctx| {
        let (c, s) = handshake_async_both(ctx, &l.client, &l.server, Duration::from_secs(20));
        c.unwrap();
        s.unwrap();
        exchange_non_blocking(ctx, &l.client, &l.server, 200, Duration::from_secs(30));
    });
    // Each side was asked once: nothing trusted (no database), and the
    // client, told no server identity, cannot check one.
    assert_eq!(*l.server_saw.lock().unwrap(), [F::UNKNOWN_CA]);
    assert_eq!(
        *l.client_saw.lock().unwrap(),
        [F::UNKNOWN_CA | F::BAD_IDENTITY]
    );
    assert!(l
        .server
        .peer_certificate()
        .unwrap()
        .is_same(&l.client.certificate().unwrap()));
    assert!(l
        .client
        .peer_certificate()
        .unwrap()
        .is_same(&l.server.certificate().unwrap()));
    assert!(l.client.accepted_cas().is_empty(), "no database: no names");
    if let Some((a, b)) = &l.strict {
        for counts in [a.counts(), b.counts()] {
            assert_eq!(counts.condition_check, 0);
            assert_eq!(counts.condition_wait, 0);
            assert_eq!(counts.bad_flags, 0);
            assert!(counts.send_would_block > 0, "{counts:?}");
            assert!(counts.create_source > 0, "{counts:?}");
        }
    }
}

#[test]
fn pinned_peers_over_sockets() {
    pinned_link(false);
}

#[test]
fn pinned_peers_over_strict_sockets() {
    pinned_link(true);
}

/// A wrong pin on one side: that side's handshake fails with
/// BAD_CERTIFICATE; the other side, whose handshake is over when the
/// verdict comes (DTLS 1.2: the server sends the last flight), gets the
/// close_notify the rejecting side sends: end-of-stream, not a hang.
fn wrong_pin(strict: bool, on: &str) {
    let l = p2p(strict, Some(on));
    in_private_context(|ctx| {
        let (c, s) = handshake_async_both(ctx, &l.client, &l.server, Duration::from_secs(20));
        let (rejecting, accepted, other): (_, _, gio::DatagramBased) = if on == "server" {
            (s, c, l.client.clone().upcast())
        } else {
            (c, s, l.server.clone().upcast())
        };
        let e = rejecting.unwrap_err();
        assert!(e.matches(gio::TlsError::BadCertificate), "{on}: {e}");
        assert!(e.message().contains("unknown CA"), "{on}: {e}");
        accepted.unwrap();
        // The other side learns it at once, through its GSource.
        let eos = std::rc::Rc::new(std::cell::RefCell::new(None));
        let e2 = eos.clone();
        let source = other.create_source(
            glib::IOCondition::IN,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            move |c, _| match crate::common::dtls::recv(c, 64, 0) {
                Err(e) if e.matches(gio::IOErrorEnum::WouldBlock) => glib::ControlFlow::Continue,
                r => {
                    *e2.borrow_mut() = Some(r);
                    glib::ControlFlow::Break
                }
            },
        );
        source.attach(Some(ctx));
        crate::dtls_server::iterate_until(ctx, Duration::from_secs(10), || eos.borrow().is_some());
        source.destroy();
        let r = eos.borrow_mut().take().expect("the other side learnt it");
        match r {
            Ok(d) => assert_eq!(d, b"", "{on}: end-of-stream"),
            Err(e) => assert!(e.domain() == gio::TlsError::domain(), "{on}: {e}"),
        }
    });
    let saw = if on == "server" {
        &l.server_saw
    } else {
        &l.client_saw
    };
    assert_eq!(saw.lock().unwrap().len(), 1, "{on} was asked once");
}

#[test]
fn wrong_pin_refused_by_the_server() {
    wrong_pin(false, "server");
}

#[test]
fn wrong_pin_refused_by_the_client() {
    wrong_pin(false, "client");
}

#[test]
fn wrong_pin_refused_over_strict_sockets() {
    wrong_pin(true, "server");
    wrong_pin(true, "client");
}
