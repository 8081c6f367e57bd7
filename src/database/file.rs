//! `DtlsOpensslFileDatabase`: GTlsFileDatabase, anchors from a PEM file.

use std::sync::Mutex;

use gio::prelude::*;
use gio::subclass::prelude::*;
use openssl::x509::{X509Crl, X509};

use super::Database;
use crate::error;
use crate::trust::TrustStore;

glib::wrapper! {
    /// A certificate database trusting the certificates of one PEM file.
    pub struct FileDatabase(ObjectSubclass<imp::FileDatabase>)
        @extends Database, gio::TlsDatabase,
        @implements gio::TlsFileDatabase, gio::Initable;
}

/// Reads every certificate and every CRL of a PEM bundle.
fn load_anchors(path: &std::path::Path) -> Result<(Vec<X509>, Vec<X509Crl>), glib::Error> {
    let data = glib::file_get_contents(path)?;
    let crls = load_crls(&data).map_err(|e| {
        error::bad_certificate(
            &format!("Could not parse the CRLs in {}", path.display()),
            &e,
        )
    })?;
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
    Ok((certs, crls))
}

/// Every `X509 CRL` PEM block of `data`.
fn load_crls(data: &[u8]) -> Result<Vec<X509Crl>, openssl::error::ErrorStack> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    const END: &[u8] = b"-----END X509 CRL-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut crls = Vec::new();
    let mut rest = data;
    while let Some(start) = find(rest, BEGIN) {
        let block = &rest[start..];
        let Some(end) = find(block, END) else {
            // Unterminated: let OpenSSL say what is wrong with it.
            crls.push(X509Crl::from_pem(block)?);
            break;
        };
        crls.push(X509Crl::from_pem(&block[..end + END.len()])?);
        rest = &block[end + END.len()..];
    }
    Ok(crls)
}

/// The `file://` URI of `path` (made absolute), the prefix of handles.
fn file_uri(path: &std::path::Path) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    glib::filename_to_uri(&absolute, None)
        .ok()
        .map(|u| u.to_string())
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
            let (anchors, crls) = match &path {
                Some(p) => load_anchors(p)?,
                None => (Vec::new(), Vec::new()),
            };
            let store = TrustStore::with_crls(anchors, crls)
                .map_err(|e| error::bad_certificate("Could not build the trust store", &e))?;
            let db = self.obj();
            let db = db.upcast_ref::<Database>();
            if let Some(uri) = path.as_deref().and_then(file_uri) {
                // glib-networking's handles: file:///path/to/anchors#<sha256>.
                db.set_handle_prefix(format!("{uri}#"));
            }
            db.set_store(store);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crls_are_found_between_certificates() {
        assert!(load_crls(b"").unwrap().is_empty());
        assert!(
            load_crls(b"-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n").is_err()
        );
        assert_eq!(
            file_uri(std::path::Path::new("/etc/ssl/a b.pem")).as_deref(),
            Some("file:///etc/ssl/a%20b.pem")
        );
    }
}
