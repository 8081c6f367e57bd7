//! DTLS client benchmark: our client through GIO against plain OpenSSL
//! (and glib-networking's GnuTLS backend when installed), all talking to the
//! same OpenSSL echo server on loopback, measured in the same run.
//!
//! `cargo bench --bench dtls` prints medians and ratios (ours / baseline).
//! Set BENCH_ROUNDS to change the number of handshakes (default 60).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use gio::prelude::*;

use common::dtls::{connected_socket, recv, send};
use common::echo_peer::{median, EchoPeer, EchoPeerOpts, RawClient, RawClientOpts};
use common::peers::{GnutlsServer, GnutlsServerOpts, OpensslServer, OpensslServerOpts};

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// A DTLS client of the backend whose client type is `ty`.
fn gio_client(
    ty: glib::Type,
    addr: std::net::SocketAddr,
    db: &gio::TlsDatabase,
) -> gio::DtlsClientConnection {
    let socket = connected_socket(addr);
    let id = gio::NetworkAddress::new("server.example.com", addr.port());
    let conn: gio::DtlsClientConnection = gio::Initable::builder_with_type(ty)
        .property("base-socket", &socket)
        .property("server-identity", &id)
        .build(gio::Cancellable::NONE)
        .unwrap()
        .downcast()
        .unwrap();
    conn.set_database(Some(db));
    conn
}

fn gio_handshakes(
    ty: glib::Type,
    db: &gio::TlsDatabase,
    n: usize,
    limit: Duration,
) -> Option<Vec<Duration>> {
    let pki = &common::init().pki;
    let peer = EchoPeer::start(EchoPeerOpts::new(pki).max_connections(n));
    let mut times = Vec::new();
    let started = Instant::now();
    for _ in 0..n {
        let conn = gio_client(ty, peer.addr(), db);
        let t = Instant::now();
        if let Err(e) = conn.handshake(gio::Cancellable::NONE) {
            eprintln!("  {}: handshake failed: {e}", ty.name());
            return None;
        }
        times.push(t.elapsed());
        let _ = conn.close(gio::Cancellable::NONE);
        if started.elapsed() > limit {
            break;
        }
    }
    Some(times)
}

fn raw_handshakes(n: usize) -> Vec<Duration> {
    let pki = &common::init().pki;
    let peer = EchoPeer::start(EchoPeerOpts::new(pki).max_connections(n));
    let opts = RawClientOpts::default().verify(&pki.join("ca.pem"), "server.example.com");
    (0..n)
        .map(|_| {
            let mut c = RawClient::connect(peer.addr(), &opts).unwrap();
            let t = c.handshake_time();
            c.close().unwrap();
            t
        })
        .collect()
}

/// Median handshake times of `k` plain OpenSSL clients, then `k` of ours
/// (each followed by `after`), against the server at `addr`.
fn raw_vs_ours(
    addr: std::net::SocketAddr,
    k: usize,
    ours: glib::Type,
    db: &gio::TlsDatabase,
    mut after: impl FnMut(&gio::DtlsClientConnection),
) -> (Duration, Duration) {
    let pki = &common::init().pki;
    let opts = RawClientOpts::default().verify(&pki.join("ca.pem"), "server.example.com");
    let mut raw: Vec<Duration> = (0..k)
        .map(|_| {
            let mut c = RawClient::connect(addr, &opts).unwrap();
            let t = c.handshake_time();
            let _ = c.close();
            t
        })
        .collect();
    let mut mine: Vec<Duration> = (0..k)
        .map(|_| {
            let conn = gio_client(ours, addr, db);
            let t = Instant::now();
            conn.handshake(gio::Cancellable::NONE).unwrap();
            let e = t.elapsed();
            after(&conn);
            let _ = conn.close(gio::Cancellable::NONE);
            e
        })
        .collect();
    (median(&mut raw), median(&mut mine))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let env = common::init();
    let n = rounds();
    let backend = gio::TlsBackend::default();
    assert_eq!(backend.type_().name(), "DtlsOpensslBackend");
    let ours = backend.dtls_client_connection_type();
    let db: gio::TlsDatabase = gio::TlsFileDatabase::new(env.pki.join("ca.pem"))
        .unwrap()
        .upcast();

    // Warm up both paths (lazy initialisation, page faults).
    let _ = raw_handshakes(3);
    let _ = gio_handshakes(ours, &db, 3, Duration::from_secs(10));

    let mut raw = raw_handshakes(n);
    let mut mine = gio_handshakes(ours, &db, n, Duration::from_secs(60)).expect("our handshakes");
    let raw_m = median(&mut raw);
    let mine_m = median(&mut mine);
    println!("handshake (loopback, ECDSA P-256, verified), median of {n}:");
    println!("  raw OpenSSL client      {:8.3} ms", ms(raw_m));
    println!(
        "  dtls-openssl via GIO    {:8.3} ms   ratio {:.2}x raw",
        ms(mine_m),
        ms(mine_m) / ms(raw_m)
    );

    // glib-networking's GnuTLS backend, loaded next to ours.
    let gnutls = gio::IOExtensionPoint::lookup("gio-tls-backend")
        .and_then(|ep| ep.extension_by_name("gnutls"))
        .map(|ext| {
            glib::Object::with_type(ext.type_())
                .downcast::<gio::TlsBackend>()
                .unwrap()
        });
    match gnutls {
        Some(g) => {
            let ty = g.dtls_client_connection_type();
            let gdb: gio::TlsDatabase = gio::Initable::builder_with_type(g.file_database_type())
                .property("anchors", env.pki.join("ca.pem").to_str().unwrap())
                .build(gio::Cancellable::NONE)
                .unwrap()
                .downcast()
                .unwrap();
            let rounds = n.min(10);
            match gio_handshakes(ty, &gdb, rounds, Duration::from_secs(20)) {
                Some(mut t) if !t.is_empty() => {
                    let m = median(&mut t);
                    println!(
                        "  glib-networking GnuTLS  {:8.3} ms   ratio {:.2}x raw ({} rounds)",
                        ms(m),
                        ms(m) / ms(raw_m),
                        t.len()
                    );
                }
                _ => println!("  glib-networking GnuTLS  failed"),
            }
        }
        None => println!("  glib-networking GnuTLS  not installed"),
    }

    // The same against real server programs (one process each, serving
    // connections one after another).
    println!(
        "handshake against server programs, median of {}:",
        n.min(20)
    );
    let k = n.min(20);
    {
        let server = OpensslServer::start(OpensslServerOpts::new(&env.pki));
        let (r, o) = raw_vs_ours(server.addr(), k, ours, &db, |_| {});
        println!(
            "  openssl s_server:  raw OpenSSL {:8.3} ms   dtls-openssl {:8.3} ms   ratio {:.2}x",
            ms(r),
            ms(o),
            ms(o) / ms(r)
        );
    }
    {
        let server = GnutlsServer::start(GnutlsServerOpts::new(&env.pki));
        let mut rtt: Vec<Duration> = Vec::new();
        let small = vec![0x33u8; 200];
        let (r, o) = raw_vs_ours(server.addr(), k, ours, &db, |conn| {
            for _ in 0..20 {
                let t = Instant::now();
                send(conn, &small, -1).unwrap();
                assert_eq!(recv(conn, 2048, 5_000_000).unwrap(), small);
                rtt.push(t.elapsed());
            }
        });
        println!(
            "  gnutls-serv:       raw OpenSSL {:8.3} ms   dtls-openssl {:8.3} ms   ratio {:.2}x",
            ms(r),
            ms(o),
            ms(o) / ms(r)
        );
        println!(
            "  gnutls-serv 200-byte echo round trip (dtls-openssl): {:.1} µs",
            median(&mut rtt).as_secs_f64() * 1e6
        );
    }

    // 1000-byte echo round trip on an established connection.
    let pki = &env.pki;
    let payload = vec![0x5au8; 1000];
    let echoes = n * 20;
    let peer = EchoPeer::start(EchoPeerOpts::new(pki));
    let mut raw_client = RawClient::connect(peer.addr(), &RawClientOpts::default()).unwrap();
    let mut raw_rtt: Vec<Duration> = (0..echoes)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(raw_client.echo(&payload).unwrap(), payload);
            t.elapsed()
        })
        .collect();
    drop(raw_client);
    drop(peer);
    let peer = EchoPeer::start(EchoPeerOpts::new(pki));
    let conn = gio_client(ours, peer.addr(), &db);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    let mut our_rtt: Vec<Duration> = (0..echoes)
        .map(|_| {
            let t = Instant::now();
            send(&conn, &payload, -1).unwrap();
            assert_eq!(recv(&conn, 2048, 5_000_000).unwrap(), payload);
            t.elapsed()
        })
        .collect();
    let (r, o) = (median(&mut raw_rtt), median(&mut our_rtt));
    println!("1000-byte echo round trip, median of {echoes}:");
    println!("  raw OpenSSL client      {:8.1} µs", r.as_secs_f64() * 1e6);
    println!(
        "  dtls-openssl via GIO    {:8.1} µs   ratio {:.2}x raw",
        o.as_secs_f64() * 1e6,
        o.as_secs_f64() / r.as_secs_f64()
    );
}
