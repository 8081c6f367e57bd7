//! `DtlsOpensslBackend`: the GTlsBackend GIO selects with
//! `GIO_USE_TLS=dtls-openssl`.

use std::sync::OnceLock;

use gio::prelude::*;
use glib::subclass::prelude::*;

use crate::certificate::Certificate;
use crate::client::ClientConnection;
use crate::database::{file::FileDatabase, Database};
use crate::iface::tls_backend::TlsBackendImpl;
use crate::server::ServerConnection;
use crate::unsupported::UnsupportedConnection;

glib::wrapper! {
    /// The dtls-openssl TLS backend.
    pub struct Backend(ObjectSubclass<imp::Backend>)
        @implements gio::TlsBackend;
}

/// The process-wide default database over the system trust store, created
/// on first use and shared by every backend instance and connection.
pub fn default_database() -> gio::TlsDatabase {
    static DEFAULT: OnceLock<Database> = OnceLock::new();
    DEFAULT.get_or_init(Database::system).clone().upcast()
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct Backend;

    #[glib::object_subclass]
    impl ObjectSubclass for Backend {
        const NAME: &'static str = "DtlsOpensslBackend";
        type Type = super::Backend;
        type Interfaces = (gio::TlsBackend,);
    }

    impl ObjectImpl for Backend {}

    impl TlsBackendImpl for Backend {
        /// Stream TLS is not implemented: GTlsConnection constructors fail
        /// with G_IO_ERROR_NOT_SUPPORTED, so we do not claim it.
        fn supports_tls(&self) -> bool {
            false
        }

        fn supports_dtls(&self) -> bool {
            true
        }

        fn default_database(&self) -> gio::TlsDatabase {
            super::default_database()
        }

        fn certificate_type() -> glib::Type {
            Certificate::static_type()
        }
        fn client_connection_type() -> glib::Type {
            UnsupportedConnection::static_type()
        }
        fn server_connection_type() -> glib::Type {
            UnsupportedConnection::static_type()
        }
        fn file_database_type() -> glib::Type {
            FileDatabase::static_type()
        }
        fn dtls_client_connection_type() -> glib::Type {
            ClientConnection::static_type()
        }
        fn dtls_server_connection_type() -> glib::Type {
            ServerConnection::static_type()
        }
    }
}

// SAFETY: fills GTlsBackendInterface with trampolines for `imp::Backend`.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::Backend> for gio::TlsBackend {
    fn interface_init(iface: &mut glib::Interface<Self>) {
        crate::iface::tls_backend::init::<imp::Backend>(iface.as_mut());
    }
}
