//! Re-entrancy and concurrency around the handshake: application code the
//! handshake runs (`accept-certificate`) calling back into this and other
//! connections, two threads racing the implicit handshake, a blocking call
//! on the thread running the async handshake, and cancelling a blocked
//! handshake from another thread.
//!
//! Calls that used to hang run on a thread of their own; the test waits for
//! their result with a bounded `recv_timeout` and fails instead of hanging.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::dtls::{client, recv, send, send_many, silent_peer};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::{self, pki};

const SECOND: i64 = 1_000_000;
/// How long a call that should return at once may take before the test
/// calls it a hang (generous: the machine may be busy).
const HANG: Duration = Duration::from_secs(20);

/// Our connections are thread-safe (GIO's contract for DTLS connections);
/// the gio crate does not know it.
#[derive(Clone)]
struct Shared(gio::DtlsClientConnection);
// SAFETY: see above.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The connection (a method, so closures capture the whole `Shared`).
    fn conn(&self) -> &gio::DtlsClientConnection {
        &self.0
    }
}

fn trusting_client(addr: std::net::SocketAddr) -> gio::DtlsClientConnection {
    let c = client(addr, Some("server.example.com"));
    c.set_database(Some(
        &gio::TlsFileDatabase::new(pki("ca.pem"))
            .unwrap()
            .upcast::<gio::TlsDatabase>(),
    ));
    c
}

/// An echo peer whose certificate our CA did not issue: the client asks
/// `accept-certificate` (UNKNOWN_CA).
fn untrusted_peer() -> EchoPeer {
    let dir = common::init().pki.clone();
    EchoPeer::start(EchoPeerOpts::new(&dir).cert(
        &dir.join("server-other-ca.pem"),
        &dir.join("server-other-ca.key"),
    ))
}

/// Connects an `accept-certificate` handler that may run on any thread.
fn on_accept_certificate<H>(conn: &gio::DtlsClientConnection, handler: H)
where
    H: Fn(&gio::DtlsClientConnection, F) -> bool + Send + Sync + 'static,
{
    conn.connect("accept-certificate", false, move |args| {
        let c: gio::DtlsClientConnection = args[0].get().unwrap();
        let errors: F = args[2].get().unwrap();
        Some(handler(&c, errors).to_value())
    });
}

/// What a call made from inside a handler returned, and how long it took.
type Outcome = (&'static str, Result<(), glib::Error>, Duration);

fn timed(what: &'static str, f: impl FnOnce() -> Result<(), glib::Error>) -> Outcome {
    let started = Instant::now();
    let r = f();
    (what, r, started.elapsed())
}

/// From inside `accept-certificate`, blocking calls on the same connection
/// fail at once with G_IO_ERROR_PENDING (timeout −1 included) and a
/// non-blocking one with G_IO_ERROR_WOULD_BLOCK, both naming the handler;
/// the handshake then completes and the connection works.
#[test]
fn blocking_calls_from_its_own_accept_certificate_fail_at_once() {
    let peer = untrusted_peer();
    let conn = Shared(trusting_client(peer.addr()));
    let (inner_tx, inner_rx) = mpsc::channel::<Vec<Outcome>>();
    let inner_tx = Mutex::new(inner_tx);
    on_accept_certificate(&conn.0, move |c, errors| {
        let outcomes = vec![
            timed("send -1", || send(c, b"inner", -1)),
            timed("send 5 s", || send(c, b"inner", 5 * SECOND)),
            timed("receive -1", || recv(c, 64, -1).map(|_| ())),
            timed("handshake", || c.handshake(gio::Cancellable::NONE)),
            timed("send 0", || send(c, b"inner", 0)),
        ];
        inner_tx.lock().unwrap().send(outcomes).unwrap();
        errors == F::UNKNOWN_CA
    });
    let (outer_tx, outer_rx) = mpsc::channel();
    let c = conn.clone();
    std::thread::spawn(move || outer_tx.send(send(c.conn(), b"outer", -1)).unwrap());

    let outcomes = inner_rx
        .recv_timeout(HANG)
        .expect("a call from inside accept-certificate did not return");
    for (what, r, took) in outcomes {
        let err = r.expect_err(what);
        let code = if what == "send 0" {
            gio::IOErrorEnum::WouldBlock
        } else {
            gio::IOErrorEnum::Pending
        };
        assert!(err.matches(code), "{what}: {err}");
        assert!(
            err.message().contains("accept-certificate handler"),
            "{what}: {err}"
        );
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }
    outer_rx
        .recv_timeout(HANG)
        .expect("the outer send did not return")
        .expect("the outer send (which ran the handshake)");
    assert_eq!(recv(&conn.0, 64, 5 * SECOND).unwrap(), b"outer");
    assert_eq!(peer.log().handshakes(), 1);
}

/// From inside `accept-certificate`, sending and receiving on another,
/// established connection works: for a handshake run by a send and one run
/// by a receive (no scratch buffer stays borrowed through the handler; a
/// CRITICAL would abort the test binary).
#[test]
fn another_connection_works_from_inside_accept_certificate() {
    let echo = EchoPeer::start(EchoPeerOpts::new(&common::init().pki));
    let other = Shared(trusting_client(echo.addr()));
    other.0.handshake(gio::Cancellable::NONE).unwrap();

    let (tx, rx) = mpsc::channel::<Vec<Result<Vec<u8>, glib::Error>>>();
    let tx = Mutex::new(tx);
    let use_other = move |_: &gio::DtlsClientConnection, errors: F| {
        let mut got = Vec::new();
        for payload in [&b"via other 1"[..], b"via other 2"] {
            got.push(send(other.conn(), payload, -1).map(|_| payload.to_vec()));
            got.push(recv(other.conn(), 64, 5 * SECOND));
        }
        tx.lock().unwrap().send(got).unwrap();
        errors == F::UNKNOWN_CA
    };
    let use_other = Arc::new(use_other);
    let check = |got: Vec<Result<Vec<u8>, glib::Error>>| {
        let got: Vec<Vec<u8>> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got[0], got[1], "echo");
        assert_eq!(got[2], got[3], "echo");
    };

    // The handshake run by a send.
    let peer = untrusted_peer();
    let by_send = trusting_client(peer.addr());
    let h = use_other.clone();
    on_accept_certificate(&by_send, move |c, e| h(c, e));
    send(&by_send, b"by send", -1).unwrap();
    check(rx.recv_timeout(HANG).unwrap());
    assert_eq!(recv(&by_send, 64, 5 * SECOND).unwrap(), b"by send");

    // The handshake run by a receive; another thread sends once the
    // handler has run (it waits for the handshake, then sends).
    let peer = untrusted_peer();
    let by_receive = Shared(trusting_client(peer.addr()));
    let (ran_tx, ran_rx) = mpsc::channel();
    let ran_tx = Mutex::new(ran_tx);
    let h = use_other.clone();
    on_accept_certificate(&by_receive.0, move |c, e| {
        let accepted = h(c, e);
        ran_tx.lock().unwrap().send(()).unwrap();
        accepted
    });
    let sender = {
        let c = by_receive.clone();
        std::thread::spawn(move || {
            ran_rx.recv_timeout(HANG).expect("accept-certificate ran");
            send(c.conn(), b"by receive", -1)
        })
    };
    let got = recv(&by_receive.0, 64, 20 * SECOND).unwrap();
    assert_eq!(got, b"by receive");
    sender.join().unwrap().unwrap();
    check(rx.recv_timeout(HANG).unwrap());
}

/// Two threads start the implicit handshake at once (send, timeout −1):
/// one handshake runs, the other thread waits for it, both sends succeed.
#[test]
fn two_threads_racing_the_implicit_handshake_share_one() {
    let peer = untrusted_peer();
    let conn = Shared(trusting_client(peer.addr()));
    let asked = Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    on_accept_certificate(&conn.0, move |_, errors| {
        a.fetch_add(1, Ordering::SeqCst);
        errors == F::UNKNOWN_CA
    });
    let start = Arc::new(Barrier::new(2));
    let (tx, rx) = mpsc::channel();
    for i in 0..2 {
        let (c, start, tx) = (conn.clone(), start.clone(), tx.clone());
        std::thread::spawn(move || {
            start.wait();
            tx.send((i, send(c.conn(), format!("racer {i}").as_bytes(), -1)))
                .unwrap();
        });
    }
    for _ in 0..2 {
        let (i, r) = rx.recv_timeout(HANG).expect("a racing send returned");
        r.unwrap_or_else(|e| panic!("racer {i}: {e}"));
    }
    let mut echoes = vec![
        recv(&conn.0, 64, 5 * SECOND).unwrap(),
        recv(&conn.0, 64, 5 * SECOND).unwrap(),
    ];
    echoes.sort();
    assert_eq!(echoes, [b"racer 0".to_vec(), b"racer 1".to_vec()]);
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "accept-certificate runs once"
    );
    let log = peer.log();
    assert_eq!(log.conns.len(), 1, "{log:#?}");
    assert_eq!(log.handshakes(), 1, "{log:#?}");
}

/// On the thread whose main context runs `g_dtls_connection_handshake_async`,
/// a blocking call cannot wait for that handshake (nothing would run it):
/// it fails at once with G_IO_ERROR_PENDING; a non-blocking one gets
/// G_IO_ERROR_WOULD_BLOCK. The async handshake itself is unaffected.
#[test]
fn a_blocking_call_beside_the_async_handshake_on_its_thread_fails_at_once() {
    let peer = silent_peer();
    let conn = Shared(trusting_client(peer.local_addr().unwrap()));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let conn = conn.conn();
        let ctx = glib::MainContext::new();
        ctx.with_thread_default(|| {
            let cancellable = gio::Cancellable::new();
            let done = std::rc::Rc::new(std::cell::RefCell::new(None));
            let d = done.clone();
            conn.handshake_async(glib::Priority::DEFAULT, Some(&cancellable), move |r| {
                *d.borrow_mut() = Some(r);
            });
            let blocking = timed("send -1", || send(conn, b"x", -1));
            let timed_out = timed("send 5 s", || send(conn, b"x", 5 * SECOND));
            let non_blocking = timed("send 0", || send(conn, b"x", 0));
            // End the async handshake (silent peer) and let it report.
            cancellable.cancel();
            while done.borrow().is_none() {
                ctx.iteration(true);
            }
            let async_result = done.borrow_mut().take().unwrap();
            tx.send((vec![blocking, timed_out, non_blocking], async_result))
                .unwrap();
        })
        .unwrap();
    });
    let (outcomes, async_result) = rx
        .recv_timeout(HANG)
        .expect("a blocking call beside the async handshake did not return");
    for (what, r, took) in outcomes {
        let err = r.expect_err(what);
        let code = if what == "send 0" {
            gio::IOErrorEnum::WouldBlock
        } else {
            gio::IOErrorEnum::Pending
        };
        assert!(err.matches(code), "{what}: {err}");
        assert!(err.message().contains("asynchronous"), "{what}: {err}");
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }
    let err = async_result.unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Cancelled), "{err}");
}

/// Waits until the silent peer got a datagram (the client's first flight):
/// the handshake has started and is waiting for an answer.
fn first_flight(peer: &std::net::UdpSocket) {
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = peer.recv_from(&mut buf).expect("the ClientHello");
    assert!(n > 13 && buf[0] == 22, "a handshake record");
}

/// Cancelling from another thread ends a handshake blocked on a silent
/// peer with G_IO_ERROR_CANCELLED, promptly — the thread driving it, and a
/// thread waiting for that thread's handshake (implicit, in a send).
#[test]
fn cancelling_a_blocked_handshake_from_another_thread() {
    let peer = silent_peer();
    let conn = Shared(trusting_client(peer.local_addr().unwrap()));
    let run = |f: Box<dyn FnOnce() -> Result<(), glib::Error> + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = f();
            tx.send((r, Instant::now())).unwrap();
        });
        rx
    };
    let woken = |rx: mpsc::Receiver<(Result<(), glib::Error>, Instant)>,
                 cancellable: &gio::Cancellable,
                 what: &str| {
        let cancelled_at = Instant::now();
        cancellable.cancel();
        let (r, returned_at) = rx
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("{what}: not woken by the cancellation"));
        let latency = returned_at.saturating_duration_since(cancelled_at);
        eprintln!("{what}: woken {latency:?} after cancel()");
        let err = r.expect_err(what);
        assert!(err.matches(gio::IOErrorEnum::Cancelled), "{what}: {err}");
        assert!(latency < Duration::from_secs(1), "{what}: {latency:?}");
    };

    let driving = gio::Cancellable::new();
    let (c, d) = (conn.clone(), driving.clone());
    let driver = run(Box::new(move || c.conn().handshake(Some(&d))));
    first_flight(&peer);

    // A second thread's send waits for the first thread's handshake.
    let waiting = gio::Cancellable::new();
    let (c, w) = (conn.clone(), waiting.clone());
    let started = Arc::new(Barrier::new(2));
    let s = started.clone();
    let waiter = run(Box::new(move || {
        s.wait();
        send_many(c.conn(), &[b"x"], -1, Some(&w)).map(|_| ())
    }));
    started.wait();
    woken(
        waiter,
        &waiting,
        "send waiting for another thread's handshake",
    );

    woken(driver, &driving, "handshake blocked on a silent peer");
}
