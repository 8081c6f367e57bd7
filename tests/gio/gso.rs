//! Batches sent with UDP segmentation offload (`UDP_SEGMENT`, see
//! src/connection/gso.rs): `g_datagram_based_send_messages` on a client
//! over a connected GSocket. The OpenSSL echo peer must get every message
//! whole and in order; on the wire (raw UDP sockets) every message must be
//! one datagram holding one DTLS record. A receiver with `UDP_GRO` on sees
//! whether a batch really went segmented: it then gets the run as one
//! buffer with the segment size.
//!
//! The same tests run again in a child process with `DTLS_OPENSSL_GSO=0`,
//! where nothing may be segmented.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::Duration;

use gio::prelude::*;

use crate::common::dtls::{connected_socket, recv, send_many};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::{self, pki};

const SECOND: i64 = 1_000_000;

/// What the tests send: 32 equal messages (one full batch), then sizes
/// that split into several runs.
const EQUAL: [usize; 32] = [1000; 32];
const MIXED: [usize; 6] = [1000, 1000, 500, 1000, 1200, 1200];

/// Whether this process may segment (the child runs with
/// `DTLS_OPENSSL_GSO=0`).
fn segmentation_expected() -> bool {
    std::env::var("DTLS_OPENSSL_GSO").map_or(true, |v| v != "0")
}

/// Messages of `sizes`, each distinct (its index and position).
fn messages(sizes: &[usize], first: usize) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| ((first + i) * 31 + j) as u8).collect())
        .collect()
}

/// A client over a connected GSocket, handshaken with `peer`; the GSocket
/// too, to re-point it.
fn client(peer: &EchoPeer) -> (gio::DtlsClientConnection, gio::Socket) {
    let socket = connected_socket(peer.addr());
    let id = gio::NetworkAddress::new("server.example.com", peer.addr().port());
    let conn = gio::DtlsClientConnection::new(&socket, Some(&id)).unwrap();
    conn.set_database(Some(
        &gio::TlsFileDatabase::new(pki("ca.pem"))
            .unwrap()
            .upcast::<gio::TlsDatabase>(),
    ));
    conn.handshake(gio::Cancellable::NONE).unwrap();
    (conn, socket)
}

fn echo_peer() -> EchoPeer {
    EchoPeer::start(EchoPeerOpts::new(&common::init().pki))
}

/// Sends `msgs` in one `send_messages` call; all must go.
fn send_batch(conn: &gio::DtlsClientConnection, msgs: &[Vec<u8>]) {
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    assert_eq!(send_many(conn, &refs, -1, None).unwrap(), msgs.len());
}

/// Sends `msgs` in one call and checks the echoes: the same messages, in
/// order, none more.
fn echoed_in_order(conn: &gio::DtlsClientConnection, msgs: &[Vec<u8>]) {
    send_batch(conn, msgs);
    for (i, m) in msgs.iter().enumerate() {
        let got = recv(conn, 2048, 5 * SECOND).unwrap_or_else(|e| panic!("echo {i}: {e}"));
        assert!(got == *m, "echo {i}: {} bytes, not message {i}", got.len());
    }
    let e = recv(conn, 2048, 0).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::WouldBlock), "nothing more: {e}");
}

#[test]
fn batches_reach_an_openssl_peer_whole_and_in_order() {
    let peer = echo_peer();
    let (conn, _socket) = client(&peer);
    echoed_in_order(&conn, &messages(&EQUAL, 0));
    echoed_in_order(&conn, &messages(&MIXED, 100));
    echoed_in_order(&conn, &messages(&[1200, 1200, 1200, 64], 200));
    let log = peer.log();
    let sizes: Vec<usize> = [&EQUAL[..], &MIXED, &[1200, 1200, 1200, 64]].concat();
    assert_eq!(log.conns[0].echoed, sizes);
}

/// Re-points the client's socket at `to` (after the handshake).
fn redirect(socket: &gio::Socket, to: &UdpSocket) {
    let port = to.local_addr().unwrap().port();
    let a = gio::InetSocketAddress::from_string("127.0.0.1", port.into()).unwrap();
    SocketExt::connect(socket, &a, gio::Cancellable::NONE).unwrap();
}

fn receiver() -> UdpSocket {
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    r
}

/// One DTLS 1.2 application-data record per datagram, of the message's
/// size plus the same overhead each time, sequence numbers consecutive.
/// Returns the overhead.
fn one_record_each(datagrams: &[Vec<u8>], sizes: &[usize]) -> usize {
    let overhead = datagrams[0].len() - sizes[0];
    let seq = |d: &[u8]| d[5..11].iter().fold(0u64, |s, &b| s << 8 | b as u64);
    let first = seq(&datagrams[0]);
    for (i, (d, &size)) in datagrams.iter().zip(sizes).enumerate() {
        assert_eq!(d.len(), size + overhead, "datagram {i}: its message's size");
        assert_eq!(&d[..5], &[23, 0xfe, 0xfd, 0, 1], "datagram {i}: header");
        assert_eq!(seq(d), first + i as u64, "datagram {i}: in order");
        let length = u16::from_be_bytes([d[11], d[12]]) as usize;
        assert_eq!(length + 13, d.len(), "datagram {i}: one record");
    }
    overhead
}

/// Turns on UDP_GRO (Linux ≥ 5.0); false if the kernel lacks it.
fn coalescing(receiver: &UdpSocket) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a readable c_int and the length is its size.
    unsafe {
        libc::setsockopt(
            receiver.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// One receive on a UDP_GRO socket: (bytes, segment size if segmented);
/// `None` when nothing came within the read timeout.
fn receive_coalesced(receiver: &UdpSocket) -> Option<(usize, Option<u16>)> {
    let mut buf = vec![0u8; 65_536];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes `buf` and `control`, alive for the call.
    let n = unsafe { libc::recvmsg(receiver.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        return None;
    }
    let mut segment = None;
    // SAFETY: walks the control messages the kernel wrote into `control`
    // with the CMSG macros, within `msg_controllen`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                segment = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u16>()));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((n as usize, segment))
}

/// Sends EQUAL then MIXED towards a receiver with UDP_GRO on; checks what
/// it got as (bytes, segment size) per receive: segmented runs when
/// `segmented`, else every datagram alone.
fn check_coalescing(
    conn: &gio::DtlsClientConnection,
    socket: &gio::Socket,
    overhead: usize,
    segmented: bool,
) {
    let gro = receiver();
    if !coalescing(&gro) {
        eprintln!("UDP_GRO unknown to this kernel: segmentation not observed");
        return;
    }
    redirect(socket, &gro);
    send_batch(conn, &messages(&EQUAL, 0));
    send_batch(conn, &messages(&MIXED, 0));
    let d = |n: usize| n + overhead;
    let expected: Vec<(usize, Option<u16>)> = if segmented {
        vec![
            (32 * d(1000), Some(d(1000) as u16)),
            (2 * d(1000) + d(500), Some(d(1000) as u16)),
            (d(1000), None),
            (2 * d(1200), Some(d(1200) as u16)),
        ]
    } else {
        [&EQUAL[..], &MIXED]
            .concat()
            .iter()
            .map(|&n| (d(n), None))
            .collect()
    };
    let got: Vec<_> = expected
        .iter()
        .map_while(|_| receive_coalesced(&gro))
        .collect();
    assert_eq!(got, expected, "(bytes, segment size) per receive");
}

#[test]
fn on_the_wire_every_message_is_one_datagram_and_one_record() {
    let peer = echo_peer();
    let (conn, socket) = client(&peer);
    let wire = receiver();
    redirect(&socket, &wire);
    let sizes = [&EQUAL[..], &MIXED].concat();
    send_batch(&conn, &messages(&EQUAL, 0));
    send_batch(&conn, &messages(&MIXED, 0));
    let mut buf = vec![0u8; 65_536];
    let datagrams: Vec<Vec<u8>> = sizes
        .iter()
        .map(|_| {
            let n = wire.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();
    let overhead = one_record_each(&datagrams, &sizes);
    check_coalescing(&conn, &socket, overhead, segmentation_expected());
}

#[test]
fn dtls_openssl_gso_0_sends_every_datagram_alone() {
    if !segmentation_expected() {
        return; // already the child
    }
    common::run_tests_in_child(
        &[
            "gso::batches_reach_an_openssl_peer_whole_and_in_order",
            "gso::on_the_wire_every_message_is_one_datagram_and_one_record",
        ],
        &[("DTLS_OPENSSL_GSO", "0")],
    );
}

/// SO_NO_CHECK: the kernel refuses segmented sends (EINVAL).
fn without_checksums(socket: &gio::Socket) {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a readable c_int and the length is its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn segmentation_refused_by_the_kernel_falls_back_without_loss() {
    let peer = echo_peer();
    let (conn, socket) = client(&peer);
    without_checksums(&socket);
    // The first batch is refused segmented and sent again plainly; the
    // connection then stays plain.
    echoed_in_order(&conn, &messages(&EQUAL, 0));
    echoed_in_order(&conn, &messages(&MIXED, 100));
    assert_eq!(
        peer.log().conns[0].echoed,
        [&EQUAL[..], &MIXED].concat(),
        "each message once"
    );
    let wire = receiver();
    redirect(&socket, &wire);
    send_batch(&conn, &messages(&[1000, 1000], 0));
    let mut buf = vec![0u8; 4096];
    let first = wire.recv(&mut buf).unwrap();
    let second = wire.recv(&mut buf).unwrap();
    let overhead = first - 1000;
    assert_eq!(second, first);
    check_coalescing(&conn, &socket, overhead, false);
}

#[test]
fn a_message_over_max_payload_ends_the_batch_before_it() {
    let peer = echo_peer();
    let (conn, _socket) = client(&peer);
    let max: u32 = conn.property("max-payload");
    let mut msgs = messages(&[1000, 1000], 0);
    msgs.push(vec![7u8; max as usize + 1]);
    msgs.extend(messages(&[1000], 2));
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    // The messages before it go; alone, it is the error.
    assert_eq!(send_many(&conn, &refs, -1, None).unwrap(), 2);
    let e = send_many(&conn, &refs[2..], -1, None).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::MessageTooLarge), "{e}");
    for (i, m) in msgs[..2].iter().enumerate() {
        assert_eq!(recv(&conn, 2048, 5 * SECOND).unwrap(), *m, "echo {i}");
    }
    echoed_in_order(&conn, &msgs[3..]);
    assert_eq!(peer.log().conns[0].echoed, [1000, 1000, 1000]);
}
