//! `DtlsOpensslBackend`: the GTlsBackend GIO selects with
//! `GIO_USE_TLS=dtls-openssl`.

use std::sync::Mutex;

use gio::prelude::*;
use glib::subclass::prelude::*;

use crate::certificate::Certificate;
use crate::database::{file::FileDatabase, Database};
use crate::iface::tls_backend::TlsBackendImpl;
use crate::unsupported::UnsupportedConnection;

glib::wrapper! {
    /// The dtls-openssl TLS backend.
    pub struct Backend(ObjectSubclass<imp::Backend>)
        @implements gio::TlsBackend;
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct Backend {
        default_database: Mutex<Option<gio::TlsDatabase>>,
    }

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

        /// One shared system database per backend, created on first use.
        fn default_database(&self) -> gio::TlsDatabase {
            self.default_database
                .lock()
                .unwrap()
                .get_or_insert_with(|| Database::system().upcast())
                .clone()
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
            UnsupportedConnection::static_type()
        }
        fn dtls_server_connection_type() -> glib::Type {
            UnsupportedConnection::static_type()
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
