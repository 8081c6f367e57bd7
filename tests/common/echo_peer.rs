//! A DTLS 1.2 echo server and a matching client written directly on the
//! `openssl` crate, over `std::net::UdpSocket` — no GIO involved. They are
//! the reference peers for the GIO client tests and the baseline for
//! benchmarks.
//!
//! Both drive OpenSSL the same way: the socket has a short read timeout
//! ([`POLL`]); each WANT_READ calls `DTLSv1_handle_timeout` so lost flights
//! are retransmitted, and checks the deadline (and the stop flag).
//! MTU: SSL_OP_NO_QUERY_MTU + `set_mtu` (rust-openssl's BIO answers the MTU
//! query with 0, and OpenSSL would fall back to 256-byte fragments).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use foreign_types::ForeignTypeRef;
use openssl::ssl::{
    AlpnError, ErrorCode, Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslOptions,
    SslRef, SslSession, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::X509Name;

/// Read timeout of the sockets: how often timers and stop flags are checked.
pub const POLL: Duration = Duration::from_millis(10);
/// Largest datagram echoed (one DTLS record's plaintext).
pub const MAX_ECHO: usize = 16 * 1024;
/// glib-networking's MTU; the default of both peers here.
pub const DEFAULT_MTU: u32 = 1400;

const DTLS_CTRL_GET_TIMEOUT: libc::c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: libc::c_int = 74;

/// `DTLSv1_handle_timeout`: retransmits the last flight if its timer
/// expired. Returns 1 if it retransmitted, 0 if nothing was due, -1 on error.
pub fn dtls_handle_timeout(ssl: &SslRef) -> libc::c_long {
    // SAFETY: `ssl` is a live SSL*; DTLS_CTRL_HANDLE_TIMEOUT takes no argument.
    unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_HANDLE_TIMEOUT,
            0,
            std::ptr::null_mut(),
        )
    }
}

/// `DTLSv1_get_timeout`: time left on the retransmission timer, if running.
pub fn dtls_get_timeout(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `ssl` is a live SSL*; DTLS_CTRL_GET_TIMEOUT writes one struct
    // timeval through the pointer.
    let r = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            &mut tv as *mut _ as *mut libc::c_void,
        )
    };
    (r == 1)
        .then(|| Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}

/// A connected UDP socket as a byte stream for `SslStream`: every read is
/// one datagram, every write one datagram.
#[derive(Debug)]
pub struct DgramIo(pub UdpSocket);

impl Read for DgramIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
}

impl Write for DgramIo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a driven operation did not complete.
#[derive(Debug)]
pub enum DriveError {
    /// close_notify received (SSL_ERROR_ZERO_RETURN).
    Closed,
    Timeout,
    Stopped,
    Failed(String),
}

impl std::fmt::Display for DriveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriveError::Closed => write!(f, "peer sent close_notify"),
            DriveError::Timeout => write!(f, "timed out"),
            DriveError::Stopped => write!(f, "stopped"),
            DriveError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Repeats `op` until it completes, servicing DTLS timers between tries.
pub fn drive<S: Read + Write, T>(
    stream: &mut SslStream<S>,
    deadline: Instant,
    stop: Option<&AtomicBool>,
    mut op: impl FnMut(&mut SslStream<S>) -> Result<T, openssl::ssl::Error>,
) -> Result<T, DriveError> {
    loop {
        match op(stream) {
            Ok(v) => return Ok(v),
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Err(DriveError::Closed),
            Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                if dtls_handle_timeout(stream.ssl()) < 0 {
                    return Err(DriveError::Failed(
                        "DTLSv1_handle_timeout failed (too many retransmissions)".into(),
                    ));
                }
            }
            Err(e) => return Err(DriveError::Failed(describe(&e))),
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(DriveError::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(DriveError::Timeout);
        }
    }
}

fn describe(e: &openssl::ssl::Error) -> String {
    match (e.io_error(), e.ssl_error()) {
        (Some(io), _) => format!("{:?}: {io}", e.code()),
        (None, Some(stack)) => format!("{:?}: {stack}", e.code()),
        (None, None) => format!("{:?}", e.code()),
    }
}

fn name_cn(name: &openssl::x509::X509NameRef) -> Option<String> {
    name.entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// ALPN wire format (length-prefixed list).
pub fn alpn_wire(protocols: &[String]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in protocols {
        assert!(!p.is_empty() && p.len() < 256, "bad ALPN protocol {p:?}");
        v.push(p.len() as u8);
        v.extend_from_slice(p.as_bytes());
    }
    v
}

// ---------------------------------------------------------------------------
// Echo server

/// Options of [`EchoPeer::start`].
#[derive(Clone, Debug)]
pub struct EchoPeerOpts {
    /// PEM certificate chain (leaf first) and its key.
    pub cert_chain: PathBuf,
    pub key: PathBuf,
    /// Request a client certificate verified against this CA file (whose
    /// subjects are also sent as the acceptable-CA list).
    pub client_ca: Option<PathBuf>,
    /// Fail the handshake when the client sends no certificate.
    pub require_client_cert: bool,
    /// Protocols accepted, in server preference order (no match: no ALPN).
    pub alpn: Vec<String>,
    pub mtu: u32,
    /// Stateful HelloVerifyRequest round trip (SSL_OP_COOKIE_EXCHANGE).
    pub cookie_exchange: bool,
    /// Connections served one after another before the thread ends.
    pub max_connections: usize,
    /// After echoing this many datagrams, end the connection with
    /// close_notify (to test the client's end-of-stream).
    pub close_after: Option<usize>,
    /// Forget each connection once its handshake is done (no echo, no
    /// close_notify): its client stays established and idle.
    pub handshake_only: bool,
    /// Hard limit for the whole server thread.
    pub lifetime: Duration,
}

impl EchoPeerOpts {
    pub fn new(pki: &Path) -> Self {
        EchoPeerOpts {
            cert_chain: pki.join("server.pem"),
            key: pki.join("server.key"),
            client_ca: None,
            require_client_cert: false,
            alpn: Vec::new(),
            mtu: DEFAULT_MTU,
            cookie_exchange: false,
            max_connections: 1,
            close_after: None,
            handshake_only: false,
            lifetime: Duration::from_secs(60),
        }
    }

    pub fn cert(mut self, chain: &Path, key: &Path) -> Self {
        self.cert_chain = chain.into();
        self.key = key.into();
        self
    }

    pub fn request_client_cert(mut self, ca: &Path, require: bool) -> Self {
        self.client_ca = Some(ca.into());
        self.require_client_cert = require;
        self
    }

    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    pub fn cookie_exchange(mut self) -> Self {
        self.cookie_exchange = true;
        self
    }

    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    pub fn close_after(mut self, echoes: usize) -> Self {
        self.close_after = Some(echoes);
        self
    }

    pub fn handshake_only(mut self) -> Self {
        self.handshake_only = true;
        self
    }

    fn context(&self) -> Result<SslContext, openssl::error::ErrorStack> {
        let mut b = SslContextBuilder::new(SslMethod::dtls())?;
        b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_certificate_chain_file(&self.cert_chain)?;
        b.set_private_key_file(&self.key, SslFiletype::PEM)?;
        b.check_private_key()?;
        b.set_options(SslOptions::NO_QUERY_MTU);
        b.set_session_id_context(b"gio-dtls-openssl echo peer")?;
        if let Some(ca) = &self.client_ca {
            b.set_ca_file(ca)?;
            b.set_client_ca_list(X509Name::load_client_ca_file(ca)?);
            let mut mode = SslVerifyMode::PEER;
            if self.require_client_cert {
                mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
            }
            b.set_verify(mode);
        }
        if !self.alpn.is_empty() {
            let prefs = self.alpn.clone();
            b.set_alpn_select_callback(move |_, client| {
                // Walk the client's list; pick the first of our preferences it offers.
                let mut offered = Vec::new();
                let mut rest = client;
                while let Some((&len, tail)) = rest.split_first() {
                    let len = len as usize;
                    if len > tail.len() {
                        break;
                    }
                    offered.push(&tail[..len]);
                    rest = &tail[len..];
                }
                prefs
                    .iter()
                    .find_map(|p| offered.iter().find(|o| **o == p.as_bytes()).copied())
                    .ok_or(AlpnError::NOACK)
            });
        }
        if self.cookie_exchange {
            b.set_options(SslOptions::COOKIE_EXCHANGE);
            b.set_cookie_generate_cb(|_, out| {
                let cookie = b"echo-peer-cookie";
                out[..cookie.len()].copy_from_slice(cookie);
                Ok(cookie.len())
            });
            b.set_cookie_verify_cb(|_, cookie| cookie == b"echo-peer-cookie");
        }
        Ok(b.build())
    }
}

/// What the echo server saw of one connection.
#[derive(Clone, Debug, Default)]
pub struct EchoConn {
    pub client: Option<SocketAddr>,
    pub handshake_ok: bool,
    pub version: String,
    pub cipher: String,
    pub alpn: Option<String>,
    /// CN of the client certificate, if one was presented.
    pub client_cert_cn: Option<String>,
    pub session_reused: bool,
    /// The server name the client sent (SNI), if any.
    pub sni: Option<String>,
    /// Sizes of the datagrams echoed, in order.
    pub echoed: Vec<usize>,
    /// The client sent close_notify.
    pub closed_by_client: bool,
    pub error: Option<String>,
}

/// Everything the echo server recorded.
#[derive(Clone, Debug, Default)]
pub struct EchoLog {
    pub conns: Vec<EchoConn>,
    /// The server thread has ended.
    pub finished: bool,
}

impl EchoLog {
    pub fn handshakes(&self) -> usize {
        self.conns.iter().filter(|c| c.handshake_ok).count()
    }
}

type Shared = Arc<(Mutex<EchoLog>, Condvar)>;

/// A DTLS 1.2 echo server in a thread on 127.0.0.1:ephemeral. Serves
/// `max_connections` clients one after another (each is whoever sent the
/// oldest pending ClientHello; see `ServerIo` for why the socket is not
/// `connect()`ed), echoing every datagram (up to
/// [`MAX_ECHO`] bytes) as one record. A connection ends on close_notify
/// (answered), a fatal error or the stop flag; Drop stops and joins.
pub struct EchoPeer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl EchoPeer {
    /// Binds and starts serving; panics if the context cannot be built.
    pub fn start(opts: EchoPeerOpts) -> Self {
        let ctx = opts
            .context()
            .unwrap_or_else(|e| panic!("echo peer context: {e}"));
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind echo peer");
        big_receive_buffer(&sock);
        sock.set_read_timeout(Some(POLL)).unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let shared: Shared = Arc::new((Mutex::new(EchoLog::default()), Condvar::new()));
        let thread = {
            let (stop, shared) = (stop.clone(), shared.clone());
            std::thread::Builder::new()
                .name("echo-peer".into())
                .spawn(move || {
                    serve(&ctx, &sock, &opts, &stop, &shared);
                    shared.0.lock().unwrap().finished = true;
                    shared.1.notify_all();
                })
                .expect("echo peer thread")
        };
        EchoPeer {
            addr,
            stop,
            shared,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of what the server recorded so far.
    pub fn log(&self) -> EchoLog {
        self.shared.0.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the log (or the deadline passes).
    pub fn wait(
        &self,
        timeout: Duration,
        pred: impl Fn(&EchoLog) -> bool,
    ) -> Result<EchoLog, String> {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.0.lock().unwrap();
        loop {
            if pred(&log) {
                return Ok(log.clone());
            }
            let now = Instant::now();
            if now >= deadline || log.finished {
                return Err(format!(
                    "echo peer: condition not met within {timeout:?}: {log:#?}"
                ));
            }
            log = self.shared.1.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Waits until the server thread ended (all connections served).
    pub fn wait_finished(&self, timeout: Duration) -> Result<EchoLog, String> {
        self.wait(timeout, |l| l.finished)
    }

    /// Stops the thread and joins it. Idempotent.
    pub fn stop(&mut self) -> EchoLog {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.log()
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        let log = self.stop();
        if std::thread::panicking() {
            eprintln!("---- echo peer log ----\n{log:#?}");
        }
    }
}

fn is_client_hello(d: &[u8]) -> bool {
    // DTLS record header is 13 bytes; content type 22 = handshake;
    // handshake type 1 = ClientHello.
    d.len() > 13 && d[0] == 22 && d[13] == 1
}

/// Datagrams that arrived from other addresses during a connection.
type Stash = Arc<Mutex<VecDeque<(Vec<u8>, SocketAddr)>>>;

/// The server's view of one client on the shared, *unconnected* socket:
/// reads return only that client's datagrams (others are stashed for the
/// next connection), writes go to it.
///
/// Not `connect()`: a connected UDP socket makes the kernel answer every
/// other sender with ICMP port-unreachable (a client connecting while the
/// previous one is closing gets ECONNREFUSED), and `connect(AF_UNSPEC)`
/// on a socket bound to port 0 unhashes it — the port is lost.
struct ServerIo {
    sock: UdpSocket,
    peer: SocketAddr,
    stash: Stash,
}

impl Read for ServerIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        {
            let mut st = self.stash.lock().unwrap();
            if let Some(pos) = st.iter().position(|(_, a)| *a == self.peer) {
                let (d, _) = st.remove(pos).unwrap();
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                return Ok(n);
            }
        }
        loop {
            let (n, from) = self.sock.recv_from(buf)?;
            if from == self.peer {
                return Ok(n);
            }
            let mut st = self.stash.lock().unwrap();
            if st.len() < 256 {
                st.push_back((buf[..n].to_vec(), from));
            }
        }
    }
}

impl Write for ServerIo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.send_to(buf, self.peer)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn serve(
    ctx: &SslContext,
    sock: &UdpSocket,
    opts: &EchoPeerOpts,
    stop: &AtomicBool,
    shared: &Shared,
) {
    let deadline = Instant::now() + opts.lifetime;
    let stash: Stash = Arc::new(Mutex::new(VecDeque::new()));
    let mut buf = vec![0u8; 65536];
    for _ in 0..opts.max_connections {
        // The next client is whoever sent the oldest ClientHello; other
        // leftovers of earlier connections are discarded.
        let client = loop {
            if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return;
            }
            {
                let mut st = stash.lock().unwrap();
                while st.front().is_some_and(|(d, _)| !is_client_hello(d)) {
                    st.pop_front();
                }
                if let Some((_, from)) = st.front() {
                    break *from;
                }
            }
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                if is_client_hello(&buf[..n]) {
                    stash.lock().unwrap().push_back((buf[..n].to_vec(), from));
                }
            }
        };
        let mut conn = EchoConn {
            client: Some(client),
            ..Default::default()
        };
        let io = match sock.try_clone() {
            Ok(s) => ServerIo {
                sock: s,
                peer: client,
                stash: stash.clone(),
            },
            Err(e) => {
                conn.error = Some(format!("socket clone: {e}"));
                shared.0.lock().unwrap().conns.push(conn);
                return;
            }
        };
        let result = serve_one(ctx, io, opts, stop, deadline, &mut conn, shared);
        if let Err(e) = result {
            conn.error = Some(e);
        }
        let mut log = shared.0.lock().unwrap();
        // serve_one published a provisional entry after the handshake.
        if conn.handshake_ok {
            log.conns.pop();
        }
        log.conns.push(conn);
        drop(log);
        shared.1.notify_all();
    }
}

fn serve_one(
    ctx: &SslContext,
    io: ServerIo,
    opts: &EchoPeerOpts,
    stop: &AtomicBool,
    deadline: Instant,
    conn: &mut EchoConn,
    shared: &Shared,
) -> Result<(), String> {
    let mut ssl = Ssl::new(ctx).map_err(|e| e.to_string())?;
    ssl.set_mtu(opts.mtu).map_err(|e| e.to_string())?;
    let mut s = SslStream::new(ssl, io).map_err(|e| e.to_string())?;
    match drive(&mut s, deadline, Some(stop), |s| s.accept()) {
        Ok(()) => {}
        Err(DriveError::Stopped) => return Ok(()),
        Err(e) => return Err(format!("handshake: {e}")),
    }
    {
        let ssl = s.ssl();
        conn.handshake_ok = true;
        conn.version = ssl.version_str().to_owned();
        conn.cipher = ssl
            .current_cipher()
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        conn.alpn = ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        conn.client_cert_cn = ssl
            .peer_certificate()
            .and_then(|c| name_cn(c.subject_name()));
        conn.session_reused = ssl.session_reused();
        conn.sni = ssl
            .servername(openssl::ssl::NameType::HOST_NAME)
            .map(str::to_owned);
    }
    // Publish the handshake right away (tests may wait on it).
    shared.0.lock().unwrap().conns.push(conn.clone());
    shared.1.notify_all();
    if opts.handshake_only {
        return Ok(());
    }

    let mut buf = vec![0u8; MAX_ECHO + 1024];
    loop {
        let n = match drive(&mut s, deadline, Some(stop), |s| s.ssl_read(&mut buf)) {
            Ok(n) => n,
            Err(DriveError::Closed) => {
                conn.closed_by_client = true;
                let _ = s.shutdown();
                return Ok(());
            }
            Err(DriveError::Stopped) => return Ok(()),
            Err(e) => return Err(format!("read: {e}")),
        };
        let data = buf[..n].to_vec();
        drive(&mut s, deadline, Some(stop), |s| s.ssl_write(&data))
            .map_err(|e| format!("write: {e}"))?;
        conn.echoed.push(n);
        let mut log = shared.0.lock().unwrap();
        if let Some(last) = log.conns.last_mut() {
            last.echoed.push(n);
        }
        drop(log);
        shared.1.notify_all();
        if opts.close_after == Some(conn.echoed.len()) {
            drive(&mut s, deadline, Some(stop), |s| s.shutdown().map(|_| ()))
                .map_err(|e| format!("shutdown: {e}"))?;
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------
// Client

/// Options of [`RawClient::connect`]. `Default` = no verification, no
/// client certificate, MTU 1400, 10 s per operation.
#[derive(Clone, Default)]
pub struct RawClientOpts {
    /// Verify the server against this CA file (None: no verification).
    pub ca_file: Option<PathBuf>,
    /// SNI and, with `ca_file`, the host name checked.
    pub hostname: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub alpn: Vec<String>,
    /// 0 = [`DEFAULT_MTU`].
    pub mtu: u32,
    /// Bound of the handshake and of each later operation; ZERO = 10 s.
    pub timeout: Duration,
}

impl RawClientOpts {
    pub fn verify(mut self, ca: &Path, hostname: &str) -> Self {
        self.ca_file = Some(ca.into());
        self.hostname = Some(hostname.into());
        self
    }

    pub fn client_cert(mut self, cert: &Path, key: &Path) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    pub fn alpn(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|s| s.to_string()).collect();
        self
    }

    fn op_timeout(&self) -> Duration {
        if self.timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            self.timeout
        }
    }
}

/// A plain-OpenSSL DTLS 1.2 client on a connected UDP socket.
pub struct RawClient {
    stream: SslStream<DgramIo>,
    ctx: SslContext,
    opts: RawClientOpts,
    handshake: Duration,
    timeout: Duration,
    closed: bool,
}

impl RawClient {
    /// Connects and completes the handshake within `opts.timeout`.
    pub fn connect(addr: SocketAddr, opts: &RawClientOpts) -> Result<Self, String> {
        Self::connect_with(addr, Self::context(opts)?, opts, None)
    }

    /// A new connection (to `addr`) offering this client's session for
    /// resumption, with the same context and options.
    pub fn resume(&self, addr: SocketAddr) -> Result<Self, String> {
        let session = self.session().ok_or("no session to resume")?;
        Self::connect_with(addr, self.ctx.clone(), &self.opts, Some(session))
    }

    fn context(opts: &RawClientOpts) -> Result<SslContext, String> {
        let mut b = SslContextBuilder::new(SslMethod::dtls()).map_err(|e| e.to_string())?;
        b.set_min_proto_version(Some(SslVersion::DTLS1_2))
            .map_err(|e| e.to_string())?;
        b.set_max_proto_version(Some(SslVersion::DTLS1_2))
            .map_err(|e| e.to_string())?;
        b.set_options(SslOptions::NO_QUERY_MTU);
        match &opts.ca_file {
            Some(ca) => {
                b.set_ca_file(ca).map_err(|e| format!("CA file: {e}"))?;
                b.set_verify(SslVerifyMode::PEER);
            }
            None => b.set_verify(SslVerifyMode::NONE),
        }
        if let (Some(c), Some(k)) = (&opts.cert, &opts.key) {
            b.set_certificate_chain_file(c)
                .map_err(|e| format!("client cert: {e}"))?;
            b.set_private_key_file(k, SslFiletype::PEM)
                .map_err(|e| format!("client key: {e}"))?;
        }
        if !opts.alpn.is_empty() {
            b.set_alpn_protos(&alpn_wire(&opts.alpn))
                .map_err(|e| e.to_string())?;
        }
        Ok(b.build())
    }

    fn connect_with(
        addr: SocketAddr,
        ctx: SslContext,
        opts: &RawClientOpts,
        session: Option<SslSession>,
    ) -> Result<Self, String> {
        let mut ssl = Ssl::new(&ctx).map_err(|e| e.to_string())?;
        ssl.set_mtu(if opts.mtu == 0 { DEFAULT_MTU } else { opts.mtu })
            .map_err(|e| e.to_string())?;
        if let Some(h) = &opts.hostname {
            if h.parse::<std::net::IpAddr>().is_err() {
                ssl.set_hostname(h).map_err(|e| e.to_string())?;
            }
            if opts.ca_file.is_some() {
                match h.parse::<std::net::IpAddr>() {
                    Ok(ip) => ssl.param_mut().set_ip(ip),
                    Err(_) => ssl.param_mut().set_host(h),
                }
                .map_err(|e| e.to_string())?;
            }
        }
        if let Some(sess) = &session {
            // SAFETY: rust-openssl requires the session to belong to this
            // SslContext: `resume` passes the context that made it.
            unsafe { ssl.set_session(sess) }.map_err(|e| e.to_string())?;
        }
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        sock.connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(POLL))
            .map_err(|e| e.to_string())?;
        let mut stream = SslStream::new(ssl, DgramIo(sock)).map_err(|e| e.to_string())?;
        let timeout = opts.op_timeout();
        let start = Instant::now();
        drive(&mut stream, start + timeout, None, |s| s.connect())
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        let handshake = start.elapsed();
        Ok(RawClient {
            stream,
            ctx,
            opts: opts.clone(),
            handshake,
            timeout,
            closed: false,
        })
    }

    /// Time from the first ClientHello to handshake completion.
    pub fn handshake_time(&self) -> Duration {
        self.handshake
    }

    pub fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.get_ref().0.local_addr().unwrap()
    }

    pub fn alpn(&self) -> Option<String> {
        self.ssl()
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    pub fn session(&self) -> Option<SslSession> {
        self.ssl().session().map(|s| s.to_owned())
    }

    pub fn session_reused(&self) -> bool {
        self.ssl().session_reused()
    }

    /// Sends `data` as one record (one datagram).
    pub fn send(&mut self, data: &[u8]) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let n = drive(&mut self.stream, deadline, None, |s| s.ssl_write(data))
            .map_err(|e| format!("send: {e}"))?;
        if n != data.len() {
            return Err(format!("send: wrote {n} of {} bytes", data.len()));
        }
        Ok(())
    }

    /// Receives one record within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; MAX_ECHO + 1024];
        let deadline = Instant::now() + timeout;
        let n = drive(&mut self.stream, deadline, None, |s| s.ssl_read(&mut buf))
            .map_err(|e| format!("recv: {e}"))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Sends `data` and returns the next record received.
    pub fn echo(&mut self, data: &[u8]) -> Result<Vec<u8>, String> {
        self.send(data)?;
        self.recv(self.timeout)
    }

    /// Sends close_notify (does not wait for the answer). Idempotent; the
    /// client stays usable for `resume`.
    pub fn close(&mut self) -> Result<(), String> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.stream.shutdown().map(|_| ()).map_err(|e| describe(&e))
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.stream.shutdown();
        }
    }
}

/// Handshake (no verification) with a DTLS 1.2 server at `addr`, then
/// close_notify; returns the handshake time. Panics on failure.
pub fn raw_client_handshake(addr: SocketAddr) -> Duration {
    let mut c =
        RawClient::connect(addr, &RawClientOpts::default()).unwrap_or_else(|e| panic!("{e}"));
    let t = c.handshake_time();
    c.close().unwrap_or_else(|e| panic!("close: {e}"));
    t
}

/// One echo round trip of `payload` on `client`; asserts the reply equals
/// it and returns the elapsed time.
pub fn raw_echo_roundtrip(client: &mut RawClient, payload: &[u8]) -> Duration {
    let start = Instant::now();
    let reply = client
        .echo(payload)
        .unwrap_or_else(|e| panic!("echo of {} bytes: {e}", payload.len()));
    let t = start.elapsed();
    assert!(
        reply == payload,
        "echo mismatch: sent {} bytes, got {} bytes",
        payload.len(),
        reply.len()
    );
    t
}

/// Median of some durations (panics on an empty slice).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Asks for a 4 MiB receive buffer on `socket` (beyond `rmem_max` where
/// allowed: SO_RCVBUFFORCE needs CAP_NET_ADMIN; else as much as allowed).
pub fn big_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `size` is a c_int that outlives the call; the descriptor
        // is the open socket's.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}
