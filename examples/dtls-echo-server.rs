//! A DTLS 1.2 echo server on plain OpenSSL (no GIO), for tests and examples
//! in languages that have no DTLS server of their own (Python).
//!
//! ```sh
//! cargo run --example dtls-echo-server -- --pki DIR [--cert NAME] [--key NAME]
//!     [--request-client-cert | --require-client-cert] [--alpn a,b]
//!     [--close-after N] [--max-connections N]
//! ```
//!
//! `DIR` is a directory made by `tests/files/make-pki.sh`; the server uses
//! `DIR/NAME.pem` (default `server`, may hold a chain, leaf first) with the
//! key `DIR/NAME.key` (or `DIR/KEYNAME.key` with `--key`). With
//! `--request-client-cert` / `--require-client-cert` it asks for a client
//! certificate verified against `DIR/ca.pem` (the latter fails the handshake
//! without one).
//!
//! It binds 127.0.0.1 on an ephemeral port, prints `listening on
//! 127.0.0.1:PORT` on stdout, then one line per connection:
//! `handshake ok version=… cipher=… alpn=… client_cert_cn=…` or
//! `handshake failed: …`. It serves clients one after another, echoing every
//! datagram as one record, until killed or after N connections (default:
//! no limit). With `--close-after N` it ends each connection with
//! close_notify after echoing N datagrams.

#[allow(dead_code)]
#[path = "../tests/common/echo_peer.rs"]
mod echo_peer;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use echo_peer::{EchoPeer, EchoPeerOpts};

struct Args {
    pki: PathBuf,
    cert: String,
    key: Option<String>,
    client_cert: Option<bool>,
    alpn: Vec<String>,
    close_after: Option<usize>,
    max_connections: usize,
}

const USAGE: &str = "usage: dtls-echo-server --pki DIR [--cert NAME] [--key NAME] \
[--request-client-cert | --require-client-cert] [--alpn a,b] [--close-after N] [--max-connections N]";

fn parse_args() -> Result<Args, String> {
    let mut pki = None;
    let mut args = Args {
        pki: PathBuf::new(),
        cert: "server".into(),
        key: None,
        client_cert: None,
        alpn: Vec::new(),
        close_after: None,
        max_connections: usize::MAX,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--pki" => pki = Some(PathBuf::from(value("--pki")?)),
            "--cert" => args.cert = value("--cert")?,
            "--key" => args.key = Some(value("--key")?),
            "--request-client-cert" => args.client_cert = Some(false),
            "--require-client-cert" => args.client_cert = Some(true),
            "--alpn" => {
                args.alpn = value("--alpn")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--close-after" => {
                let v = value("--close-after")?;
                args.close_after = Some(v.parse().map_err(|_| format!("bad --close-after {v:?}"))?);
            }
            "--max-connections" => {
                let v = value("--max-connections")?;
                args.max_connections = v
                    .parse()
                    .map_err(|_| format!("bad --max-connections {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.pki = pki.ok_or("--pki is required")?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dtls-echo-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cert = args.pki.join(format!("{}.pem", args.cert));
    let key = args
        .pki
        .join(format!("{}.key", args.key.as_deref().unwrap_or(&args.cert)));
    for f in [&cert, &key] {
        if !f.is_file() {
            eprintln!("dtls-echo-server: {} not found", f.display());
            return ExitCode::from(2);
        }
    }
    let mut opts = EchoPeerOpts::new(&args.pki)
        .cert(&cert, &key)
        .max_connections(args.max_connections);
    opts.alpn = args.alpn;
    if let Some(n) = args.close_after {
        opts = opts.close_after(n);
    }
    // Serve "until killed": the peer's lifetime bounds every operation.
    opts.lifetime = Duration::from_secs(365 * 24 * 3600);
    if let Some(require) = args.client_cert {
        opts = opts.request_client_cert(&args.pki.join("ca.pem"), require);
    }
    let peer = EchoPeer::start(opts);

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", peer.addr());
    let _ = out.flush();

    let mut reported = 0;
    loop {
        let log = match peer.wait(Duration::from_secs(1), |l| {
            l.conns.len() > reported || l.finished
        }) {
            Ok(log) => log,
            Err(_) => peer.log(),
        };
        for c in &log.conns[reported..] {
            let line = if c.handshake_ok {
                format!(
                    "handshake ok version={} cipher={} alpn={} client_cert_cn={}",
                    c.version,
                    c.cipher,
                    c.alpn.as_deref().unwrap_or("-"),
                    c.client_cert_cn.as_deref().unwrap_or("-")
                )
            } else {
                format!("handshake failed: {}", c.error.as_deref().unwrap_or("?"))
            };
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        reported = log.conns.len();
        if log.finished {
            return ExitCode::SUCCESS;
        }
    }
}
