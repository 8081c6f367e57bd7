//! `DtlsOpensslServerConnection` against real peers in other processes
//! (issue 7): `openssl s_client`, `gnutls-cli`, and glib-networking's
//! GnuTLS backend through tests/c/gio-peer.c — plus our client against
//! glib-networking's GnuTLS server.
//!
//! An external client reaches our server the way a GIO application would
//! accept one: a UDP GSocket bound on 127.0.0.1:0, the client started
//! towards it, the first datagram peeked (left queued) to learn the
//! client's address, the socket connected to it, then
//! `g_dtls_server_connection_new` on that socket ([`Listener`]). The server
//! runs on its own thread ([`ServerRun`]): handshake, then it echoes every
//! datagram until the client's close_notify. Every wait is bounded: the
//! server's thread by a Cancellable cancelled at the deadline, the peers by
//! their own line waits.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::dtls::{recv_vectored, send_many};
use crate::common::gio_peer::{GioPeer, GioPeerOpts};
use crate::common::peers::{
    GnutlsClient, GnutlsClientOpts, MsgDir, OpensslClient, OpensslClientOpts, OpensslServer,
    OpensslServerOpts,
};
use crate::common::{self, cert, pki};

/// Deadline of each wait on a peer or on our server.
const T: Duration = Duration::from_secs(10);
/// The same, for GIO's microsecond timeouts.
const T_US: i64 = 10_000_000;

fn pki_dir() -> &'static std::path::Path {
    &common::init().pki
}

fn ca_pem() -> std::path::PathBuf {
    pki_dir().join("ca.pem")
}

fn client_pem() -> (std::path::PathBuf, std::path::PathBuf) {
    (pki_dir().join("client.pem"), pki_dir().join("client.key"))
}

fn client_cert() -> gio::TlsCertificate {
    gio::TlsCertificate::from_files(pki("client.pem"), pki("client.key")).unwrap()
}

fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

fn ok_exit(status: std::process::ExitStatus, what: &str) {
    assert!(status.success(), "{what} exited with {status}");
}

/// A GIO object handed to another thread. Our connections lock all their
/// state (see src/connection/base.rs) and GIO documents DTLS connections
/// as usable from several threads; gio-rs's wrappers are not `Send`.
struct Shared<T>(T);
// SAFETY: see above; sockets and certificates are thread-safe GObjects.
unsafe impl<T> Send for Shared<T> {}

/// A UDP GSocket bound on 127.0.0.1:0, not yet connected: what a server
/// listens on before it knows its client.
pub struct Listener {
    socket: gio::Socket,
    addr: SocketAddr,
}

impl Listener {
    pub fn bind() -> Self {
        common::init();
        let socket = gio::Socket::new(
            gio::SocketFamily::Ipv4,
            gio::SocketType::Datagram,
            gio::SocketProtocol::Udp,
        )
        .unwrap();
        let any = gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap();
        socket.bind(&any, false).unwrap();
        let local = socket
            .local_address()
            .unwrap()
            .downcast::<gio::InetSocketAddress>()
            .unwrap();
        let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), local.port());
        Listener { socket, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits (≤ `timeout_us`) for the first datagram, peeks at it to learn
    /// its source (the datagram stays queued for the handshake), connects
    /// the socket to that address and returns the socket and the address.
    pub fn accept(
        self,
        timeout_us: i64,
        cancellable: &gio::Cancellable,
    ) -> Result<(gio::Socket, SocketAddr), glib::Error> {
        let socket = self.socket;
        socket.condition_timed_wait(glib::IOCondition::IN, timeout_us, Some(cancellable))?;
        let mut from = None;
        let mut byte = [0u8; 1];
        let mut vectors = [gio::InputVector::new(&mut byte)];
        socket.receive_message(
            Some(&mut from),
            &mut vectors,
            None,
            gio::SocketMsgFlags::PEEK.bits(),
            Some(cancellable),
        )?;
        let from = from
            .expect("a datagram's source")
            .downcast::<gio::InetSocketAddress>()
            .expect("an inet address");
        SocketExt::connect(&socket, &from, Some(cancellable))?;
        let addr = SocketAddr::new(from.address().to_str().parse().unwrap(), from.port());
        Ok((socket, addr))
    }
}

/// How our server is set up (plain data, so that it crosses threads).
#[derive(Clone, Debug, Default)]
pub struct ServerOpts {
    /// `authentication-mode` (default NONE).
    pub auth: Option<gio::TlsAuthenticationMode>,
    /// A file database of ca.pem (client certificates are verified with it).
    pub ca: bool,
    /// `cookie-exchange` (default: left at the default, TRUE).
    pub cookie_exchange: Option<bool>,
    /// `advertised-protocols`, in the server's preference order.
    pub alpn: Vec<String>,
    /// Close (close_notify) after this many echoes; None: echo until the
    /// client's close_notify.
    pub close_after: Option<usize>,
}

impl ServerOpts {
    pub fn auth(mut self, mode: gio::TlsAuthenticationMode) -> Self {
        self.auth = Some(mode);
        self.ca = true;
        self
    }

    pub fn cookie_exchange(mut self, on: bool) -> Self {
        self.cookie_exchange = Some(on);
        self
    }

    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn close_after(mut self, n: usize) -> Self {
        self.close_after = Some(n);
        self
    }
}

/// How the server's echo loop ended.
#[derive(Debug)]
pub enum End {
    /// The handshake failed: no echo loop.
    NotRun,
    /// The client's close_notify (end-of-stream).
    Eof,
    /// We closed after `close_after` echoes.
    Closed,
    Error(glib::Error),
}

/// What the server thread did.
pub struct Report {
    /// The client's address, from the peeked datagram.
    pub client: SocketAddr,
    pub handshake: Result<(), glib::Error>,
    /// The datagrams echoed, in order.
    pub echoed: Vec<Vec<u8>>,
    pub end: End,
    conn: Shared<gio::DtlsServerConnection>,
}

impl Report {
    /// The server connection, for its properties once the thread is done.
    pub fn conn(&self) -> &gio::DtlsServerConnection {
        &self.conn.0
    }

    /// The echoed datagrams as text.
    pub fn echoed_text(&self) -> Vec<String> {
        self.echoed
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect()
    }

    /// Panics unless the handshake succeeded and the client closed.
    pub fn assert_clean(&self) {
        if let Err(e) = &self.handshake {
            panic!("server handshake failed: {e}");
        }
        assert!(
            matches!(self.end, End::Eof | End::Closed),
            "server echo loop: {:?}",
            self.end
        );
    }
}

/// Our server on its own thread. `report()` waits for it (bounded); Drop
/// cancels whatever it is still blocked on.
pub struct ServerRun {
    addr: SocketAddr,
    rx: mpsc::Receiver<Result<Report, glib::Error>>,
    cancellable: gio::Cancellable,
}

impl ServerRun {
    /// Binds, then on a thread: accept (peek + connect),
    /// `g_dtls_server_connection_new` with server-key.pem, `opts`,
    /// handshake, echo. Start the client towards `addr()` afterwards.
    pub fn start(opts: ServerOpts) -> Self {
        let listener = Listener::bind();
        let addr = listener.addr();
        let cancellable = gio::Cancellable::new();
        let (tx, rx) = mpsc::channel();
        let job = (Shared(listener), cancellable.clone());
        std::thread::Builder::new()
            .name("our-dtls-server".into())
            .spawn(move || {
                let (listener, cancellable) = job;
                let _ = tx.send(serve(listener.0, &opts, &cancellable));
            })
            .unwrap();
        ServerRun {
            addr,
            rx,
            cancellable,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits (≤ `timeout`) for the server thread's report. At the deadline
    /// its blocking call is cancelled and this panics.
    pub fn report(&self, timeout: Duration) -> Report {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => panic!("our server did not get to a handshake: {e}"),
            Err(_) => {
                self.cancellable.cancel();
                let late = self.rx.recv_timeout(T);
                panic!(
                    "our server did not finish within {timeout:?}; after cancelling: {}",
                    match late {
                        Ok(Ok(r)) => format!(
                            "handshake {:?}, echoed {:?}, end {:?}",
                            r.handshake,
                            r.echoed_text(),
                            r.end
                        ),
                        Ok(Err(e)) => format!("{e}"),
                        Err(_) => "still blocked".into(),
                    }
                )
            }
        }
    }
}

impl Drop for ServerRun {
    fn drop(&mut self) {
        self.cancellable.cancel();
    }
}

/// The server thread's body.
fn serve(
    listener: Listener,
    opts: &ServerOpts,
    cancellable: &gio::Cancellable,
) -> Result<Report, glib::Error> {
    let (socket, client) = listener.accept(T_US, cancellable)?;
    let conn = gio::DtlsServerConnection::new(&socket, Some(&cert("server-key.pem")))?;
    if let Some(mode) = opts.auth {
        conn.set_authentication_mode(mode);
    }
    if opts.ca {
        conn.set_database(Some(&ca_db()));
    }
    if let Some(on) = opts.cookie_exchange {
        conn.set_property("cookie-exchange", on);
    }
    if !opts.alpn.is_empty() {
        let names: Vec<&str> = opts.alpn.iter().map(String::as_str).collect();
        conn.set_advertised_protocols(&names);
    }
    let handshake = conn.handshake(Some(cancellable));
    let mut echoed = Vec::new();
    let end = if handshake.is_err() {
        End::NotRun
    } else {
        loop {
            if opts.close_after == Some(echoed.len()) {
                break match conn.close(Some(cancellable)) {
                    Ok(()) => End::Closed,
                    Err(e) => End::Error(e),
                };
            }
            let got = recv_vectored(&conn, &[&[65536]], 0, T_US, Some(cancellable))
                .map(|mut v| v.remove(0));
            match got {
                Ok(d) if d.is_empty() => break End::Eof,
                Ok(d) => {
                    if let Err(e) = send_many(&conn, &[&d], T_US, Some(cancellable)) {
                        break End::Error(e);
                    }
                    echoed.push(d);
                }
                Err(e) => break End::Error(e),
            }
        }
    };
    Ok(Report {
        client,
        handshake,
        echoed,
        end,
        conn: Shared(conn),
    })
}

/// s_client options verifying our server (ca.pem, server.example.com).
fn s_client_opts() -> OpensslClientOpts {
    OpensslClientOpts::default().verify(&ca_pem(), "server.example.com")
}

/// Sends each line through s_client and waits for its echo.
fn s_client_echo(client: &OpensslClient, lines: &[&str]) {
    for line in lines {
        client.send_line(line);
        client.wait_data(line, T).unwrap();
    }
}

fn lines_nl(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

// ---------------------------------------------------------------------------
// 1. openssl s_client -dtls1_2

#[test]
fn s_client_echo_with_cookie_exchange() {
    let server = ServerRun::start(ServerOpts::default());
    let mut client = OpensslClient::start(server.addr(), s_client_opts().msg());
    let line = client.wait_handshake(T).unwrap();
    assert!(line.contains("TLSv1.2"), "{line}");
    assert_eq!(client.verification(), Some(Ok(())));
    let lines = ["hello our server", "second line", "third"];
    s_client_echo(&client, &lines);
    ok_exit(client.stop(T).unwrap(), "s_client");

    let report = server.report(T);
    report.assert_clean();
    assert!(matches!(report.end, End::Eof), "{:?}", report.end);
    assert_eq!(report.echoed_text(), lines_nl(&lines));
    assert!(
        report.client.ip().is_loopback() && report.client.port() != server.addr().port(),
        "peeked source {}",
        report.client
    );
    let conn = report.conn();
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
    assert!(conn.ciphersuite_name().is_some());
    assert!(conn.peer_certificate().is_none(), "no client certificate");

    // Cookie exchange is on by default: the first ClientHello is answered
    // with a HelloVerifyRequest, and the second carries the cookie.
    let order = client.message_order();
    assert!(client.saw_hello_verify_request(), "{order:?}");
    assert_eq!(
        order[..5],
        [
            ">>> ClientHello",
            "<<< HelloVerifyRequest",
            ">>> ClientHello",
            "<<< ServerHello",
            "<<< Certificate"
        ],
        "{order:?}"
    );
    let hellos: Vec<_> = client
        .messages()
        .into_iter()
        .filter(|m| m.dir == MsgDir::Sent && m.handshake_type() == Some(1))
        .collect();
    let len = |h: &[u8]| u32::from_be_bytes([0, h[1], h[2], h[3]]);
    assert!(
        len(&hellos[1].head) > len(&hellos[0].head),
        "the second ClientHello carries a cookie: {hellos:?}"
    );
    assert_eq!(hellos.len(), 2, "one HelloVerifyRequest round: {order:?}");
}

#[test]
fn s_client_without_cookie_exchange() {
    let server = ServerRun::start(ServerOpts::default().cookie_exchange(false));
    let mut client = OpensslClient::start(server.addr(), s_client_opts().msg());
    client.wait_handshake(T).unwrap();
    s_client_echo(&client, &["no cookie"]);
    let order = client.message_order();
    assert!(!client.saw_hello_verify_request(), "{order:?}");
    assert_eq!(
        order[..3],
        [">>> ClientHello", "<<< ServerHello", "<<< Certificate"],
        "{order:?}"
    );
    ok_exit(client.stop(T).unwrap(), "s_client");
    let report = server.report(T);
    report.assert_clean();
    assert!(!report.conn().property::<bool>("cookie-exchange"));
    assert_eq!(report.echoed_text(), lines_nl(&["no cookie"]));
}

// ---------------------------------------------------------------------------
// 2. gnutls-cli --udp

/// gnutls-cli echoes through our server, which closes after the third
/// datagram: gnutls-cli sees our close_notify.
#[test]
fn gnutls_cli_echo() {
    let server = ServerRun::start(ServerOpts::default().alpn(&["foo"]).close_after(3));
    let mut client =
        GnutlsClient::start(server.addr(), GnutlsClientOpts::new(pki_dir()).alpn("foo"));
    client.wait_handshake(T).unwrap();
    assert_eq!(
        client.status().as_deref(),
        Some("The certificate is trusted.")
    );
    assert!(
        client
            .description()
            .is_some_and(|d| d.starts_with("(DTLS1.2-X.509)")),
        "{:?}",
        client.description()
    );
    assert!(client
        .peer_subject()
        .is_some_and(|s| s.starts_with("CN=server.example.com")));
    assert_eq!(client.alpn().as_deref(), Some("foo"));
    let lines = ["hello from gnutls-cli", "two", "three"];
    for line in lines {
        client.send_line(line);
        client.wait_data(line, T).unwrap();
    }
    let report = server.report(T);
    report.assert_clean();
    assert!(matches!(report.end, End::Closed), "{:?}", report.end);
    assert_eq!(report.echoed_text(), lines_nl(&lines));
    assert_eq!(report.conn().negotiated_protocol().as_deref(), Some("foo"));
    client
        .wait_for("- Peer has closed the GnuTLS connection", T)
        .unwrap();
    client.stop(T).unwrap();
}

// ---------------------------------------------------------------------------
// 3. glib-networking's GnuTLS backend, in another process

#[test]
fn gnutls_gio_client_against_our_server() {
    let server = ServerRun::start(
        ServerOpts::default()
            .auth(gio::TlsAuthenticationMode::Required)
            .alpn(&["bar", "foo"]),
    );
    let (cert, key) = client_pem();
    let mut client = GioPeer::start(
        GioPeerOpts::client(pki_dir(), server.addr().port())
            .cert(&cert, &key)
            .alpn("foo")
            .echo(4),
    );
    client.wait_handshake(T).unwrap();
    assert_eq!(
        client.connection_type().as_deref(),
        Some("GTlsClientConnectionGnutls")
    );
    assert!(
        client.has_line("PEER-CERT-ERRORS 0x0"),
        "{}",
        client.output()
    );
    assert!(client
        .peer_cert_subject()
        .is_some_and(|s| s.ends_with("CN=server.example.com")));
    assert_eq!(client.alpn().as_deref(), Some("foo"));
    client.wait_done(T).unwrap();
    assert!(client.has_line("ECHO 4 10"), "{}", client.output());

    let report = server.report(T);
    report.assert_clean();
    assert!(matches!(report.end, End::Eof), "{:?}", report.end);
    assert_eq!(
        report.echoed_text(),
        (1..=4).map(|i| format!("gio-peer {i}")).collect::<Vec<_>>()
    );
    let conn = report.conn();
    assert_eq!(conn.negotiated_protocol().as_deref(), Some("foo"));
    assert!(conn.peer_certificate().unwrap().is_same(&client_cert()));
    assert_eq!(conn.peer_certificate_errors(), F::empty());
}

#[test]
fn our_client_against_gnutls_gio_server() {
    let mut server = GioPeer::start(
        GioPeerOpts::server(pki_dir())
            .require_client_cert(&ca_pem())
            .alpn("foo,bar")
            .echo(3),
    );
    let cancellable = gio::Cancellable::new();
    let conn = crate::common::dtls::client(server.addr(), Some("server.example.com"));
    conn.set_database(Some(&ca_db()));
    conn.set_certificate(&client_cert());
    conn.set_advertised_protocols(&["bar", "foo"]);
    // Bounded: cancelled from a timer thread at the deadline.
    let watchdog = {
        let c = cancellable.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            if rx.recv_timeout(T * 2).is_err() {
                c.cancel();
            }
        });
        (tx, t)
    };
    conn.handshake(Some(&cancellable))
        .unwrap_or_else(|e| panic!("our handshake: {e}\n{}", server.output()));
    assert_eq!(conn.peer_certificate_errors(), F::empty());
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
    // glib-networking's GnuTLS server honours the client's order (GnuTLS
    // without GNUTLS_ALPN_SERVER_PRECEDENCE): our first offer wins.
    assert_eq!(conn.negotiated_protocol().as_deref(), Some("bar"));
    for i in 1..=3 {
        let msg = format!("our client {i}");
        send_many(&conn, &[msg.as_bytes()], T_US, Some(&cancellable)).unwrap();
        let got = recv_vectored(&conn, &[&[2048]], 0, T_US, Some(&cancellable)).unwrap();
        assert_eq!(got, [msg.into_bytes()]);
    }
    // After its echoes gio-peer closes: close_notify is end-of-stream.
    let got = recv_vectored(&conn, &[&[2048]], 0, T_US, Some(&cancellable)).unwrap();
    assert_eq!(got, [Vec::<u8>::new()]);
    drop(watchdog.0);
    watchdog.1.join().unwrap();
    server.wait_done(T).unwrap();
    assert_eq!(
        server.connection_type().as_deref(),
        Some("GTlsServerConnectionGnutls")
    );
    assert!(server.has_line("ACCEPT-CERTIFICATE errors=0x0 accepted"));
    assert!(server
        .peer_cert_subject()
        .is_some_and(|s| s.ends_with("CN=client.example.com")));
    assert_eq!(server.alpn().as_deref(), Some("bar"));
    assert!(server.has_line("ECHO 3 12"), "{}", server.output());
}

// ---------------------------------------------------------------------------
// 4. Client authentication and ALPN with s_client

#[test]
fn s_client_with_certificate_when_required() {
    let server = ServerRun::start(ServerOpts::default().auth(gio::TlsAuthenticationMode::Required));
    let (cert, key) = client_pem();
    let mut client = OpensslClient::start(
        server.addr(),
        s_client_opts().client_cert(&cert, &key).msg(),
    );
    client.wait_handshake(T).unwrap();
    s_client_echo(&client, &["authenticated"]);
    ok_exit(client.stop(T).unwrap(), "s_client");
    let report = server.report(T);
    report.assert_clean();
    let conn = report.conn();
    let peer = conn.peer_certificate().expect("the client's certificate");
    assert!(peer.is_same(&client_cert()));
    assert_eq!(conn.peer_certificate_errors(), F::empty());

    let order = client.message_order();
    assert!(
        order.contains(&"<<< CertificateRequest".into()),
        "{order:?}"
    );
    assert!(order.contains(&">>> CertificateVerify".into()), "{order:?}");
    // The CertificateRequest names the database's anchor.
    let lines: Vec<String> = client.lines().into_iter().map(|(_, l)| l).collect();
    let at = lines
        .iter()
        .position(|l| l == "Acceptable client certificate CA names")
        .unwrap_or_else(|| panic!("{}", client.output()));
    assert!(lines[at + 1].contains("Test Root CA"), "{}", lines[at + 1]);
}

#[test]
fn s_client_without_certificate_when_required() {
    let server = ServerRun::start(ServerOpts::default().auth(gio::TlsAuthenticationMode::Required));
    let mut client = OpensslClient::start(server.addr(), s_client_opts().msg());
    let report = server.report(T);
    let err = report.handshake.as_ref().unwrap_err();
    assert!(err.matches(gio::TlsError::CertificateRequired), "{err}");
    assert!(matches!(report.end, End::NotRun));
    assert!(report.conn().peer_certificate().is_none());
    // s_client learns it through a fatal handshake_failure alert after its
    // Finished (its summary, printed once its own side was done, still
    // names a cipher) and exits.
    let status = client.wait_exit(T).unwrap();
    assert!(!status.success(), "{}", client.output());
    assert!(
        client.has_line("alert handshake failure"),
        "{}",
        client.output()
    );
    let alert = client
        .messages()
        .into_iter()
        .find(|m| m.dir == MsgDir::Received && m.content_type == 21)
        .unwrap_or_else(|| panic!("no alert received: {}", client.output()));
    assert_eq!(
        alert.head[..2],
        [2, 40],
        "fatal handshake_failure: {alert:?}"
    );
}

#[test]
fn s_client_without_certificate_when_requested() {
    let server =
        ServerRun::start(ServerOpts::default().auth(gio::TlsAuthenticationMode::Requested));
    let mut client = OpensslClient::start(server.addr(), s_client_opts().msg());
    client.wait_handshake(T).unwrap();
    s_client_echo(&client, &["anonymous"]);
    ok_exit(client.stop(T).unwrap(), "s_client");
    let report = server.report(T);
    report.assert_clean();
    assert!(report.conn().peer_certificate().is_none());
    assert_eq!(report.conn().peer_certificate_errors(), F::empty());
    let order = client.message_order();
    assert!(
        order.contains(&"<<< CertificateRequest".into()),
        "{order:?}"
    );
    assert_eq!(report.echoed_text(), lines_nl(&["anonymous"]));
}

#[test]
fn s_client_alpn_selected_by_our_server() {
    // The server's preference order wins among the client's offers.
    let server = ServerRun::start(ServerOpts::default().alpn(&["bar", "foo"]));
    let mut client = OpensslClient::start(server.addr(), s_client_opts().alpn("foo,bar"));
    client.wait_handshake(T).unwrap();
    assert_eq!(client.alpn().as_deref(), Some("bar"));
    s_client_echo(&client, &["alpn"]);
    ok_exit(client.stop(T).unwrap(), "s_client");
    let report = server.report(T);
    report.assert_clean();
    assert_eq!(report.conn().negotiated_protocol().as_deref(), Some("bar"));

    // No overlap: no ALPN answer, the handshake goes on.
    let server = ServerRun::start(ServerOpts::default().alpn(&["baz"]));
    let mut client = OpensslClient::start(server.addr(), s_client_opts().alpn("foo,bar"));
    client.wait_handshake(T).unwrap();
    assert_eq!(client.alpn(), None);
    assert!(client.has_line("No ALPN negotiated"), "{}", client.output());
    s_client_echo(&client, &["no alpn"]);
    ok_exit(client.stop(T).unwrap(), "s_client");
    let report = server.report(T);
    report.assert_clean();
    assert_eq!(report.conn().negotiated_protocol(), None);
}

// ---------------------------------------------------------------------------
// 5. Renegotiation

/// The `-msg` trace from the last ClientHello s_client sent on.
fn trace_from_last_client_hello(client: &OpensslClient) -> Vec<String> {
    let order = client.message_order();
    let at = order
        .iter()
        .rposition(|m| m == ">>> ClientHello")
        .expect("a ClientHello");
    order[at..].to_vec()
}

/// What happens, observed with OpenSSL 3.0 on both ends: our server
/// (SSL_OP_NO_RENEGOTIATION) answers s_client's renegotiating ClientHello
/// with a *warning* no_renegotiation alert, as OpenSSL servers do by
/// default; OpenSSL 3.0's DTLS client does not carry on without the
/// renegotiation but aborts (dtls1_read_bytes: "no renegotiation") with a
/// fatal handshake_failure alert and exits non-zero. So the connection
/// does not survive, but it fails clearly on both sides and nothing hangs:
/// our server's pending receive fails with a G_TLS_ERROR naming the alert.
/// s_server (no -client_renegotiation) is the reference: the same alerts.
#[test]
fn s_client_renegotiation_is_refused() {
    let expected = [
        ">>> ClientHello",
        "<<< Alert(1,100)", // warning no_renegotiation
        ">>> Alert(2,40)",  // fatal handshake_failure
    ];

    // The reference: OpenSSL's own server.
    let reference = OpensslServer::start(OpensslServerOpts::new(pki_dir()).echo_prefix("echo:"));
    let mut client = OpensslClient::start(reference.addr(), s_client_opts().msg());
    client.wait_handshake(T).unwrap();
    s_client_echo(&client, &["echo:before"]);
    client.renegotiate(T).unwrap();
    assert!(!client.wait_exit(T).unwrap().success());
    assert_eq!(
        trace_from_last_client_hello(&client),
        expected,
        "s_server: {:?}",
        client.message_order()
    );

    // Ours.
    let server = ServerRun::start(ServerOpts::default());
    let mut client = OpensslClient::start(server.addr(), s_client_opts().msg());
    client.wait_handshake(T).unwrap();
    s_client_echo(&client, &["before"]);
    client.renegotiate(T).unwrap();
    let status = client.wait_exit(T).unwrap();
    assert!(!status.success(), "{}", client.output());
    assert_eq!(
        trace_from_last_client_hello(&client),
        expected,
        "{:?}",
        client.message_order()
    );
    assert!(client.has_line("no renegotiation"), "{}", client.output());
    // The renegotiating ClientHello was the only one after the handshake:
    // no ServerHello answered it.
    let hellos = client
        .messages()
        .iter()
        .filter(|m| m.dir == MsgDir::Received && m.handshake_type() == Some(2))
        .count();
    assert_eq!(hellos, 1, "{:?}", client.message_order());

    let report = server.report(T);
    report.handshake.as_ref().unwrap();
    assert_eq!(report.echoed_text(), lines_nl(&["before"]));
    match &report.end {
        End::Error(e) => {
            assert!(e.matches(gio::TlsError::Misc), "{e}");
            assert!(e.message().contains("alert handshake failure"), "{e}");
        }
        other => panic!("our server: {other:?}"),
    }
    // And the connection stays failed: no more sending.
    let again = send_many(report.conn(), &[b"late"], T_US, None);
    assert!(again.is_err(), "{again:?}");
}
