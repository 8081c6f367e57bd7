//! Real DTLS peers in child processes, on 127.0.0.1, bounded in time and
//! reaped on Drop: servers (`openssl s_server`: [`OpensslServer`],
//! `gnutls-serv`: [`GnutlsServer`]) and clients (`openssl s_client`:
//! [`OpensslClient`], with a parser of its `-msg` trace; `gnutls-cli`:
//! [`GnutlsClient`]) for tests of a DTLS server.
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

/// `Deref`/`DerefMut` to the `proc: PeerProcess` field of a peer wrapper.
macro_rules! deref_to_process {
    ($ty:ty) => {
        impl std::ops::Deref for $ty {
            type Target = PeerProcess;
            fn deref(&self) -> &PeerProcess {
                &self.proc
            }
        }

        impl std::ops::DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut PeerProcess {
                &mut self.proc
            }
        }
    };
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

    /// Closes the child's stdin (EOF); later writes fail with BrokenPipe.
    pub fn close_stdin(&self) {
        self.stdin.lock().unwrap().take();
    }

    /// Waits (≤ `timeout`) until the child closed both output pipes, then
    /// reaps it and returns its exit status. Does not kill it: on timeout
    /// the child is left running (Drop kills it) and the error carries the
    /// captured output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        {
            let mut st = self.capture.state.lock().unwrap();
            while st.open > 0 {
                let now = Instant::now();
                if now >= deadline {
                    drop(st);
                    return Err(format!(
                        "{}: did not exit within {timeout:?}\n{}",
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
        // Both pipes at EOF: the process has exited (or closed them and is
        // about to); wait() returns at once in practice.
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| format!("{}: already killed", self.name))?;
        let status = child
            .wait()
            .map_err(|e| format!("{}: wait: {e}", self.name))?;
        Ok(status)
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
        // `-dtls1` in the extra arguments replaces `-dtls1_2` (s_server
        // takes one protocol flag).
        let version = if self.extra_args.iter().any(|a| a == "-dtls1") {
            "-dtls1"
        } else {
            "-dtls1_2"
        };
        c.args(["s_server", version, "-accept", "127.0.0.1:0"]);
        let extra: Vec<&String> = self.extra_args.iter().filter(|a| *a != "-dtls1").collect();
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
        c.args(extra);
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

deref_to_process!(OpensslServer);

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

deref_to_process!(GnutlsServer);

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

// ---------------------------------------------------------------------------
// openssl s_client as a peer object

/// Options of [`OpensslClient::start`]. Default: no verification (s_client
/// then accepts any certificate and only reports the result), no client
/// certificate, not quiet (the session summary is printed: handshake,
/// verify result and ALPN can be read), command letters on.
#[derive(Clone, Debug)]
pub struct OpensslClientOpts {
    /// `-CAfile` + `-verify_return_error` (abort on a verification failure).
    pub ca_file: Option<PathBuf>,
    /// `-verify_hostname` (with `ca_file`).
    pub verify_hostname: Option<String>,
    /// `-cert` / `-key`.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// `-alpn a,b`.
    pub alpn: Option<String>,
    /// `-servername` (s_client sends no SNI for an IP address otherwise).
    pub servername: Option<String>,
    /// `-msg`: handshake message trace on stdout, see [`OpensslClient::messages`].
    pub msg: bool,
    /// `-mtu N`.
    pub mtu: Option<u32>,
    /// `-quiet`: no session summary, so [`OpensslClient::wait_handshake`],
    /// `verify_result` and `alpn` have nothing to read.
    pub quiet: bool,
    /// `-nocommands`: lines starting with Q, R, k, K are sent as data.
    /// [`OpensslClient::renegotiate`] needs commands.
    pub no_commands: bool,
    pub extra_args: Vec<String>,
    pub lifetime: Duration,
}

impl Default for OpensslClientOpts {
    fn default() -> Self {
        OpensslClientOpts {
            ca_file: None,
            verify_hostname: None,
            cert: None,
            alpn: None,
            servername: None,
            msg: false,
            mtu: None,
            quiet: false,
            no_commands: false,
            extra_args: Vec::new(),
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

impl OpensslClientOpts {
    /// Verifies the server against `ca` and its certificate against `hostname`.
    pub fn verify(mut self, ca: &Path, hostname: &str) -> Self {
        self.ca_file = Some(ca.into());
        self.verify_hostname = Some(hostname.into());
        self
    }

    /// Verifies the chain against `ca` only (no host name check).
    pub fn ca(mut self, ca: &Path) -> Self {
        self.ca_file = Some(ca.into());
        self
    }

    pub fn client_cert(mut self, cert: &Path, key: &Path) -> Self {
        self.cert = Some((cert.into(), key.into()));
        self
    }

    pub fn alpn(mut self, protocols: &str) -> Self {
        self.alpn = Some(protocols.into());
        self
    }

    pub fn servername(mut self, name: &str) -> Self {
        self.servername = Some(name.into());
        self
    }

    pub fn msg(mut self) -> Self {
        self.msg = true;
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    pub fn no_commands(mut self) -> Self {
        self.no_commands = true;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.into());
        self
    }

    fn command(&self, addr: SocketAddr) -> Command {
        let mut c = Command::new("openssl");
        c.args(["s_client", "-dtls1_2", "-connect", &addr.to_string()]);
        if let Some(ca) = &self.ca_file {
            c.arg("-CAfile").arg(ca).arg("-verify_return_error");
        }
        if let Some(h) = &self.verify_hostname {
            c.arg("-verify_hostname").arg(h);
        }
        if let Some((cert, key)) = &self.cert {
            c.arg("-cert").arg(cert).arg("-key").arg(key);
        }
        if let Some(a) = &self.alpn {
            c.arg("-alpn").arg(a);
        }
        if let Some(n) = &self.servername {
            c.arg("-servername").arg(n);
        }
        if self.msg {
            c.arg("-msg");
        }
        if let Some(m) = self.mtu {
            c.arg("-mtu").arg(m.to_string());
        }
        if self.quiet {
            c.arg("-quiet");
        }
        // After -quiet (which implies -ign_eof): EOF on stdin ends the
        // session with close_notify, and command letters work in both modes.
        c.arg("-no_ign_eof");
        if self.no_commands {
            c.arg("-nocommands");
        }
        c.args(&self.extra_args);
        c
    }
}

/// Direction of a traced record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgDir {
    Sent,
    Received,
}

/// One protocol message from `s_client -msg` (record headers left out).
///
/// OpenSSL 3.0's `-msg` callback only names messages of SSL 3/TLS and
/// DTLS 1.0; for DTLS 1.2 (0xfefd) it prints
/// `<<< Not TLS data or unknown version (version=65277, content_type=22) [length 0023]`
/// followed by a hex dump (`    03 00 00 17 …`), so the message is known
/// by its content type and the dump's first byte (for a handshake message,
/// its type: 3 = HelloVerifyRequest, 2 = ServerHello).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceMsg {
    pub dir: MsgDir,
    /// Record content type: 20 ChangeCipherSpec, 21 Alert, 22 Handshake.
    pub content_type: u8,
    /// The first bytes of the message (first line of the dump, ≤ 16).
    pub head: Vec<u8>,
}

impl TraceMsg {
    /// The handshake message type, for handshake messages.
    pub fn handshake_type(&self) -> Option<u8> {
        (self.content_type == 22).then(|| self.head.first().copied())?
    }

    /// A readable name: `ClientHello`, `HelloVerifyRequest`, `ServerHello`,
    /// `ChangeCipherSpec`, `Alert(level,description)`, …
    pub fn name(&self) -> String {
        match self.content_type {
            20 => "ChangeCipherSpec".into(),
            21 => match self.head.as_slice() {
                [level, desc, ..] => format!("Alert({level},{desc})"),
                _ => "Alert".into(),
            },
            22 => match self.handshake_type() {
                Some(0) => "HelloRequest".into(),
                Some(1) => "ClientHello".into(),
                Some(2) => "ServerHello".into(),
                Some(3) => "HelloVerifyRequest".into(),
                Some(4) => "NewSessionTicket".into(),
                Some(11) => "Certificate".into(),
                Some(12) => "ServerKeyExchange".into(),
                Some(13) => "CertificateRequest".into(),
                Some(14) => "ServerHelloDone".into(),
                Some(15) => "CertificateVerify".into(),
                Some(16) => "ClientKeyExchange".into(),
                Some(20) => "Finished".into(),
                Some(t) => format!("Handshake({t})"),
                None => "Handshake(?)".into(),
            },
            t => format!("ContentType({t})"),
        }
    }
}

impl std::fmt::Display for TraceMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let arrow = if self.dir == MsgDir::Sent {
            ">>>"
        } else {
            "<<<"
        };
        write!(f, "{arrow} {}", self.name())
    }
}

/// Parses `-msg` output (stdout lines). Handles both the unnamed form
/// OpenSSL 3.0 prints for DTLS 1.2 (`content_type=N`) and the named form
/// (`DTLS 1.0, Handshake [length …], ClientHello`).
pub fn parse_msg_trace<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<TraceMsg> {
    let mut out = Vec::new();
    let mut pending: Option<(MsgDir, u8)> = None;
    for line in lines {
        if let Some((dir, ct)) = pending.take() {
            let is_dump = line.starts_with("    ");
            let head: Vec<u8> = if is_dump {
                line.split_whitespace()
                    .map_while(|b| u8::from_str_radix(b, 16).ok())
                    .collect()
            } else {
                Vec::new()
            };
            out.push(TraceMsg {
                dir,
                content_type: ct,
                head,
            });
            if is_dump {
                continue;
            }
            // A header without a dump (length 0): this line may be a header.
        }
        // Raw application data without a newline may precede the arrow.
        let (dir, rest) = if let Some(i) = line.find(">>> ") {
            (MsgDir::Sent, &line[i + 4..])
        } else if let Some(i) = line.find("<<< ") {
            (MsgDir::Received, &line[i + 4..])
        } else {
            continue;
        };
        let ct = if let Some(i) = rest.find("content_type=") {
            rest[i + 13..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<u32>().ok())
        } else if rest.contains(", Handshake [") {
            Some(22)
        } else if rest.contains(", ChangeCipherSpec [") {
            Some(20)
        } else if rest.contains(", Alert [") {
            Some(21)
        } else {
            None // record headers ("RECORD HEADER"), unknown lines
        };
        // 256 = SSL3_RT_HEADER: the record header pseudo-message.
        if let Some(ct @ 0..=255) = ct {
            pending = Some((dir, ct as u8));
        }
    }
    if let Some((dir, ct)) = pending {
        out.push(TraceMsg {
            dir,
            content_type: ct,
            head: Vec::new(),
        });
    }
    out
}

/// `openssl s_client -dtls1_2 -connect ADDR` as a peer: what
/// [`OpensslClient::send_line`] writes to its stdin is sent as one record
/// per line; received data appears raw on stdout (mixed with the session
/// summary and, with `-msg`, the trace — but always as whole lines when the
/// sender sends lines). `-no_ign_eof` is always given, so
/// [`OpensslClient::stop`] (EOF on stdin) sends close_notify and lets it
/// exit. s_client's verify callback lines (`depth=… verify return:1`),
/// `RENEGOTIATING`, `DONE` and errors go to stderr.
///
/// In OpenSSL 3.0 a stdin chunk starting with `Q` quits, `R` renegotiates,
/// `k`/`K` ask for a key update (TLS 1.3 only) — whatever follows on the
/// line — unless `-nocommands`.
pub struct OpensslClient {
    proc: PeerProcess,
    pub opts: OpensslClientOpts,
}

impl OpensslClient {
    /// Spawns s_client (it starts the handshake at once). Does not wait.
    pub fn start(addr: SocketAddr, opts: OpensslClientOpts) -> Self {
        let proc = PeerProcess::spawn("openssl-s_client", opts.command(addr), opts.lifetime, None)
            .expect("spawn openssl s_client");
        OpensslClient { proc, opts }
    }

    /// Waits for the session summary s_client prints once the handshake
    /// ended — up to its `Verify return code:` line, so that ALPN, cipher
    /// and verify result can be read — and returns its `New, TLSv1.2,
    /// Cipher is …` line. A failed handshake also gets a summary (`Cipher
    /// is (NONE)`): that, or s_client exiting first, is an error (see
    /// [`OpensslClient::verify_error`]). Not available with `-quiet`.
    pub fn wait_handshake(&self, timeout: Duration) -> Result<String, String> {
        assert!(
            !self.opts.quiet,
            "-quiet prints no session summary: wait on the server, or use -msg"
        );
        self.proc.wait_line(timeout, |s, l| {
            s == Stream::Stdout && l.trim_start().starts_with("Verify return code: ")
        })?;
        let cipher =
            self.proc.lines().into_iter().find_map(|(s, l)| {
                (s == Stream::Stdout && l.contains(", Cipher is ")).then_some(l)
            });
        match cipher {
            Some(l) if !l.ends_with("(NONE)") => Ok(l),
            _ => Err(format!(
                "s_client: the handshake failed\n{}",
                self.proc.output()
            )),
        }
    }

    /// The summary's verification line: `Verification: OK` → `Ok(())`,
    /// `Verification error: hostname mismatch` → `Err("hostname mismatch")`.
    /// None before the summary (or without verification: no such line
    /// when no certificate was checked).
    pub fn verification(&self) -> Option<Result<(), String>> {
        self.proc.lines().into_iter().find_map(|(_, l)| {
            if l == "Verification: OK" {
                Some(Ok(()))
            } else {
                l.strip_prefix("Verification error: ")
                    .map(|e| Err(e.to_owned()))
            }
        })
    }

    /// `(code, text)` of the summary's `Verify return code: N (text)`; 0 is
    /// ok. Beware: after a handshake aborted by `-verify_return_error` it
    /// still says `0 (ok)` (the session's result was never set): use
    /// [`OpensslClient::verification`] or [`OpensslClient::verify_error`].
    pub fn verify_result(&self) -> Option<(i32, String)> {
        self.proc.lines().into_iter().find_map(|(_, l)| {
            let rest = l.trim().strip_prefix("Verify return code: ")?;
            let (code, text) = rest.split_once(' ')?;
            Some((
                code.parse().ok()?,
                text.trim_start_matches('(').trim_end_matches(')').into(),
            ))
        })
    }

    /// The first `verify error:num=N:text` line on stderr (printed by the
    /// verify callback, also when verification was not requested).
    pub fn verify_error(&self) -> Option<String> {
        self.proc
            .lines()
            .into_iter()
            .find_map(|(_, l)| l.strip_prefix("verify error:").map(str::to_owned))
    }

    /// The negotiated ALPN protocol (`ALPN protocol: x`); None if the
    /// summary says `No ALPN negotiated` or was not printed.
    pub fn alpn(&self) -> Option<String> {
        self.proc
            .lines()
            .into_iter()
            .find_map(|(_, l)| l.strip_prefix("ALPN protocol: ").map(str::to_owned))
    }

    /// The summary's `Cipher    : NAME` (OpenSSL name).
    pub fn cipher(&self) -> Option<String> {
        self.proc.lines().into_iter().find_map(|(_, l)| {
            l.trim()
                .strip_prefix("Cipher    : ")
                .map(|c| c.trim().to_owned())
        })
    }

    /// Sends `line` plus `\n` as one record. Panics on a line s_client
    /// would take as a command (unless `-nocommands`).
    pub fn send_line(&self, line: &str) {
        assert!(!line.contains('\n'), "one line at a time: {line:?}");
        assert!(
            self.opts.no_commands || !line.starts_with(['Q', 'R', 'k', 'K']),
            "s_client would take {line:?} as a command"
        );
        self.proc
            .write_stdin(format!("{line}\n").as_bytes())
            .expect("write to s_client stdin");
    }

    /// Waits for a stdout line equal to `line` (received data).
    pub fn wait_data(&self, line: &str, timeout: Duration) -> Result<String, String> {
        self.proc
            .wait_line(timeout, |s, l| s == Stream::Stdout && l == line)
    }

    /// Starts a renegotiation (`R` on a line by itself) and waits for its
    /// `RENEGOTIATING` acknowledgement; the `n`-th call waits for the `n`-th.
    /// Completion: [`OpensslClient::wait_renegotiated`].
    pub fn renegotiate(&self, timeout: Duration) -> Result<(), String> {
        assert!(
            !self.opts.no_commands,
            "renegotiate() needs command letters"
        );
        let before = self
            .proc
            .lines()
            .iter()
            .filter(|(_, l)| l == "RENEGOTIATING")
            .count();
        self.proc
            .write_stdin(b"R\n")
            .map_err(|e| format!("write R: {e}"))?;
        self.proc
            .wait_nth_line(timeout, before + 1, |s, l| {
                s == Stream::Stderr && l == "RENEGOTIATING"
            })
            .map(|_| ())
    }

    /// With `-msg`: waits until the client has received `n` + 1 Finished
    /// messages, i.e. the initial handshake and `n` renegotiations reached
    /// the server's Finished. (s_client prints no summary after a
    /// renegotiation.)
    pub fn wait_renegotiated(&self, n: usize, timeout: Duration) -> Result<(), String> {
        assert!(self.opts.msg, "wait_renegotiated() needs -msg");
        self.wait_messages(timeout, |msgs| {
            msgs.iter()
                .filter(|m| m.dir == MsgDir::Received && m.handshake_type() == Some(20))
                .count()
                > n
        })
        .map(|_| ())
    }

    /// Waits until `pred` holds for the parsed `-msg` trace.
    pub fn wait_messages(
        &self,
        timeout: Duration,
        pred: impl Fn(&[TraceMsg]) -> bool,
    ) -> Result<Vec<TraceMsg>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.proc.lines();
            let seen = lines.len();
            let msgs = parse_msg_trace(
                lines
                    .iter()
                    .filter(|(s, _)| *s == Stream::Stdout)
                    .map(|(_, l)| l.as_str()),
            );
            if pred(&msgs) {
                return Ok(msgs);
            }
            // Wake up on the next line (or give up).
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "s_client: expected -msg trace not seen within {timeout:?}: {:?}\n{}",
                    self.message_order(),
                    self.proc.output()
                ));
            }
            self.proc
                .wait_nth_line(left, seen + 1, |_, _| true)
                .map_err(|e| format!("{e}\ntrace so far: {:?}", self.message_order()))?;
        }
    }

    /// The `-msg` trace so far (stdout only), record headers left out.
    pub fn messages(&self) -> Vec<TraceMsg> {
        let lines = self.proc.lines();
        parse_msg_trace(
            lines
                .iter()
                .filter(|(s, _)| *s == Stream::Stdout)
                .map(|(_, l)| l.as_str()),
        )
    }

    /// The trace as `">>> ClientHello"`, `"<<< HelloVerifyRequest"`, ….
    pub fn message_order(&self) -> Vec<String> {
        self.messages().iter().map(|m| m.to_string()).collect()
    }

    /// Whether a HelloVerifyRequest was received before the first
    /// ServerHello (false without one, or without `-msg`).
    pub fn saw_hello_verify_request(&self) -> bool {
        let msgs = self.messages();
        let received = |t| {
            msgs.iter()
                .position(|m| m.dir == MsgDir::Received && m.handshake_type() == Some(t))
        };
        match (received(3), received(2)) {
            (Some(hvr), Some(sh)) => hvr < sh,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Closes stdin: s_client sends close_notify, prints `DONE` on stderr
    /// and exits. Returns its exit status (≤ `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        self.proc.close_stdin();
        self.proc.wait_exit(timeout)
    }
}

deref_to_process!(OpensslClient);

// ---------------------------------------------------------------------------
// gnutls-cli as a peer object

/// Options of [`GnutlsClient::start`]. gnutls-cli verifies the server's
/// certificate against the host it connects to (127.0.0.1: our
/// server.pem has that IP in its SAN) unless `verify_hostname` names
/// another, and against the system CAs unless `ca_file` is given;
/// `insecure` makes a verification failure non-fatal (still reported on
/// `- Status:`).
#[derive(Clone, Debug)]
pub struct GnutlsClientOpts {
    /// `--x509cafile`.
    pub ca_file: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
    /// `--verify-hostname NAME`: the name checked against the certificate.
    pub verify_hostname: Option<String>,
    /// `--sni-hostname NAME` (none is sent for an IP address otherwise).
    pub sni: Option<String>,
    /// `--x509certfile` / `--x509keyfile`.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// `--alpn` (repeated).
    pub alpn: Vec<String>,
    /// `--mtu`.
    pub mtu: Option<u32>,
    /// `--priority`.
    pub priority: Option<String>,
    pub extra_args: Vec<String>,
    pub lifetime: Duration,
}

impl GnutlsClientOpts {
    /// Trusts `ca.pem` of `pki` and checks the name `server.example.com`.
    pub fn new(pki: &Path) -> Self {
        GnutlsClientOpts {
            ca_file: Some(pki.join("ca.pem")),
            insecure: false,
            verify_hostname: Some("server.example.com".into()),
            sni: None,
            cert: None,
            alpn: Vec::new(),
            mtu: None,
            priority: None,
            extra_args: Vec::new(),
            lifetime: DEFAULT_LIFETIME,
        }
    }

    /// Accepts any certificate (no CA file, `--insecure`).
    pub fn insecure(mut self) -> Self {
        self.ca_file = None;
        self.insecure = true;
        self
    }

    pub fn verify_hostname(mut self, name: &str) -> Self {
        self.verify_hostname = Some(name.into());
        self
    }

    pub fn sni(mut self, name: &str) -> Self {
        self.sni = Some(name.into());
        self
    }

    pub fn client_cert(mut self, cert: &Path, key: &Path) -> Self {
        self.cert = Some((cert.into(), key.into()));
        self
    }

    pub fn alpn(mut self, protocol: &str) -> Self {
        self.alpn.push(protocol.into());
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.into());
        self
    }

    fn command(&self, addr: SocketAddr) -> Command {
        let mut c = Command::new("gnutls-cli");
        c.args(["--udp", "-p", &addr.port().to_string()]);
        if let Some(ca) = &self.ca_file {
            c.arg(format!("--x509cafile={}", path_arg(ca)));
        }
        if self.insecure {
            c.arg("--insecure");
        }
        if let Some(h) = &self.verify_hostname {
            c.arg(format!("--verify-hostname={h}"));
        }
        if let Some(n) = &self.sni {
            c.arg(format!("--sni-hostname={n}"));
        }
        if let Some((cert, key)) = &self.cert {
            c.arg(format!("--x509certfile={}", path_arg(cert)));
            c.arg(format!("--x509keyfile={}", path_arg(key)));
        }
        for a in &self.alpn {
            c.arg(format!("--alpn={a}"));
        }
        if let Some(m) = self.mtu {
            c.arg(format!("--mtu={m}"));
        }
        if let Some(p) = &self.priority {
            c.arg(format!("--priority={p}"));
        }
        c.args(&self.extra_args);
        c.arg(addr.ip().to_string());
        c
    }
}

/// `gnutls-cli --udp -p PORT 127.0.0.1` as a peer: each line written with
/// [`GnutlsClient::send_line`] is sent as one record (with its `\n`);
/// received data is printed on stdout. Status lines (`- …`) go to stdout,
/// fatal errors (`*** Fatal error: …`) to stderr; it exits 1 on a failed
/// handshake. EOF on stdin ends it.
pub struct GnutlsClient {
    proc: PeerProcess,
    pub opts: GnutlsClientOpts,
}

impl GnutlsClient {
    /// Spawns gnutls-cli (it handshakes at once). Does not wait.
    pub fn start(addr: SocketAddr, opts: GnutlsClientOpts) -> Self {
        let proc = PeerProcess::spawn("gnutls-cli", opts.command(addr), opts.lifetime, None)
            .expect("spawn gnutls-cli");
        GnutlsClient { proc, opts }
    }

    /// Waits for `- Handshake was completed`. A `*** …` failure line
    /// (`*** Fatal error: …`, `*** Handshake has failed`, `*** PKI
    /// verification of server certificate failed...` without `--insecure`)
    /// or the process ending makes it fail at once, with the output.
    pub fn wait_handshake(&self, timeout: Duration) -> Result<(), String> {
        let insecure = self.opts.insecure;
        let line = self.proc.wait_line(timeout, |_, l| {
            l == "- Handshake was completed"
                || l.starts_with("*** Fatal error")
                || l.starts_with("*** Handshake has failed")
                || (!insecure && l.starts_with("*** PKI verification"))
        })?;
        if line == "- Handshake was completed" {
            Ok(())
        } else {
            Err(format!("gnutls-cli: {line}\n{}", self.proc.output()))
        }
    }

    /// Waits for the handshake to fail; returns the first `*** …` line.
    pub fn wait_handshake_failure(&self, timeout: Duration) -> Result<String, String> {
        let line = self.proc.wait_line(timeout, |_, l| {
            l == "- Handshake was completed" || l.starts_with("*** ")
        })?;
        if line.starts_with("*** ") {
            Ok(line)
        } else {
            Err(format!(
                "gnutls-cli: the handshake succeeded\n{}",
                self.proc.output()
            ))
        }
    }

    /// The certificate status line (`- Status: The certificate is trusted.`).
    pub fn status(&self) -> Option<String> {
        self.proc
            .lines()
            .into_iter()
            .find_map(|(_, l)| l.strip_prefix("- Status: ").map(|s| s.trim().to_owned()))
    }

    /// `- Application protocol: x`.
    pub fn alpn(&self) -> Option<String> {
        self.proc.lines().into_iter().find_map(|(_, l)| {
            l.strip_prefix("- Application protocol: ")
                .map(str::to_owned)
        })
    }

    /// `- Description: (DTLS1.2-X.509)-(ECDHE-…)-(…)-(…)`.
    pub fn description(&self) -> Option<String> {
        self.proc
            .lines()
            .into_iter()
            .find_map(|(_, l)| l.strip_prefix("- Description: ").map(str::to_owned))
    }

    /// The subject of the server's certificate (`subject `…'` of Certificate[0]).
    pub fn peer_subject(&self) -> Option<String> {
        self.proc.lines().into_iter().find_map(|(_, l)| {
            let rest = l.split_once("subject `")?.1;
            rest.split_once('\'').map(|(s, _)| s.to_owned())
        })
    }

    /// Sends `line` + `\n` as one record.
    pub fn send_line(&self, line: &str) {
        assert!(!line.contains('\n'), "one line at a time: {line:?}");
        self.proc
            .write_stdin(format!("{line}\n").as_bytes())
            .expect("write to gnutls-cli stdin");
    }

    /// Waits for a stdout line equal to `line` (received data).
    pub fn wait_data(&self, line: &str, timeout: Duration) -> Result<String, String> {
        self.proc
            .wait_line(timeout, |s, l| s == Stream::Stdout && l == line)
    }

    /// Closes stdin (gnutls-cli then ends the session and exits); returns
    /// the exit status (≤ `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        self.proc.close_stdin();
        self.proc.wait_exit(timeout)
    }
}

deref_to_process!(GnutlsClient);
