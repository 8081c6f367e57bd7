//! `DtlsOpensslClientConnection`: the DTLS client. The shared connection
//! does the work; this type keeps GDtlsClientConnection's properties
//! (server-identity, validation-flags, accepted-cas) and the client's hooks:
//! SNI, ALPN offer and certificate before the first flight, the server
//! purpose and identity for verification, accepted-cas after.

use std::sync::Mutex;

use gio::prelude::*;
use gio::subclass::prelude::*;

use crate::connection::base::{set_engine_certificate, Connection, Material};
use crate::connection::core::engine_error;
use crate::connection::engine::{Engine, Role};
use crate::connection::properties;
use crate::connection::role::{ConnectionImpl, Verification};
use crate::connection::session_cache;
use crate::error;
use crate::trust::{Identity, PURPOSE_SERVER};

glib::wrapper! {
    /// A DTLS client connection over a GDatagramBased.
    pub struct ClientConnection(ObjectSubclass<imp::ClientConnection>)
        @extends Connection,
        @implements gio::DtlsClientConnection, gio::DtlsConnection, gio::DatagramBased, gio::Initable;
}

impl ClientConnection {
    /// `g_dtls_client_connection_new` on this backend.
    pub fn new(
        base_socket: &impl IsA<gio::DatagramBased>,
        server_identity: Option<&impl IsA<gio::SocketConnectable>>,
    ) -> Result<ClientConnection, glib::Error> {
        gio::Initable::builder::<ClientConnection>()
            .property("base-socket", base_socket.as_ref())
            .property(
                "server-identity",
                server_identity.map(|s| s.as_ref().clone()),
            )
            .build(gio::Cancellable::NONE)
    }
}

// SAFETY: see Connection; this type's own state is behind a Mutex.
#[allow(unsafe_code)]
unsafe impl Send for ClientConnection {}
#[allow(unsafe_code)]
unsafe impl Sync for ClientConnection {}

pub(crate) mod imp {
    use super::*;

    /// The client's own settings and results.
    struct State {
        server_identity: Option<gio::SocketConnectable>,
        validation_flags: gio::TlsCertificateFlags,
        /// DER distinguished names from the server's CertificateRequest.
        accepted_cas: Vec<Vec<u8>>,
        psk_identity: Option<String>,
        psk_key: Option<glib::Bytes>,
        /// The handshake authenticated the server with the PSK alone.
        psk_authenticated: bool,
    }

    // The key never appears in a log, even at debug level.
    impl std::fmt::Debug for State {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("State")
                .field("server_identity", &self.server_identity)
                .field("validation_flags", &self.validation_flags)
                .field("psk_identity", &self.psk_identity)
                .field("psk_key", &self.psk_key.as_ref().map(|_| "<set>"))
                .finish_non_exhaustive()
        }
    }

    #[derive(Debug)]
    pub struct ClientConnection {
        state: Mutex<State>,
        /// Where this connection's session is cached (none: not cached).
        cache_key: Mutex<Option<String>>,
    }

    impl Default for ClientConnection {
        fn default() -> Self {
            ClientConnection {
                state: Mutex::new(State {
                    server_identity: None,
                    validation_flags: gio::TlsCertificateFlags::VALIDATE_ALL,
                    accepted_cas: Vec::new(),
                    psk_identity: None,
                    psk_key: None,
                    psk_authenticated: false,
                }),
                cache_key: Mutex::new(None),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ClientConnection {
        const NAME: &'static str = "DtlsOpensslClientConnection";
        type Type = super::ClientConnection;
        type ParentType = Connection;
        type Interfaces = (gio::DtlsClientConnection,);
    }

    impl ObjectImpl for ClientConnection {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> = std::sync::LazyLock::new(
                || {
                    let mut props = properties::client_properties();
                    props.push(
                        glib::ParamSpecString::builder("psk-identity")
                            .nick("PSK identity")
                            .blurb("The identity of the pre-shared key (RFC 4279); with psk-key set, the client offers PSK cipher suites")
                            .build(),
                    );
                    props.push(
                        glib::ParamSpecBoxed::builder::<glib::Bytes>("psk-key")
                            .nick("PSK")
                            .blurb("The pre-shared key (1 to 512 bytes); with psk-identity set, the client offers PSK cipher suites")
                            .build(),
                    );
                    props
                },
            );
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut s = self.state.lock().unwrap();
            match pspec.name() {
                "server-identity" => s.server_identity = value.get().ok().flatten(),
                "validation-flags" => {
                    s.validation_flags = value
                        .get()
                        .unwrap_or(gio::TlsCertificateFlags::VALIDATE_ALL)
                }
                "psk-identity" => s.psk_identity = value.get().ok().flatten(),
                "psk-key" => s.psk_key = value.get().ok().flatten(),
                other => glib::g_warning!(crate::LOG_DOMAIN, "property {} is read-only", other),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let s = self.state.lock().unwrap();
            match pspec.name() {
                "server-identity" => s.server_identity.to_value(),
                "validation-flags" => s.validation_flags.to_value(),
                "accepted-cas" => properties::accepted_cas_value(&s.accepted_cas),
                "psk-identity" => s.psk_identity.to_value(),
                "psk-key" => s.psk_key.to_value(),
                _ => glib::Value::from_type(pspec.value_type()),
            }
        }
    }

    impl ConnectionImpl for ClientConnection {
        const ROLE: Role = Role::Client;

        fn prepare(
            &self,
            engine: &mut Engine,
            certificate: Option<&Material>,
        ) -> Result<(), glib::Error> {
            let (identity, psk) = {
                let s = self.state.lock().unwrap();
                (
                    s.server_identity.clone(),
                    (s.psk_identity.clone(), s.psk_key.clone()),
                )
            };
            match psk {
                (Some(id), Some(key)) => engine.set_psk_client(&id, &key).map_err(engine_error)?,
                (None, None) => {}
                _ => {
                    return Err(error::io(
                        gio::IOErrorEnum::InvalidArgument,
                        "PSK needs both psk-identity and psk-key",
                    ))
                }
            }
            let conn = self.obj();
            let (protocols, interaction, resumption, base) = {
                let s = conn.upcast_ref::<Connection>().settings();
                (
                    s.advertised_protocols.clone(),
                    s.interaction.is_some(),
                    s.resumption,
                    s.base_socket.clone(),
                )
            };
            let key = base
                .as_ref()
                .and_then(|b| session_cache::key(identity.as_ref(), b))
                .filter(|_| resumption);
            if let Some(session) = key.as_deref().and_then(session_cache::get) {
                let offered = engine.resume(&session);
                crate::debug!(
                    "{:?}: offering the cached session for {} ({})",
                    self.obj().as_ptr(),
                    key.as_deref().unwrap_or_default(),
                    if offered { "ok" } else { "refused by OpenSSL" }
                );
            }
            *self.cache_key.lock().unwrap() = key;
            // SNI for host names only, never for address literals.
            if let Some(Identity::Host(h)) = identity.as_ref().and_then(Identity::from_connectable)
            {
                engine.set_server_name(&h).map_err(engine_error)?;
            }
            if let Some(p) = &protocols {
                let names: Vec<&[u8]> = p.iter().map(|s| s.as_bytes()).collect();
                engine.set_alpn_protocols(&names).map_err(engine_error)?;
            }
            match certificate {
                Some(material) => set_engine_certificate(engine, material)?,
                None if interaction => engine.pause_on_certificate_request(),
                None => {}
            }
            Ok(())
        }

        fn verification(&self) -> Verification {
            let s = self.state.lock().unwrap();
            Verification {
                purpose: PURPOSE_SERVER,
                identity: s.server_identity.clone(),
                identity_required: true,
                mask: s.validation_flags,
                // A PSK suite authenticates the server by the key alone.
                without_certificate: if s.psk_authenticated {
                    Ok(())
                } else {
                    Err(error::tls(
                        gio::TlsError::BadCertificate,
                        "The server sent no certificate",
                    ))
                },
            }
        }

        fn negotiated(&self, engine: &Engine) -> &'static [&'static str] {
            let mut s = self.state.lock().unwrap();
            s.accepted_cas = engine.client_ca_names();
            s.psk_authenticated = engine.psk_authenticated();
            &["accepted-cas"]
        }

        fn established(&self, engine: &Engine) {
            // Once: the key is not needed after the handshake.
            if let Some(key) = self.cache_key.lock().unwrap().take() {
                let session = engine.resumable_session();
                crate::debug!(
                    "{:?}: {} the session for {key}",
                    self.obj().as_ptr(),
                    if session.is_some() {
                        "keeping"
                    } else {
                        "no resumable session: forgetting"
                    }
                );
                match session {
                    Some(session) => session_cache::put(&key, session),
                    None => session_cache::forget(&key),
                }
            }
        }
    }
}

// SAFETY: GDtlsClientConnection has no vfuncs; we override its properties.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::ClientConnection> for gio::DtlsClientConnection {}
