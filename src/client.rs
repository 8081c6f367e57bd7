//! `DtlsOpensslClientConnection`: the DTLS client. The shared connection
//! does the work; this type adds GDtlsClientConnection's properties
//! (server-identity, validation-flags, accepted-cas).

use gio::prelude::*;
use gio::subclass::prelude::*;

use crate::connection::base::{Connection, ConnectionImpl};
use crate::connection::properties;

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

// SAFETY: see Connection; this type adds no unsynchronised state.
#[allow(unsafe_code)]
unsafe impl Send for ClientConnection {}
#[allow(unsafe_code)]
unsafe impl Sync for ClientConnection {}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct ClientConnection;

    #[glib::object_subclass]
    impl ObjectSubclass for ClientConnection {
        const NAME: &'static str = "DtlsOpensslClientConnection";
        type Type = super::ClientConnection;
        type ParentType = Connection;
        type Interfaces = (gio::DtlsClientConnection,);
    }

    impl ObjectImpl for ClientConnection {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> =
                std::sync::LazyLock::new(properties::client_properties);
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let conn = self.obj();
            let conn = conn.upcast_ref::<Connection>();
            match pspec.name() {
                "server-identity" => conn.settings().server_identity = value.get().ok().flatten(),
                "validation-flags" => {
                    conn.settings().validation_flags = value
                        .get()
                        .unwrap_or(gio::TlsCertificateFlags::VALIDATE_ALL)
                }
                other => glib::g_warning!(crate::LOG_DOMAIN, "property {} is read-only", other),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let conn = self.obj();
            let conn = conn.upcast_ref::<Connection>();
            match pspec.name() {
                "server-identity" => conn.settings().server_identity.to_value(),
                "validation-flags" => conn.settings().validation_flags.to_value(),
                "accepted-cas" => properties::accepted_cas_value(&conn.results().accepted_cas),
                _ => glib::Value::from_type(pspec.value_type()),
            }
        }
    }

    impl ConnectionImpl for ClientConnection {}
}

// SAFETY: GDtlsClientConnection has no vfuncs; we override its properties.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::ClientConnection> for gio::DtlsClientConnection {}
