//! DTLS client benchmark: plain OpenSSL, our client through GIO, and
//! glib-networking's GnuTLS client when installed, all talking to the same
//! OpenSSL server on loopback and measured in the same run. Prints one table
//! with ratios to plain OpenSSL.
//!
//! `cargo bench --bench dtls`. Environment:
//! - `BENCH_ROUNDS` — handshakes per client, full and resumed (default 60);
//! - `BENCH_ECHOES` — echoes per size and client (default 20000, in 20
//!   blocks taking turns);
//! - `BENCH_IDLE_CONNS` — idle connections for the memory row (default 1000);
//! - `BENCH_NO_PIN=1` — do not pin the process to one CPU (by default it
//!   pins itself and its children to the first CPU it may run on, so client
//!   and server share it as in `taskset -c 0`).
//!
//! The clients use the C-level calls an application makes
//! (`g_datagram_based_send_messages`/`receive_messages` with buffers set up
//! once), so the rows measure the library, not this harness.

#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::Cell;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use gio::prelude::*;
use glib::translate::*;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslSession, SslSessionRef, SslStream,
    SslVerifyMode,
};

use common::echo_peer::{drive, median, DgramIo, EchoPeer, EchoPeerOpts};

// ---------------------------------------------------------------------------
// Allocation counting: every heap allocation the calling thread makes,
// whoever makes it — this harness, our library (a separate shared object
// with its own Rust allocator), GLib, OpenSSL. The executable's `malloc`,
// `calloc` and `realloc` take the place of the C library's for every shared
// object (ELF symbol interposition) and count before forwarding to glibc's
// own (`__libc_malloc`, …). The in-process server's allocations are its
// thread's, not the client's.

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

extern "C" {
    fn __libc_malloc(size: usize) -> *mut libc::c_void;
    fn __libc_calloc(n: usize, size: usize) -> *mut libc::c_void;
    fn __libc_realloc(p: *mut libc::c_void, size: usize) -> *mut libc::c_void;
}

/// One more allocation on this thread. The counter is a const-initialised
/// thread-local Cell without destructor: touching it never allocates.
fn count_alloc() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// # Safety
/// The C library's `malloc` contract.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut libc::c_void {
    count_alloc();
    // SAFETY: forwarded as is.
    unsafe { __libc_malloc(size) }
}

/// # Safety
/// The C library's `calloc` contract.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut libc::c_void {
    count_alloc();
    // SAFETY: forwarded as is.
    unsafe { __libc_calloc(n, size) }
}

/// # Safety
/// The C library's `realloc` contract.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut libc::c_void, size: usize) -> *mut libc::c_void {
    count_alloc();
    // SAFETY: forwarded as is.
    unsafe { __libc_realloc(p, size) }
}

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pins this process (and every thread or child started later) to one CPU.
fn pin() -> String {
    if std::env::var_os("BENCH_NO_PIN").is_some_and(|v| v != "0") {
        return "not pinned (BENCH_NO_PIN)".into();
    }
    // SAFETY: cpu_set_t is plain data; the calls read and write it only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
            return "not pinned (sched_getaffinity failed)".into();
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)) else {
            return "not pinned".into();
        };
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            return "not pinned (sched_setaffinity failed)".into();
        }
        format!("pinned to CPU {cpu} with its server (BENCH_NO_PIN=1 to disable)")
    }
}

// ---------------------------------------------------------------------------
// The three clients behind one interface.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Raw,
    Ours,
    Gnutls,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Ours => "ours",
            Kind::Gnutls => "gnutls",
        }
    }

    /// The kind a child role names after its prefix (`first-ours`, …).
    fn from_name(name: &str) -> Kind {
        match name {
            "raw" => Kind::Raw,
            "ours" => Kind::Ours,
            _ => Kind::Gnutls,
        }
    }
}

/// What a client needs: the CA, and the GIO types and databases.
struct Setup {
    ca: std::path::PathBuf,
    raw_ctx: SslContext,
    ours: (glib::Type, gio::TlsDatabase),
    gnutls: Option<(glib::Type, gio::TlsDatabase)>,
}

impl Setup {
    fn new(pki: &std::path::Path) -> Setup {
        let ca = pki.join("ca.pem");
        let mut b = SslContextBuilder::new(SslMethod::dtls()).unwrap();
        b.set_min_proto_version(Some(openssl::ssl::SslVersion::DTLS1_2))
            .unwrap();
        b.set_max_proto_version(Some(openssl::ssl::SslVersion::DTLS1_2))
            .unwrap();
        b.set_options(openssl::ssl::SslOptions::NO_QUERY_MTU);
        b.set_ca_file(&ca).unwrap();
        b.set_verify(SslVerifyMode::PEER);
        let backend = gio::TlsBackend::default();
        assert_eq!(backend.type_().name(), "DtlsOpensslBackend");
        let db: gio::TlsDatabase = gio::TlsFileDatabase::new(&ca).unwrap().upcast();
        let gnutls = gio::IOExtensionPoint::lookup("gio-tls-backend")
            .and_then(|ep| ep.extension_by_name("gnutls"))
            .map(|ext| {
                let g = glib::Object::with_type(ext.type_())
                    .downcast::<gio::TlsBackend>()
                    .unwrap();
                let gdb: gio::TlsDatabase =
                    gio::Initable::builder_with_type(g.file_database_type())
                        .property("anchors", ca.to_str().unwrap())
                        .build(gio::Cancellable::NONE)
                        .unwrap()
                        .downcast()
                        .unwrap();
                (g.dtls_client_connection_type(), gdb)
            });
        Setup {
            ca,
            raw_ctx: b.build(),
            ours: (backend.dtls_client_connection_type(), db),
            gnutls,
        }
    }

    fn kinds(&self) -> Vec<Kind> {
        let mut k = vec![Kind::Raw, Kind::Ours];
        if self.gnutls.is_some() {
            k.push(Kind::Gnutls);
        }
        k
    }
}

/// How a client resumes.
#[derive(Clone, Copy)]
enum Resume<'a> {
    /// A full handshake: our client's session cache off.
    Off,
    /// A full handshake with nothing remembered: ours also with a new file
    /// database (made before the clock starts), so no remembered verdict.
    Cold,
    /// Ours: the client's automatic session cache (keyed by server identity
    /// and address).
    Cache,
    /// Raw: `SSL_set_session` with a previous connection's session.
    Session(&'a SslSessionRef),
}

enum Client {
    Raw(SslStream<DgramIo>),
    Gio(gio::DtlsClientConnection, gio::Socket),
}

impl Client {
    /// A connected client, full handshake done (our client's session cache
    /// off); also returns the handshake time.
    fn connect(setup: &Setup, kind: Kind, addr: SocketAddr) -> (Client, Duration) {
        Client::connect_resuming(setup, kind, addr, Resume::Off)
    }

    /// [`Client::connect`], resuming as `resume` says.
    fn connect_resuming(
        setup: &Setup,
        kind: Kind,
        addr: SocketAddr,
        resume: Resume,
    ) -> (Client, Duration) {
        match kind {
            Kind::Raw => {
                let mut ssl = Ssl::new(&setup.raw_ctx).unwrap();
                if let Resume::Session(session) = resume {
                    // SAFETY: the session comes from a connection made with
                    // this same context.
                    unsafe { ssl.set_session(session).unwrap() };
                }
                ssl.set_mtu(1400).unwrap();
                ssl.set_hostname("server.example.com").unwrap();
                ssl.param_mut().set_host("server.example.com").unwrap();
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.connect(addr).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let mut s = SslStream::new(ssl, DgramIo(sock)).unwrap();
                let t = Instant::now();
                drive(&mut s, t + Duration::from_secs(10), None, |s| s.connect())
                    .expect("raw handshake");
                let e = t.elapsed();
                // Steady state: a plain blocking socket (send + recv).
                s.get_ref().0.set_read_timeout(None).unwrap();
                (Client::Raw(s), e)
            }
            Kind::Ours | Kind::Gnutls => {
                let (ty, db) = if kind == Kind::Ours {
                    &setup.ours
                } else {
                    setup.gnutls.as_ref().unwrap()
                };
                let socket = common::dtls::connected_socket(addr);
                let id = gio::NetworkAddress::new("server.example.com", addr.port());
                let conn: gio::DtlsClientConnection = gio::Initable::builder_with_type(*ty)
                    .property("base-socket", &socket)
                    .property("server-identity", &id)
                    .build(gio::Cancellable::NONE)
                    .unwrap()
                    .downcast()
                    .unwrap();
                if kind == Kind::Ours && matches!(resume, Resume::Cold) {
                    let fresh: gio::TlsDatabase =
                        gio::TlsFileDatabase::new(&setup.ca).unwrap().upcast();
                    conn.set_database(Some(&fresh));
                } else {
                    conn.set_database(Some(db));
                }
                if kind == Kind::Ours {
                    conn.set_property("session-resumption", matches!(resume, Resume::Cache));
                }
                let t = Instant::now();
                conn.handshake(gio::Cancellable::NONE).expect("handshake");
                let e = t.elapsed();
                (Client::Gio(conn, socket), e)
            }
        }
    }

    /// Whether the handshake resumed a session.
    fn resumed(&self) -> bool {
        match self {
            Client::Raw(s) => s.ssl().session_reused(),
            Client::Gio(conn, _) => conn.property("session-resumed"),
        }
    }

    /// The raw client's session, to resume.
    fn session(&self) -> Option<SslSession> {
        match self {
            Client::Raw(s) => s.ssl().session().map(|s| s.to_owned()),
            Client::Gio(..) => None,
        }
    }

    /// Re-points the connected socket at `to` (after the handshake).
    fn redirect(&self, to: SocketAddr) {
        match self {
            Client::Raw(s) => s.get_ref().0.connect(to).unwrap(),
            Client::Gio(_, socket) => {
                let a = gio::InetSocketAddress::from_string(&to.ip().to_string(), to.port() as u32)
                    .unwrap();
                SocketExt::connect(socket, &a, gio::Cancellable::NONE).unwrap();
            }
        }
    }

    /// Sends each of `msgs` as one datagram: one call per datagram, or all in
    /// one `send_messages` call.
    fn send(&mut self, msgs: &[&[u8]], batched: bool) {
        match self {
            Client::Raw(s) => {
                for m in msgs {
                    assert_eq!(s.ssl_write(m).unwrap(), m.len());
                }
            }
            Client::Gio(conn, _) => {
                if batched {
                    gio_send(conn, msgs);
                } else {
                    for m in msgs {
                        gio_send(conn, std::slice::from_ref(m));
                    }
                }
            }
        }
    }

    /// Receives one datagram into `buf`; its length.
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        match self {
            Client::Raw(s) => s.ssl_read(buf).unwrap(),
            Client::Gio(conn, _) => {
                let mut v = gio::ffi::GInputVector {
                    buffer: buf.as_mut_ptr() as *mut _,
                    size: buf.len(),
                };
                let mut m = gio::ffi::GInputMessage {
                    address: std::ptr::null_mut(),
                    vectors: &mut v,
                    num_vectors: 1,
                    bytes_received: 0,
                    flags: 0,
                    control_messages: std::ptr::null_mut(),
                    num_control_messages: std::ptr::null_mut(),
                };
                let mut error = std::ptr::null_mut();
                // SAFETY: one message over `buf`, which outlives the call.
                let n = unsafe {
                    gio::ffi::g_datagram_based_receive_messages(
                        conn.upcast_ref::<gio::DatagramBased>().to_glib_none().0,
                        &mut m,
                        1,
                        0,
                        -1,
                        std::ptr::null_mut(),
                        &mut error,
                    )
                };
                assert_eq!(n, 1, "receive failed");
                m.bytes_received
            }
        }
    }

    fn close(self) {
        match self {
            Client::Raw(mut s) => {
                let _ = s.shutdown();
            }
            Client::Gio(conn, _) => {
                let _ = conn.close(gio::Cancellable::NONE);
            }
        }
    }
}

/// `g_datagram_based_send_messages` with `msgs`, blocking; all must go.
fn gio_send(conn: &gio::DtlsClientConnection, msgs: &[&[u8]]) {
    use std::mem::MaybeUninit;
    const MAX: usize = 64;
    assert!(msgs.len() <= MAX);
    // Only the messages sent are written, as a C caller would fill its
    // arrays (initialising all 64 cost more than our whole send path's
    // bookkeeping).
    let mut vectors = [MaybeUninit::<gio::ffi::GOutputVector>::uninit(); MAX];
    let mut messages = [MaybeUninit::<gio::ffi::GOutputMessage>::uninit(); MAX];
    for ((d, v), m) in msgs.iter().zip(&mut vectors).zip(&mut messages) {
        let v = v.write(gio::ffi::GOutputVector {
            buffer: d.as_ptr() as *const _,
            size: d.len(),
        });
        m.write(gio::ffi::GOutputMessage {
            address: std::ptr::null_mut(),
            vectors: v,
            num_vectors: 1,
            bytes_sent: 0,
            control_messages: std::ptr::null_mut(),
            num_control_messages: 0,
        });
    }
    let mut error = std::ptr::null_mut();
    // SAFETY: the first `msgs.len()` messages are initialised, over
    // vectors and buffers that outlive the call.
    let n = unsafe {
        gio::ffi::g_datagram_based_send_messages(
            conn.upcast_ref::<gio::DatagramBased>().to_glib_none().0,
            messages.as_mut_ptr().cast(),
            msgs.len() as u32,
            0,
            -1,
            std::ptr::null_mut(),
            &mut error,
        )
    };
    assert_eq!(n as usize, msgs.len(), "send_messages sent {n}");
}

// ---------------------------------------------------------------------------
// Measurements

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Handshakes {
    median: Duration,
    p10: Duration,
    p90: Duration,
}

impl Handshakes {
    fn of(mut t: Vec<Duration>) -> Handshakes {
        t.sort();
        Handshakes {
            median: median(&mut t.clone()),
            p10: percentile(&t, 0.1),
            p90: percentile(&t, 0.9),
        }
    }
}

/// Handshakes of each kind against its own echo server, the kinds taking
/// turns (one handshake each, round after round) so that a busy moment of
/// the machine weighs on all of them alike. `runs[i]` handshakes of
/// `kinds[i]` (0: none). Full handshakes (our session cache off), or
/// with `resume` resumed ones after a first full one: raw OpenSSL with
/// `SSL_set_session` (the previous connection's session), ours with its
/// automatic cache; every one must resume.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Full handshakes (our session cache off).
    Full,
    /// Full handshakes, ours each with a new database ([`Resume::Cold`]).
    Cold,
    /// Resumed handshakes.
    Resumed,
}

fn handshakes(
    setup: &Setup,
    kinds: &[Kind],
    runs: &[usize],
    mode: Mode,
) -> Vec<Option<Handshakes>> {
    let resume = mode == Mode::Resumed;
    let pki = &common::init().pki;
    const WARM_UP: usize = 3;
    let peers: Vec<EchoPeer> = runs
        .iter()
        .map(|r| EchoPeer::start(EchoPeerOpts::new(pki).max_connections(r + WARM_UP + 2)))
        .collect();
    let mut sessions: Vec<Option<SslSession>> = vec![None; kinds.len()];
    let active: Vec<usize> = (0..kinds.len()).filter(|&i| runs[i] > 0).collect();
    if resume {
        for &i in &active {
            let (first, _) =
                Client::connect_resuming(setup, kinds[i], peers[i].addr(), Resume::Cache);
            assert!(!first.resumed());
            sessions[i] = first.session();
            first.close();
        }
    }
    let mut one = |i: usize| -> Duration {
        let mode = match (resume, &sessions[i]) {
            (false, _) if mode == Mode::Cold => Resume::Cold,
            (false, _) => Resume::Off,
            (true, Some(s)) => Resume::Session(s),
            (true, None) => Resume::Cache,
        };
        let (c, t) = Client::connect_resuming(setup, kinds[i], peers[i].addr(), mode);
        if resume {
            assert!(c.resumed(), "{}: not resumed", kinds[i].name());
            if let Some(s) = c.session() {
                sessions[i] = Some(s);
            }
        }
        c.close();
        t
    };
    // Warm-up (lazy initialisation, page faults).
    for &i in &active {
        for _ in 0..WARM_UP {
            one(i);
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for round in 0..runs.iter().copied().max().unwrap_or(0) {
        for &i in &active {
            if round < runs[i] {
                times[i].push(one(i));
            }
        }
    }
    times
        .into_iter()
        .map(|t| (!t.is_empty()).then(|| Handshakes::of(t)))
        .collect()
}

struct Echo {
    rtt: Duration,
    cpu: Duration,
    allocs: f64,
}

/// Echo round trips of `size` bytes, `n` per kind, each kind against its
/// own echo server; the kinds take turns in blocks of `n / 20` so that a
/// busy moment of the machine weighs on all of them alike.
fn echo(setup: &Setup, kinds: &[Kind], size: usize, n: usize) -> Vec<Echo> {
    const BLOCKS: usize = 20;
    let pki = &common::init().pki;
    let peers: Vec<EchoPeer> = kinds
        .iter()
        .map(|_| EchoPeer::start(EchoPeerOpts::new(pki)))
        .collect();
    let mut clients: Vec<Client> = kinds
        .iter()
        .zip(&peers)
        .map(|(&k, p)| Client::connect(setup, k, p.addr()).0)
        .collect();
    let payload = vec![0x5au8; size];
    let mut buf = vec![0u8; 2048];
    for c in &mut clients {
        for _ in 0..50 {
            c.send(&[&payload[..]], false);
            assert_eq!(c.recv(&mut buf), size);
        }
    }
    let per_block = n.div_ceil(BLOCKS);
    // (Not `vec![…; n]`: a cloned Vec loses its capacity, and growing it
    // would count as the client's allocations.)
    let mut rtt: Vec<Vec<Duration>> = kinds
        .iter()
        .map(|_| Vec::with_capacity(per_block * BLOCKS))
        .collect();
    let mut cpu = vec![Duration::ZERO; kinds.len()];
    let mut allocated = vec![0u64; kinds.len()];
    for _ in 0..BLOCKS {
        for (i, c) in clients.iter_mut().enumerate() {
            let (cpu0, a0) = (thread_cpu(), allocs());
            for _ in 0..per_block {
                let t = Instant::now();
                c.send(&[&payload[..]], false);
                let got = c.recv(&mut buf);
                let e = t.elapsed();
                assert_eq!(got, size);
                rtt[i].push(e);
            }
            cpu[i] += thread_cpu() - cpu0;
            allocated[i] += allocs() - a0;
        }
    }
    for c in clients {
        c.close();
    }
    let total = per_block * BLOCKS;
    rtt.into_iter()
        .zip(cpu.into_iter().zip(allocated))
        .map(|(mut r, (cpu, a))| Echo {
            rtt: median(&mut r),
            cpu: cpu / (2 * total as u32),
            allocs: a as f64 / (2 * total) as f64,
        })
        .collect()
}

struct OneWay {
    /// Datagrams per second.
    rate: f64,
    cpu: Duration,
    allocs: f64,
}

/// One-way throughput of 1000-byte datagrams towards a socket that never
/// reads (the kernel drops what does not fit): the sender's cost alone.
/// One client per `(kind, batch)` (batch: messages per call; 1 is single
/// sends), all measured in rounds taking turns, so that a slow spell of
/// the machine weighs on all of them alike; the median round's rate.
fn one_way(setup: &Setup, plan: &[(Kind, usize)]) -> Vec<OneWay> {
    const ROUNDS: usize = 11;
    const PER_ROUND: usize = 6400;
    let pki = &common::init().pki;
    let peers: Vec<EchoPeer> = plan
        .iter()
        .map(|_| EchoPeer::start(EchoPeerOpts::new(pki)))
        .collect();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = vec![0xa5u8; 1000];
    let mut clients: Vec<Client> = plan
        .iter()
        .zip(&peers)
        .map(|(&(kind, batch), peer)| {
            let (mut c, _) = Client::connect(setup, kind, peer.addr());
            c.redirect(sink.local_addr().unwrap());
            c.send(&vec![&payload[..]; batch], batch > 1); // warm-up
            c
        })
        .collect();
    let mut rates: Vec<Vec<f64>> = plan.iter().map(|_| Vec::new()).collect();
    let mut cpu = vec![Duration::ZERO; plan.len()];
    let mut allocated = vec![0u64; plan.len()];
    for _ in 0..ROUNDS {
        for (i, (c, &(_, batch))) in clients.iter_mut().zip(plan).enumerate() {
            let msgs: Vec<&[u8]> = vec![&payload[..]; batch];
            let calls = PER_ROUND / batch;
            let (cpu0, a0) = (thread_cpu(), allocs());
            let t = Instant::now();
            for _ in 0..calls {
                c.send(&msgs, batch > 1);
            }
            rates[i].push((calls * batch) as f64 / t.elapsed().as_secs_f64());
            cpu[i] += thread_cpu() - cpu0;
            allocated[i] += allocs() - a0;
        }
    }
    drop(clients); // no close_notify: the peers are gone
    rates
        .into_iter()
        .zip(cpu.into_iter().zip(allocated))
        .map(|(mut r, (cpu, a))| {
            let total = ROUNDS * PER_ROUND;
            r.sort_by(f64::total_cmp);
            OneWay {
                rate: r[ROUNDS / 2],
                cpu: cpu / total as u32,
                allocs: a as f64 / total as f64,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Memory per idle connection, each client kind in a fresh process against a
// handshake-only server in another one.

/// Child role: a DTLS server that completes one handshake after another and
/// then forgets the connection (its clients stay idle). Prints its port.
fn handshake_server(pki: &std::path::Path) {
    let mut b = SslContextBuilder::new(SslMethod::dtls()).unwrap();
    b.set_certificate_chain_file(pki.join("server.pem"))
        .unwrap();
    b.set_private_key_file(pki.join("server.key"), openssl::ssl::SslFiletype::PEM)
        .unwrap();
    let ctx = b.build();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    println!("{}", sock.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        sock.set_read_timeout(None).unwrap();
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        // A ClientHello (handshake record, type 1) starts a connection.
        if n < 26 || buf[0] != 22 || buf[13] != 1 {
            continue;
        }
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let io = PeerIo {
            sock: sock.try_clone().unwrap(),
            peer: from,
            first: Some(buf[..n].to_vec()),
        };
        let mut ssl = Ssl::new(&ctx).unwrap();
        ssl.set_mtu(1400).unwrap();
        let mut s = SslStream::new(ssl, io).unwrap();
        let _ = drive(&mut s, Instant::now() + Duration::from_secs(5), None, |s| {
            s.accept()
        });
    }
}

/// The server's view of one client on the shared socket.
struct PeerIo {
    sock: UdpSocket,
    peer: SocketAddr,
    first: Option<Vec<u8>>,
}

impl Read for PeerIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(d) = self.first.take() {
            buf[..d.len()].copy_from_slice(&d);
            return Ok(d.len());
        }
        loop {
            let (n, from) = self.sock.recv_from(buf)?;
            if from == self.peer {
                return Ok(n);
            }
        }
    }
}

impl Write for PeerIo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sock.send_to(buf, self.peer)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn rss_kib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64 / 1024.0
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Child role: opens `n` idle connections of `kind` and prints
/// "KiB-per-connection fds-per-connection".
fn idle_client(kind: Kind, port: u16, n: usize, pki: &std::path::Path) {
    // Room for n sockets.
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    common::init();
    let setup = Setup::new(pki);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Warm-up connections, kept (one-time initialisation is not per
    // connection).
    let mut keep: Vec<Client> = (0..10)
        .map(|_| Client::connect(&setup, kind, addr).0)
        .collect();
    let (rss0, fds0) = (rss_kib(), open_fds());
    keep.extend((0..n).map(|_| Client::connect(&setup, kind, addr).0));
    let (rss1, fds1) = (rss_kib(), open_fds());
    println!(
        "{} {}",
        (rss1 - rss0) / n as f64,
        (fds1 - fds0) as f64 / n as f64
    );
    std::io::stdout().flush().unwrap();
    std::process::exit(0); // no close_notify for thousands of connections
}

/// Child role: one client's first handshake in a new process (its own
/// set-up, e.g. contexts and databases, done before the clock starts, as
/// plain OpenSSL's `SSL_CTX` is); prints it in ms.
fn first_client(kind: Kind, port: u16, pki: &std::path::Path) {
    common::init();
    let setup = Setup::new(pki);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (_c, t) = Client::connect(&setup, kind, addr);
    println!("{}", t.as_secs_f64() * 1e3);
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// One [`first_client`] run in a new process: its handshake time in ms.
fn first_handshake(kind: Kind, port: u16, pki: &std::path::Path) -> Option<f64> {
    child_numbers("first", kind, port, pki, &[])?
        .first()
        .copied()
}

/// Runs [`idle_client`] in a child; (KiB, fds) per idle connection.
fn idle_cost(kind: Kind, port: u16, n: usize, pki: &std::path::Path) -> Option<(f64, f64)> {
    match child_numbers(
        "idle",
        kind,
        port,
        pki,
        &[("BENCH_IDLE_CONNS", n.to_string())],
    )?[..]
    {
        [kib, fds, ..] => Some((kib, fds)),
        _ => None,
    }
}

/// Runs this benchmark as the child role `<role>-<kind>` against the
/// server on `port`; the numbers it prints (None, said on stderr, if it
/// failed).
fn child_numbers(
    role: &str,
    kind: Kind,
    port: u16,
    pki: &std::path::Path,
    env: &[(&str, String)],
) -> Option<Vec<f64>> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", format!("{role}-{}", kind.name()))
        .env("BENCH_PORT", port.to_string())
        .env("BENCH_PKI", pki)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "{role} {} failed: {}",
            kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse::<f64>().ok())
        .collect()
}

// ---------------------------------------------------------------------------
// The table

struct Row {
    what: String,
    cells: Vec<Option<(f64, String)>>,
    /// The baseline's value when it is not this row's raw cell.
    baseline: Option<f64>,
}

fn print_table(kinds: &[Kind], rows: &[Row]) {
    let mut head = format!("{:<44}", "");
    for k in kinds {
        let label = match k {
            Kind::Raw => "raw OpenSSL",
            Kind::Ours => "dtls-openssl",
            Kind::Gnutls => "GnuTLS (g-n)",
        };
        head += &format!(" {label:>22}");
        if *k != Kind::Raw {
            head += &format!(" {:>7}", "/raw");
        }
    }
    println!("{head}");
    for r in rows {
        let mut line = format!("{:<44}", r.what);
        let base = r.baseline.or(r.cells[0].as_ref().map(|c| c.0));
        for (k, c) in kinds.iter().zip(&r.cells) {
            match c {
                Some((v, text)) => {
                    line += &format!(" {text:>22}");
                    if *k != Kind::Raw {
                        match base {
                            Some(b) if b > 0.0 => line += &format!(" {:>6.2}x", v / b),
                            _ => line += &format!(" {:>7}", "-"),
                        }
                    }
                }
                None => {
                    line += &format!(" {:>22}", "-");
                    if *k != Kind::Raw {
                        line += &format!(" {:>7}", "");
                    }
                }
            }
        }
        println!("{line}");
    }
}

fn main() {
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("server") => {
            return handshake_server(std::path::Path::new(&std::env::var("BENCH_PKI").unwrap()))
        }
        Ok(role) if role.starts_with("first-") => {
            let kind = Kind::from_name(&role[6..]);
            return first_client(
                kind,
                env_usize("BENCH_PORT", 0) as u16,
                std::path::Path::new(&std::env::var("BENCH_PKI").unwrap()),
            );
        }
        Ok(role) if role.starts_with("idle-") => {
            let kind = Kind::from_name(&role[5..]);
            return idle_client(
                kind,
                env_usize("BENCH_PORT", 0) as u16,
                env_usize("BENCH_IDLE_CONNS", 1000),
                std::path::Path::new(&std::env::var("BENCH_PKI").unwrap()),
            );
        }
        // For profiling: `BENCH_ROLE=echo-ours perf record …` (`echo-raw`:
        // plain OpenSSL); `echo-both`: the two taking turns, compared;
        // `echo-all`: with glib-networking's GnuTLS client too, as the
        // table's echo rows run them.
        Ok(role @ ("echo-ours" | "echo-raw" | "echo-both" | "echo-all")) => {
            pin();
            let env = common::init();
            let setup = Setup::new(&env.pki);
            let all = setup.kinds();
            let kinds: &[Kind] = match role {
                "echo-raw" => &[Kind::Raw],
                "echo-ours" => &[Kind::Ours],
                "echo-all" => &all,
                _ => &[Kind::Raw, Kind::Ours],
            };
            let e = echo(&setup, kinds, 1000, env_usize("BENCH_ECHOES", 20_000));
            match &e[..] {
                [one] => println!("{:?}", one.rtt),
                [raw, ours, g] => println!(
                    "raw {:?} ours {:?} {:.3}x gnutls {:?}",
                    raw.rtt,
                    ours.rtt,
                    ours.rtt.as_secs_f64() / raw.rtt.as_secs_f64(),
                    g.rtt
                ),
                [raw, ours] => println!(
                    "raw {:?} ours {:?} {:.3}x; cpu raw {:?} ours {:?}",
                    raw.rtt,
                    ours.rtt,
                    ours.rtt.as_secs_f64() / raw.rtt.as_secs_f64(),
                    raw.cpu,
                    ours.cpu
                ),
                _ => unreachable!("one, two or three kinds"),
            }
            return;
        }
        // For profiling: `BENCH_ROLE=handshake-ours|resumed-ours perf record …`
        // (`-raw` for plain OpenSSL).
        Ok(role @ ("handshake-ours" | "resumed-ours" | "handshake-raw" | "resumed-raw")) => {
            pin();
            let env = common::init();
            let setup = Setup::new(&env.pki);
            let n = env_usize("BENCH_ROUNDS", 500);
            let kind = if role.ends_with("-raw") {
                Kind::Raw
            } else {
                Kind::Ours
            };
            let mode = if role.starts_with("resumed-") {
                Mode::Resumed
            } else {
                Mode::Full
            };
            let h = handshakes(&setup, &[kind], &[n], mode).remove(0).unwrap();
            println!("{:?}", h.median);
            return;
        }
        _ => {}
    }
    let pinned = pin();
    let env = common::init();
    let setup = Setup::new(&env.pki);
    let kinds = setup.kinds();
    let n = env_usize("BENCH_ROUNDS", 60);
    let idle = env_usize("BENCH_IDLE_CONNS", 1000);
    println!(
        "DTLS 1.2 client benchmark, loopback, ECDSA P-256, verified; {pinned}; \
         ratios to raw OpenSSL"
    );
    if setup.gnutls.is_none() {
        println!("(glib-networking's GnuTLS module not installed: its column is left out)");
    }
    let mut rows = Vec::new();

    let ms = |h: &Option<Handshakes>| {
        h.as_ref().map(|h| {
            (
                h.median.as_secs_f64() * 1e3,
                format!(
                    "{:.3} [{:.2}-{:.2}]",
                    h.median.as_secs_f64() * 1e3,
                    h.p10.as_secs_f64() * 1e3,
                    h.p90.as_secs_f64() * 1e3
                ),
            )
        })
    };
    // GnuTLS's DTLS handshakes take about 250 ms each here (its client
    // waits out a timer): 20 of them.
    let full_runs: Vec<usize> = kinds
        .iter()
        .map(|&k| if k == Kind::Gnutls { n.min(20) } else { n })
        .collect();
    let hs: Vec<_> = handshakes(&setup, &kinds, &full_runs, Mode::Full)
        .iter()
        .map(ms)
        .collect();
    let full: Vec<Option<f64>> = hs.iter().map(|c| c.as_ref().map(|c| c.0)).collect();
    rows.push(Row {
        what: format!("handshake, ms: median [p10-p90] of {n}"),
        cells: hs,
        baseline: None,
    });
    let resumed_runs: Vec<usize> = kinds
        .iter()
        .map(|&k| if k == Kind::Gnutls { 0 } else { n })
        .collect();
    let cold: Vec<_> = handshakes(&setup, &kinds, &resumed_runs, Mode::Cold)
        .iter()
        .map(ms)
        .collect();
    rows.push(Row {
        what: "  handshake, ours with a new database".into(),
        cells: cold,
        baseline: None,
    });
    let resumed: Vec<_> = handshakes(&setup, &kinds, &resumed_runs, Mode::Resumed)
        .iter()
        .map(ms)
        .collect();
    let to_full: Vec<String> = kinds
        .iter()
        .zip(resumed.iter().zip(&full))
        .filter_map(|(k, (r, f))| {
            let (r, f) = (r.as_ref()?.0, (*f)?);
            Some(format!("{} {:.2}x", k.name(), r / f))
        })
        .collect();
    rows.push(Row {
        what: "  handshake, resumed (same format)".into(),
        cells: resumed,
        baseline: None,
    });

    // Echoes per size and kind: 20 blocks of 1000 by default. Blocks of 60
    // (the old default, 20 × BENCH_ROUNDS) let a brief slow spell of the
    // machine swing one row's ratio from 1.12 to 1.28 in back-to-back runs;
    // 1000 per block keep it within 1.11–1.13.
    let echoes = env_usize("BENCH_ECHOES", 20_000);
    let mut cpu_echo = Vec::new();
    for size in [64, 1000, 1200] {
        let e = echo(&setup, &kinds, size, echoes);
        rows.push(Row {
            what: format!("echo round trip {size} B, µs: median of {echoes}"),
            cells: e
                .iter()
                .map(|e| {
                    let us = e.rtt.as_secs_f64() * 1e6;
                    Some((us, format!("{us:.1}")))
                })
                .collect(),
            baseline: None,
        });
        if size == 1000 {
            cpu_echo = e.iter().map(|e| (e.cpu, e.allocs)).collect();
        }
    }

    // Single sends of every kind and batches of ours and GnuTLS's, taking
    // turns.
    let plan: Vec<(Kind, usize)> = kinds
        .iter()
        .map(|&k| (k, 1))
        .chain(kinds.iter().filter(|&&k| k != Kind::Raw).map(|&k| (k, 32)))
        .collect();
    let mut measured = one_way(&setup, &plan).into_iter();
    let single: Vec<Option<OneWay>> = kinds.iter().map(|_| measured.next()).collect();
    let batched: Vec<Option<OneWay>> = kinds
        .iter()
        .map(|&k| {
            if k == Kind::Raw {
                None
            } else {
                measured.next()
            }
        })
        .collect();
    let rate = |o: &Option<OneWay>| o.as_ref().map(|o| (o.rate, format!("{:.0}", o.rate)));
    let raw_rate = single[0].as_ref().map(|o| o.rate);
    rows.push(Row {
        what: "one-way 1000 B, datagrams/s: single sends".into(),
        cells: single.iter().map(rate).collect(),
        baseline: None,
    });
    rows.push(Row {
        what: "  send_messages of 32 (ratio: to raw single)".into(),
        cells: batched.iter().map(rate).collect(),
        baseline: raw_rate,
    });

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    rows.push(Row {
        what: "CPU per datagram, µs: 1000 B echo".into(),
        cells: cpu_echo
            .iter()
            .map(|(c, _)| Some((us(*c), format!("{:.2}", us(*c)))))
            .collect(),
        baseline: None,
    });
    rows.push(Row {
        what: "  one-way single sends".into(),
        cells: single
            .iter()
            .map(|o| o.as_ref().map(|o| (us(o.cpu), format!("{:.2}", us(o.cpu)))))
            .collect(),
        baseline: None,
    });
    rows.push(Row {
        what: "  one-way send_messages of 32 (to raw single)".into(),
        cells: batched
            .iter()
            .map(|o| o.as_ref().map(|o| (us(o.cpu), format!("{:.2}", us(o.cpu)))))
            .collect(),
        baseline: single[0].as_ref().map(|o| us(o.cpu)),
    });
    rows.push(Row {
        what: "heap allocations per datagram: 1000 B echo".into(),
        cells: cpu_echo
            .iter()
            .map(|(_, a)| Some((*a, format!("{a:.2}"))))
            .collect(),
        baseline: Some(0.0),
    });
    rows.push(Row {
        what: "  one-way send_messages of 32".into(),
        cells: batched
            .iter()
            .map(|o| o.as_ref().map(|o| (o.allocs, format!("{:.2}", o.allocs))))
            .collect(),
        baseline: Some(0.0),
    });

    // Memory: a handshake-only server in its own process.
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_ROLE", "server")
        .env("BENCH_PKI", &env.pki)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    // GnuTLS's DTLS handshakes take about 250 ms each here (its client
    // waits out a timer): 1000 of them would take four minutes.
    let gnutls_idle = idle.min(100);
    // Kinds take turns, one process each per round.
    const FIRST_RUNS: usize = 5;
    let mut firsts: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for _ in 0..FIRST_RUNS {
        for (i, &k) in kinds.iter().enumerate() {
            if let Some(t) = first_handshake(k, port, &env.pki) {
                firsts[i].push(t);
            }
        }
    }
    rows.push(Row {
        what: format!("first handshake of a new process, ms: median of {FIRST_RUNS}"),
        cells: firsts
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                (!t.is_empty()).then(|| (t[t.len() / 2], format!("{:.3}", t[t.len() / 2])))
            })
            .collect(),
        baseline: None,
    });
    let costs: Vec<Option<(f64, f64)>> = kinds
        .iter()
        .map(|&k| {
            let n = if k == Kind::Gnutls { gnutls_idle } else { idle };
            idle_cost(k, port, n, &env.pki)
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    rows.push(Row {
        what: format!("idle connection, KiB RSS: delta/{idle} ({gnutls_idle} g-n)"),
        cells: costs
            .iter()
            .map(|c| c.map(|(k, _)| (k, format!("{k:.1}"))))
            .collect(),
        baseline: None,
    });
    rows.push(Row {
        what: "  file descriptors per connection".into(),
        cells: costs
            .iter()
            .map(|c| c.map(|(_, f)| (f, format!("{f:.2}"))))
            .collect(),
        baseline: None,
    });

    print_table(&kinds, &rows);
    println!(
        "Resumed/full handshake (medians): {}. Resumed: raw OpenSSL with SSL_set_session \
         (the previous connection's session), ours with its automatic session cache, \
         against the same server; the full row has our cache off.",
        to_full.join(", ")
    );
    println!(
        "CPU: the client thread's (getrusage RUSAGE_THREAD); allocations: every malloc, \
         calloc and realloc of the client thread (its own, our library's, GLib's, OpenSSL's)."
    );
}
