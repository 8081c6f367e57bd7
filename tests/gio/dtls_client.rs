//! The DTLS client against real peers: `openssl s_server`, `gnutls-serv`,
//! and an echo server written directly on OpenSSL (tests/common/echo_peer.rs).

use std::time::{Duration, Instant};

use gio::prelude::*;
use gio::TlsCertificateFlags as F;

use crate::common::dtls::{client, connected_socket, recv, recv_vectored, send, send_many};
use crate::common::echo_peer::{EchoPeer, EchoPeerOpts};
use crate::common::peers::{
    ClientCert, GnutlsServer, GnutlsServerOpts, OpensslServer, OpensslServerOpts,
};
use crate::common::relay::{Direction, Relay};
use crate::common::{self, cert, pki};

const SECOND: i64 = 1_000_000;

fn pki_dir() -> std::path::PathBuf {
    common::init().pki.clone()
}

fn ca_db() -> gio::TlsDatabase {
    gio::TlsFileDatabase::new(pki("ca.pem")).unwrap().upcast()
}

/// A client trusting the test CA, for `server.example.com`.
fn trusting_client(addr: std::net::SocketAddr) -> gio::DtlsClientConnection {
    let c = client(addr, Some("server.example.com"));
    c.set_database(Some(&ca_db()));
    c
}

fn echo_peer() -> EchoPeer {
    EchoPeer::start(EchoPeerOpts::new(&pki_dir()))
}

#[test]
fn handshake_and_echo_with_openssl_s_server() {
    let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir()).echo_prefix("ECHO:"));
    let conn = trusting_client(server.addr());
    let notified = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    for p in ["peer-certificate", "protocol-version", "ciphersuite-name"] {
        let n = notified.clone();
        conn.connect_notify_local(Some(p), move |_, ps| {
            n.borrow_mut().push(ps.name().to_string())
        });
    }
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
    let suite = conn.ciphersuite_name().unwrap();
    assert!(
        suite.starts_with("TLS_ECDHE_ECDSA_WITH_"),
        "IANA name expected: {suite}"
    );
    let peer = conn.peer_certificate().unwrap();
    assert!(peer.is_same(&cert("server.pem")));
    assert!(peer
        .subject_name()
        .unwrap()
        .ends_with("CN=server.example.com"));
    assert_eq!(conn.peer_certificate_errors(), F::empty());
    assert_eq!(notified.borrow().len(), 3, "{:?}", notified.borrow());

    for i in 0..3 {
        let line = format!("ECHO: hello {i}\n");
        send(&conn, line.as_bytes(), -1).unwrap();
        let got = recv(&conn, 2048, 5 * SECOND).unwrap();
        assert!(
            got == line.as_bytes(),
            "echo {i}: got {:?}\n--- s_server output ---\n{}",
            String::from_utf8_lossy(&got),
            server.output()
        );
    }
    conn.close(gio::Cancellable::NONE).unwrap();
    server.wait_for("DONE", Duration::from_secs(5)).unwrap();
}

#[test]
fn echo_with_gnutls_serv() {
    let server = GnutlsServer::start(GnutlsServerOpts::new(&pki_dir()));
    let conn = trusting_client(server.addr());
    for size in [1usize, 64, 100] {
        let data: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        send(&conn, &data, -1).unwrap();
        assert_eq!(recv(&conn, 2048, 5 * SECOND).unwrap(), data);
    }
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
}

#[test]
fn large_datagrams_and_the_mtu() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).mtu(16_000));
    let conn = trusting_client(peer.addr());
    let kb: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    send(&conn, &kb, -1).unwrap();
    assert_eq!(recv(&conn, 2048, 5 * SECOND).unwrap(), kb);
    // At the default MTU (1400) a 10 000-byte message does not fit.
    let big = vec![7u8; 10_000];
    let err = send(&conn, &big, -1).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::MessageTooLarge), "{err}");
    // A larger MTU lets it through (loopback carries 64 KiB datagrams).
    conn.set_property("mtu", 16_000u32);
    send(&conn, &big, -1).unwrap();
    assert_eq!(recv(&conn, 16_384, 5 * SECOND).unwrap(), big);
}

#[test]
fn a_record_larger_than_the_buffers_is_kept_not_truncated() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    let data = vec![42u8; 500];
    send(&conn, &data, -1).unwrap();
    let err = recv(&conn, 100, 5 * SECOND).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::MessageTooLarge), "{err}");
    assert!(err.message().contains("500"), "{err}");
    // Several vectors adding up to enough receive it whole.
    let got = recv_vectored(&conn, &[&[200, 200, 200]], 0, 5 * SECOND, None).unwrap();
    assert_eq!(got, vec![data]);
}

#[test]
fn several_messages_per_call() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    let msgs: [&[u8]; 3] = [b"one", b"two", b"three"];
    assert_eq!(send_many(&conn, &msgs, -1, None).unwrap(), 3);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 3 && Instant::now() < deadline {
        got.extend(recv_vectored(&conn, &[&[64], &[64], &[64]], 0, 5 * SECOND, None).unwrap());
    }
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    // Nothing left: timeout 0 would block, a short timeout times out.
    let err = recv(&conn, 64, 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
    let err = recv(&conn, 64, 50_000).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
}

fn failing_handshake(server_cert: &str, identity: Option<&str>) -> (glib::Error, F) {
    let key = server_cert.replace(".pem", ".key");
    // s_server, at security level 0 so it agrees to present a SHA-1 chain.
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .cert(&pki_dir().join(server_cert), &pki_dir().join(key))
            .arg("-cipher")
            .arg("DEFAULT:@SECLEVEL=0"),
    );
    let conn = client(server.addr(), identity);
    conn.set_database(Some(&ca_db()));
    let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    let s = seen.clone();
    conn.connect_accept_certificate(move |_, _, errors| {
        s.set(Some(errors));
        false
    });
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert_eq!(
        seen.get(),
        Some(conn.peer_certificate_errors()),
        "accept-certificate got the same flags"
    );
    // Rejected before any application data: sends fail with the same error.
    let again = send(&conn, b"x", -1).unwrap_err();
    assert_eq!(again.message(), err.message());
    (err, conn.peer_certificate_errors())
}

#[test]
fn bad_certificates_fail_with_exact_flags() {
    let cases = [
        ("server-expired.pem", F::EXPIRED),
        ("server-future.pem", F::NOT_ACTIVATED),
        ("server-other-ca.pem", F::UNKNOWN_CA),
        ("self-signed.pem", F::UNKNOWN_CA),
        ("server-weak.pem", F::INSECURE),
    ];
    for (file, flags) in cases {
        let (err, got) = failing_handshake(file, Some("server.example.com"));
        assert!(err.matches(gio::TlsError::BadCertificate), "{file}: {err}");
        assert_eq!(got, flags, "{file}");
    }
}

#[test]
fn wrong_or_missing_identity_is_bad_identity() {
    let (err, flags) = failing_handshake("server.pem", Some("wrong.example.com"));
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
    assert_eq!(flags, F::BAD_IDENTITY);
    let (_, flags) = failing_handshake("server.pem", None);
    assert_eq!(flags, F::BAD_IDENTITY);
}

#[test]
fn ip_identity_is_matched_against_ip_sans() {
    let peer = echo_peer();
    let socket = connected_socket(peer.addr());
    let id = gio::InetSocketAddress::from_string("127.0.0.1", peer.addr().port() as u32).unwrap();
    let conn = gio::DtlsClientConnection::new(&socket, Some(&id)).unwrap();
    conn.set_database(Some(&ca_db()));
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(conn.peer_certificate_errors(), F::empty());
    // No SNI for an address literal.
    let log = peer
        .wait(Duration::from_secs(5), |l| !l.conns.is_empty())
        .unwrap();
    assert_eq!(log.conns[0].sni, None);
}

#[test]
fn sni_carries_the_host_name() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    conn.handshake(gio::Cancellable::NONE).unwrap();
    let log = peer
        .wait(Duration::from_secs(5), |l| !l.conns.is_empty())
        .unwrap();
    assert_eq!(log.conns[0].sni.as_deref(), Some("server.example.com"));
}

#[test]
fn accept_certificate_can_override() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).cert(
        &pki_dir().join("server-other-ca.pem"),
        &pki_dir().join("server-other-ca.key"),
    ));
    let conn = trusting_client(peer.addr());
    conn.connect_accept_certificate(|_, _, errors| errors == F::UNKNOWN_CA);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(conn.peer_certificate_errors(), F::UNKNOWN_CA);
    send(&conn, b"ping", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"ping");
}

/// Peer-to-peer pinning: no database, the self-signed peer is accepted by
/// its SHA-256 fingerprint.
#[test]
fn certificate_pinning_without_a_ca() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).cert(
        &pki_dir().join("self-signed.pem"),
        &pki_dir().join("self-signed.key"),
    ));
    let expected = openssl::sha::sha256(&common::der(&cert("self-signed.pem")));
    let conn = client(peer.addr(), Some("peer"));
    conn.set_database(None::<&gio::TlsDatabase>);
    let pinned = move |_: &gio::DtlsClientConnection, peer: &gio::TlsCertificate, errors: F| {
        assert!(errors.contains(F::UNKNOWN_CA));
        openssl::sha::sha256(&common::der(peer)) == expected
    };
    conn.connect_accept_certificate(pinned);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    send(&conn, b"pinned", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"pinned");

    // Another self-signed peer is refused by the same pin.
    let other = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).cert(
        &pki_dir().join("server-other-ca.pem"),
        &pki_dir().join("server-other-ca.key"),
    ));
    let conn = client(other.addr(), Some("peer"));
    conn.set_database(None::<&gio::TlsDatabase>);
    conn.connect_accept_certificate(pinned);
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(err.matches(gio::TlsError::BadCertificate), "{err}");
}

#[test]
fn alpn_is_negotiated() {
    let server = OpensslServer::start(OpensslServerOpts::new(&pki_dir()).alpn("coap,foo"));
    let conn = trusting_client(server.addr());
    conn.set_advertised_protocols(&["foo", "bar"]);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(conn.negotiated_protocol().as_deref(), Some("foo"));
    // s_server prints its side after the handshake: wait for it.
    server
        .wait_for("ALPN protocols selected", Duration::from_secs(5))
        .unwrap();
    assert_eq!(server.selected_alpn().as_deref(), Some("foo"));
    // Without a common protocol there is none.
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).alpn(&["x"]));
    let conn = trusting_client(peer.addr());
    conn.set_advertised_protocols(&["foo"]);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert!(conn.negotiated_protocol().is_none());
}

/// `g_dtls_connection_get_channel_binding_data` (not in the gio crate).
fn binding(
    conn: &gio::DtlsClientConnection,
    kind: gio::TlsChannelBindingType,
) -> Result<Vec<u8>, glib::Error> {
    use glib::translate::*;
    let mut error = std::ptr::null_mut();
    // SAFETY: a live connection and a fresh byte array we own.
    unsafe {
        let data = glib::ffi::g_byte_array_new();
        let ok = gio::ffi::g_dtls_connection_get_channel_binding_data(
            conn.upcast_ref::<gio::DtlsConnection>().to_glib_none().0,
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

#[test]
fn channel_binding_data() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    let err = binding(&conn, gio::TlsChannelBindingType::Unique).unwrap_err();
    assert!(
        err.matches(gio::TlsChannelBindingError::InvalidState),
        "{err}"
    );
    conn.handshake(gio::Cancellable::NONE).unwrap();
    let unique = binding(&conn, gio::TlsChannelBindingType::Unique).unwrap();
    assert_eq!(unique.len(), 12, "the client's Finished (full handshake)");
    let endpoint = binding(&conn, gio::TlsChannelBindingType::ServerEndPoint).unwrap();
    assert_eq!(
        endpoint,
        openssl::sha::sha256(&common::der(&cert("server.pem"))).to_vec()
    );
    let exporter = binding(&conn, gio::TlsChannelBindingType::Exporter).unwrap();
    assert_eq!(exporter.len(), 32);
}

#[test]
fn client_certificate_by_property_and_accepted_cas() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .client_cert(ClientCert::Require, &pki_dir().join("ca.pem")),
    );
    let conn = trusting_client(server.addr());
    let mine = gio::TlsCertificate::from_files(pki("client.pem"), pki("client.key")).unwrap();
    conn.set_certificate(&mine);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    server.wait_handshake(1, Duration::from_secs(5)).unwrap();
    assert!(server
        .client_cert_subject()
        .unwrap()
        .contains("client.example.com"));
    let cas = conn.accepted_cas();
    assert_eq!(cas.len(), 1);
    let ca = openssl::x509::X509::from_der(&common::der(&cert("ca.pem"))).unwrap();
    assert_eq!(cas[0].to_vec(), ca.subject_name().to_der().unwrap());

    // Without a certificate the server refuses us.
    let server = OpensslServer::start(
        OpensslServerOpts::new(&pki_dir())
            .client_cert(ClientCert::Require, &pki_dir().join("ca.pem")),
    );
    let conn = trusting_client(server.addr());
    let err = conn.handshake(gio::Cancellable::NONE).unwrap_err();
    assert!(
        err.domain() == gio::TlsError::domain() || err.domain() == gio::IOErrorEnum::domain(),
        "{err}"
    );
}

/// A GTlsInteraction that supplies client.pem when asked (gio-rs has no
/// subclassing for it, so the vfunc is set by hand).
mod interaction {
    use glib::subclass::prelude::*;
    use glib::translate::*;

    #[derive(Default)]
    pub struct Supplier {
        pub asked: std::cell::Cell<u32>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Supplier {
        const NAME: &'static str = "TestCertificateSupplier";
        type Type = SupplierObj;
        type ParentType = gio::TlsInteraction;
    }

    impl ObjectImpl for Supplier {}

    unsafe extern "C" fn request_certificate(
        interaction: *mut gio::ffi::GTlsInteraction,
        connection: *mut gio::ffi::GTlsConnection,
        _flags: gio::ffi::GTlsCertificateRequestFlags,
        _cancellable: *mut gio::ffi::GCancellable,
        _error: *mut *mut glib::ffi::GError,
    ) -> gio::ffi::GTlsInteractionResult {
        use glib::prelude::*;
        // SAFETY: called by GIO on our instance with a live connection.
        let (imp, conn) = unsafe {
            (
                (*(interaction as *const <Supplier as ObjectSubclass>::Instance)).imp(),
                glib::Object::from_glib_none(connection as *mut glib::gobject_ffi::GObject),
            )
        };
        imp.asked.set(imp.asked.get() + 1);
        let cert = gio::TlsCertificate::from_files(
            crate::common::pki("client.pem"),
            crate::common::pki("client.key"),
        )
        .unwrap();
        // A DTLS connection is not a GTlsConnection: use the property.
        conn.set_property("certificate", &cert);
        gio::ffi::G_TLS_INTERACTION_HANDLED
    }

    // SAFETY: the class struct is a GTlsInteractionClass; parent init first.
    unsafe impl IsSubclassable<Supplier> for gio::TlsInteraction {
        fn class_init(class: &mut glib::Class<Self>) {
            Self::parent_class_init::<Supplier>(class);
            let klass: &mut gio::ffi::GTlsInteractionClass = class.as_mut();
            klass.request_certificate = Some(request_certificate);
        }
    }

    glib::wrapper! {
        pub struct SupplierObj(ObjectSubclass<Supplier>) @extends gio::TlsInteraction;
    }
}

/// A GTlsInteraction that only implements the asynchronous request, and
/// answers from an idle callback (like one showing a dialog would).
mod async_interaction {
    use glib::subclass::prelude::*;
    use glib::translate::*;

    #[derive(Default)]
    pub struct AsyncSupplier {
        pub asked: std::cell::Cell<u32>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for AsyncSupplier {
        const NAME: &'static str = "TestAsyncCertificateSupplier";
        type Type = AsyncSupplierObj;
        type ParentType = gio::TlsInteraction;
    }

    impl ObjectImpl for AsyncSupplier {}

    unsafe extern "C" fn request_async(
        interaction: *mut gio::ffi::GTlsInteraction,
        connection: *mut gio::ffi::GTlsConnection,
        _flags: gio::ffi::GTlsCertificateRequestFlags,
        cancellable: *mut gio::ffi::GCancellable,
        callback: gio::ffi::GAsyncReadyCallback,
        user_data: glib::ffi::gpointer,
    ) {
        use glib::prelude::*;
        // SAFETY: called by the library with our instance and a live connection.
        unsafe {
            let imp = (*(interaction as *const <AsyncSupplier as ObjectSubclass>::Instance)).imp();
            imp.asked.set(imp.asked.get() + 1);
            let task =
                gio::ffi::g_task_new(interaction as *mut _, cancellable, callback, user_data);
            let conn = glib::Object::from_glib_none(connection as *mut glib::gobject_ffi::GObject);
            let task_ptr = task as usize;
            // Answer later, from the caller's (thread-default) context.
            let answer = glib::thread_guard::ThreadGuard::new(move || {
                let cert = gio::TlsCertificate::from_files(
                    crate::common::pki("client.pem"),
                    crate::common::pki("client.key"),
                )
                .unwrap();
                conn.set_property("certificate", &cert);
                let task = task_ptr as *mut gio::ffi::GTask;
                gio::ffi::g_task_return_int(task, gio::ffi::G_TLS_INTERACTION_HANDLED as isize);
                glib::gobject_ffi::g_object_unref(task as *mut _);
            });
            let idle = glib::idle_source_new(None, glib::Priority::DEFAULT, move || {
                (answer.get_ref())();
                glib::ControlFlow::Break
            });
            idle.attach(Some(&glib::MainContext::ref_thread_default()));
        }
    }

    unsafe extern "C" fn request_finish(
        _interaction: *mut gio::ffi::GTlsInteraction,
        result: *mut gio::ffi::GAsyncResult,
        error: *mut *mut glib::ffi::GError,
    ) -> gio::ffi::GTlsInteractionResult {
        // SAFETY: the task made by request_async.
        unsafe {
            gio::ffi::g_task_propagate_int(result as *mut gio::ffi::GTask, error)
                as gio::ffi::GTlsInteractionResult
        }
    }

    unsafe extern "C" fn request_sync(
        _interaction: *mut gio::ffi::GTlsInteraction,
        _connection: *mut gio::ffi::GTlsConnection,
        _flags: gio::ffi::GTlsCertificateRequestFlags,
        _cancellable: *mut gio::ffi::GCancellable,
        _error: *mut *mut glib::ffi::GError,
    ) -> gio::ffi::GTlsInteractionResult {
        eprintln!("the synchronous request must not be used by handshake_async");
        std::process::abort();
    }

    // SAFETY: the class struct is a GTlsInteractionClass; parent init first.
    unsafe impl IsSubclassable<AsyncSupplier> for gio::TlsInteraction {
        fn class_init(class: &mut glib::Class<Self>) {
            Self::parent_class_init::<AsyncSupplier>(class);
            let klass: &mut gio::ffi::GTlsInteractionClass = class.as_mut();
            klass.request_certificate = Some(request_sync);
            klass.request_certificate_async = Some(request_async);
            klass.request_certificate_finish = Some(request_finish);
        }
    }

    glib::wrapper! {
        pub struct AsyncSupplierObj(ObjectSubclass<AsyncSupplier>) @extends gio::TlsInteraction;
    }
}

/// handshake_async asks an interaction through its async request, so the
/// caller's main context keeps running while it decides.
#[test]
fn handshake_async_uses_the_async_interaction_request() {
    let peer = EchoPeer::start(
        EchoPeerOpts::new(&pki_dir()).request_client_cert(&pki_dir().join("ca.pem"), true),
    );
    let conn = trusting_client(peer.addr());
    let ctx = glib::MainContext::new();
    ctx.with_thread_default(|| {
        let supplier: async_interaction::AsyncSupplierObj = glib::Object::new();
        conn.set_interaction(Some(&supplier));
        let done = std::rc::Rc::new(std::cell::RefCell::new(None));
        let d = done.clone();
        conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
            *d.borrow_mut() = Some(r)
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.borrow().is_none() && Instant::now() < deadline {
            ctx.iteration(true);
        }
        let r = done.borrow_mut().take();
        r.expect("handshake_async finished").unwrap();
        assert_eq!(
            glib::subclass::prelude::ObjectSubclassIsExt::imp(&supplier)
                .asked
                .get(),
            1
        );
    })
    .unwrap();
    send(&conn, b"async cert", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"async cert");
    assert_eq!(
        peer.log().conns[0].client_cert_cn.as_deref(),
        Some("client.example.com")
    );
}

#[test]
fn client_certificate_by_interaction() {
    let peer = EchoPeer::start(
        EchoPeerOpts::new(&pki_dir()).request_client_cert(&pki_dir().join("ca.pem"), true),
    );
    let conn = trusting_client(peer.addr());
    let supplier: interaction::SupplierObj = glib::Object::new();
    conn.set_interaction(Some(&supplier));
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert_eq!(
        glib::subclass::prelude::ObjectSubclassIsExt::imp(&supplier)
            .asked
            .get(),
        1
    );
    send(&conn, b"with cert", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"with cert");
    let log = peer.log();
    assert_eq!(
        log.conns[0].client_cert_cn.as_deref(),
        Some("client.example.com")
    );
    assert!(conn.certificate().unwrap().is_same(&cert("client.pem")));
}

/// The first datagram in each direction is lost; the flights are resent
/// on OpenSSL's timer and the handshake completes.
#[test]
fn lost_flights_are_retransmitted() {
    let peer = echo_peer();
    let relay = Relay::start(peer.addr());
    relay.drop_first_each_way();
    let conn = trusting_client(relay.addr());
    let started = Instant::now();
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        relay.count(Direction::ToServer) >= 3,
        "the ClientHello went out again"
    );
    send(&conn, b"after loss", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"after loss");
}

/// The `mtu` property bounds every datagram we send, handshake included.
#[test]
fn mtu_is_honoured() {
    let peer = EchoPeer::start(
        EchoPeerOpts::new(&pki_dir()).request_client_cert(&pki_dir().join("ca.pem"), true),
    );
    let relay = Relay::start(peer.addr());
    let conn = trusting_client(relay.addr());
    conn.set_property("mtu", 300u32);
    // A client chain (leaf + intermediate) makes a flight bigger than 300.
    let mine = gio::TlsCertificate::from_files(pki("client.pem"), pki("client.key")).unwrap();
    conn.set_certificate(&mine);
    conn.handshake(gio::Cancellable::NONE).unwrap();
    let mut fitted = 0;
    for size in [1usize, 100, 200, 250, 260, 270, 280] {
        match send(&conn, &vec![1u8; size], -1) {
            Ok(()) => {
                fitted = size;
                assert_eq!(recv(&conn, 512, 5 * SECOND).unwrap().len(), size);
            }
            Err(e) => assert!(e.matches(gio::IOErrorEnum::MessageTooLarge), "{e}"),
        }
    }
    assert!(
        fitted >= 200,
        "records up to the MTU minus overhead fit ({fitted})"
    );
    let sizes = relay.sizes(Direction::ToServer);
    assert!(sizes.iter().all(|&s| s <= 300), "{sizes:?}");
    assert!(
        sizes.iter().filter(|&&s| s > 250).count() >= 2,
        "the handshake used the room: {sizes:?}"
    );
}

/// The whole handshake and data path through a libnice-style base socket:
/// no condition_check/condition_wait (they abort), flags and timeout 0
/// only, WOULD_BLOCK on every other send.
#[test]
fn strict_base_socket() {
    use crate::common::strict_socket::StrictSocket;
    let peer = echo_peer();
    common::init();
    let socket = connected_socket(peer.addr());
    let strict = StrictSocket::new(&socket);
    let id = gio::NetworkAddress::new("server.example.com", 0);
    let conn = gio::DtlsClientConnection::new(&strict, Some(&id)).unwrap();
    conn.set_database(Some(&ca_db()));
    conn.handshake(gio::Cancellable::NONE).unwrap();
    for i in 0..5 {
        let msg = format!("strict {i}");
        send(&conn, msg.as_bytes(), -1).unwrap();
        assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), msg.as_bytes());
    }
    let counts = strict.counts();
    assert_eq!(counts.condition_check, 0);
    assert_eq!(counts.condition_wait, 0);
    assert_eq!(counts.bad_flags, 0);
    assert!(counts.send_would_block > 0, "{counts:?}");
    assert!(counts.create_source > 0, "{counts:?}");
}

/// Non-blocking use from a GMainLoop: sends and receives with timeout 0,
/// woken by the connection's own GSource.
#[test]
fn non_blocking_io_driven_by_a_gsource() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    let ctx = glib::MainContext::new();
    assert_eq!(
        crate::common::dtls::exchange_via_source(&conn, &ctx, &[b"a", b"b", b"c"]),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
}

#[test]
fn handshake_async_completes_in_the_callers_context() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    let ctx = glib::MainContext::new();
    let result = ctx
        .with_thread_default(|| {
            let thread = std::thread::current().id();
            let done = std::rc::Rc::new(std::cell::RefCell::new(None));
            let d = done.clone();
            conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
                assert_eq!(std::thread::current().id(), thread);
                *d.borrow_mut() = Some(r);
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while done.borrow().is_none() && Instant::now() < deadline {
                ctx.iteration(true);
            }
            let r = done.borrow_mut().take();
            r.expect("handshake_async finished")
        })
        .unwrap();
    result.unwrap();
    assert_eq!(conn.protocol_version(), gio::TlsProtocolVersion::Dtls12);
}

#[test]
fn close_notify_reaches_the_peer() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    send(&conn, b"bye", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"bye");
    conn.close(gio::Cancellable::NONE).unwrap();
    let log = peer
        .wait(Duration::from_secs(5), |l| {
            l.conns.first().is_some_and(|c| c.closed_by_client)
        })
        .unwrap();
    assert!(log.conns[0].closed_by_client);
}

/// The peer's close_notify is end-of-stream: a 0-byte message, every time.
#[test]
fn close_notify_from_the_peer_is_end_of_stream() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).close_after(1));
    let conn = trusting_client(peer.addr());
    send(&conn, b"last", -1).unwrap();
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"last");
    assert_eq!(recv(&conn, 64, 5 * SECOND).unwrap(), b"", "end of stream");
    assert_eq!(recv(&conn, 64, 0).unwrap(), b"", "and it stays so");
}

/// One thread receives while another sends, on the same connection.
#[test]
fn one_thread_receives_while_another_sends() {
    struct Shared(gio::DtlsClientConnection);
    // SAFETY: our connection type is thread-safe (GIO's contract for DTLS
    // connections); the gio crate does not know it.
    unsafe impl Send for Shared {}
    unsafe impl Sync for Shared {}
    let peer = echo_peer();
    let conn = std::sync::Arc::new(Shared(trusting_client(peer.addr())));
    conn.0.handshake(gio::Cancellable::NONE).unwrap();
    const N: usize = 200;
    let receiver = {
        let conn = conn.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < N {
                match recv(&conn.0, 64, 5 * SECOND) {
                    Ok(d) => got.push(d),
                    Err(e) => panic!("receive {}: {e}", got.len()),
                }
            }
            got
        })
    };
    for i in 0..N {
        send(&conn.0, format!("{i:04}").as_bytes(), -1).unwrap();
    }
    let got = receiver.join().unwrap();
    // Loopback UDP keeps order in practice; DTLS itself does not promise it.
    let mut numbers: Vec<usize> = got
        .iter()
        .map(|d| std::str::from_utf8(d).unwrap().parse().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (0..N).collect::<Vec<_>>());
}

/// The connection's own condition_wait/condition_check account for the
/// socket, through non-blocking receives only.
#[test]
fn condition_wait_and_check() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    conn.handshake(gio::Cancellable::NONE).unwrap();
    assert!(conn
        .condition_check(glib::IOCondition::OUT)
        .contains(glib::IOCondition::OUT));
    assert!(!conn
        .condition_check(glib::IOCondition::IN)
        .contains(glib::IOCondition::IN));
    let err = conn
        .condition_wait(
            glib::IOCondition::IN,
            Some(Duration::from_millis(50)),
            gio::Cancellable::NONE,
        )
        .unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::TimedOut), "{err}");
    send(&conn, b"wake", -1).unwrap();
    conn.condition_wait(
        glib::IOCondition::IN,
        Some(Duration::from_secs(5)),
        gio::Cancellable::NONE,
    )
    .unwrap();
    assert_eq!(recv(&conn, 64, 0).unwrap(), b"wake");
}

#[test]
fn shutdown_async_sends_close_notify() {
    let peer = echo_peer();
    let conn = trusting_client(peer.addr());
    conn.handshake(gio::Cancellable::NONE).unwrap();
    // A second handshake call reports the first one's result.
    conn.handshake(gio::Cancellable::NONE).unwrap();
    let ctx = glib::MainContext::new();
    let result = ctx
        .with_thread_default(|| {
            let done = std::rc::Rc::new(std::cell::RefCell::new(None));
            let d = done.clone();
            conn.shutdown_async(
                true,
                true,
                glib::Priority::DEFAULT,
                gio::Cancellable::NONE,
                move |r| {
                    *d.borrow_mut() = Some(r);
                },
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while done.borrow().is_none() && Instant::now() < deadline {
                ctx.iteration(true);
            }
            let r = done.borrow_mut().take();
            r.expect("shutdown_async finished")
        })
        .unwrap();
    result.unwrap();
    peer.wait(Duration::from_secs(5), |l| {
        l.conns.first().is_some_and(|c| c.closed_by_client)
    })
    .unwrap();
    let err = send(&conn, b"x", -1).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::Closed), "{err}");
}

/// The last unref frees the connection and releases the base socket (no
/// reference cycle through sources, waits or the engine), after sync and
/// async use alike.
#[test]
fn last_unref_frees_everything() {
    let peer = EchoPeer::start(EchoPeerOpts::new(&pki_dir()).max_connections(2));
    for use_async in [false, true] {
        let socket = connected_socket(peer.addr());
        let socket_weak = socket.downgrade();
        let id = gio::NetworkAddress::new("server.example.com", 0);
        let conn = gio::DtlsClientConnection::new(&socket, Some(&id)).unwrap();
        drop(socket);
        conn.set_database(Some(&ca_db()));
        if use_async {
            let ctx = glib::MainContext::new();
            ctx.with_thread_default(|| {
                let done = std::rc::Rc::new(std::cell::Cell::new(false));
                let d = done.clone();
                conn.handshake_async(glib::Priority::DEFAULT, gio::Cancellable::NONE, move |r| {
                    r.unwrap();
                    d.set(true);
                });
                while !done.get() {
                    ctx.iteration(true);
                }
            })
            .unwrap();
        } else {
            conn.handshake(gio::Cancellable::NONE).unwrap();
        }
        send(&conn, b"x", -1).unwrap();
        assert_eq!(recv(&conn, 16, 5 * SECOND).unwrap(), b"x");
        let source = conn.create_source(
            glib::IOCondition::IN,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            |_, _| glib::ControlFlow::Continue,
        );
        drop(source);
        conn.close(gio::Cancellable::NONE).unwrap();
        let weak = conn.downgrade();
        drop(conn);
        assert!(
            weak.upgrade().is_none(),
            "connection still alive (async: {use_async})"
        );
        assert!(
            socket_weak.upgrade().is_none(),
            "base socket still referenced (async: {use_async})"
        );
    }
}

/// A blocking receive ends with CANCELLED when another thread cancels it,
/// and the connection stays usable.
#[test]
fn cancelling_a_blocking_receive() {
    use crate::common::relay::Verdict;
    let peer = echo_peer();
    let relay = Relay::start(peer.addr());
    let conn = trusting_client(relay.addr());
    conn.handshake(gio::Cancellable::NONE).unwrap();
    // From now on the echo never comes back: the receive below blocks.
    let handshake_replies = relay.count(Direction::ToClient);
    relay.set_filter(move |dir, index, _| {
        if dir == Direction::ToClient && index >= handshake_replies {
            Verdict::Drop
        } else {
            Verdict::Forward
        }
    });
    let cancellable = gio::Cancellable::new();
    let c2 = cancellable.clone();
    let watcher = {
        let relay = std::sync::Arc::new(relay);
        let r = relay.clone();
        let t = std::thread::spawn(move || {
            // Cancel once the echo we wait for has been swallowed.
            r.wait_count(
                Direction::ToClient,
                handshake_replies + 1,
                Duration::from_secs(5),
            )
            .unwrap();
            c2.cancel();
        });
        (relay, t)
    };
    send(&conn, b"lost", -1).unwrap();
    let started = Instant::now();
    let err =
        crate::common::dtls::recv_vectored(&conn, &[&[64]], 0, 10 * SECOND, Some(&cancellable))
            .unwrap_err();
    watcher.1.join().unwrap();
    assert!(err.matches(gio::IOErrorEnum::Cancelled), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection stays usable.
    let err = recv(&conn, 64, 0).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::WouldBlock), "{err}");
}
