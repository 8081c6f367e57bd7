//! `DtlsOpensslFileDatabase`: GTlsFileDatabase, anchors from a PEM file.

use std::sync::Mutex;

use gio::prelude::*;
use gio::subclass::prelude::*;
use openssl::x509::X509;

use super::Database;
use crate::error;
use crate::trust::TrustStore;

glib::wrapper! {
    /// A certificate database trusting the certificates of one PEM file.
    pub struct FileDatabase(ObjectSubclass<imp::FileDatabase>)
        @extends Database, gio::TlsDatabase,
        @implements gio::TlsFileDatabase, gio::Initable;
}

/// Reads every certificate of a PEM bundle.
fn load_anchors(path: &std::path::Path) -> Result<Vec<X509>, glib::Error> {
    let data = glib::file_get_contents(path)?;
    let certs = X509::stack_from_pem(&data).map_err(|e| {
        error::bad_certificate(
            &format!("Could not parse the certificates in {}", path.display()),
            &e,
        )
    })?;
    if certs.is_empty() {
        return Err(error::tls(
            gio::TlsError::BadCertificate,
            format!("No PEM-encoded certificate found in {}", path.display()),
        ));
    }
    Ok(certs)
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct FileDatabase {
        anchors: Mutex<Option<std::path::PathBuf>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for FileDatabase {
        const NAME: &'static str = "DtlsOpensslFileDatabase";
        type Type = super::FileDatabase;
        type ParentType = Database;
        type Interfaces = (gio::TlsFileDatabase, gio::Initable);
    }

    impl ObjectImpl for FileDatabase {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> =
                std::sync::LazyLock::new(|| {
                    vec![glib::ParamSpecOverride::for_interface::<gio::TlsFileDatabase>("anchors")]
                });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, _pspec: &glib::ParamSpec) {
            let path: Option<String> = value.get().ok().flatten();
            *self.anchors.lock().unwrap() = path.map(Into::into);
        }

        fn property(&self, _id: usize, _pspec: &glib::ParamSpec) -> glib::Value {
            let path = self.anchors.lock().unwrap().clone();
            path.map(|p| p.to_string_lossy().into_owned()).to_value()
        }
    }

    impl InitableImpl for FileDatabase {
        fn init(&self, _cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
            let path = self.anchors.lock().unwrap().clone();
            let anchors = match path {
                Some(p) => load_anchors(&p)?,
                None => Vec::new(),
            };
            let store = TrustStore::from_anchors(anchors)
                .map_err(|e| error::bad_certificate("Could not build the trust store", &e))?;
            self.obj().upcast_ref::<Database>().set_store(store);
            Ok(())
        }
    }
}

// SAFETY: GTlsFileDatabase has no vfuncs, only the `anchors` property we override.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::FileDatabase> for gio::TlsFileDatabase {}

// SAFETY: the vfuncs come from DtlsOpensslDatabase's class init (inherited);
// this only chains up.
#[allow(unsafe_code)]
unsafe impl IsSubclassable<imp::FileDatabase> for gio::TlsDatabase {}
