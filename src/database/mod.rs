//! `DtlsOpensslDatabase`: a GTlsDatabase over a [`TrustStore`].
//!
//! The base type serves the system trust store (the backend's default
//! database); [`file::FileDatabase`] loads its anchors from a PEM file.
//! Chains may be made of any GTlsCertificate subclass: we go through DER.

pub mod file;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use gio::prelude::*;
use gio::subclass::prelude::*;
use openssl::hash::MessageDigest;
use openssl::x509::{X509Name, X509VerifyResult, X509};

use crate::certificate::{self, Certificate};
use crate::error;
use crate::iface::tls_database::TlsDatabaseImpl;
use crate::trust::TrustStore;

/// Prefix of the handles `create_certificate_handle` makes.
const HANDLE_PREFIX: &str = "dtls-openssl:sha256:";

glib::wrapper! {
    /// A certificate database backed by an OpenSSL X509 store.
    pub struct Database(ObjectSubclass<imp::Database>)
        @extends gio::TlsDatabase;
}

// SAFETY: the instance state is a OnceLock<TrustStore> (an OpenSSL X509
// store, thread-safe for verification) set once, a OnceLock<String> and an
// AtomicBool.
#[allow(unsafe_code)]
unsafe impl Send for Database {}
#[allow(unsafe_code)]
unsafe impl Sync for Database {}

impl Database {
    /// A database over OpenSSL's default trust store. The store is loaded
    /// on first use (a verification, a lookup, a server's CA list), not
    /// here: a connection holds the default database until the application
    /// sets its own, and that should cost nothing.
    pub fn system() -> Database {
        let db: Database = glib::Object::new();
        db.imp().system.store(true, Ordering::Relaxed);
        db
    }

    fn load_system() -> TrustStore {
        let store = TrustStore::system().unwrap_or_else(|e| {
            glib::g_warning!(
                crate::LOG_DOMAIN,
                "could not load the system trust store: {}",
                error::reason(&e)
            );
            TrustStore::from_anchors(Vec::new()).expect("an empty X509 store")
        });
        crate::debug!("system trust store: {} anchors", store.anchors().len());
        store
    }

    /// What the database is, for logs: "the system trust store" or the
    /// file database's anchors file.
    pub(crate) fn describe(&self) -> String {
        match self.imp().handle_prefix.get() {
            Some(prefix) => format!(
                "file database {}",
                prefix.trim_end_matches('#').trim_start_matches("file://")
            ),
            None if self.imp().system.load(Ordering::Relaxed) => {
                "the system trust store (default database)".to_string()
            }
            None => "an empty database".to_string(),
        }
    }

    pub(crate) fn set_store(&self, store: TrustStore) {
        let _ = self.imp().store.set(store);
    }

    /// Handles become `<prefix><sha256 hex>` (a file database's anchors URI
    /// and `#`) instead of `dtls-openssl:sha256:<hex>`.
    pub(crate) fn set_handle_prefix(&self, prefix: String) {
        let _ = self.imp().handle_prefix.set(prefix);
    }

    fn handle_prefix(&self) -> &str {
        self.imp()
            .handle_prefix
            .get()
            .map_or(HANDLE_PREFIX, String::as_str)
    }

    /// DER subject names of the anchors (a server's CertificateRequest
    /// lists them).
    pub(crate) fn anchor_names(&self) -> Vec<Vec<u8>> {
        self.store()
            .anchors()
            .iter()
            .filter_map(|a| a.subject_name().to_der().ok())
            .collect()
    }

    fn store(&self) -> &TrustStore {
        let imp = self.imp();
        imp.store.get_or_init(|| {
            if imp.system.load(Ordering::Relaxed) {
                Self::load_system()
            } else {
                TrustStore::from_anchors(Vec::new()).expect("an empty X509 store")
            }
        })
    }
}

// SAFETY: Database adds no vfuncs of its own; the parent class init is chained.
#[allow(unsafe_code)]
unsafe impl IsSubclassable<file::imp::FileDatabase> for Database {}

fn sha256_hex(x: &X509) -> Option<String> {
    let digest = x.digest(MessageDigest::sha256()).ok()?;
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn check_cancelled(c: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
    match c {
        Some(c) => c.set_error_if_cancelled(),
        None => Ok(()),
    }
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct Database {
        pub(super) store: OnceLock<TrustStore>,
        pub(super) handle_prefix: OnceLock<String>,
        /// Serves the system trust store, loaded on first use.
        pub(super) system: AtomicBool,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Database {
        const NAME: &'static str = "DtlsOpensslDatabase";
        type Type = super::Database;
        type ParentType = gio::TlsDatabase;
    }

    impl ObjectImpl for Database {}

    impl TlsDatabaseImpl for Database {
        fn verify_chain(
            &self,
            chain: &gio::TlsCertificate,
            purpose: &str,
            identity: Option<&gio::SocketConnectable>,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<gio::TlsCertificateFlags, glib::Error> {
            check_cancelled(cancellable)?;
            let certs = certificate::chain_of(chain)?;
            let flags = self
                .obj()
                .store()
                .verify_connectable(&certs[0], &certs[1..], purpose, identity)
                .map_err(|e| {
                    error::bad_certificate("Could not verify the certificate chain", &e)
                })?;
            check_cancelled(cancellable)?;
            Ok(flags)
        }

        fn create_certificate_handle(&self, cert: &gio::TlsCertificate) -> Option<String> {
            let x = certificate::x509_of(cert).ok()?;
            let held = self.obj().store().anchors().iter().any(|a| a == &x);
            if !held {
                return None;
            }
            Some(format!("{}{}", self.obj().handle_prefix(), sha256_hex(&x)?))
        }

        fn lookup_certificate_for_handle(
            &self,
            handle: &str,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<Option<gio::TlsCertificate>, glib::Error> {
            check_cancelled(cancellable)?;
            // Our own handle form, and the older dtls-openssl:sha256: one.
            let Some(hex) = handle
                .strip_prefix(self.obj().handle_prefix())
                .or_else(|| handle.strip_prefix(HANDLE_PREFIX))
            else {
                return Ok(None);
            };
            let found = self
                .obj()
                .store()
                .anchors()
                .iter()
                .find(|a| sha256_hex(a).as_deref() == Some(hex))
                .map(|a| Certificate::from_x509(a.clone(), None).upcast());
            Ok(found)
        }

        fn lookup_certificate_issuer(
            &self,
            cert: &gio::TlsCertificate,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<Option<gio::TlsCertificate>, glib::Error> {
            check_cancelled(cancellable)?;
            let x = certificate::x509_of(cert)?;
            let found = self
                .obj()
                .store()
                .anchors()
                .iter()
                .find(|a| a.issued(&x) == X509VerifyResult::OK)
                .map(|a| Certificate::from_x509(a.clone(), None).upcast());
            Ok(found)
        }

        fn lookup_certificates_issued_by(
            &self,
            issuer_raw_dn: &[u8],
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<Vec<gio::TlsCertificate>, glib::Error> {
            check_cancelled(cancellable)?;
            let name = X509Name::from_der(issuer_raw_dn).map_err(|e| {
                error::io(
                    gio::IOErrorEnum::InvalidArgument,
                    format!("Invalid distinguished name: {}", error::reason(&e)),
                )
            })?;
            let found = self
                .obj()
                .store()
                .anchors()
                .iter()
                .filter(|a| {
                    a.issuer_name()
                        .try_cmp(&name)
                        .map(|o| o.is_eq())
                        .unwrap_or(false)
                })
                .map(|a| Certificate::from_x509(a.clone(), None).upcast())
                .collect();
            Ok(found)
        }
    }
}

// SAFETY: DtlsOpensslDatabase's class struct is a GTlsDatabaseClass; the
// parent class init runs first.
#[allow(unsafe_code)]
unsafe impl IsSubclassable<imp::Database> for gio::TlsDatabase {
    fn class_init(class: &mut glib::Class<Self>) {
        Self::parent_class_init::<imp::Database>(class);
        crate::iface::tls_database::init::<imp::Database>(class.as_mut());
    }
}
