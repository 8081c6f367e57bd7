//! The README's error table, one test per row, against real peers; and the
//! debug log of a failed verification (expected identity, peer chain,
//! database, flags, flights), read from a child process.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gio::prelude::*;

use crate::common::dtls::client;
use crate::common::peers::{ClientCert, OpensslServer, OpensslServerOpts};
use crate::common::{self, pki};

fn pki_dir() -> std::path::PathBuf {
    common::init().pki.clone()
}

/// A client trusting the test CA, for `server.example.com`, that gives up
/// after 10 s at most.
fn trusting_client(addr: std::net::SocketAddr) -> gio::DtlsClientConnection {
    let c = client(addr, Some("server.example.com"));
    c.set_database(Some(
        &gio::TlsFileDatabase::new(pki("ca.pem"))
            .unwrap()
            .upcast::<gio::TlsDatabase>(),
    ));
    c.set_property("handshake-timeout", 10_000u32);
    c
}

fn client_certificate() -> gio::TlsCertificate {
    gio::TlsCertificate::from_files(pki("client.pem"), pki("client.key")).unwrap()
}

/// Asserts `err` is `code` and its message holds each of `words`.
fn assert_error(err: &glib::Error, code: gio::TlsError, words: &[&str]) {
    eprintln!("{code:?}: {err}");
    assert!(err.matches(code), "expected {code:?}, got: {err}");
    for w in words {
        assert!(err.message().contains(w), "{w:?} missing from: {err}");
    }
}

#[test]
fn server_requires_a_certificate_we_lack() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .client_cert(ClientCert::Require, &pki_dir().join("ca.pem"))
            .arg("-verify_return_error"),
    );
    let conn = trusting_client(server.addr());
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_error(
        &err,
        gio::TlsError::CertificateRequired,
        &[
            "the server requires a client certificate, and none is set",
            "peer alert handshake_failure",
            "OpenSSL: ",
        ],
    );
}

#[test]
fn no_cipher_suite_in_common() {
    // The server takes a PSK suite only; a client without PSK offers none.
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .arg("-cipher")
            .arg("PSK-AES128-GCM-SHA256")
            .arg("-psk")
            .arg("00112233445566778899aabbccddeeff"),
    );
    let conn = trusting_client(server.addr());
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_error(
        &err,
        gio::TlsError::Handshake,
        &[
            "the peer refused the handshake",
            "peer alert handshake_failure",
        ],
    );
}

#[test]
fn no_protocol_version_in_common() {
    // The server speaks DTLS 1.2 only; the client is limited to DTLS 1.0.
    let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir()));
    let conn = trusting_client(server.addr());
    conn.set_property("min-protocol-version", gio::TlsProtocolVersion::Dtls10);
    conn.set_property("max-protocol-version", gio::TlsProtocolVersion::Dtls10);
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_error(
        &err,
        gio::TlsError::Handshake,
        &["no protocol version in common", "protocol_version"],
    );
}

#[test]
fn server_rejects_our_certificate() {
    // The server trusts another CA than the one that signed client.pem.
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .client_cert(ClientCert::Require, &pki_dir().join("other-ca.pem"))
            .arg("-verify_return_error"),
    );
    let conn = trusting_client(server.addr());
    conn.set_certificate(&client_certificate());
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_error(
        &err,
        gio::TlsError::Handshake,
        &[
            "the peer does not trust the CA that issued this end's certificate",
            "peer alert unknown_ca",
        ],
    );
}

/// A UDP peer on 127.0.0.1 that answers every datagram with `answer(d)`
/// until dropped.
struct UdpPeer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl UdpPeer {
    fn start(answer: fn(&[u8]) -> Vec<u8>) -> UdpPeer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut answered = 0;
            let mut buf = [0u8; 65536];
            let until = Instant::now() + Duration::from_secs(30);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    if socket.send_to(&answer(&buf[..n]), from).is_ok() {
                        answered += 1;
                    }
                }
            }
            answered
        });
        UdpPeer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the peer; how many datagrams it answered.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for UdpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn udp_echo_is_not_dtls() {
    let peer = UdpPeer::start(|d| d.to_vec());
    let conn = trusting_client(peer.addr);
    let started = Instant::now();
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_error(
        &err,
        gio::TlsError::NotTls,
        &["does not speak DTLS", "sent a ClientHello back"],
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert!(peer.stop() >= 1);
}

#[test]
fn a_peer_answering_garbage_is_not_dtls() {
    let peer = UdpPeer::start(|_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
    let conn = trusting_client(peer.addr);
    conn.set_property("retransmit-timeout", 100u32);
    conn.set_property("handshake-timeout", 1_000u32);
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_error(
        &err,
        gio::TlsError::NotTls,
        &["the peer answered, but not with DTLS", "handshake-timeout"],
    );
    assert!(peer.stop() >= 1);
}

// ---- debug logs, from a child process --------------------------------------

const CHILD: &str = "DTLS_OPENSSL_ERROR_TABLE_CHILD";

/// Runs one of the `*_child` tests below in a fresh process with debug
/// logs on; returns its stdout and stderr (GLib writes debug messages to
/// stdout).
fn run_child(test: &str) -> String {
    let mut cmd = common::child_test_command(&[test]);
    cmd.env(CHILD, "1").env("G_MESSAGES_DEBUG", "dtls-openssl");
    common::run_child_tests(cmd, &[test], std::time::Duration::from_secs(120))
}

/// Fails the handshake's verification: the server's certificate does not
/// name `wrong.example.com`. The file database is set before the handshake.
#[test]
fn verification_log_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir()));
    let conn = client(server.addr(), Some("wrong.example.com"));
    conn.set_database(Some(
        &gio::TlsFileDatabase::new(pki("ca.pem"))
            .unwrap()
            .upcast::<gio::TlsDatabase>(),
    ));
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
}

/// The same handshake through the default database (the system store).
#[test]
fn default_database_log_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir()));
    let conn = client(server.addr(), Some("server.example.com"));
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
}

#[test]
fn a_failed_verification_is_diagnosed_in_the_debug_log() {
    let log = run_child("error_table::verification_log_child");
    for needle in [
        "expected identity wrong.example.com",
        "database: file database ",
        "ca.pem",
        "peer certificate 0: subject O=gio-dtls-openssl tests, CN=server.example.com",
        "SAN DNS:server.example.com, DNS:localhost, IP:127.0.0.1, IP:::1",
        "issuer CN=Test Root CA",
        "verification found: bad identity",
        "sending ",
        ": ClientHello (seq 0, ",
        "received ",
        "ServerHello (seq ",
        "handshake complete: DTLS 1.2, cipher suite TLS_",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }
    // No key or secret: nothing that looks like PEM or a key log line.
    assert!(!log.contains("PRIVATE KEY") && !log.contains("CLIENT_RANDOM"));
}

#[test]
fn the_system_store_loads_only_when_used() {
    let with_file = run_child("error_table::verification_log_child");
    assert!(
        !with_file.contains("system trust store:"),
        "a file database was set before the handshake:\n{with_file}"
    );
    let with_default = run_child("error_table::default_database_log_child");
    assert!(
        with_default.contains("system trust store: ")
            && with_default.contains("database: the system trust store (default database)"),
        "{with_default}"
    );
}
