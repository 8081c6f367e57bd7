//! Handshakes and data over a network that drops, duplicates and reorders
//! (the relay's seeded [`Impairment`]), against the raw-OpenSSL echo peer
//! and `openssl s_server`.
//!
//! 100 seeds per peer by default; `DTLS_OPENSSL_LONG_TESTS=1` runs 1,000.
//! Every handshake must succeed within the default `handshake-timeout`
//! (60 s); the client starts retransmitting at 250 ms instead of 1 s, and
//! keeps the default 6 s largest step.
//!
//! The bound is set by the server: OpenSSL answers a retransmitted
//! ClientHello only from its own timer (at 1, 3, 7, 15, 31 s), so when
//! every copy of one fragment of its flight is lost, nothing the client
//! does helps before the server's next copy. A 20 s bound failed 1 or 2
//! seeds in 100 that way; within 60 s the server sends its flight 6 times,
//! and the client's 12 retransmissions (ending at 56 s with these steps)
//! outlast them.

use std::time::{Duration, Instant};

use gio::prelude::*;

use crate::common::dtls::{client, recv, send};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::peers::{OpensslServer, OpensslServerOpts};
use crate::common::relay::{Direction, Impairment, Relay, Verdict};
use crate::common::{self, pki};

/// Each handshake's bound: the default `handshake-timeout`.
const HANDSHAKE_TIMEOUT_MS: u32 = 60_000;
/// Handshakes run at once (each with its own server and relay).
const PARALLEL: u64 = 4;

fn seeds() -> u64 {
    if std::env::var_os("DTLS_OPENSSL_LONG_TESTS").is_some() {
        1000
    } else {
        100
    }
}

/// A client through an impaired relay to `server`: the default time limits
/// but for a first retransmission at 250 ms.
fn impaired_client(relay: &Relay) -> gio::DtlsClientConnection {
    let conn = client(relay.addr(), Some("server.example.com"));
    let db = gio::TlsFileDatabase::new(pki("ca.pem")).unwrap();
    conn.set_database(Some(&db));
    conn.set_property("retransmit-timeout", 250u32);
    assert_eq!(conn.property::<u32>("max-retransmit-timeout"), 6000);
    assert_eq!(
        conn.property::<u32>("handshake-timeout"),
        HANDSHAKE_TIMEOUT_MS
    );
    conn
}

type Server = (std::net::SocketAddr, Box<dyn std::any::Any>);

/// Runs one impaired handshake per seed against a fresh server from
/// `start`, [`PARALLEL`] at a time; reports failures and the median time.
fn handshakes_under_loss(name: &str, start: impl Fn() -> Server + Sync) {
    common::init();
    let n = seeds();
    let next = std::sync::atomic::AtomicU64::new(0);
    let results = std::sync::Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if seed >= n {
                    break;
                }
                let (addr, server) = start();
                let relay = Relay::start(addr);
                relay.impair(Impairment::harsh(seed));
                let conn = impaired_client(&relay);
                let started = Instant::now();
                let r = conn.handshake(gio::Cancellable::NONE);
                let took = started.elapsed();
                let mut results = results.lock().unwrap();
                match r {
                    Ok(()) => results.0.push(took),
                    Err(e) => results.1.push(format!("seed {seed}: {e} after {took:?}")),
                }
                drop(results);
                drop(conn);
                drop(relay);
                drop(server);
            });
        }
    });
    let (mut times, failures) = results.into_inner().unwrap();
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "{name}: {}/{n} handshakes under 20% loss, 10% duplication, 20% reordering; median {median:?}, slowest {:?}",
        times.len(),
        times.last().copied().unwrap_or_default()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(times
        .iter()
        .all(|t| *t < Duration::from_millis(HANDSHAKE_TIMEOUT_MS.into())));
}

#[test]
fn handshakes_under_loss_with_the_openssl_echo_peer() {
    let pki_dir = common::init().pki.clone();
    handshakes_under_loss("echo peer", || {
        let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir));
        (peer.addr(), Box::new(peer))
    });
}

#[test]
fn handshakes_under_loss_with_openssl_s_server() {
    let pki_dir = common::init().pki.clone();
    handshakes_under_loss("openssl s_server", || {
        let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir));
        (server.addr(), Box::new(server))
    });
}

/// Data over the impaired link arrives intact or not at all, each message
/// at most once.
#[test]
fn data_under_loss_arrives_intact_and_at_most_once() {
    let pki_dir = common::init().pki.clone();
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir));
    let relay = Relay::start(peer.addr());
    relay.impair(Impairment::harsh(7));
    let conn = impaired_client(&relay);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    // Numbered messages with a checksum, sent without waiting.
    let total = 300u32;
    let message = |i: u32| -> Vec<u8> {
        let mut m = i.to_be_bytes().to_vec();
        m.extend((0..20 + i % 700).map(|b| (b as u8).wrapping_mul(31) ^ i as u8));
        m
    };
    for i in 0..total {
        send(&conn, &message(i), -1).unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    // Until nothing more comes for 500 ms (reordering delays are ≤ 50 ms).
    while let Ok(got) = recv(&conn, 2048, 500_000) {
        let i = u32::from_be_bytes(got[..4].try_into().unwrap());
        assert!(i < total, "unknown message {i}");
        assert_eq!(got, message(i), "message {i} corrupted");
        assert!(seen.insert(i), "message {i} delivered twice");
    }
    let dup_to_server = relay
        .records(Direction::ToServer)
        .iter()
        .filter(|r| r.verdict == Verdict::Duplicate)
        .count();
    eprintln!(
        "{} of {total} echoes arrived (each direction loses 20%); {dup_to_server} datagrams were duplicated towards the server",
        seen.len()
    );
    assert!(dup_to_server > 0, "the relay duplicated nothing");
    // 0.8 × 0.8 of them on average; far fewer means the link broke.
    assert!(seen.len() as u32 > total / 3, "only {} arrived", seen.len());
    // The connection is still up.
    relay.set_filter(|_, _, _| Verdict::Forward);
    send(&conn, b"after the storm", -1).unwrap();
    loop {
        let got = recv(&conn, 2048, 5_000_000).unwrap();
        if got == b"after the storm" {
            break;
        }
    }
}
