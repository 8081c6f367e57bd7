//! Real DTLS peers in child processes: `openssl s_server` and `gnutls-serv`
//! on 127.0.0.1, bounded in time and reaped on Drop.
//!
//! Every child is spawned with `PR_SET_PDEATHSIG = SIGKILL` from one
//! long-lived spawner thread (the signal follows the *thread* that forked,
//! so a per-test thread would kill shared peers when it ends) and with an
//! `alarm()` of [`DEFAULT_LIFETIME`] (SIGALRM's default action ends the
//! process), so nothing outlives the test binary even if it aborts.
//! stdout and stderr are captured line by line; a peer dropped while its
//! thread panics prints what it captured.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A child that is never dropped (test aborted, `mem::forget`) dies by
/// SIGALRM after this long.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(120);
/// How long `start()` waits for a readiness line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which pipe a captured line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

type LineHook = Arc<dyn Fn(Stream, &str) + Send + Sync>;

#[derive(Default)]
struct Captured {
    /// Complete lines (without the newline), in arrival order.
    lines: Vec<(Stream, String)>,
    /// Unterminated tail of each stream.
    partial: [Vec<u8>; 2],
    /// Everything, byte-exact, per stream.
    raw: [Vec<u8>; 2],
    /// Pipes not yet at EOF.
    open: usize,
}

struct Capture {
    state: Mutex<Captured>,
    cond: Condvar,
}

/// A child process with captured output, killed and reaped on Drop.
pub struct PeerProcess {
    name: String,
    child: Option<Child>,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    capture: Arc<Capture>,
    readers: Vec<JoinHandle<()>>,
}

/// Spawns through one thread that lives as long as the process, so that
/// PR_SET_PDEATHSIG fires only when the test binary itself dies.
fn spawn_via_spawner(cmd: Command) -> std::io::Result<Child> {
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Req>();
            std::thread::Builder::new()
                .name("peer-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap()
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.send((cmd, reply_tx)).expect("spawner alive");
    reply_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("spawner answered")
}

impl PeerProcess {
    /// Starts `cmd` with piped stdin/stdout/stderr. `hook` sees every
    /// complete line as it arrives (from the reader thread).
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        lifetime: Duration,
        hook: Option<LineHook>,
    ) -> std::io::Result<Self> {
        let parent = std::process::id() as libc::pid_t;
        let secs = lifetime.as_secs().clamp(1, u32::MAX as u64) as libc::c_uint;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe syscalls (prctl, getppid, alarm).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    // The test binary died between fork and prctl.
                    return Err(std::io::Error::other("parent already gone"));
                }
                libc::alarm(secs);
                Ok(())
            });
        }
        let mut child = spawn_via_spawner(cmd)?;
        let capture = Arc::new(Capture {
            state: Mutex::new(Captured {
                open: 2,
                ..Default::default()
            }),
            cond: Condvar::new(),
        });
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let readers = vec![
            reader(
                format!("{name}-stdout"),
                stdout,
                Stream::Stdout,
                capture.clone(),
                hook.clone(),
            ),
            reader(
                format!("{name}-stderr"),
                stderr,
                Stream::Stderr,
                capture.clone(),
                hook,
            ),
        ];
        let stdin = Arc::new(Mutex::new(child.stdin.take()));
        Ok(PeerProcess {
            name: name.to_owned(),
            child: Some(child),
            stdin,
            capture,
            readers,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// A handle that writes to the child's stdin (usable from hooks).
    pub fn stdin_writer(&self) -> StdinWriter {
        StdinWriter(self.stdin.clone())
    }

    /// Writes `data` to the child's stdin in one `write_all`.
    pub fn write_stdin(&self, data: &[u8]) -> std::io::Result<()> {
        self.stdin_writer().write(data)
    }

    /// All captured output, stdout lines then stderr lines interleaved in
    /// arrival order (line granularity), plus unterminated tails.
    pub fn output(&self) -> String {
        let st = self.capture.state.lock().unwrap();
        let mut s = String::new();
        for (stream, line) in &st.lines {
            s.push_str(if *stream == Stream::Stdout {
                "[out] "
            } else {
                "[err] "
            });
            s.push_str(line);
            s.push('\n');
        }
        for (i, p) in st.partial.iter().enumerate() {
            if !p.is_empty() {
                s.push_str(if i == 0 { "[out…] " } else { "[err…] " });
                s.push_str(&String::from_utf8_lossy(p));
                s.push('\n');
            }
        }
        s
    }

    /// Byte-exact stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.capture.state.lock().unwrap().raw[0].clone()
    }

    /// Byte-exact stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.capture.state.lock().unwrap().raw[1].clone()
    }

    /// Complete lines so far.
    pub fn lines(&self) -> Vec<(Stream, String)> {
        self.capture.state.lock().unwrap().lines.clone()
    }

    /// Whether some complete line (either stream) contains `needle`.
    pub fn has_line(&self, needle: &str) -> bool {
        self.capture
            .state
            .lock()
            .unwrap()
            .lines
            .iter()
            .any(|(_, l)| l.contains(needle))
    }

    /// Waits until a complete line matches `pred`; returns it. Fails at the
    /// deadline or when both pipes reached EOF (the process ended), with the
    /// captured output in the message.
    pub fn wait_line(
        &self,
        timeout: Duration,
        pred: impl Fn(Stream, &str) -> bool,
    ) -> Result<String, String> {
        self.wait_nth_line(timeout, 1, pred)
    }

    /// Like `wait_line`, for the `n`-th matching line (n ≥ 1).
    pub fn wait_nth_line(
        &self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(Stream, &str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.capture.state.lock().unwrap();
        loop {
            if let Some((_, line)) = st.lines.iter().filter(|(s, l)| pred(*s, l)).nth(n - 1) {
                return Ok(line.clone());
            }
            if st.open == 0 {
                drop(st);
                return Err(format!(
                    "{}: process ended before the expected line\n{}",
                    self.name,
                    self.output()
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                return Err(format!(
                    "{}: no expected line within {timeout:?}\n{}",
                    self.name,
                    self.output()
                ));
            }
            st = self
                .capture
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_line(timeout, |_, l| l.contains(needle))
    }

    /// Waits until stdout holds at least `n` bytes in total.
    pub fn wait_stdout_len(&self, n: usize, timeout: Duration) -> Result<Vec<u8>, String> {
        self.wait_stdout(timeout, |out| out.len() >= n)
    }

    /// Waits until raw stdout contains `needle` (no newline needed: s_server
    /// writes application data as received).
    pub fn wait_stdout_contains(
        &self,
        needle: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        self.wait_stdout(timeout, |out| {
            out.windows(needle.len().max(1)).any(|w| w == needle)
        })
    }

    /// Waits until `pred(raw stdout so far)` holds; returns that stdout.
    pub fn wait_stdout(
        &self,
        timeout: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.capture.state.lock().unwrap();
        loop {
            if pred(&st.raw[0]) {
                return Ok(st.raw[0].clone());
            }
            let now = Instant::now();
            if st.open == 0 || now >= deadline {
                drop(st);
                return Err(format!(
                    "{}: expected stdout not seen within {timeout:?}\n{}",
                    self.name,
                    self.output()
                ));
            }
            st = self
                .capture
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Whether the child has exited (non-blocking).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills (SIGKILL), reaps and joins the readers. Idempotent.
    pub fn kill(&mut self) {
        self.stdin.lock().unwrap().take();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- output of {} ----\n{}---- end of {} ----",
                self.name,
                self.output(),
                self.name
            );
        }
    }
}

/// Writes to a peer's stdin; cloneable, usable from line hooks.
#[derive(Clone)]
pub struct StdinWriter(Arc<Mutex<Option<ChildStdin>>>);

impl StdinWriter {
    pub fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut g = self.0.lock().unwrap();
        match g.as_mut() {
            Some(w) => {
                w.write_all(data)?;
                w.flush()
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "stdin closed",
            )),
        }
    }
}

fn reader(
    name: String,
    mut pipe: impl Read + Send + 'static,
    stream: Stream,
    capture: Arc<Capture>,
    hook: Option<LineHook>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let idx = if stream == Stream::Stdout { 0 } else { 1 };
            let mut buf = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut new_lines = Vec::new();
                {
                    let mut st = capture.state.lock().unwrap();
                    st.raw[idx].extend_from_slice(&buf[..n]);
                    st.partial[idx].extend_from_slice(&buf[..n]);
                    while let Some(pos) = st.partial[idx].iter().position(|&b| b == b'\n') {
                        let rest = st.partial[idx].split_off(pos + 1);
                        let mut line = std::mem::replace(&mut st.partial[idx], rest);
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        let line = String::from_utf8_lossy(&line).into_owned();
                        st.lines.push((stream, line.clone()));
                        new_lines.push(line);
                    }
                }
                capture.cond.notify_all();
                if let Some(h) = &hook {
                    for l in &new_lines {
                        h(stream, l);
                    }
                }
            }
            capture.state.lock().unwrap().open -= 1;
            capture.cond.notify_all();
        })
        .expect("reader thread")
}

/// A free UDP port on 127.0.0.1 right now (bound, read, released: racy by
/// nature; callers retry on a bind failure).
pub fn pick_udp_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    s.local_addr().unwrap().port()
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------
// openssl s_server

/// Client-certificate policy of a server peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientCert {
    /// Do not ask for one.
    #[default]
    None,
    /// Ask; continue without (`s_server -verify N`).
    Request,
    /// Ask and fail the handshake without one (`s_server -Verify N`).
    Require,
}

/// Options of [`OpensslServer::start`].
#[derive(Clone, Debug)]
pub struct OpensslServerOpts {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `-CAfile`: trust anchors for client certificates (and the CA list sent).
    pub ca_file: Option<PathBuf>,
    pub client_cert: ClientCert,
    /// Verify depth given to `-verify`/`-Verify`.
    pub verify_depth: u32,
    /// `-alpn a,b`: protocols the server accepts, in preference order.
    pub alpn: Option<String>,
    /// `-mtu N`: link MTU (s_server sets SSL_OP_NO_QUERY_MTU itself).
    pub mtu: Option<u32>,
    /// `-listen`: stateless cookie exchange (HelloVerifyRequest) first.
    pub listen: bool,
    /// `-naccept N`: exit after N connections.
    pub naccept: Option<u32>,
    /// Harness-level echo: every stdout line starting with this prefix is
    /// written back to s_server's stdin, i.e. sent to the client as one
    /// record `"<line>\n"`. The prefix must not start with `Q`, `q`, `P` or
    /// `S` (s_server treats stdin chunks starting with those as commands),
    /// and should contain a character base64 lacks (e.g. `:`): s_server
    /// prints its session parameters in base64 on stdout.
    pub echo_prefix: Option<String>,
    /// `-brief` is *not* used: it hides the ACCEPT readiness line.
    pub extra_args: Vec<String>,
    pub lifetime: Duration,
}

impl OpensslServerOpts {
    /// `server.pem` / `server.key` of the PKI in `pki`, nothing else.
    pub fn new(pki: &Path) -> Self {
        OpensslServerOpts {
            cert: pki.join("server.pem"),
            key: pki.join("server.key"),
            ca_file: None,
            client_cert: ClientCert::None,
            verify_depth: 2,
            alpn: None,
            mtu: None,
            listen: false,
            naccept: None,
            echo_prefix: None,
            extra_args: Vec::new(),
            lifetime: DEFAULT_LIFETIME,
        }
    }

    pub fn cert(mut self, cert: &Path, key: &Path) -> Self {
        self.cert = cert.into();
        self.key = key.into();
        self
    }

    /// Asks for (or requires) a client certificate trusted by `ca`.
    pub fn client_cert(mut self, policy: ClientCert, ca: &Path) -> Self {
        self.client_cert = policy;
        self.ca_file = Some(ca.into());
        self
    }

    pub fn alpn(mut self, protocols: &str) -> Self {
        self.alpn = Some(protocols.into());
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn listen(mut self) -> Self {
        self.listen = true;
        self
    }

    pub fn echo_prefix(mut self, prefix: &str) -> Self {
        assert!(
            !prefix.is_empty() && !prefix.starts_with(['Q', 'q', 'P', 'S']),
            "bad echo prefix {prefix:?}"
        );
        self.echo_prefix = Some(prefix.into());
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.into());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new("openssl");
        c.args(["s_server", "-dtls1_2", "-accept", "127.0.0.1:0"]);
        c.arg("-cert").arg(&self.cert).arg("-key").arg(&self.key);
        if let Some(ca) = &self.ca_file {
            c.arg("-CAfile").arg(ca);
        }
        match self.client_cert {
            ClientCert::None => {}
            ClientCert::Request => {
                c.arg("-verify").arg(self.verify_depth.to_string());
            }
            ClientCert::Require => {
                c.arg("-Verify").arg(self.verify_depth.to_string());
            }
        }
        if let Some(a) = &self.alpn {
            c.arg("-alpn").arg(a);
        }
        if let Some(m) = self.mtu {
            c.arg("-mtu").arg(m.to_string());
        }
        if self.listen {
            c.arg("-listen");
        }
        if let Some(n) = self.naccept {
            c.arg("-naccept").arg(n.to_string());
        }
        c.args(&self.extra_args);
        c
    }
}

/// `openssl s_server -dtls1_2` on 127.0.0.1, port chosen by the kernel
/// (`-accept 127.0.0.1:0`; OpenSSL 3 prints `ACCEPT 127.0.0.1:PORT`).
///
/// Application data from the client appears raw on stdout (mixed with
/// s_server's diagnostics); [`OpensslServer::send`] sends to the client.
/// Keep stdin open: EOF on it makes s_server quit.
pub struct OpensslServer {
    proc: PeerProcess,
    addr: SocketAddr,
    pub opts: OpensslServerOpts,
}

impl OpensslServer {
    /// Starts the server and waits (≤ [`READY_TIMEOUT`]) for `ACCEPT`.
    /// Panics with the captured output on failure.
    pub fn start(opts: OpensslServerOpts) -> Self {
        let writer: Arc<Mutex<Option<StdinWriter>>> = Arc::new(Mutex::new(None));
        let hook: Option<LineHook> = opts.echo_prefix.clone().map(|prefix| {
            let writer = writer.clone();
            Arc::new(move |stream: Stream, line: &str| {
                if stream == Stream::Stdout && line.starts_with(&prefix) {
                    if let Some(w) = writer.lock().unwrap().as_ref() {
                        let _ = w.write(format!("{line}\n").as_bytes());
                    }
                }
            }) as LineHook
        });
        let proc = PeerProcess::spawn("openssl-s_server", opts.command(), opts.lifetime, hook)
            .expect("spawn openssl s_server");
        *writer.lock().unwrap() = Some(proc.stdin_writer());
        let line = proc
            .wait_line(READY_TIMEOUT, |s, l| {
                s == Stream::Stdout && l.starts_with("ACCEPT")
            })
            .unwrap_or_else(|e| panic!("openssl s_server did not become ready: {e}"));
        let port: u16 = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot parse the port from {line:?}"));
        OpensslServer {
            proc,
            addr: localhost(port),
            opts,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sends `text` to the connected client as one record (via stdin).
    /// Must not start with Q/q/P/S nor be a one-letter command line.
    pub fn send(&self, text: &str) {
        assert!(
            !text.starts_with(['Q', 'q', 'P', 'S']),
            "s_server would take {text:?} as a command"
        );
        self.proc
            .write_stdin(text.as_bytes())
            .expect("write to s_server stdin");
    }

    /// Waits for the client's `n`-th handshake (s_server prints
    /// `CIPHER is …` once per connection).
    pub fn wait_handshake(&self, n: usize, timeout: Duration) -> Result<String, String> {
        self.proc
            .wait_nth_line(timeout, n, |_, l| l.starts_with("CIPHER is "))
    }

    /// The ALPN protocol s_server selected, if it printed one.
    pub fn selected_alpn(&self) -> Option<String> {
        self.proc.lines().into_iter().find_map(|(_, l)| {
            l.strip_prefix("ALPN protocols selected: ")
                .map(str::to_owned)
        })
    }

    /// The client certificate's subject line (`subject=…`), if one was received.
    pub fn client_cert_subject(&self) -> Option<String> {
        let lines = self.proc.lines();
        let at = lines.iter().position(|(_, l)| l == "Client certificate")?;
        lines[at..]
            .iter()
            .find_map(|(_, l)| l.strip_prefix("subject=").map(str::to_owned))
    }
}

impl std::ops::Deref for OpensslServer {
    type Target = PeerProcess;
    fn deref(&self) -> &PeerProcess {
        &self.proc
    }
}

impl std::ops::DerefMut for OpensslServer {
    fn deref_mut(&mut self) -> &mut PeerProcess {
        &mut self.proc
    }
}

// ---------------------------------------------------------------------------
// gnutls-serv

/// Options of [`GnutlsServer::start`].
#[derive(Clone, Debug)]
pub struct GnutlsServerOpts {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `--x509cafile`.
    pub ca_file: Option<PathBuf>,
    /// `--require-client-cert` (with `ca_file`; gnutls-serv then verifies it).
    pub require_client_cert: bool,
    /// `--verify-client-cert`: verify a certificate if one is sent.
    pub verify_client_cert: bool,
    /// `--disable-client-cert`: do not even request one.
    pub disable_client_cert: bool,
    /// `--alpn` (repeatable), `--alpn-fatal` with `alpn_fatal`.
    pub alpn: Vec<String>,
    pub alpn_fatal: bool,
    /// `--mtu N` (GnuTLS data MTU).
    pub mtu: Option<u32>,
    /// `--nocookie`: skip the HelloVerifyRequest round trip (default: cookies on).
    pub no_cookie: bool,
    /// `--priority`.
    pub priority: Option<String>,
    pub extra_args: Vec<String>,
    pub lifetime: Duration,
}

impl GnutlsServerOpts {
    pub fn new(pki: &Path) -> Self {
        GnutlsServerOpts {
            cert: pki.join("server.pem"),
            key: pki.join("server.key"),
            ca_file: None,
            require_client_cert: false,
            verify_client_cert: false,
            disable_client_cert: false,
            alpn: Vec::new(),
            alpn_fatal: false,
            mtu: None,
            no_cookie: false,
            priority: None,
            extra_args: Vec::new(),
            lifetime: DEFAULT_LIFETIME,
        }
    }

    pub fn require_client_cert(mut self, ca: &Path) -> Self {
        self.ca_file = Some(ca.into());
        self.require_client_cert = true;
        self
    }

    pub fn alpn(mut self, protocol: &str) -> Self {
        self.alpn.push(protocol.into());
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.into());
        self
    }

    fn command(&self, port: u16) -> Command {
        let mut c = Command::new("gnutls-serv");
        c.args(["--udp", "--echo", "-p", &port.to_string()]);
        c.arg("--x509certfile")
            .arg(path_arg(&self.cert))
            .arg("--x509keyfile")
            .arg(path_arg(&self.key));
        if let Some(ca) = &self.ca_file {
            c.arg("--x509cafile").arg(path_arg(ca));
        }
        if self.require_client_cert {
            c.arg("--require-client-cert");
        }
        if self.verify_client_cert {
            c.arg("--verify-client-cert");
        }
        if self.disable_client_cert {
            c.arg("--disable-client-cert");
        }
        for a in &self.alpn {
            c.arg(format!("--alpn={a}"));
        }
        if self.alpn_fatal {
            c.arg("--alpn-fatal");
        }
        if let Some(m) = self.mtu {
            c.arg(format!("--mtu={m}"));
        }
        if self.no_cookie {
            c.arg("--nocookie");
        }
        if let Some(p) = &self.priority {
            c.arg(format!("--priority={p}"));
        }
        c.args(&self.extra_args);
        c
    }
}

/// `gnutls-serv --udp --echo` (listens on 0.0.0.0 and ::, one session at a
/// time; echoes each record of at most 255 bytes — larger ones are
/// rejected). Port: picked with [`pick_udp_port`], retried when
/// gnutls-serv reports `bind() failed` for IPv4.
pub struct GnutlsServer {
    proc: PeerProcess,
    addr: SocketAddr,
    pub opts: GnutlsServerOpts,
}

impl GnutlsServer {
    /// Starts the server and waits (≤ [`READY_TIMEOUT`]) for
    /// `… listening on IPv4 0.0.0.0 port N...done` on stderr.
    pub fn start(opts: GnutlsServerOpts) -> Self {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = pick_udp_port();
            let proc = PeerProcess::spawn("gnutls-serv", opts.command(port), opts.lifetime, None)
                .expect("spawn gnutls-serv");
            match proc.wait_line(READY_TIMEOUT, |_, l| l.contains("listening on IPv4")) {
                Ok(line) if line.ends_with("done") => {
                    return GnutlsServer {
                        proc,
                        addr: localhost(port),
                        opts,
                    };
                }
                Ok(line) if line.contains("bind() failed") => {
                    last_err = line;
                    continue; // port taken meanwhile: drop (kill) and retry
                }
                Ok(line) => panic!(
                    "gnutls-serv: unexpected readiness line {line:?}\n{}",
                    proc.output()
                ),
                Err(e) => panic!("gnutls-serv did not become ready: {e}"),
            }
        }
        panic!("gnutls-serv: could not bind a port in 5 attempts: {last_err}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl std::ops::Deref for GnutlsServer {
    type Target = PeerProcess;
    fn deref(&self) -> &PeerProcess {
        &self.proc
    }
}

impl std::ops::DerefMut for GnutlsServer {
    fn deref_mut(&mut self) -> &mut PeerProcess {
        &mut self.proc
    }
}

// ---------------------------------------------------------------------------
// openssl s_client (a reference client for the peers above)

/// `openssl s_client -dtls1_2 -connect ADDR -quiet` with the given extra
/// arguments; what the test writes to its stdin is sent, received data
/// appears on stdout. Readiness is up to the caller (e.g. wait for
/// `verify return:1` on stderr or for the server's handshake line).
pub fn openssl_client(addr: SocketAddr, args: &[&str]) -> PeerProcess {
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-dtls1_2",
        "-connect",
        &addr.to_string(),
        "-quiet",
    ]);
    c.args(args);
    PeerProcess::spawn("openssl-s_client", c, DEFAULT_LIFETIME, None)
        .expect("spawn openssl s_client")
}

/// `gnutls-cli --udp -p PORT 127.0.0.1` with extra arguments; stdin lines
/// are sent, echoes appear on stdout. It prints `- Handshake was completed`
/// on stdout when ready.
pub fn gnutls_client(addr: SocketAddr, args: &[&str]) -> PeerProcess {
    let mut c = Command::new("gnutls-cli");
    c.args([
        "--udp",
        "-p",
        &addr.port().to_string(),
        &addr.ip().to_string(),
    ]);
    c.args(args);
    PeerProcess::spawn("gnutls-cli", c, DEFAULT_LIFETIME, None).expect("spawn gnutls-cli")
}
