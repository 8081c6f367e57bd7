//! `DtlsOpensslServer` (issue 8): many peers on one UDP socket — our
//! clients and `openssl s_client` concurrently, a spoofed ClientHello
//! flood, max-peers, the idle timeout, a client that starts a new
//! handshake from the same address, and close.
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

use crate::common::dtls::{recv, send};
use crate::common::peers::{OpensslClient, OpensslClientOpts};
use crate::common::{self, cert, pki};

const T: Duration = Duration::from_secs(10);
const T_US: i64 = 10_000_000;

type GObj = glib::gobject_ffi::GObject;

/// The listener's C API, from the module library GIO loaded (the same
/// file, so the same mapping).
struct Api {
    get_type: unsafe extern "C" fn() -> glib::ffi::GType,
    new: unsafe extern "C" fn(
        *mut gio::ffi::GSocket,
        *mut gio::ffi::GTlsCertificate,
        *mut *mut glib::ffi::GError,
    ) -> *mut GObj,
    start: unsafe extern "C" fn(*mut GObj, *mut *mut glib::ffi::GError) -> glib::ffi::gboolean,
    close: unsafe extern "C" fn(
        *mut GObj,
        *mut gio::ffi::GCancellable,
        *mut *mut glib::ffi::GError,
    ) -> glib::ffi::gboolean,
    peer_count: unsafe extern "C" fn(*mut GObj) -> u32,
}

fn api() -> &'static Api {
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
    fn start(props: &[(&'static str, glib::Value)]) -> Run {
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
    let clients: Vec<_> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(run.peer_count(), 5, "five peers on one socket");
    for c in &clients {
        c.0.close(gio::Cancellable::NONE).unwrap();
    }
    s_client.stop(T).unwrap();
    for _ in 0..5 {
        let e = run.wait("a handshake", |e| matches!(e, Event::Handshake(..)));
        let Event::Handshake(i, r) = e else {
            unreachable!()
        };
        assert!(r.is_ok(), "peer {i}: {r:?}");
    }
    for _ in 0..5 {
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
