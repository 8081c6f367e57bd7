//! Issue 10: what DTLS users need beyond GIO's API — DTLS-SRTP, protocol
//! bounds, the data MTU and PSK — against `openssl s_server`, `gnutls-serv`
//! and our own server (over a pair of connected UDP sockets).

use std::time::Duration;

use gio::prelude::*;

use crate::common::dtls::{client, recv, send};
use crate::common::peers::{GnutlsServer, GnutlsServerOpts, OpensslServer, OpensslServerOpts};
use crate::common::{self, cert, pki};
use crate::dtls_server::socket_pair;

const SECOND: i64 = 1_000_000;
const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

fn pki_dir() -> std::path::PathBuf {
    common::init().pki.clone()
}

fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

fn trusting_client(addr: std::net::SocketAddr) -> gio::DtlsClientConnection {
    let c = client(addr, Some("server.example.com"));
    c.set_database(Some(&ca_db()));
    c
}

fn key() -> glib::Bytes {
    glib::Bytes::from_owned(hex(KEY_HEX))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A function of our C API, from the library GIO loaded (dlopen of the
/// same file gives the same mapping).
fn c_api<T: Copy>(name: &std::ffi::CStr) -> T {
    let path = std::ffi::CString::new(common::init().library.to_str().unwrap()).unwrap();
    // SAFETY: dlopen/dlsym with valid NUL-terminated strings; the library
    // is never unloaded (-z nodelete). `T` is the symbol's function type,
    // as declared in include/dtls-openssl.h.
    unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!handle.is_null(), "dlopen {path:?}");
        let sym = libc::dlsym(handle, name.as_ptr());
        assert!(!sym.is_null(), "dlsym {name:?}");
        std::mem::transmute_copy(&sym)
    }
}

/// `dtls_openssl_connection_export_keying_material (conn, label, length, NULL, &error)`.
fn export(conn: &impl IsA<glib::Object>, label: &str, len: usize) -> Vec<u8> {
    type F = unsafe extern "C" fn(
        *mut glib::gobject_ffi::GObject,
        *const std::ffi::c_char,
        usize,
        *mut glib::ffi::GBytes,
        *mut *mut glib::ffi::GError,
    ) -> *mut glib::ffi::GBytes;
    let f: F = c_api(c"dtls_openssl_connection_export_keying_material");
    let label = std::ffi::CString::new(label).unwrap();
    let mut error = std::ptr::null_mut();
    // SAFETY: a connection of ours, a valid label, an empty error slot.
    let bytes = unsafe {
        f(
            conn.as_ref().as_ptr(),
            label.as_ptr(),
            len,
            std::ptr::null_mut(),
            &mut error,
        )
    };
    assert!(error.is_null() && !bytes.is_null(), "export failed");
    // SAFETY: a new GBytes (transfer full).
    let bytes: glib::Bytes = unsafe { glib::translate::from_glib_full(bytes) };
    bytes.to_vec()
}

/// `dtls_openssl_connection_set_mtu (conn, mtu, &error)`.
fn c_set_mtu(conn: &impl IsA<glib::Object>, mtu: u32) -> Result<(), glib::Error> {
    type F = unsafe extern "C" fn(
        *mut glib::gobject_ffi::GObject,
        u32,
        *mut *mut glib::ffi::GError,
    ) -> glib::ffi::gboolean;
    let f: F = c_api(c"dtls_openssl_connection_set_mtu");
    let mut error = std::ptr::null_mut();
    // SAFETY: a connection of ours, an empty error slot.
    let ok = unsafe { f(conn.as_ref().as_ptr(), mtu, &mut error) };
    if ok != 0 {
        assert!(error.is_null());
        Ok(())
    } else {
        // SAFETY: set by the call (transfer full).
        Err(unsafe { glib::translate::from_glib_full(error) })
    }
}

/// Our client (trusting the test CA) and our server, with or without a
/// certificate, linked over `socket_pair`; both give up after 10 s.
fn link(certificate: bool) -> (gio::DtlsClientConnection, gio::DtlsServerConnection) {
    let (a, b) = socket_pair();
    let id = gio::NetworkAddress::new("server.example.com", 443);
    let client = gio::DtlsClientConnection::new(&a, Some(&id)).unwrap();
    client.set_database(Some(&ca_db()));
    let c = certificate.then(|| cert("server-key.pem"));
    let server = gio::DtlsServerConnection::new(&b, c.as_ref()).unwrap();
    for conn in [client.upcast_ref::<glib::Object>(), server.upcast_ref()] {
        conn.set_property("handshake-timeout", 10_000u32);
    }
    (client, server)
}

struct Shared<T>(T);
// SAFETY: our connections lock all their state (src/connection/base.rs).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(&self) -> &T {
        &self.0
    }
}

/// Both handshakes, the server's on its own thread.
fn handshake_both(
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

fn exchange(client: &gio::DtlsClientConnection, server: &gio::DtlsServerConnection) {
    send(client, b"ping", -1).unwrap();
    assert_eq!(recv(server, 2048, 5 * SECOND).unwrap(), b"ping");
    send(server, b"pong", -1).unwrap();
    assert_eq!(recv(client, 2048, 5 * SECOND).unwrap(), b"pong");
}

// ---- DTLS-SRTP ---------------------------------------------------------------

#[test]
fn srtp_with_openssl_s_server_same_keying_material() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .arg("-use_srtp")
            .arg("SRTP_AES128_CM_SHA1_80")
            .arg("-keymatexport")
            .arg("EXTRACTOR-dtls_srtp")
            .arg("-keymatexportlen")
            .arg("60"),
    );
    let conn = trusting_client(server.addr());
    assert_eq!(conn.property::<Option<String>>("srtp-profile"), None);
    conn.set_property(
        "srtp-profiles",
        "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80",
    );
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(
        conn.property::<Option<String>>("srtp-profile").as_deref(),
        Some("SRTP_AES128_CM_SHA1_80")
    );
    let ours = export(&conn, "EXTRACTOR-dtls_srtp", 60);
    let line = server
        .wait_for("Keying material: ", Duration::from_secs(5))
        .unwrap();
    let theirs = hex(line
        .trim()
        .strip_prefix("Keying material: ")
        .unwrap()
        .trim());
    assert_eq!(ours, theirs, "{}", server.output());
    assert!(server.has_line("SRTP Extension negotiated, profile=SRTP_AES128_CM_SHA1_80"));
}

#[test]
fn srtp_between_our_ends() {
    // A profile in common: the server's choice, the same keys on both ends.
    let (client, server) = link(true);
    client.set_property(
        "srtp-profiles",
        "SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_32",
    );
    server.set_property(
        "srtp-profiles",
        "SRTP_AES128_CM_SHA1_32:SRTP_AES128_CM_SHA1_80",
    );
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    for conn in [client.upcast_ref::<glib::Object>(), server.upcast_ref()] {
        assert_eq!(
            conn.property::<Option<String>>("srtp-profile").as_deref(),
            Some("SRTP_AES128_CM_SHA1_32")
        );
    }
    assert_eq!(
        export(&client, "EXTRACTOR-dtls_srtp", 60),
        export(&server, "EXTRACTOR-dtls_srtp", 60)
    );
    exchange(&client, &server);

    // None in common: the handshake succeeds without DTLS-SRTP.
    let (client, server) = link(true);
    client.set_property("srtp-profiles", "SRTP_AEAD_AES_256_GCM");
    server.set_property("srtp-profiles", "SRTP_AES128_CM_SHA1_80");
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    assert_eq!(client.property::<Option<String>>("srtp-profile"), None);
    assert_eq!(server.property::<Option<String>>("srtp-profile"), None);
}

#[test]
fn unknown_srtp_profile_is_invalid_argument() {
    let (client, _server) = link(true);
    client.set_property("srtp-profiles", "SRTP_NO_SUCH_PROFILE");
    let e = client.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::InvalidArgument), "{e}");
    assert!(e.message().contains("SRTP_NO_SUCH_PROFILE"), "{e}");
}

// ---- protocol bounds -----------------------------------------------------------

fn dtls1_server() -> OpensslServer {
    // DTLS 1.0 only; OpenSSL 3.0 needs security level 0 for it.
    OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .arg("-dtls1")
            .arg("-cipher")
            .arg("DEFAULT:@SECLEVEL=0"),
    )
}

#[test]
fn dtls_1_0_only_when_allowed() {
    // Default: DTLS 1.0 is refused, with a message naming the bounds.
    let server = dtls1_server();
    let conn = trusting_client(server.addr());
    let e = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::TlsError::Handshake), "{e}");
    assert!(e.message().contains("protocol version"), "{e}");
    drop(server);

    // min-protocol-version DTLS 1.0: negotiated and reported.
    let server = dtls1_server();
    let conn = trusting_client(server.addr());
    conn.set_property("min-protocol-version", gio::TlsProtocolVersion::Dtls10);
    conn.handshake(gio::Cancellable::NONE).unwrap_or_else(|e| {
        panic!("{e}\n--- s_server ---\n{}", server.output());
    });
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls10);
    send(&conn, b"over DTLS 1.0\n", -1).unwrap();
    server
        .wait_for("over DTLS 1.0", Duration::from_secs(5))
        .unwrap();
}

#[test]
fn max_protocol_version_caps_the_offer() {
    // A DTLS 1.2-only server and a client capped at 1.0: no version in common.
    let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir()));
    let conn = trusting_client(server.addr());
    conn.set_property("min-protocol-version", gio::TlsProtocolVersion::Dtls10);
    conn.set_property("max-protocol-version", gio::TlsProtocolVersion::Dtls10);
    let e = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::TlsError::Handshake), "{e}");
    assert!(e.message().contains("protocol version"), "{e}");

    // Our ends: server capped at 1.0 and both allowing it → DTLS 1.0.
    let (client, server) = link(true);
    client.set_property("min-protocol-version", gio::TlsProtocolVersion::Dtls10);
    server.set_property("min-protocol-version", gio::TlsProtocolVersion::Dtls10);
    server.set_property("max-protocol-version", gio::TlsProtocolVersion::Dtls10);
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    assert_eq!(client.protocol_version(), gio::TlsProtocolVersion::Dtls10);
    assert_eq!(server.protocol_version(), gio::TlsProtocolVersion::Dtls10);
    exchange(&client, &server);
}

#[test]
fn bad_protocol_bounds_are_invalid_arguments() {
    let (client, _server) = link(true);
    client.set_property("min-protocol-version", gio::TlsProtocolVersion::Dtls12);
    client.set_property("max-protocol-version", gio::TlsProtocolVersion::Dtls10);
    let e = client.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::InvalidArgument), "{e}");

    let (client, _server) = link(true);
    client.set_property("max-protocol-version", gio::TlsProtocolVersion::Tls13);
    let e = client.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::InvalidArgument), "{e}");
    assert!(e.message().contains("not a DTLS version"), "{e}");
}

// ---- data MTU --------------------------------------------------------------------

#[test]
fn max_payload_follows_the_mtu() {
    let (client, server) = link(true);
    assert_eq!(client.property::<u32>("max-payload"), 0);
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    let at_1400 = client.property::<u32>("max-payload");
    assert!(at_1400 > 1300 && at_1400 < 1400, "{at_1400}");
    client.set_property("mtu", 600u32);
    let at_600 = client.property::<u32>("max-payload");
    assert!(at_600 > 500 && at_600 < 600, "{at_600}");
    let fits = vec![7u8; at_600 as usize];
    send(&client, &fits, -1).unwrap();
    assert_eq!(recv(&server, 2048, 5 * SECOND).unwrap(), fits);
    let e = send(&client, &vec![7u8; at_600 as usize + 1], -1).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::MessageTooLarge), "{e}");

    let e = c_set_mtu(&client, 100).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::InvalidArgument), "{e}");
    assert_eq!(client.property::<u32>("mtu"), 600, "unchanged");
    c_set_mtu(&client, 1400).unwrap();
    assert_eq!(client.property::<u32>("max-payload"), at_1400);
}

// ---- PSK -------------------------------------------------------------------------

fn psk_client(
    addr: std::net::SocketAddr,
    identity: &str,
    key: &glib::Bytes,
) -> gio::DtlsClientConnection {
    // No database, no certificate: the key authenticates the server.
    let c = client(addr, Some("server.example.com"));
    c.set_database(None::<&gio::TlsDatabase>);
    c.set_property("psk-identity", identity);
    c.set_property("psk-key", key);
    c.set_property("handshake-timeout", 5_000u32);
    c
}

#[test]
fn psk_with_openssl_s_server() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .arg("-nocert")
            .arg("-psk")
            .arg(KEY_HEX)
            .arg("-psk_identity")
            .arg("alice")
            .arg("-psk_hint")
            .arg("our-hint")
            .echo_prefix("ECHO:"),
    );
    let conn = psk_client(server.addr(), "alice", &key());
    conn.handshake(gio::Cancellable::NONE)
        .unwrap_or_else(|e| panic!("{e}\n--- s_server ---\n{}", server.output()));
    let suite = conn.ciphersuite_name().unwrap();
    assert!(suite.contains("PSK"), "{suite}");
    assert!(conn.peer_certificate().is_none());
    send(&conn, b"ECHO: psk\n", -1).unwrap();
    assert_eq!(recv(&conn, 2048, 5 * SECOND).unwrap(), b"ECHO: psk\n");
}

#[test]
fn psk_unknown_identity_with_gnutls_serv() {
    // (s_server cannot be used here: it takes any identity with its one key.)
    let server = gnutls_psk_server();
    let conn = psk_client(server.addr(), "mallory", &key());
    let e = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    // GnuTLS answers an unknown user as a wrong key (no user enumeration):
    // an alert, or silence until the time limit.
    assert!(
        e.matches(gio::TlsError::Handshake) || e.matches(gio::IOErrorEnum::TimedOut),
        "{e}"
    );
}

#[test]
fn psk_wrong_key_with_openssl_s_server_fails() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .arg("-nocert")
            .arg("-psk")
            .arg(KEY_HEX)
            .arg("-psk_identity")
            .arg("alice"),
    );
    let wrong = glib::Bytes::from_owned(vec![0x55u8; 16]);
    let conn = psk_client(server.addr(), "alice", &wrong);
    let e = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    // The server cannot authenticate our Finished: it drops it (or alerts),
    // and the handshake ends by its time limit at the latest.
    assert!(
        e.matches(gio::TlsError::Handshake) || e.matches(gio::IOErrorEnum::TimedOut),
        "{e}"
    );
}

/// `gnutls-serv` with PSK key exchanges only and one user, alice.
fn gnutls_psk_server() -> GnutlsServer {
    let dir = tempfile_dir();
    let passwd = dir.join("psk.passwd");
    std::fs::write(&passwd, format!("alice:{KEY_HEX}\n")).unwrap();
    let mut opts = GnutlsServerOpts::new(&pki_dir());
    // PSK key exchanges only: gnutls-serv would rather use its certificate.
    opts.priority = Some("NORMAL:-KX-ALL:+PSK:+ECDHE-PSK".into());
    GnutlsServer::start(opts.arg("--pskpasswd").arg(passwd.to_str().unwrap()))
}

#[test]
fn psk_with_gnutls_serv() {
    let server = gnutls_psk_server();
    let conn = psk_client(server.addr(), "alice", &key());
    conn.handshake(gio::Cancellable::NONE)
        .unwrap_or_else(|e| panic!("{e}\n--- gnutls-serv ---\n{}", server.output()));
    assert!(conn.ciphersuite_name().unwrap().contains("PSK"));
    assert!(conn.peer_certificate().is_none());
    send(&conn, b"psk echo", -1).unwrap();
    assert_eq!(recv(&conn, 2048, 5 * SECOND).unwrap(), b"psk echo");
}

fn tempfile_dir() -> std::path::PathBuf {
    // Under the per-process test directory, which later runs remove.
    let d = common::init()
        .pki
        .parent()
        .unwrap()
        .join(format!("dtls-features-{:?}", std::thread::current().id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Our server with PSK only (no certificate), keys by identity.
fn psk_server(server: &gio::DtlsServerConnection, keys: &[(&'static str, glib::Bytes)]) {
    let keys = keys.to_vec();
    server.set_property("psk-identity-hint", "hint");
    server.connect("psk-lookup", false, move |args| {
        let identity: String = args[1].get().unwrap();
        let key = keys
            .iter()
            .find(|(id, _)| *id == identity)
            .map(|(_, k)| k.clone());
        Some(key.to_value())
    });
}

#[test]
fn psk_between_our_ends() {
    let (client, server) = link(false);
    psk_server(&server, &[("alice", key())]);
    client.set_database(None::<&gio::TlsDatabase>);
    client.set_property("psk-identity", "alice");
    client.set_property("psk-key", key());
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    assert!(client.ciphersuite_name().unwrap().contains("PSK"));
    assert!(client.peer_certificate().is_none());
    exchange(&client, &server);
    assert_eq!(
        export(&client, "EXTRACTOR-dtls_srtp", 60),
        export(&server, "EXTRACTOR-dtls_srtp", 60)
    );
}

#[test]
fn psk_unknown_identity_fails_both_ends() {
    let (client, server) = link(false);
    psk_server(&server, &[("alice", key())]);
    client.set_property("psk-identity", "bob");
    client.set_property("psk-key", key());
    let (c, s) = handshake_both(&client, &server);
    let s = s.unwrap_err();
    assert!(s.matches(gio::TlsError::Handshake), "{s}");
    assert!(s.message().contains("unknown PSK identity"), "{s}");
    let c = c.unwrap_err();
    assert!(c.matches(gio::TlsError::Handshake), "{c}");
    assert!(
        c.message().contains("does not know this PSK identity"),
        "{c}"
    );
}

#[test]
fn psk_wrong_key_between_our_ends_fails() {
    let (client, server) = link(false);
    psk_server(&server, &[("alice", key())]);
    for conn in [client.upcast_ref::<glib::Object>(), server.upcast_ref()] {
        conn.set_property("handshake-timeout", 3_000u32);
    }
    client.set_property("psk-identity", "alice");
    client.set_property("psk-key", glib::Bytes::from_owned(vec![1u8; 16]));
    let (c, s) = handshake_both(&client, &server);
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");
}

#[test]
fn psk_lookup_handler_calling_its_connection_gets_an_error() {
    let (client, server) = link(false);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<glib::Error>));
    let s2 = seen.clone();
    server.connect("psk-lookup", false, move |args| {
        let conn: gio::DtlsServerConnection = args[0].get().unwrap();
        // A blocking call on the same connection from inside its handshake.
        let r = recv(&conn, 100, -1);
        *s2.lock().unwrap() = r.err();
        Some(Some(key()).to_value())
    });
    client.set_property("psk-identity", "alice");
    client.set_property("psk-key", key());
    let (c, s) = handshake_both(&client, &server);
    c.unwrap();
    s.unwrap();
    let e = seen.lock().unwrap().take().expect("the call failed");
    assert!(e.matches(gio::IOErrorEnum::Pending), "{e}");
    assert!(e.message().contains("psk-lookup"), "{e}");
}

#[test]
fn psk_lookup_handler_may_use_its_connections_properties_and_readiness() {
    // The handler runs inside OpenSSL's handshake step: reading every
    // property, setting the MTU, asking for readiness and running a source
    // of the connection must neither deadlock nor be lost.
    let (client, server) = link(false);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = read.clone();
    server.connect("psk-lookup", false, move |args| {
        let conn: gio::DtlsServerConnection = args[0].get().unwrap();
        for p in conn.list_properties().iter() {
            if p.flags().contains(glib::ParamFlags::READABLE) {
                let _ = conn.property_value(p.name());
                r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        conn.set_property("mtu", 1200u32);
        // Readiness from inside the handshake: nothing, no deadlock.
        let based = conn.upcast_ref::<gio::DatagramBased>();
        let all = glib::IOCondition::IN | glib::IOCondition::OUT;
        assert_eq!(based.condition_check(all), glib::IOCondition::empty());
        let e = based
            .condition_wait(all, None, gio::Cancellable::NONE)
            .unwrap_err();
        assert!(e.matches(gio::IOErrorEnum::Pending), "{e}");
        assert!(e.message().contains("psk-lookup"), "{e}");
        // A source of the connection, run by a nested main loop here.
        let ctx = glib::MainContext::new();
        let source = based.create_source(
            all,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            |_, _| glib::ControlFlow::Continue,
        );
        source.attach(Some(&ctx));
        while ctx.iteration(false) {}
        source.destroy();
        Some(Some(key()).to_value())
    });
    client.set_property("psk-identity", "alice");
    client.set_property("psk-key", key());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let pair = Shared((client.clone(), server.clone()));
    std::thread::spawn(move || {
        let (c, s) = handshake_both(&pair.get().0, &pair.get().1);
        let _ = done_tx.send(Shared((c, s)));
    });
    let Shared((c, s)) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the handshake hung: a property call from psk-lookup deadlocked");
    c.unwrap();
    s.unwrap();
    assert!(read.load(std::sync::atomic::Ordering::SeqCst) > 10);
    assert_eq!(server.property::<u32>("mtu"), 1200);
    // The new MTU is the one in force: a datagram of 1200 bytes at most.
    let max = server.property::<u32>("max-payload");
    assert!(max > 1000 && max < 1200, "max-payload {max}");
    exchange(&client, &server);
}

#[test]
fn psk_settings_checked() {
    // Identity without key.
    let (client, _server) = link(false);
    client.set_property("psk-identity", "alice");
    let e = client.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::InvalidArgument), "{e}");
    // A server with neither certificate nor PSK: it fails, naming both
    // ways out, and the client is alerted at once.
    let (client, server) = link(false);
    let (c, s) = handshake_both(&client, &server);
    let e = s.unwrap_err();
    assert!(e.matches(gio::TlsError::BadCertificate), "{e}");
    assert!(e.message().contains("psk-lookup"), "{e}");
    let c = c.unwrap_err();
    assert!(c.matches(gio::TlsError::Handshake), "{c}");
}
