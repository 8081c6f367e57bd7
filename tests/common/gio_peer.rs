//! tests/c/gio-peer.c as a peer process: a DTLS client or server written
//! against plain GIO, run in a separate process with a chosen backend —
//! by default `GIO_USE_TLS=gnutls` (glib-networking's GnuTLS backend, from
//! the module directory of `init()` where it is symlinked) — so that it
//! can face our backend in the test process. Built once per process by
//! [`super::cprog::build`]; its line protocol is described at the top of
//! gio-peer.c (`LISTENING`, `HANDSHAKE OK …`, `PEER-CERT …`, `ECHO i n`,
//! `ERROR …`, `DONE`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::peers::{PeerProcess, Stream, DEFAULT_LIFETIME, READY_TIMEOUT};

/// Client or server, and the port (server: 0 lets the kernel choose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server { port: u16 },
    Client { port: u16 },
}

/// Options of [`GioPeer::start`].
#[derive(Clone, Debug)]
pub struct GioPeerOpts {
    pub role: Role,
    /// `GIO_USE_TLS` for the child (`gnutls`, `dtls-openssl`).
    pub backend: String,
    /// `GIO_MODULE_DIR` for the child.
    pub module_dir: PathBuf,
    /// Own certificate and key (server: required).
    pub cert: Option<(PathBuf, PathBuf)>,
    /// `--ca`: the database (client: trust anchors for the server; server:
    /// for verifying client certificates).
    pub ca_file: Option<PathBuf>,
    /// `--identity` (client).
    pub identity: Option<String>,
    /// `--insecure`: accept any peer certificate.
    pub insecure: bool,
    /// Server: `--request-client-cert` / `--require-client-cert`.
    pub request_client_cert: bool,
    pub require_client_cert: bool,
    /// `--alpn a,b`.
    pub alpn: Option<String>,
    /// `--echo N`.
    pub echo: u32,
    /// `--timeout SEC`: the program's own deadline (exit 3).
    pub timeout_secs: u32,
    pub lifetime: Duration,
}

impl GioPeerOpts {
    fn base(role: Role) -> Self {
        let env = super::init();
        GioPeerOpts {
            role,
            backend: "gnutls".into(),
            module_dir: env.modules.clone(),
            cert: None,
            ca_file: None,
            identity: None,
            insecure: false,
            request_client_cert: false,
            require_client_cert: false,
            alpn: None,
            echo: 0,
            timeout_secs: 20,
            lifetime: DEFAULT_LIFETIME,
        }
    }

    /// A GnuTLS-backend server on a kernel-chosen port with `server.pem`.
    pub fn server(pki: &Path) -> Self {
        GioPeerOpts {
            cert: Some((pki.join("server.pem"), pki.join("server.key"))),
            ..Self::base(Role::Server { port: 0 })
        }
    }

    /// A GnuTLS-backend client of `127.0.0.1:port` trusting `ca.pem`,
    /// expecting `server.example.com`.
    pub fn client(pki: &Path, port: u16) -> Self {
        GioPeerOpts {
            ca_file: Some(pki.join("ca.pem")),
            identity: Some("server.example.com".into()),
            ..Self::base(Role::Client { port })
        }
    }

    pub fn backend(mut self, gio_use_tls: &str) -> Self {
        self.backend = gio_use_tls.into();
        self
    }

    pub fn module_dir(mut self, dir: &Path) -> Self {
        self.module_dir = dir.into();
        self
    }

    pub fn cert(mut self, cert: &Path, key: &Path) -> Self {
        self.cert = Some((cert.into(), key.into()));
        self
    }

    pub fn ca(mut self, ca: &Path) -> Self {
        self.ca_file = Some(ca.into());
        self
    }

    pub fn identity(mut self, name: &str) -> Self {
        self.identity = Some(name.into());
        self
    }

    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Server: require a client certificate verified against `ca`.
    pub fn require_client_cert(mut self, ca: &Path) -> Self {
        self.ca_file = Some(ca.into());
        self.require_client_cert = true;
        self
    }

    /// Server: ask for a client certificate verified against `ca`.
    pub fn request_client_cert(mut self, ca: &Path) -> Self {
        self.ca_file = Some(ca.into());
        self.request_client_cert = true;
        self
    }

    pub fn alpn(mut self, protocols: &str) -> Self {
        self.alpn = Some(protocols.into());
        self
    }

    pub fn echo(mut self, n: u32) -> Self {
        self.echo = n;
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(super::cprog::build("gio-peer"));
        match self.role {
            Role::Server { port } => c.arg("--server").arg(port.to_string()),
            Role::Client { port } => c.arg("--client").arg(port.to_string()),
        };
        if let Some((cert, key)) = &self.cert {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(ca) = &self.ca_file {
            c.arg("--ca").arg(ca);
        }
        if let Some(id) = &self.identity {
            c.arg("--identity").arg(id);
        }
        if self.insecure {
            c.arg("--insecure");
        }
        if self.request_client_cert {
            c.arg("--request-client-cert");
        }
        if self.require_client_cert {
            c.arg("--require-client-cert");
        }
        if let Some(a) = &self.alpn {
            c.arg("--alpn").arg(a);
        }
        c.arg("--echo").arg(self.echo.to_string());
        c.arg("--timeout").arg(self.timeout_secs.to_string());
        c.env("GIO_USE_TLS", &self.backend)
            .env("GIO_MODULE_DIR", &self.module_dir)
            .env_remove("GIO_EXTRA_MODULES")
            .env("G_DEBUG", "fatal-criticals");
        c
    }
}

/// A running gio-peer.
pub struct GioPeer {
    proc: PeerProcess,
    port: u16,
    pub opts: GioPeerOpts,
}

impl GioPeer {
    /// Spawns the program. A server is waited for (≤ [`READY_TIMEOUT`])
    /// until it prints `LISTENING <port>`; a client starts its handshake at
    /// once. Panics with the output on failure.
    pub fn start(opts: GioPeerOpts) -> Self {
        let proc = PeerProcess::spawn("gio-peer", opts.command(), opts.lifetime, None)
            .expect("spawn gio-peer");
        let port = match opts.role {
            Role::Client { port } => port,
            Role::Server { .. } => {
                let line = proc
                    .wait_line(READY_TIMEOUT, |s, l| {
                        s == Stream::Stdout
                            && (l.starts_with("LISTENING ") || l.starts_with("ERROR "))
                    })
                    .unwrap_or_else(|e| panic!("gio-peer server did not start: {e}"));
                line.strip_prefix("LISTENING ")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("gio-peer server: {line}\n{}", proc.output()))
            }
        };
        GioPeer { proc, port, opts }
    }

    /// The server's (or, for a client, the target's) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// Waits for the whole handshake report (`HANDSHAKE OK …` up to its
    /// last line, `PEER-CERT-ERRORS`) and returns the `HANDSHAKE OK` line;
    /// an `ERROR` line or the process ending fails at once.
    pub fn wait_handshake(&self, timeout: Duration) -> Result<String, String> {
        let line = self.proc.wait_line(timeout, |s, l| {
            s == Stream::Stdout && (l.starts_with("ERROR ") || l.starts_with("PEER-CERT-ERRORS "))
        })?;
        match self.value("HANDSHAKE OK") {
            Some(rest) if !line.starts_with("ERROR ") => Ok(format!("HANDSHAKE OK{rest}")),
            _ => Err(format!("gio-peer: {line}\n{}", self.proc.output())),
        }
    }

    /// Waits for the first `ERROR …` line (e.g. a handshake failure) and
    /// returns it; fails if the program reports success first.
    pub fn wait_error(&self, timeout: Duration) -> Result<String, String> {
        let line = self.proc.wait_line(timeout, |s, l| {
            s == Stream::Stdout && (l.starts_with("ERROR ") || l == "DONE")
        })?;
        if line.starts_with("ERROR ") {
            Ok(line)
        } else {
            Err(format!("gio-peer succeeded\n{}", self.proc.output()))
        }
    }

    /// Waits for `DONE` and a zero exit status (all echoes done, closed).
    pub fn wait_done(&mut self, timeout: Duration) -> Result<(), String> {
        let line = self.proc.wait_line(timeout, |s, l| {
            s == Stream::Stdout && (l.starts_with("ERROR ") || l == "DONE")
        })?;
        if line != "DONE" {
            return Err(format!("gio-peer: {line}\n{}", self.proc.output()));
        }
        let status = self.proc.wait_exit(timeout)?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("gio-peer: {status}\n{}", self.proc.output()))
        }
    }

    fn value(&self, prefix: &str) -> Option<String> {
        self.proc.lines().into_iter().find_map(|(s, l)| {
            (s == Stream::Stdout)
                .then(|| l.strip_prefix(prefix).map(str::to_owned))
                .flatten()
        })
    }

    /// The GType name of the connection (`GTlsServerConnectionGnutls`, …).
    pub fn connection_type(&self) -> Option<String> {
        self.value("CONNECTION ")
    }

    /// The GType name of the default backend (`GTlsBackendGnutls`, …).
    pub fn backend_type(&self) -> Option<String> {
        self.value("BACKEND ")
    }

    /// The peer certificate's subject (`O=…,CN=…`); None if none was
    /// received or the handshake is not done.
    pub fn peer_cert_subject(&self) -> Option<String> {
        self.value("PEER-CERT subject=")
    }

    /// The negotiated ALPN protocol from the `HANDSHAKE OK` line.
    pub fn alpn(&self) -> Option<String> {
        let line = self.value("HANDSHAKE OK ")?;
        let alpn = line.split(' ').find_map(|f| f.strip_prefix("alpn="))?;
        (alpn != "-").then(|| alpn.to_owned())
    }

    /// The client's address as the server saw it (`CLIENT …`).
    pub fn client_addr(&self) -> Option<String> {
        self.value("CLIENT ")
    }

    /// The first `ERROR …` line, if any.
    pub fn error(&self) -> Option<String> {
        self.value("ERROR ")
    }
}

impl std::ops::Deref for GioPeer {
    type Target = PeerProcess;
    fn deref(&self) -> &PeerProcess {
        &self.proc
    }
}

impl std::ops::DerefMut for GioPeer {
    fn deref_mut(&mut self) -> &mut PeerProcess {
        &mut self.proc
    }
}
