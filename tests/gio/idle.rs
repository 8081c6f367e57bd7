//! What an idle established connection keeps: file descriptors (none
//! beyond its base socket's) and memory (bounded; the bench's idle row
//! measures it precisely). Each test runs alone in a child process, so the
//! counts are its own.

use std::time::Duration;

use gio::prelude::*;

use crate::common::dtls::{connected_socket, recv, send};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::strict_socket::StrictSocket;
use crate::common::{self, pki};

const SECOND: i64 = 1_000_000;

/// The base sockets the library waits on differently: a plain GSocket
/// (polled directly), one with `g_socket_set_timeout` (GSocket's own
/// timed calls), and a GDatagramBased of another class (through its
/// GSource).
#[derive(Clone, Copy, Debug)]
enum Base {
    Plain,
    Timed,
    Other,
}

/// A client on a new base of kind `base`, handshake done (blocking), and
/// with `echo` one echo (blocking calls, then a receive that would block),
/// then left idle. Returns it with its base.
fn idle_client(
    peer: &EchoPeer,
    base: Base,
    echo: bool,
) -> (gio::DtlsClientConnection, gio::DatagramBased) {
    let socket = connected_socket(peer.addr());
    let base: gio::DatagramBased = match base {
        Base::Plain => socket.upcast(),
        Base::Timed => {
            socket.set_timeout(30);
            socket.upcast()
        }
        Base::Other => StrictSocket::new(&socket).upcast(),
    };
    let id = gio::NetworkAddress::new("server.example.com", 0);
    let conn = gio::DtlsClientConnection::new(&base, Some(&id)).unwrap();
    let db: gio::TlsDatabase = gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast();
    conn.set_database(Some(&db));
    conn.handshake(gio::Cancellable::NONE).unwrap();
    if echo {
        send(&conn, b"ping", -1).unwrap();
        assert_eq!(recv(&conn, 64, 10 * SECOND).unwrap(), b"ping");
    }
    (conn, base)
}

/// Each connection: handshake, maybe an echo, then the peer ends it and
/// serves the next (its close_notify stays unread here). Room for one
/// more than `connections`: the peer's thread, and its socket, stay.
fn echo_peer(connections: usize) -> EchoPeer {
    EchoPeer::start(
        EchoPeerOpts::new(&common::init().pki)
            .max_connections(connections + 1)
            .close_after(1),
    )
}

/// File descriptors: one per connection, its base socket's, whatever the
/// base (the waits on a base of another class than GSocket run through
/// its GSource on the thread's own wait context, not a context per
/// connection with its eventfd), after blocking handshakes and receives.
#[test]
fn idle_connections_keep_no_descriptor_beyond_their_base_socket() {
    if !common::alone(
        "idle::idle_connections_keep_no_descriptor_beyond_their_base_socket",
        Duration::from_secs(120),
    ) {
        return;
    }
    const EACH: usize = 10;
    let kinds = [Base::Plain, Base::Timed, Base::Other];
    let peer = echo_peer(kinds.len() * (EACH + 1));
    // One of each first: what is made once per thread or process (the
    // thread's wait context, GIO's and OpenSSL's set-up) is not counted.
    let mut keep: Vec<_> = kinds.iter().map(|&k| idle_client(&peer, k, true)).collect();
    // Sockets are counted by the clients' own (the in-process echo peer
    // clones its socket per connection and closes the clones on its own
    // thread, at its own pace); everything else process-wide.
    let others0 = common::open_non_socket_fds();
    for &kind in &kinds {
        let (fds, others) = (common::open_fds(), common::open_non_socket_fds());
        keep.extend((0..EACH).map(|_| idle_client(&peer, kind, true)));
        println!(
            "idle: {kind:?} bases: {} descriptors for {EACH} connections, {} of them not sockets",
            common::open_fds() as isize - fds as isize,
            common::open_non_socket_fds() as isize - others as isize
        );
    }
    assert_eq!(
        common::open_non_socket_fds(),
        others0,
        "no descriptor but the base socket per connection"
    );
    // Receiving again on the first ones (their sources were taken off the
    // thread's context by the waits of the others): end of stream.
    for (conn, _) in &keep[..kinds.len()] {
        assert_eq!(recv(conn, 64, 10 * SECOND).unwrap(), b"");
    }
}

/// Memory: an established connection that has not exchanged data keeps
/// at most 64 KiB (the bench's idle row measures it: about 42 KiB, against
/// about 60 KiB for plain OpenSSL).
#[test]
fn an_idle_connection_keeps_at_most_64_kib() {
    if !common::alone(
        "idle::an_idle_connection_keeps_at_most_64_kib",
        Duration::from_secs(120),
    ) {
        return;
    }
    const N: usize = 100;
    let peer = EchoPeer::start(
        EchoPeerOpts::new(&common::init().pki)
            .max_connections(N + 11)
            .handshake_only(),
    );
    let mut keep: Vec<_> = (0..10)
        .map(|_| idle_client(&peer, Base::Plain, false))
        .collect();
    let rss0 = common::rss_bytes();
    keep.extend((0..N).map(|_| idle_client(&peer, Base::Plain, false)));
    let kib = common::rss_bytes().saturating_sub(rss0) as f64 / 1024.0 / N as f64;
    println!("idle: {kib:.1} KiB RSS per connection ({N})");
    assert!(kib <= 64.0, "{kib:.1} KiB per idle connection");
}
