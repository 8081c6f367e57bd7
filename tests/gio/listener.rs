//! `DtlsOpensslServer` (issue 8): many peers on one UDP socket — our
//! clients, `openssl s_client` and `gnutls-cli` concurrently, a spoofed
//! ClientHello flood, max-peers, max-half-open, a full per-peer receive
//! queue, the idle timeout, a client that starts a new handshake from the
//! same address, the blocking accept (a peer, cancelled, closed), and
//! close. At scale (each alone in a child process, which measures its
//! RSS): 200 peers established at once from four client threads and
//! s_client, and 10 000 spoofed ClientHellos from thousands of source
//! ports (100 000 with `DTLS_OPENSSL_LONG_TESTS=1`) leaving memory flat.
//!
//! The listener runs on its own thread's main context (started there);
//! every accepted connection is served by an echo thread of its own
//! (blocking handshake and receives, so the per-peer sockets' sources are
//! woken across threads). The test thread learns what happens through
//! channels fed by signal handlers; every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use gio::prelude::*;
use glib::translate::*;

use crate::common::dtls::connected_socket;
use crate::common::dtls::{recv, send};
use crate::common::peers::{GnutlsClient, GnutlsClientOpts, OpensslClient, OpensslClientOpts};
use crate::common::{self, cert, pki};

const T: Duration = Duration::from_secs(10);
const T_US: i64 = 10_000_000;

type GObj = glib::gobject_ffi::GObject;

/// The listener's C API, from the module library GIO loaded (the same
/// file, so the same mapping). Also used by tests/gio/resumption.rs.
pub(crate) struct Api {
    pub(crate) get_type: unsafe extern "C" fn() -> glib::ffi::GType,
    pub(crate) new: unsafe extern "C" fn(
        *mut gio::ffi::GSocket,
        *mut gio::ffi::GTlsCertificate,
        *mut *mut glib::ffi::GError,
    ) -> *mut GObj,
    pub(crate) start:
        unsafe extern "C" fn(*mut GObj, *mut *mut glib::ffi::GError) -> glib::ffi::gboolean,
    pub(crate) close: unsafe extern "C" fn(
        *mut GObj,
        *mut gio::ffi::GCancellable,
        *mut *mut glib::ffi::GError,
    ) -> glib::ffi::gboolean,
    pub(crate) peer_count: unsafe extern "C" fn(*mut GObj) -> u32,
    pub(crate) accept: unsafe extern "C" fn(
        *mut GObj,
        *mut gio::ffi::GCancellable,
        *mut *mut glib::ffi::GError,
    ) -> *mut GObj,
}

pub(crate) fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let env = common::init();
        let _ = gio::TlsBackend::default();
        let path = std::ffi::CString::new(env.library.to_str().unwrap()).unwrap();
        // SAFETY: dlopen of the library GIO loaded as a module (same
        // inode: glibc returns the same mapping); the symbols have the
        // signatures of include/dtls-openssl.h.
        unsafe {
            let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
            assert!(!lib.is_null(), "dlopen {}", path.to_string_lossy());
            let sym = |name: &str| {
                let n = std::ffi::CString::new(name).unwrap();
                let p = libc::dlsym(lib, n.as_ptr());
                assert!(!p.is_null(), "{name}");
                p
            };
            Api {
                get_type: std::mem::transmute_copy(&sym("dtls_openssl_server_get_type")),
                new: std::mem::transmute_copy(&sym("dtls_openssl_server_new")),
                start: std::mem::transmute_copy(&sym("dtls_openssl_server_start")),
                close: std::mem::transmute_copy(&sym("dtls_openssl_server_close")),
                peer_count: std::mem::transmute_copy(&sym("dtls_openssl_server_get_peer_count")),
                accept: std::mem::transmute_copy(&sym("dtls_openssl_server_accept")),
            }
        }
    })
}

/// GIO objects handed between threads: our listener and connections lock
/// their state; sockets and certificates are thread-safe GObjects.
struct Shared<T>(T);
// SAFETY: see above.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

/// What the listener thread reports.
#[derive(Debug)]
enum Event {
    /// A connection was handed over (`incoming`), with its number.
    Incoming(usize),
    /// Its handshake ended.
    Handshake(usize, Result<(), String>),
    /// Its echo loop ended: "eof", or the error.
    Ended(usize, String),
    /// `peer-count` changed to this.
    PeerCount(u32),
}

/// A listener on its own thread; each accepted peer echoed by a thread.
struct Run {
    addr: SocketAddr,
    server: Shared<glib::Object>,
    ctx: glib::MainContext,
    events: mpsc::Receiver<Event>,
    backlog: std::cell::RefCell<std::collections::VecDeque<Event>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Run {
    /// A listener whose `incoming` handler takes every peer and echoes it.
    fn start(props: &[(&'static str, glib::Value)]) -> Run {
        Run::with(props, true)
    }

    /// A listener whose `incoming` handler only reports the peer (returns
    /// FALSE): connections wait for `dtls_openssl_server_accept`, their
    /// handshake not run.
    fn manual(props: &[(&'static str, glib::Value)]) -> Run {
        Run::with(props, false)
    }

    fn with(props: &[(&'static str, glib::Value)], take: bool) -> Run {
        let api = api();
        let props: Vec<(&'static str, Shared<glib::Value>)> =
            props.iter().map(|(k, v)| (*k, Shared(v.clone()))).collect();
        let (tx, events) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let ctx = glib::MainContext::new();
            ctx.with_thread_default(|| {
                // SAFETY: registers the type (the properties below need it).
                let _ = unsafe { (api.get_type)() };
                let socket = gio::Socket::new(
                    gio::SocketFamily::Ipv4,
                    gio::SocketType::Datagram,
                    gio::SocketProtocol::Udp,
                )
                .unwrap();
                socket
                    .bind(
                        &gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap(),
                        false,
                    )
                    .unwrap();
                let port = socket
                    .local_address()
                    .unwrap()
                    .downcast::<gio::InetSocketAddress>()
                    .unwrap()
                    .port();
                let certificate = cert("server-key.pem");
                let mut error = std::ptr::null_mut();
                // SAFETY: valid socket and certificate; error out-pointer.
                let raw = unsafe {
                    (api.new)(
                        socket.to_glib_none().0,
                        certificate.to_glib_none().0,
                        &mut error,
                    )
                };
                assert!(!raw.is_null(), "dtls_openssl_server_new failed");
                // SAFETY: a new object, transfer full.
                let server: glib::Object = unsafe { from_glib_full(raw) };
                for (k, v) in &props {
                    server.set_property_from_value(k, &v.0);
                }
                let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let t = tx.clone();
                server.connect_closure(
                    "incoming",
                    false,
                    glib::closure!(move |_s: glib::Object, conn: glib::Object| -> bool {
                        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = t.send(Event::Incoming(i));
                        if !take {
                            return false;
                        }
                        let conn = Shared(conn.downcast::<gio::DtlsConnection>().unwrap());
                        let t = t.clone();
                        std::thread::spawn(move || echo(i, conn, t));
                        true
                    }),
                );
                let t = tx.clone();
                server.connect_notify(Some("peer-count"), move |s, _| {
                    let _ = t.send(Event::PeerCount(s.property::<u32>("peer-count")));
                });
                // SAFETY: our live listener.
                assert_ne!(unsafe { (api.start)(raw, std::ptr::null_mut()) }, 0);
                ready_tx
                    .send((
                        SocketAddr::from(([127, 0, 0, 1], port)),
                        Shared(server.clone()),
                        glib::MainContext::ref_thread_default(),
                    ))
                    .unwrap();
                while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    glib::MainContext::ref_thread_default().iteration(true);
                }
                drop(server);
            })
            .unwrap();
        });
        let (addr, server, ctx) = ready_rx.recv_timeout(T).expect("listener started");
        Run {
            addr,
            server,
            ctx,
            events,
            backlog: Default::default(),
            stop,
            thread: Some(thread),
        }
    }

    fn peer_count(&self) -> u32 {
        // SAFETY: our live listener.
        unsafe { (api().peer_count)(self.server.0.as_ptr()) }
    }

    /// `dtls_openssl_server_accept`, callable from any thread.
    fn acceptor(&self) -> Acceptor {
        Acceptor(Shared(self.server.0.clone()))
    }

    fn close(&self) {
        let mut error = std::ptr::null_mut();
        // SAFETY: our live listener; close is thread-safe.
        let ok = unsafe { (api().close)(self.server.0.as_ptr(), std::ptr::null_mut(), &mut error) };
        assert_ne!(ok, 0);
    }

    /// Waits for an event matching `pred`, returning it (others stay for
    /// later waits); panics at T.
    fn wait(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let mut backlog = self.backlog.borrow_mut();
        if let Some(at) = backlog.iter().position(&pred) {
            return backlog.remove(at).unwrap();
        }
        let deadline = std::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => backlog.push_back(e),
                Err(_) => panic!("no {what} within {T:?} (seen: {backlog:?})"),
            }
        }
    }

    /// Every event so far, without waiting.
    fn drain(&self) -> Vec<Event> {
        let mut all: Vec<Event> = self.backlog.borrow_mut().drain(..).collect();
        all.extend(self.events.try_iter());
        all
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.ctx.wakeup();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Calls the blocking `dtls_openssl_server_accept` (from any thread).
struct Acceptor(Shared<glib::Object>);

impl Clone for Acceptor {
    fn clone(&self) -> Self {
        Acceptor(Shared(self.0 .0.clone()))
    }
}

impl Acceptor {
    fn accept(
        &self,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<gio::DtlsConnection, glib::Error> {
        let mut error = std::ptr::null_mut();
        // SAFETY: our live listener; a cancellable or NULL; error
        // out-pointer. The connection comes back transfer full.
        unsafe {
            let raw = (api().accept)(self.0 .0.as_ptr(), cancellable.to_glib_none().0, &mut error);
            if raw.is_null() {
                assert!(!error.is_null(), "NULL without an error");
                Err(from_glib_full(error))
            } else {
                assert!(error.is_null());
                let conn: glib::Object = from_glib_full(raw);
                Ok(conn.downcast().expect("a GDtlsConnection"))
            }
        }
    }
}

/// Server side of one peer: handshake, then echo until end-of-stream or
/// an error.
fn echo(i: usize, conn: Shared<gio::DtlsConnection>, tx: mpsc::Sender<Event>) {
    let conn = conn.0;
    let hs = conn.handshake(gio::Cancellable::NONE);
    let failed = hs.is_err();
    let _ = tx.send(Event::Handshake(i, hs.map_err(|e| e.to_string())));
    if failed {
        return;
    }
    let end = loop {
        match recv(&conn, 2048, T_US) {
            Ok(d) if d.is_empty() => break "eof".to_string(),
            Ok(d) => {
                if let Err(e) = send(&conn, &d, T_US) {
                    break e.to_string();
                }
            }
            Err(e) => break format!("{:?}: {e}", e.kind::<gio::IOErrorEnum>()),
        }
    };
    let _ = tx.send(Event::Ended(i, end));
}

/// Our client on `socket` (connected to `addr`), trusting the test CA.
fn our_client_on(socket: &gio::Socket) -> gio::DtlsClientConnection {
    let id = gio::NetworkAddress::new("server.example.com", 443);
    let client = gio::DtlsClientConnection::new(socket, Some(&id)).unwrap();
    client.set_database(Some(&ca_db()));
    client
}

fn client_echo(client: &gio::DtlsClientConnection, payloads: &[Vec<u8>]) {
    for p in payloads {
        send(client, p, T_US).unwrap();
        assert_eq!(&recv(client, 2048, T_US).unwrap(), p, "own echo");
    }
}

// ---------------------------------------------------------------------------

#[test]
fn many_clients_on_one_socket_each_get_their_own_echoes() {
    let run = Run::start(&[]);
    let addr = run.addr;
    let mut s_client = OpensslClient::start(
        addr,
        OpensslClientOpts::default()
            .verify(&common::init().pki.join("ca.pem"), "server.example.com"),
    );
    let mut gnutls = GnutlsClient::start(addr, GnutlsClientOpts::new(&common::init().pki));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let socket = crate::common::dtls::connected_socket(addr);
                let client = our_client_on(&socket);
                client.handshake(gio::Cancellable::NONE).unwrap();
                let payloads: Vec<Vec<u8>> = (0..5)
                    .map(|n| format!("client {i} message {n}").into_bytes())
                    .collect();
                client_echo(&client, &payloads);
                Shared(client)
            })
        })
        .collect();
    s_client.wait_handshake(T).unwrap();
    for line in ["from s_client", "again"] {
        s_client.send_line(line);
        s_client.wait_data(line, T).unwrap();
    }
    gnutls.wait_handshake(T).unwrap();
    for line in ["from gnutls-cli", "once more"] {
        gnutls.send_line(line);
        gnutls.wait_data(line, T).unwrap();
    }
    let clients: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(run.peer_count(), 6, "six peers on one socket");
    for c in &clients {
        c.0.close(gio::Cancellable::NONE).unwrap();
    }
    s_client.stop(T).unwrap();
    gnutls.stop(T).unwrap();
    for _ in 0..6 {
        let e = run.wait("a handshake", |e| matches!(e, Event::Handshake(..)));
        let Event::Handshake(i, r) = e else {
            unreachable!()
        };
        assert!(r.is_ok(), "peer {i}: {r:?}");
    }
    // Every peer ended with close_notify (gnutls-cli's bye included).
    for _ in 0..6 {
        let e = run.wait("end of an echo loop", |e| matches!(e, Event::Ended(..)));
        let Event::Ended(_, why) = e else {
            unreachable!()
        };
        assert_eq!(why, "eof");
    }
}

/// The first datagram our client sends: a ClientHello without a cookie.
fn captured_client_hello() -> Vec<u8> {
    common::init();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(T)).unwrap();
    let socket = crate::common::dtls::connected_socket(sink.local_addr().unwrap());
    let client = our_client_on(&socket);
    let ctx = glib::MainContext::new();
    let _g = ctx.acquire().unwrap();
    ctx.with_thread_default(|| {
        client.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, |_| {});
        ctx.iteration(false);
    })
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = sink.recv(&mut buf).expect("a ClientHello");
    assert_eq!(buf[0], 22, "handshake record");
    buf[..n].to_vec()
}

#[test]
fn client_hello_flood_from_spoofed_ports_allocates_no_peer() {
    let run = Run::start(&[]);
    let hello = captured_client_hello();
    let floods: Vec<UdpSocket> = (0..200)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            s
        })
        .collect();
    // In bursts of 40, so the listener's socket buffer (about 160 small
    // datagrams on loopback) never overflows in the kernel.
    for (b, burst) in floods.chunks(40).enumerate() {
        for s in burst {
            s.send_to(&hello, run.addr).unwrap();
        }
        // Each source gets exactly a HelloVerifyRequest (handshake type 3).
        for (i, s) in burst.iter().enumerate() {
            let mut buf = [0u8; 512];
            let (n, from) = s
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("a HelloVerifyRequest for source {b}/{i}: {e}"));
            assert_eq!(from, run.addr);
            assert!(n > 25 && buf[0] == 22 && buf[13] == 3, "HelloVerifyRequest");
        }
    }
    assert_eq!(run.peer_count(), 0, "no peer for unverified ClientHellos");
    // A genuine client still gets through: the flood left nothing behind.
    let socket = crate::common::dtls::connected_socket(run.addr);
    let client = our_client_on(&socket);
    client.handshake(gio::Cancellable::NONE).unwrap();
    client_echo(&client, &[b"after the flood".to_vec()]);
    run.wait("the only incoming", |e| matches!(e, Event::Incoming(0)));
    assert_eq!(run.peer_count(), 1);
    for e in run.drain() {
        assert!(!matches!(e, Event::Incoming(i) if i > 0), "{e:?}");
    }
}

#[test]
fn max_peers_is_enforced() {
    let run = Run::start(&[("max-peers", 2u32.to_value())]);
    let mut keep = Vec::new();
    for i in 0..2 {
        let socket = crate::common::dtls::connected_socket(run.addr);
        let client = our_client_on(&socket);
        client.handshake(gio::Cancellable::NONE).unwrap();
        client_echo(&client, &[format!("peer {i}").into_bytes()]);
        keep.push(client);
    }
    // At max-peers a verified ClientHello is ignored (counted as refused):
    // the listener keeps no state for the client, so it has nothing to
    // answer with (no DTLS alert without a session) and the client
    // retransmits until its own handshake-timeout. That is the documented
    // behaviour (README, "Many peers on one socket"), checked here.
    let socket = crate::common::dtls::connected_socket(run.addr);
    let third = our_client_on(&socket);
    third.set_property("handshake-timeout", 1500u32);
    let e = third.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::TimedOut), "{e}");
    assert_eq!(run.peer_count(), 2);
}

#[test]
fn idle_peer_is_dropped_and_its_connection_closed() {
    let run = Run::start(&[("idle-timeout", 1u32.to_value())]);
    let socket = crate::common::dtls::connected_socket(run.addr);
    let client = our_client_on(&socket);
    client.handshake(gio::Cancellable::NONE).unwrap();
    client_echo(&client, &[b"then silence".to_vec()]);
    run.wait("peer-count 1", |e| matches!(e, Event::PeerCount(1)));
    // Silence: the sweep removes the peer, and the server side's pending
    // receive ends with G_IO_ERROR_CLOSED.
    run.wait("peer-count 0", |e| matches!(e, Event::PeerCount(0)));
    let Event::Ended(_, why) = run.wait("end of the echo loop", |e| matches!(e, Event::Ended(..)))
    else {
        unreachable!()
    };
    assert!(why.starts_with("Some(Closed)"), "{why}");
}

#[test]
fn new_handshake_from_the_same_address_replaces_the_old_connection() {
    let run = Run::start(&[]);
    let socket = crate::common::dtls::connected_socket(run.addr);
    let first = our_client_on(&socket);
    first.handshake(gio::Cancellable::NONE).unwrap();
    client_echo(&first, &[b"first life".to_vec()]);
    // The client restarts (lost its state): a new connection on the same
    // socket, so from the same address.
    drop(first);
    let second = our_client_on(&socket);
    second.handshake(gio::Cancellable::NONE).unwrap();
    client_echo(&second, &[b"second life".to_vec()]);
    let Event::Ended(i, why) =
        run.wait("the old echo loop's end", |e| matches!(e, Event::Ended(..)))
    else {
        unreachable!()
    };
    assert_eq!(i, 0, "the first connection ended");
    assert!(why.starts_with("Some(Closed)"), "{why}");
    assert_eq!(run.peer_count(), 1, "replaced, not added");
}

#[test]
fn close_closes_every_peer() {
    let run = Run::start(&[]);
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let socket = crate::common::dtls::connected_socket(run.addr);
            let client = our_client_on(&socket);
            client.handshake(gio::Cancellable::NONE).unwrap();
            client_echo(&client, &[format!("before close {i}").into_bytes()]);
            client
        })
        .collect();
    assert_eq!(run.peer_count(), 3);
    run.close();
    assert_eq!(run.peer_count(), 0);
    for c in &clients {
        // close_notify reached each client: end-of-stream.
        assert!(recv(c, 2048, T_US).unwrap().is_empty(), "end-of-stream");
    }
    for _ in 0..3 {
        run.wait("end of an echo loop", |e| matches!(e, Event::Ended(..)));
    }
}

/// Our client's handshake on a thread of its own (the server side is run
/// by the test); `handshake-timeout` in ms.
fn client_handshake_thread(
    socket: Shared<gio::Socket>,
    handshake_timeout_ms: u32,
) -> std::thread::JoinHandle<Result<Shared<gio::DtlsClientConnection>, String>> {
    std::thread::spawn(move || {
        let socket = socket;
        let client = our_client_on(&socket.0);
        client.set_property("handshake-timeout", handshake_timeout_ms);
        client
            .handshake(gio::Cancellable::NONE)
            .map(|_| Shared(client))
            .map_err(|e| e.to_string())
    })
}

/// One round trip client → server → client, the server side by hand.
fn round_trip(client: &gio::DtlsClientConnection, server: &gio::DtlsConnection, what: &[u8]) {
    send(client, what, T_US).unwrap();
    assert_eq!(recv(server, 2048, T_US).unwrap(), what, "server received");
    send(server, what, T_US).unwrap();
    assert_eq!(recv(client, 2048, T_US).unwrap(), what, "client received");
}

#[test]
fn max_half_open_refuses_a_handshake_while_another_is_pending() {
    let run = Run::manual(&[("max-half-open", 1u32.to_value())]);
    // Peer A passes the cookie exchange; its connection waits in the
    // accept queue with its handshake not run: half-open for as long as
    // the test likes (its client retransmits meanwhile, within T).
    let a_socket = Shared(connected_socket(run.addr));
    let a = client_handshake_thread(Shared(a_socket.0.clone()), 10_000);
    run.wait("A verified", |e| matches!(e, Event::Incoming(0)));
    assert_eq!(run.peer_count(), 1);
    // Peer B: its cookieless ClientHello gets a HelloVerifyRequest, its
    // verified ClientHello is refused (the half-open limit is reached), so
    // it never gets a ServerHello and its handshake times out.
    let b_socket = connected_socket(run.addr);
    let b = our_client_on(&b_socket);
    b.set_property("handshake-timeout", 1500u32);
    let e = b.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::TimedOut), "{e}");
    assert_eq!(run.peer_count(), 1, "no peer for B while A is half-open");
    for e in run.drain() {
        assert!(!matches!(e, Event::Incoming(i) if i > 0), "{e:?}");
    }
    drop(b);
    // A completes its handshake: the half-open slot is free again.
    let a_server = run.acceptor().accept(gio::Cancellable::NONE).unwrap();
    a_server.handshake(gio::Cancellable::NONE).unwrap();
    let a_client = a.join().unwrap().expect("A's handshake").0;
    round_trip(&a_client, &a_server, b"A established");
    // B again (same address, a new connection): now admitted.
    let b = client_handshake_thread(Shared(b_socket), T.as_millis() as u32);
    run.wait("B verified", |e| matches!(e, Event::Incoming(1)));
    let b_server = run.acceptor().accept(gio::Cancellable::NONE).unwrap();
    b_server.handshake(gio::Cancellable::NONE).unwrap();
    let b_client = b.join().unwrap().expect("B's handshake").0;
    round_trip(&b_client, &b_server, b"B established");
    assert_eq!(run.peer_count(), 2);
    drop(a_socket);
}

#[test]
fn a_full_receive_queue_drops_the_excess_and_the_peer_survives() {
    const QUEUE: usize = 4;
    const SENT: usize = 20;
    let hello = captured_client_hello();
    let run = Run::manual(&[("receive-queue-length", (QUEUE as u32).to_value())]);
    let socket = connected_socket(run.addr);
    let client = client_handshake_thread(Shared(socket.clone()), T.as_millis() as u32);
    let server = run.acceptor().accept(gio::Cancellable::NONE).unwrap();
    server.handshake(gio::Cancellable::NONE).unwrap();
    let client = client.join().unwrap().expect("handshake").0;
    // Both sides done with the handshake (nothing of it left in flight).
    round_trip(&client, &server, b"before");
    // The application does not read while the peer sends SENT datagrams.
    for n in 0..SENT {
        send(&client, format!("queued {n}").as_bytes(), T_US).unwrap();
    }
    // Barrier: the listener handles its socket's datagrams in order, so
    // once it answered a ClientHello sent after them, all SENT were sorted
    // into the peer's queue (or dropped).
    let marker = UdpSocket::bind("127.0.0.1:0").unwrap();
    marker.set_read_timeout(Some(T)).unwrap();
    marker.send_to(&hello, run.addr).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = marker.recv_from(&mut buf).expect("a HelloVerifyRequest");
    assert!(n > 25 && buf[0] == 22 && buf[13] == 3, "HelloVerifyRequest");
    // The queue kept the first QUEUE; the rest were dropped.
    for n in 0..QUEUE {
        let got = recv(&server, 2048, T_US).unwrap();
        assert_eq!(got, format!("queued {n}").into_bytes(), "kept in order");
    }
    let e = recv(&server, 2048, 300_000).expect_err("the excess was dropped");
    assert!(e.matches(gio::IOErrorEnum::TimedOut), "{e}");
    // The connection survived: later datagrams are delivered.
    round_trip(&client, &server, b"after the drop");
    round_trip(&client, &server, b"and again");
    assert_eq!(run.peer_count(), 1);
}

/// Runs a blocking accept on a thread; its result comes on the channel.
fn accept_thread(
    acceptor: &Acceptor,
    cancellable: Option<gio::Cancellable>,
) -> mpsc::Receiver<Result<Shared<gio::DtlsConnection>, glib::Error>> {
    let (tx, rx) = mpsc::channel();
    let acceptor = acceptor.clone();
    let cancellable = cancellable.map(Shared);
    std::thread::spawn(move || {
        let c = cancellable.as_ref().map(|c| &c.0);
        let _ = tx.send(acceptor.accept(c).map(Shared));
    });
    rx
}

/// Checks that the accept on `rx` is still waiting (no peer to return).
fn assert_blocked(rx: &mpsc::Receiver<Result<Shared<gio::DtlsConnection>, glib::Error>>) {
    match rx.recv_timeout(Duration::from_millis(300)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        Ok(r) => panic!("accept returned without a peer: {:?}", r.map(|_| ())),
        Err(e) => panic!("accept thread: {e}"),
    }
}

#[test]
fn blocking_accept_returns_a_peer_and_fails_when_cancelled_or_closed() {
    let run = Run::manual(&[]);
    let acceptor = run.acceptor();
    // A peer for a blocked accept.
    let rx = accept_thread(&acceptor, None);
    assert_blocked(&rx);
    let socket = connected_socket(run.addr);
    let client = client_handshake_thread(Shared(socket), T.as_millis() as u32);
    let server = rx.recv_timeout(T).expect("accept returned").unwrap().0;
    server.handshake(gio::Cancellable::NONE).unwrap();
    let client = client.join().unwrap().expect("handshake").0;
    round_trip(&client, &server, b"accepted");
    // Cancelled while blocked.
    let cancellable = gio::Cancellable::new();
    let rx = accept_thread(&acceptor, Some(cancellable.clone()));
    assert_blocked(&rx);
    cancellable.cancel();
    let Err(e) = rx.recv_timeout(T).expect("accept returned") else {
        panic!("a connection after cancel")
    };
    assert!(e.matches(gio::IOErrorEnum::Cancelled), "{e}");
    // Closed while blocked.
    let rx = accept_thread(&acceptor, None);
    assert_blocked(&rx);
    run.close();
    let Err(e) = rx.recv_timeout(T).expect("accept returned") else {
        panic!("a connection after close")
    };
    assert!(e.matches(gio::IOErrorEnum::Closed), "{e}");
    // And at once after close.
    let e = acceptor
        .accept(gio::Cancellable::NONE)
        .map(|_| ())
        .unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::Closed), "{e}");
    // The accepted peer got close_notify.
    assert!(
        recv(&client, 2048, T_US).unwrap().is_empty(),
        "end-of-stream"
    );
}

// --- scale: hundreds of peers, a large spoofed flood -----------------------

/// `DTLS_OPENSSL_LONG_TESTS` set: the full-size variants.
fn long_tests() -> bool {
    std::env::var_os("DTLS_OPENSSL_LONG_TESTS").is_some()
}

/// Runs the scale test `name` alone in a child process (see
/// [`common::alone`]): true in that child.
fn alone(name: &str) -> bool {
    common::alone(
        name,
        Duration::from_secs(if long_tests() { 600 } else { 120 }),
    )
}

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn hundreds_of_peers_served_at_once_from_four_client_threads() {
    if !alone("listener::hundreds_of_peers_served_at_once_from_four_client_threads") {
        return;
    }
    const THREADS: usize = 4;
    const S_CLIENTS: usize = 3;
    // 200 peers (about 2 s in a debug build on 2 busy cores): one warm-up
    // client, S_CLIENTS s_client processes, the rest (49 each) our clients
    // on THREADS threads.
    let total = 200;
    let ours = total - 1 - S_CLIENTS;
    let run = Run::start(&[]);
    let addr = run.addr;
    // Warm-up: one-time allocations (the listener's and the client's
    // contexts, the first echo thread) are not counted per peer.
    let warm_socket = connected_socket(addr);
    let warm = our_client_on(&warm_socket);
    warm.handshake(gio::Cancellable::NONE).unwrap();
    client_echo(&warm, &[b"warm-up".to_vec()]);
    let before = common::rss_bytes();
    let started = std::time::Instant::now();

    let s_clients: Vec<OpensslClient> = (0..S_CLIENTS)
        .map(|_| {
            OpensslClient::start(
                addr,
                OpensslClientOpts::default()
                    .verify(&common::init().pki.join("ca.pem"), "server.example.com"),
            )
        })
        .collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let n = ours / THREADS + usize::from(t < ours % THREADS);
            std::thread::spawn(move || {
                // Each client is kept open: all are established at once.
                (0..n)
                    .map(|c| {
                        let socket = connected_socket(addr);
                        let client = our_client_on(&socket);
                        client
                            .handshake(gio::Cancellable::NONE)
                            .unwrap_or_else(|e| panic!("thread {t} client {c}: {e}"));
                        let payloads: Vec<Vec<u8>> = (0..3)
                            .map(|m| format!("thread {t} client {c} message {m}").into_bytes())
                            .collect();
                        client_echo(&client, &payloads);
                        Shared(client)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, s) in s_clients.iter().enumerate() {
        s.wait_handshake(T).unwrap();
        for line in [format!("s_client {i}"), format!("s_client {i} again")] {
            s.send_line(&line);
            s.wait_data(&line, T).unwrap();
        }
    }
    let clients: Vec<Shared<gio::DtlsClientConnection>> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    assert_eq!(clients.len(), ours);
    let elapsed = started.elapsed();
    // Every peer is established and still open.
    assert_eq!(run.peer_count() as usize, total, "every peer at once");
    run.wait(
        "peer-count at the total",
        |e| matches!(e, Event::PeerCount(n) if *n as usize == total),
    );
    for _ in 0..total {
        let Event::Handshake(i, r) = run.wait("a handshake", |e| matches!(e, Event::Handshake(..)))
        else {
            unreachable!()
        };
        assert!(r.is_ok(), "peer {i}: {r:?}");
    }
    // Still served: a last echo on the warm-up peer and on every client.
    client_echo(&warm, &[b"after all".to_vec()]);
    for (n, c) in clients.iter().enumerate() {
        client_echo(&c.0, &[format!("last {n}").into_bytes()]);
    }
    let after = common::rss_bytes();
    let grown = after.saturating_sub(before);
    let added = total - 1;
    println!(
        "scale: {total} peers established at once ({ours} ours on {THREADS} threads, \
         {S_CLIENTS} s_client, 1 warm-up) in {:.1} s; peer-count {}; RSS {:.1} -> {:.1} MiB, \
         +{:.1} KiB per added peer (this process: listener, its echo thread and our client \
         per peer)",
        elapsed.as_secs_f64(),
        run.peer_count(),
        before as f64 / MIB,
        after as f64 / MIB,
        grown as f64 / 1024.0 / added as f64,
    );
    for c in &clients {
        c.0.close(gio::Cancellable::NONE).unwrap();
    }
    warm.close(gio::Cancellable::NONE).unwrap();
    for mut s in s_clients {
        s.stop(T).unwrap();
    }
    for _ in 0..total {
        let Event::Ended(i, why) =
            run.wait("end of an echo loop", |e| matches!(e, Event::Ended(..)))
        else {
            unreachable!()
        };
        assert_eq!(why, "eof", "peer {i}");
    }
}

/// Sends `hello` once from each of `sources`, in bursts of `burst`, and
/// checks each gets exactly one HelloVerifyRequest before the next burst
/// (so the listener's socket buffer never overflows in the kernel).
fn flood(run: &Run, hello: &[u8], sources: &[UdpSocket], burst: usize) {
    for chunk in sources.chunks(burst) {
        for s in chunk {
            s.send_to(hello, run.addr).unwrap();
        }
        for s in chunk {
            let mut buf = [0u8; 512];
            let (n, from) = s
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("a HelloVerifyRequest: {e}"));
            assert_eq!(from, run.addr);
            assert!(n > 25 && buf[0] == 22 && buf[13] == 3, "HelloVerifyRequest");
        }
    }
}

/// `n` UDP sockets on loopback, each on a port the kernel picked.
fn sources(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            s
        })
        .collect()
}

#[test]
fn spoofed_client_hello_flood_from_many_ports_leaves_memory_flat() {
    if !alone("listener::spoofed_client_hello_flood_from_many_ports_leaves_memory_flat") {
        return;
    }
    // 100 000 ClientHellos with DTLS_OPENSSL_LONG_TESTS, else 10 000: from
    // pools of POOL sockets, a new pool (new ports) for every POOL sent.
    const POOL: usize = 1000;
    const BURST: usize = 50;
    const BOUND: u64 = 2 * 1024 * 1024;
    let total = if long_tests() { 100_000 } else { 10_000 };
    let run = Run::start(&[]);
    let hello = captured_client_hello();
    // Warm-up round: lazily created state (cookie secret, buffers) first.
    flood(&run, &hello, &sources(POOL), BURST);
    let before = common::rss_bytes();
    let started = std::time::Instant::now();
    let mut ports = std::collections::HashSet::new();
    let mut sent = 0;
    while sent < total {
        let pool = sources(POOL.min(total - sent));
        ports.extend(pool.iter().map(|s| s.local_addr().unwrap().port()));
        flood(&run, &hello, &pool, BURST);
        sent += pool.len();
        assert_eq!(run.peer_count(), 0, "a peer after {sent} ClientHellos");
    }
    let elapsed = started.elapsed();
    let after = common::rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "scale: {sent} spoofed ClientHellos (+{POOL} warm-up) from {} distinct source ports \
         in {:.1} s, each answered by a HelloVerifyRequest; peer-count {}; RSS {:.2} -> {:.2} \
         MiB ({:+} KiB)",
        ports.len(),
        elapsed.as_secs_f64(),
        run.peer_count(),
        before as f64 / MIB,
        after as f64 / MIB,
        (after as i64 - before as i64) / 1024,
    );
    assert_eq!(run.peer_count(), 0, "no peer for unverified ClientHellos");
    assert!(
        ports.len() > POOL,
        "many distinct source ports: {}",
        ports.len()
    );
    let events = run.drain();
    assert!(events.is_empty(), "no incoming, no peer: {events:?}");
    assert!(
        grown < BOUND,
        "RSS grew by {grown} bytes over {sent} ClientHellos"
    );
    // The listener still serves a genuine client.
    let socket = connected_socket(run.addr);
    let client = our_client_on(&socket);
    client.handshake(gio::Cancellable::NONE).unwrap();
    client_echo(&client, &[b"after the flood".to_vec()]);
    run.wait("the only incoming", |e| matches!(e, Event::Incoming(0)));
    assert_eq!(run.peer_count(), 1);
}
