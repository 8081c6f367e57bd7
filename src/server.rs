//! `DtlsOpensslServerConnection`: the DTLS server. The shared connection
//! does the work; this type keeps GDtlsServerConnection's
//! `authentication-mode` and our `cookie-exchange`, and the server's hooks:
//! certificate, client authentication, CA names, ALPN preferences and
//! cookies before the first flight, the client purpose for verification.

use std::sync::Mutex;

use gio::prelude::*;
use gio::subclass::prelude::*;

use crate::connection::base::{set_engine_certificate, Connection, Material};
use crate::connection::core::engine_error;
use crate::connection::engine::{ClientAuth, Engine, Role};
use crate::connection::role::{ConnectionImpl, Verification};
use crate::trust::PURPOSE_CLIENT;

glib::wrapper! {
    /// A DTLS server connection over a GDatagramBased (one peer: for a
    /// connected socket, or a GDatagramBased that carries one peer's
    /// datagrams).
    pub struct ServerConnection(ObjectSubclass<imp::ServerConnection>)
        @extends Connection,
        @implements gio::DtlsServerConnection, gio::DtlsConnection, gio::DatagramBased, gio::Initable;
}

impl ServerConnection {
    /// `g_dtls_server_connection_new` on this backend.
    pub fn new(
        base_socket: &impl IsA<gio::DatagramBased>,
        certificate: Option<&impl IsA<gio::TlsCertificate>>,
    ) -> Result<ServerConnection, glib::Error> {
        gio::Initable::builder::<ServerConnection>()
            .property("base-socket", base_socket.as_ref())
            .property("certificate", certificate.map(|c| c.as_ref().clone()))
            .build(gio::Cancellable::NONE)
    }
}

// SAFETY: see Connection; this type's own state is behind a Mutex.
#[allow(unsafe_code)]
unsafe impl Send for ServerConnection {}
#[allow(unsafe_code)]
unsafe impl Sync for ServerConnection {}

/// The peer's address the cookie binds, when the base socket is a connected
/// GSocket; else nothing (a GDatagramBased carries one peer: the cookie then
/// proves that the client received the HelloVerifyRequest this connection
/// sent through it).
fn cookie_peer(base: Option<&gio::DatagramBased>) -> Vec<u8> {
    base.and_then(|b| b.downcast_ref::<gio::Socket>())
        .and_then(|s| s.remote_address().ok())
        .and_then(|a| a.downcast::<gio::InetSocketAddress>().ok())
        .map(|a| format!("{}:{}", a.address(), a.port()).into_bytes())
        .unwrap_or_default()
}

/// The CA names a CertificateRequest lists: the anchors of a database of
/// ours other than the system store (whose hundred-odd names would swell
/// the flight for no use); none for other databases.
fn ca_names(database: Option<&gio::TlsDatabase>) -> Vec<Vec<u8>> {
    match database {
        Some(db) if *db != crate::backend::default_database() => db
            .downcast_ref::<crate::Database>()
            .map(crate::Database::anchor_names)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The server's PSK lookup: emits `psk-lookup`. It runs inside OpenSSL's
/// handshake call, with the engine locked: marked as application code, so
/// that a handler's blocking call on the same connection fails with
/// `G_IO_ERROR_PENDING` instead of waiting for the handshake it is part of.
fn psk_lookup(conn: &ServerConnection) -> crate::connection::engine::PskLookup {
    let weak = glib::SendWeakRef::from(conn.downgrade());
    Box::new(move |identity: &str| {
        let conn = weak.upgrade()?;
        let base = conn.upcast_ref::<Connection>();
        let _calling = base.core().ok().map(|c| c.calling("psk-lookup handler"));
        let key = conn.emit_by_name::<Option<glib::Bytes>>("psk-lookup", &[&identity]);
        // Only the identity is logged, never the key.
        crate::debug!(
            "{:?}: psk-lookup for identity {:?}: {}",
            conn.as_ptr(),
            identity,
            if key.is_some() { "found" } else { "unknown" }
        );
        key.map(|k| k.to_vec())
    })
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug)]
    struct State {
        authentication_mode: gio::TlsAuthenticationMode,
        cookie_exchange: bool,
        psk_identity_hint: Option<String>,
    }

    #[derive(Debug)]
    pub struct ServerConnection {
        state: Mutex<State>,
    }

    impl Default for ServerConnection {
        fn default() -> Self {
            ServerConnection {
                state: Mutex::new(State {
                    authentication_mode: gio::TlsAuthenticationMode::None,
                    cookie_exchange: true,
                    psk_identity_hint: None,
                }),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ServerConnection {
        const NAME: &'static str = "DtlsOpensslServerConnection";
        type Type = super::ServerConnection;
        type ParentType = Connection;
        type Interfaces = (gio::DtlsServerConnection,);
    }

    impl ObjectImpl for ServerConnection {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> = std::sync::LazyLock::new(
                || {
                    vec![
                        glib::ParamSpecOverride::for_interface::<gio::DtlsServerConnection>(
                            "authentication-mode",
                        ),
                        glib::ParamSpecBoolean::builder("cookie-exchange")
                            .nick("Cookie exchange")
                            .blurb(
                                "Answer a ClientHello without a valid cookie with a HelloVerifyRequest (RFC 6347 4.2.1); turn off only where the transport already proves the peer's address (e.g. ICE)",
                            )
                            .default_value(true)
                            .build(),
                        glib::ParamSpecString::builder("psk-identity-hint")
                            .nick("PSK identity hint")
                            .blurb("Sent to a client that negotiates a PSK cipher suite, to help it choose its identity (RFC 4279); NULL for none")
                            .build(),
                    ]
                },
            );
            PROPS.as_ref()
        }

        fn signals() -> &'static [glib::subclass::Signal] {
            static SIGNALS: std::sync::LazyLock<Vec<glib::subclass::Signal>> =
                std::sync::LazyLock::new(|| {
                    vec![glib::subclass::Signal::builder("psk-lookup")
                        .param_types([String::static_type()])
                        .return_type::<glib::Bytes>()
                        .run_last()
                        .accumulator(|_hint, _acc, value| {
                            // The first handler that knows the key wins.
                            let found = value.get::<Option<glib::Bytes>>().ok().flatten().is_some();
                            if found {
                                std::ops::ControlFlow::Break(value.clone())
                            } else {
                                std::ops::ControlFlow::Continue(value.clone())
                            }
                        })
                        .build()]
                });
            SIGNALS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut s = self.state.lock().unwrap();
            match pspec.name() {
                "authentication-mode" => {
                    s.authentication_mode = value.get().unwrap_or(gio::TlsAuthenticationMode::None)
                }
                "cookie-exchange" => s.cookie_exchange = value.get().unwrap_or(true),
                "psk-identity-hint" => s.psk_identity_hint = value.get().ok().flatten(),
                other => glib::g_warning!(crate::LOG_DOMAIN, "property {} is read-only", other),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let s = self.state.lock().unwrap();
            match pspec.name() {
                "authentication-mode" => s.authentication_mode.to_value(),
                "cookie-exchange" => s.cookie_exchange.to_value(),
                "psk-identity-hint" => s.psk_identity_hint.to_value(),
                _ => glib::Value::from_type(pspec.value_type()),
            }
        }
    }

    impl ConnectionImpl for ServerConnection {
        const ROLE: Role = Role::Server;

        fn prepare(
            &self,
            engine: &mut Engine,
            certificate: Option<&Material>,
        ) -> Result<(), glib::Error> {
            let conn = self.obj();
            let psk = glib::signal::signal_has_handler_pending(
                &*conn,
                glib::subclass::signal::SignalId::lookup(
                    "psk-lookup",
                    super::ServerConnection::static_type(),
                )
                .expect("psk-lookup is registered"),
                None,
                false,
            );
            // Without a certificate (and without PSK) OpenSSL finds no
            // suite to offer and alerts the client at once; the engine
            // reports it as EngineError::NoCertificate
            // (G_TLS_ERROR_BAD_CERTIFICATE). With PSK only PSK suites can
            // be chosen.
            if let Some(material) = certificate {
                set_engine_certificate(engine, material)?;
            }
            let (mode, cookies, hint) = {
                let s = self.state.lock().unwrap();
                (
                    s.authentication_mode,
                    s.cookie_exchange,
                    s.psk_identity_hint.clone(),
                )
            };
            if psk {
                engine
                    .set_psk_server(hint.as_deref(), psk_lookup(&conn))
                    .map_err(engine_error)?;
            }
            let (protocols, database, base, resumption) = {
                let s = conn.upcast_ref::<Connection>().settings();
                (
                    s.advertised_protocols.clone(),
                    s.database.clone(),
                    s.base_socket.clone(),
                    s.resumption,
                )
            };
            if !resumption {
                engine.refuse_resumption();
            }
            let auth = match mode {
                gio::TlsAuthenticationMode::Requested => ClientAuth::Request,
                gio::TlsAuthenticationMode::Required => ClientAuth::Require,
                _ => ClientAuth::None,
            };
            engine.set_client_auth(auth);
            if auth != ClientAuth::None {
                engine
                    .set_client_ca_names(&ca_names(database.as_ref()))
                    .map_err(engine_error)?;
            }
            if let Some(p) = &protocols {
                let names: Vec<&[u8]> = p.iter().map(|s| s.as_bytes()).collect();
                engine.set_alpn_preferences(&names).map_err(engine_error)?;
            }
            if cookies {
                engine.set_cookie_exchange(&cookie_peer(base.as_ref()));
            }
            Ok(())
        }

        fn verification(&self) -> Verification {
            Verification {
                purpose: PURPOSE_CLIENT,
                identity: None,
                identity_required: false,
                // GDtlsServerConnection has no validation-flags.
                mask: gio::TlsCertificateFlags::VALIDATE_ALL,
                // REQUIRED is enforced in the handshake itself.
                without_certificate: Ok(()),
            }
        }
    }
}

// SAFETY: GDtlsServerConnection has no vfuncs; we override its property.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::ServerConnection> for gio::DtlsServerConnection {}
