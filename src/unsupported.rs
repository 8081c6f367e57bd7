//! `DtlsOpensslUnsupportedConnection`: what the backend returns for the
//! connection types it does not implement (yet).
//!
//! GIO builds connections with `g_initable_new`; returning G_TYPE_INVALID
//! would make it log a CRITICAL and return NULL without an error. This type
//! accepts the construct properties GIO passes and fails `init` with
//! G_IO_ERROR_NOT_SUPPORTED and a message saying what is missing.

use std::sync::Mutex;

use gio::prelude::*;
use gio::subclass::prelude::*;

use crate::error;

glib::wrapper! {
    pub struct UnsupportedConnection(ObjectSubclass<imp::UnsupportedConnection>)
        @implements gio::Initable;
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct UnsupportedConnection {
        given: Mutex<Vec<&'static str>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for UnsupportedConnection {
        const NAME: &'static str = "DtlsOpensslUnsupportedConnection";
        type Type = super::UnsupportedConnection;
        type Interfaces = (gio::Initable,);
    }

    impl ObjectImpl for UnsupportedConnection {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> =
                std::sync::LazyLock::new(|| {
                    fn prop<T: StaticType + IsA<glib::Object>>(name: &str) -> glib::ParamSpec {
                        glib::ParamSpecObject::builder::<T>(name)
                            .write_only()
                            .construct_only()
                            .build()
                    }
                    vec![
                        prop::<gio::IOStream>("base-io-stream"),
                        prop::<gio::DatagramBased>("base-socket"),
                        prop::<gio::SocketConnectable>("server-identity"),
                        prop::<gio::TlsCertificate>("certificate"),
                    ]
                });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, _value: &glib::Value, pspec: &glib::ParamSpec) {
            // Construct-only, non-CONSTRUCT properties: called only when given.
            let name = Self::properties()
                .iter()
                .find(|p| p.name() == pspec.name())
                .map(|p| p.name());
            self.given.lock().unwrap().extend(name);
        }
    }

    impl InitableImpl for UnsupportedConnection {
        fn init(&self, _cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
            let given = self.given.lock().unwrap();
            let what = if given.contains(&"base-socket") {
                "This DTLS connection type is not implemented yet by the dtls-openssl TLS backend"
            } else {
                "TLS over streams (GTlsConnection) is not supported by the dtls-openssl TLS backend, \
                 which implements DTLS only; select another backend with GIO_USE_TLS for stream TLS"
            };
            Err(error::io(gio::IOErrorEnum::NotSupported, what))
        }
    }
}
