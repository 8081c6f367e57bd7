//! `DtlsOpensslServerConnection` through GIO: our client ↔ our server in
//! one process, over a pair of connected UDP GSockets. The helpers here
//! (linking, both handshakes, non-blocking exchanges on a main context) are
//! shared with `dtls_server_p2p.rs` and `dtls_server_auth.rs`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::dtls::{recv, send};
use crate::common::{self, cert, pki};

/// Two UDP GSockets on 127.0.0.1, each connected to the other.
pub fn socket_pair() -> (gio::Socket, gio::Socket) {
    common::init();
    let bind = || {
        let s = gio::Socket::new(
            gio::SocketFamily::Ipv4,
            gio::SocketType::Datagram,
            gio::SocketProtocol::Udp,
        )
        .unwrap();
        let any = gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap();
        s.bind(&any, false).unwrap();
        s
    };
    let (a, b) = (bind(), bind());
    SocketExt::connect(&a, &b.local_address().unwrap(), gio::Cancellable::NONE).unwrap();
    SocketExt::connect(&b, &a.local_address().unwrap(), gio::Cancellable::NONE).unwrap();
    (a, b)
}

pub fn server_cert() -> gio::TlsCertificate {
    cert("server-key.pem")
}

pub fn client_cert() -> gio::TlsCertificate {
    gio::TlsCertificate::from_files(pki("client.pem"), pki("client.key")).unwrap()
}

pub fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

/// A client (trusting the test CA, for server.example.com) and a server
/// (with server-key.pem) linked over `socket_pair`.
pub fn link() -> (gio::DtlsClientConnection, gio::DtlsServerConnection) {
    let (a, b) = socket_pair();
    let id = gio::NetworkAddress::new("server.example.com", 443);
    let client = gio::DtlsClientConnection::new(&a, Some(&id)).unwrap();
    client.set_database(Some(&ca_db()));
    let server = gio::DtlsServerConnection::new(&b, Some(&server_cert())).unwrap();
    (client, server)
}

/// A connection of ours, which GIO documents as usable from several
/// threads (gio-rs's interface wrappers are not `Send`).
pub struct Shared<T>(pub T);
// SAFETY: our connections lock all their state (see src/connection/base.rs).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub fn get(&self) -> &T {
        &self.0
    }
}

/// Runs both handshakes, the server's on its own thread.
pub fn handshake_both(
    client: &gio::DtlsClientConnection,
    server: &gio::DtlsServerConnection,
) -> (Result<(), glib::Error>, Result<(), glib::Error>) {
    let server = Shared(server.clone());
    std::thread::scope(|s| {
        let t = s.spawn(|| Shared(server.get().handshake(gio::Cancellable::NONE)));
        let c = client.handshake(gio::Cancellable::NONE);
        (c, t.join().unwrap().0)
    })
}

/// An unconnected UDP GSocket bound on 127.0.0.1, and its address.
pub fn bound_socket() -> (gio::Socket, std::net::SocketAddr) {
    common::init();
    let s = gio::Socket::new(
        gio::SocketFamily::Ipv4,
        gio::SocketType::Datagram,
        gio::SocketProtocol::Udp,
    )
    .unwrap();
    s.bind(
        &gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap(),
        false,
    )
    .unwrap();
    let a = s
        .local_address()
        .unwrap()
        .downcast::<gio::InetSocketAddress>()
        .unwrap();
    let addr = format!("{}:{}", a.address(), a.port()).parse().unwrap();
    (s, addr)
}

/// Connects a GSocket to `addr`.
pub fn connect_to(socket: &gio::Socket, addr: std::net::SocketAddr) {
    let a =
        gio::InetSocketAddress::from_string(&addr.ip().to_string(), addr.port() as u32).unwrap();
    SocketExt::connect(socket, &a, gio::Cancellable::NONE).unwrap();
}

/// A second, in GIO's timeout unit (microseconds).
pub const SECOND: i64 = 1_000_000;

/// Runs `f` with a fresh main context pushed as the thread default.
pub fn in_private_context<R>(f: impl FnOnce(&glib::MainContext) -> R) -> R {
    let ctx = glib::MainContext::new();
    ctx.with_thread_default(|| f(&ctx))
        .expect("a fresh context is ours to push")
}

/// Iterates `ctx` until `done()` or `limit` has passed (a timeout source
/// wakes the blocking iteration); whether `done()` holds.
pub fn iterate_until(ctx: &glib::MainContext, limit: Duration, done: impl Fn() -> bool) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    let expired = std::sync::Arc::new(AtomicBool::new(false));
    let e = expired.clone();
    let guard = glib::timeout_source_new(limit, None, glib::Priority::DEFAULT, move || {
        e.store(true, Ordering::SeqCst);
        glib::ControlFlow::Break
    });
    guard.attach(Some(ctx));
    while !done() && !expired.load(Ordering::SeqCst) {
        ctx.iteration(true);
    }
    guard.destroy();
    done()
}

/// Starts `handshake_async` on both connections in the thread-default
/// context `ctx` and iterates it until both finished (within `limit`).
pub fn handshake_async_both(
    ctx: &glib::MainContext,
    client: &impl IsA<gio::DtlsConnection>,
    server: &impl IsA<gio::DtlsConnection>,
    limit: Duration,
) -> (Result<(), glib::Error>, Result<(), glib::Error>) {
    type Slot = Rc<RefCell<Option<Result<(), glib::Error>>>>;
    let (c, s): (Slot, Slot) = Default::default();
    let thread = std::thread::current().id();
    for (conn, slot) in [
        (client.upcast_ref::<gio::DtlsConnection>(), &c),
        (server.upcast_ref(), &s),
    ] {
        let slot = slot.clone();
        conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
            assert_eq!(
                std::thread::current().id(),
                thread,
                "callback in our context"
            );
            *slot.borrow_mut() = Some(r);
        });
    }
    let finished = iterate_until(ctx, limit, || c.borrow().is_some() && s.borrow().is_some());
    assert!(
        finished,
        "handshake_async did not finish within {limit:?}: client {:?}, server {:?}",
        c.borrow(),
        s.borrow()
    );
    let c = c.borrow_mut().take().unwrap();
    let s = s.borrow_mut().take().unwrap();
    (c, s)
}

/// Datagrams one side may send ahead of what the other has received (so
/// that the receiving socket's buffer never overflows).
const WINDOW: usize = 32;

/// Moves `n` datagrams each way between two connected connections in the
/// thread-default context `ctx`, with non-blocking calls only (timeout 0),
/// each woken by its connection's own GSource
/// (`g_datagram_based_create_source`). Panics unless every datagram
/// arrived, in order, within `limit`.
pub fn exchange_non_blocking(
    ctx: &glib::MainContext,
    a: &impl IsA<gio::DatagramBased>,
    b: &impl IsA<gio::DatagramBased>,
    n: usize,
    limit: Duration,
) {
    let message = |from: usize, i: usize| format!("from {from}: datagram {i:04}").into_bytes();
    let sent: Rc<[Cell<usize>; 2]> = Rc::new(Default::default());
    let got: Rc<[RefCell<Vec<Vec<u8>>>; 2]> = Rc::new(Default::default());
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let mut sources = Vec::new();
    for (me, conn) in [a.upcast_ref::<gio::DatagramBased>(), b.upcast_ref()]
        .into_iter()
        .enumerate()
    {
        let peer = 1 - me;
        let (g, errs) = (got.clone(), errors.clone());
        sources.push(conn.create_source(
            glib::IOCondition::IN,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            move |c, _| loop {
                match recv(c, 2048, 0) {
                    Ok(d) => g[me].borrow_mut().push(d),
                    Err(e) if e.matches(gio::IOErrorEnum::WouldBlock) => {
                        return glib::ControlFlow::Continue
                    }
                    Err(e) => {
                        errs.borrow_mut().push(format!("receive on {me}: {e}"));
                        return glib::ControlFlow::Break;
                    }
                }
            },
        ));
        let (s, g, errs) = (sent.clone(), got.clone(), errors.clone());
        sources.push(conn.create_source(
            glib::IOCondition::OUT,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            move |c, _| {
                while s[me].get() < n && s[me].get() < g[peer].borrow().len() + WINDOW {
                    match send(c, &message(me, s[me].get()), 0) {
                        Ok(()) => s[me].set(s[me].get() + 1),
                        Err(e) if e.matches(gio::IOErrorEnum::WouldBlock) => {
                            return glib::ControlFlow::Continue
                        }
                        Err(e) => {
                            errs.borrow_mut().push(format!("send on {me}: {e}"));
                            return glib::ControlFlow::Break;
                        }
                    }
                }
                if s[me].get() == n {
                    glib::ControlFlow::Break
                } else {
                    glib::ControlFlow::Continue
                }
            },
        ));
    }
    for s in &sources {
        s.attach(Some(ctx));
    }
    iterate_until(ctx, limit, || {
        !errors.borrow().is_empty() || (got[0].borrow().len() == n && got[1].borrow().len() == n)
    });
    for s in &sources {
        s.destroy();
    }
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    for (me, peer) in [(0, 1), (1, 0)] {
        let expected: Vec<Vec<u8>> = (0..n).map(|i| message(peer, i)).collect();
        assert_eq!(
            got[me].borrow().len(),
            n,
            "side {me} received {} of {n} within {limit:?} (sent: {}, {})",
            got[me].borrow().len(),
            sent[0].get(),
            sent[1].get()
        );
        assert!(*got[me].borrow() == expected, "side {me}: order or content");
    }
}

/// `g_dtls_connection_get_channel_binding_data` (not in the gio crate).
pub fn binding(
    conn: &impl IsA<gio::DtlsConnection>,
    kind: gio::TlsChannelBindingType,
) -> Result<Vec<u8>, glib::Error> {
    use glib::translate::*;
    let mut error = std::ptr::null_mut();
    // SAFETY: a live connection and a fresh byte array we own.
    unsafe {
        let data = glib::ffi::g_byte_array_new();
        let ok = gio::ffi::g_dtls_connection_get_channel_binding_data(
            conn.as_ref().to_glib_none().0,
            kind.into_glib(),
            data,
            &mut error,
        );
        let bytes = if (*data).len == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*data).data, (*data).len as usize).to_vec()
        };
        glib::ffi::g_byte_array_unref(data);
        if ok == 0 {
            return Err(from_glib_full(error));
        }
        Ok(bytes)
    }
}

/// Runs the openssl CLI, panicking with its output on failure.
pub fn openssl_cli(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory under the test PKI directory.
pub fn scratch_dir(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = common::init().pki.join(format!("{what}-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate (EC P-256, `openssl req -x509`) with its key,
/// made now — as WebRTC peers make theirs.
pub fn self_signed(cn: &str) -> gio::TlsCertificate {
    let dir = scratch_dir("self-signed");
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    openssl_cli(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        k.to_str().unwrap(),
        "-out",
        c.to_str().unwrap(),
        "-subj",
        &format!("/CN={cn}"),
        "-days",
        "2",
    ]);
    gio::TlsCertificate::from_files(c, k).unwrap()
}

/// SHA-256 of a certificate's DER (its `certificate` property).
pub fn fingerprint(cert: &gio::TlsCertificate) -> [u8; 32] {
    openssl::sha::sha256(&common::der(cert))
}

#[test]
fn server_connection_is_ours() {
    let (client, server) = link();
    assert_eq!(server.type_().name(), "DtlsOpensslServerConnection");
    assert!(server.is::<gio::DtlsConnection>() && server.is::<gio::DatagramBased>());
    assert_eq!(
        server.authentication_mode(),
        gio::TlsAuthenticationMode::None
    );
    assert!(server.property::<bool>("cookie-exchange"));
    drop(client);
}

#[test]
fn our_client_and_our_server_across_two_threads() {
    let (client, server) = link();
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    for conn in [
        client.upcast_ref::<gio::DtlsConnection>(),
        server.upcast_ref(),
    ] {
        assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
        assert!(conn.ciphersuite_name().is_some());
    }
    assert_eq!(client.peer_certificate_errors(), F::empty());
    assert!(
        server.peer_certificate().is_none(),
        "no client certificate asked"
    );
    for i in 0..200u32 {
        let msg = format!("to the server {i}");
        send(&client, msg.as_bytes(), -1).unwrap();
        assert_eq!(recv(&server, 2048, 5_000_000).unwrap(), msg.as_bytes());
        let msg = format!("to the client {i}");
        send(&server, msg.as_bytes(), -1).unwrap();
        assert_eq!(recv(&client, 2048, 5_000_000).unwrap(), msg.as_bytes());
    }
    client.close(gio::Cancellable::NONE).unwrap();
    let err = recv(&server, 2048, 5_000_000);
    assert_eq!(err.unwrap(), b"", "close_notify is end-of-stream");
}

#[test]
fn required_client_certificate() {
    // Missing: the server fails with CERTIFICATE_REQUIRED, the client
    // learns why.
    let (client, server) = link();
    server.set_authentication_mode(gio::TlsAuthenticationMode::Required);
    server.set_database(Some(&ca_db()));
    let (c, s) = handshake_both(&client, &server);
    let s = s.unwrap_err();
    assert!(s.matches(gio::TlsError::CertificateRequired), "{s}");
    let c = c.unwrap_err();
    assert!(c.matches(gio::TlsError::CertificateRequired), "{c}");

    // Given and trusted: verified for the client purpose.
    let (client, server) = link();
    server.set_authentication_mode(gio::TlsAuthenticationMode::Required);
    server.set_database(Some(&ca_db()));
    client.set_certificate(&client_cert());
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    assert!(server.peer_certificate().unwrap().is_same(&client_cert()));
    assert_eq!(server.peer_certificate_errors(), F::empty());
    // The CertificateRequest named the database's anchor.
    let cas = client.accepted_cas();
    assert_eq!(cas.len(), 1, "{cas:?}");
}

/// Both handshakes asynchronous on one private main context (one thread),
/// then data both ways, non-blocking.
#[test]
fn both_handshakes_async_on_one_main_context() {
    let (client, server) = link();
    in_private_context(|ctx| {
        let (c, s) = handshake_async_both(ctx, &client, &server, Duration::from_secs(20));
        c.unwrap();
        s.unwrap();
        assert_eq!(client.peer_certificate_errors(), F::empty());
        assert_eq!(server.protocol_version(), gio::TlsProtocolVersion::Dtls12);
        exchange_non_blocking(ctx, &client, &server, 50, Duration::from_secs(20));
    });
    // And blocking calls afterwards, both ways.
    send(&server, b"blocking to the client", -1).unwrap();
    assert_eq!(
        recv(&client, 64, 5 * SECOND).unwrap(),
        b"blocking to the client"
    );
    send(&client, b"blocking to the server", -1).unwrap();
    assert_eq!(
        recv(&server, 64, 5 * SECOND).unwrap(),
        b"blocking to the server"
    );
}

/// The server's first receive runs its handshake (no explicit call on
/// either side: the client's first send runs the client's).
#[test]
fn implicit_handshake_on_the_servers_first_receive() {
    let (client, server) = link();
    let shared = Shared(server.clone());
    let got = std::thread::scope(|s| {
        let t = s.spawn(|| Shared(recv(shared.get(), 64, 10 * SECOND)));
        send(&client, b"first", -1).unwrap();
        t.join().unwrap().0
    });
    assert_eq!(got.unwrap(), b"first");
    assert_eq!(server.protocol_version(), gio::TlsProtocolVersion::Dtls12);
    assert!(server.ciphersuite_name().is_some());
}

/// The server's first send runs its handshake, the client's first receive
/// runs the client's.
#[test]
fn implicit_handshake_on_the_servers_first_send() {
    let (client, server) = link();
    let shared = Shared(server.clone());
    let got = std::thread::scope(|s| {
        let t = s.spawn(|| Shared(send(shared.get(), b"server speaks first", -1)));
        let got = recv(&client, 64, 10 * SECOND);
        t.join().unwrap().0.unwrap();
        got
    });
    assert_eq!(got.unwrap(), b"server speaks first");
    // A timeout-0 send on a fresh server starts the handshake in the
    // background and says WOULD_BLOCK.
    let (client, server) = link();
    let err = send(&server, b"x", 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
}

/// The server's close sends close_notify: the client's receive returns
/// end-of-stream (0 bytes), every time; and the client's close is the
/// server's end-of-stream.
#[test]
fn close_notify_from_the_server_and_from_the_client() {
    let (client, server) = link();
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    send(&server, b"last words", -1).unwrap();
    server.close(gio::Cancellable::NONE).unwrap();
    assert_eq!(recv(&client, 64, 5 * SECOND).unwrap(), b"last words");
    assert_eq!(recv(&client, 64, 5 * SECOND).unwrap(), b"", "end of stream");
    assert_eq!(recv(&client, 64, 0).unwrap(), b"", "and it stays so");
    let err = send(&server, b"x", -1).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Closed), "{err}");

    let (client, server) = link();
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    client.close(gio::Cancellable::NONE).unwrap();
    assert_eq!(recv(&server, 64, 5 * SECOND).unwrap(), b"", "end of stream");
}

/// What the server publishes after its handshake, with notifications.
#[test]
fn server_reports_peer_protocol_and_suite() {
    let (client, server) = link();
    server.set_authentication_mode(gio::TlsAuthenticationMode::Required);
    server.set_database(Some(&ca_db()));
    client.set_certificate(&client_cert());
    let notified = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for p in [
        "peer-certificate",
        "peer-certificate-errors",
        "protocol-version",
        "ciphersuite-name",
    ] {
        let n = notified.clone();
        server.connect_notify(Some(p), move |_, ps| {
            n.lock().unwrap().push(ps.name().to_string())
        });
    }
    assert!(server.peer_certificate().is_none());
    assert_eq!(
        server.protocol_version(),
        gio::TlsProtocolVersion::Unknown,
        "nothing before the handshake"
    );
    assert!(server.ciphersuite_name().is_none());
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    let peer = server.peer_certificate().unwrap();
    assert!(peer.is_same(&client_cert()));
    assert!(peer
        .subject_name()
        .unwrap()
        .contains("CN=client.example.com"));
    assert_eq!(server.peer_certificate_errors(), F::empty());
    assert_eq!(server.protocol_version(), gio::TlsProtocolVersion::Dtls12);
    let suite = server.ciphersuite_name().unwrap();
    assert!(suite.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{suite}");
    assert_eq!(client.ciphersuite_name().as_deref(), Some(suite.as_str()));
    let mut n = notified.lock().unwrap().clone();
    n.sort();
    n.dedup();
    assert_eq!(
        n,
        [
            "ciphersuite-name",
            "peer-certificate",
            "peer-certificate-errors",
            "protocol-version"
        ]
    );
}

/// ALPN: the server picks, in its own order of preference, from the
/// client's list; without an overlap (or without a list on one side)
/// nothing is negotiated and the handshake still succeeds.
#[test]
fn alpn_selected_by_the_server() {
    let cases: [(&[&str], &[&str], Option<&str>); 5] = [
        (&["coap", "h2"], &["foo", "h2", "coap"], Some("coap")),
        (&["webrtc", "c-webrtc"], &["c-webrtc"], Some("c-webrtc")),
        (&["coap"], &["foo", "bar"], None),
        (&[], &["foo"], None),
        (&["coap"], &[], None),
    ];
    for (server_list, client_list, expected) in cases {
        let (client, server) = link();
        if !server_list.is_empty() {
            server.set_advertised_protocols(server_list);
        }
        if !client_list.is_empty() {
            client.set_advertised_protocols(client_list);
        }
        let (c, s) = handshake_both(&client, &server);
        c.unwrap();
        s.unwrap();
        let case = format!("server {server_list:?}, client {client_list:?}");
        assert_eq!(server.negotiated_protocol().as_deref(), expected, "{case}");
        assert_eq!(client.negotiated_protocol().as_deref(), expected, "{case}");
    }
}

/// tls-unique, tls-server-end-point and tls-exporter agree on both ends.
#[test]
fn channel_binding_equal_on_both_ends() {
    use gio::TlsChannelBindingType as B;
    let (client, server) = link();
    let err = binding(&server, B::Exporter).unwrap_err();
    assert!(
        err.matches(gio::TlsChannelBindingError::InvalidState),
        "{err}"
    );
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    let unique = binding(&server, B::Unique).unwrap();
    assert_eq!(unique.len(), 12);
    assert_eq!(binding(&client, B::Unique).unwrap(), unique);
    let endpoint = binding(&server, B::ServerEndPoint).unwrap();
    assert_eq!(
        endpoint,
        openssl::sha::sha256(&common::der(&server_cert())).to_vec()
    );
    assert_eq!(binding(&client, B::ServerEndPoint).unwrap(), endpoint);
    let exporter = binding(&server, B::Exporter).unwrap();
    assert_eq!(exporter.len(), 32);
    assert_eq!(binding(&client, B::Exporter).unwrap(), exporter);
    // Another connection has other values.
    let (client2, server2) = link();
    let (c, s) = handshake_both(&client2, &server2);
    c.unwrap();
    s.unwrap();
    assert_ne!(binding(&server2, B::Exporter).unwrap(), exporter);
    assert_ne!(binding(&server2, B::Unique).unwrap(), unique);
}

/// The server's `mtu` bounds every datagram it sends, its handshake
/// flights included (a two-certificate chain needs several).
#[test]
fn server_mtu_is_honoured() {
    use crate::common::relay::{Direction, Relay};
    let (server_socket, server_addr) = bound_socket();
    let relay = Relay::start(server_addr);
    connect_to(&server_socket, relay.back_addr());
    let chain =
        gio::TlsCertificate::from_files(pki("chain-leaf-int.pem"), pki("leaf-int.key")).unwrap();
    let server = gio::DtlsServerConnection::new(&server_socket, Some(&chain)).unwrap();
    assert_eq!(server.property::<u32>("mtu"), 1400, "the default");
    server.set_property("mtu", 300u32);
    assert_eq!(server.property::<u32>("mtu"), 300);
    let client = crate::common::dtls::client(relay.addr(), Some("server.example.com"));
    client.set_database(Some(&ca_db()));
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    let mut fitted = 0;
    for size in [1usize, 100, 200, 250, 270, 290, 400] {
        match send(&server, &vec![1u8; size], -1) {
            Ok(()) => {
                fitted = size;
                assert_eq!(recv(&client, 512, 5 * SECOND).unwrap().len(), size);
            }
            Err(e) => assert!(e.matches(gio::IOErrorEnum::MessageTooLarge), "{size}: {e}"),
        }
    }
    assert!((200..300).contains(&fitted), "{fitted}");
    let sizes = relay.sizes(Direction::ToClient);
    assert!(sizes.iter().all(|&s| s <= 300), "{sizes:?}");
    assert!(
        sizes.iter().filter(|&&s| s > 250).count() >= 3,
        "the chain was fragmented to fill the MTU: {sizes:?}"
    );
}

/// A server without a certificate fails at once with a clear error; the
/// client, which gets no answer, fails within its handshake-timeout.
#[test]
fn server_without_a_certificate_fails_clearly() {
    let (a, b) = socket_pair();
    let server = gio::DtlsServerConnection::new(&b, None::<&gio::TlsCertificate>).unwrap();
    let client = gio::DtlsClientConnection::new(
        &a,
        Some(&gio::NetworkAddress::new("server.example.com", 443)),
    )
    .unwrap();
    client.set_database(Some(&ca_db()));
    client.set_property("handshake-timeout", 3_000u32);
    server.set_property("handshake-timeout", 3_000u32);
    let started = Instant::now();
    let (c, s) = handshake_both(&client, &server);
    let s = s.unwrap_err();
    assert!(s.matches(gio::TlsError::BadCertificate), "{s}");
    assert!(s.message().contains("no certificate"), "{s}");
    // The server alerts the client at once: a handshake error, long before
    // the handshake-timeout.
    let c = c.unwrap_err();
    assert!(c.matches(gio::TlsError::Handshake), "{c}");
    assert!(c.message().contains("alert handshake failure"), "{c}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The error is sticky.
    let again = server.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_eq!(again.message(), s.message());
}

/// With the cookie exchange on (the default) or off, both handshakes
/// complete; on, the client's first ClientHello is answered by a
/// HelloVerifyRequest and it sends a second one with the cookie.
#[test]
fn cookie_exchange_on_and_off() {
    for cookies in [true, false] {
        let (client, server) = link();
        server.set_property("cookie-exchange", cookies);
        let (c, s) = handshake_both(&client, &server);
        c.unwrap();
        s.unwrap();
        send(&client, b"ping", -1).unwrap();
        assert_eq!(recv(&server, 64, 5 * SECOND).unwrap(), b"ping");
    }
}

/// The handshake message type of a datagram that starts with a DTLS
/// handshake record (offset 13: after the 13-byte record header).
fn handshake_type(datagram: &[u8]) -> Option<u8> {
    (datagram.len() > 25 && datagram[0] == 22).then(|| datagram[13])
}

const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const HELLO_VERIFY_REQUEST: u8 = 3;

/// Length of the cookie in a ClientHello datagram (unfragmented).
fn client_hello_cookie_len(datagram: &[u8]) -> usize {
    // record header 13, handshake header 12, version 2, random 32.
    let sid = 13 + 12 + 2 + 32;
    let sid_len = datagram[sid] as usize;
    datagram[sid + 1 + sid_len] as usize
}

/// A ClientHello replayed from another address is answered by a
/// HelloVerifyRequest only: the server keeps no state and sends no
/// ServerHello. One carrying the cookie another connection earned gets no
/// answer and does not end the server's handshake. With cookie-exchange
/// off, the same datagram gets a ServerHello (the control showing that the
/// replay reaches the server).
#[test]
fn replayed_client_hello_gets_only_a_hello_verify_request() {
    use crate::common::relay::{Direction, Relay, Verdict};
    use std::sync::{Arc, Mutex};

    // A real handshake through a relay that records every datagram.
    let (server_socket, server_addr) = bound_socket();
    let relay = Relay::start(server_addr);
    connect_to(&server_socket, relay.back_addr());
    let seen: Arc<Mutex<[Vec<Vec<u8>>; 2]>> = Arc::default();
    let s2 = seen.clone();
    relay.set_filter(move |dir, _, d| {
        s2.lock().unwrap()[(dir == Direction::ToClient) as usize].push(d.to_vec());
        Verdict::Forward
    });
    let server = gio::DtlsServerConnection::new(&server_socket, Some(&server_cert())).unwrap();
    let client = crate::common::dtls::client(relay.addr(), Some("server.example.com"));
    client.set_database(Some(&ca_db()));
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    let (to_server, to_client) = {
        let seen = seen.lock().unwrap();
        (seen[0].clone(), seen[1].clone())
    };
    let first = to_server[0].clone();
    let second = to_server[1].clone();
    assert_eq!(handshake_type(&first), Some(CLIENT_HELLO));
    assert_eq!(client_hello_cookie_len(&first), 0);
    assert_eq!(
        handshake_type(&to_client[0]),
        Some(HELLO_VERIFY_REQUEST),
        "the default exchange asks for a cookie"
    );
    assert_eq!(handshake_type(&second), Some(CLIENT_HELLO));
    assert_eq!(client_hello_cookie_len(&second), 32);
    assert_eq!(handshake_type(&to_client[1]), Some(SERVER_HELLO));

    // Replays from another socket to a fresh server.
    for cookies in [true, false] {
        let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (socket, addr) = bound_socket();
        connect_to(&socket, raw.local_addr().unwrap());
        let server = gio::DtlsServerConnection::new(&socket, Some(&server_cert())).unwrap();
        server.set_property("cookie-exchange", cookies);
        server.set_property("handshake-timeout", 20_000u32);
        let cancellable = gio::Cancellable::new();
        let shared = Shared(server.clone());
        let answers = std::thread::scope(|s| {
            let c = cancellable.clone();
            let t = s.spawn(move || Shared(shared.get().handshake(Some(&c))));
            let mut answers = Vec::new();
            let mut buf = [0u8; 2048];
            raw.send_to(&first, addr).unwrap();
            answers.push(raw.recv(&mut buf).map(|n| buf[..n].to_vec()));
            if cookies {
                // The cookie another connection earned is worth nothing
                // here: no answer (neither a ServerHello nor an alert), and
                // the handshake goes on (it ends cancelled, below). The
                // server answers at once or not at all: 300 ms of silence.
                raw.send_to(&second, addr).unwrap();
                raw.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                if let Ok(n) = raw.recv(&mut buf) {
                    answers.push(Ok(buf[..n].to_vec()));
                }
            }
            cancellable.cancel();
            let r = t.join().unwrap().0;
            let e = r.unwrap_err();
            assert!(e.matches(gio::IOErrorEnum::Cancelled), "{e}");
            answers
        });
        let types: Vec<Option<u8>> = answers
            .into_iter()
            .map(|a| handshake_type(&a.expect("the server answered")))
            .collect();
        if cookies {
            assert_eq!(
                types,
                [Some(HELLO_VERIFY_REQUEST)],
                "only a HelloVerifyRequest"
            );
        } else {
            assert_eq!(types, [Some(SERVER_HELLO)]);
        }
    }
}
