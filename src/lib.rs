//! gio-dtls-openssl: a GIO TLS backend whose DTLS connections run on OpenSSL.
//!
//! Layout: `module` registers with GIO; `backend` is the GTlsBackend;
//! `certificate` and `database` are the GTlsCertificate and GTlsDatabase
//! subclasses, sharing chain verification in `trust`; `iface` holds the GIO
//! vtables gio-rs cannot subclass; `ossl` the OpenSSL calls the `openssl`
//! crate lacks.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

/// Log domain of every message this library logs (`G_MESSAGES_DEBUG=dtls-openssl`).
pub const LOG_DOMAIN: &str = "dtls-openssl";

/// Whether debug messages of [`LOG_DOMAIN`] are wanted: `G_MESSAGES_DEBUG`
/// names the domain (or `all`), or `g_log_set_debug_enabled` was called.
pub fn debug_enabled() -> bool {
    !glib::log_writer_default_would_drop(glib::LogLevel::Debug, Some(LOG_DOMAIN))
}

/// `g_debug` in [`LOG_DOMAIN`], with its message built only when
/// [`debug_enabled`]: messages are formatted on hot paths (every handshake,
/// every verification), where nobody should pay for unwanted text.
macro_rules! debug {
    ($($arg:tt)+) => {
        if $crate::debug_enabled() {
            glib::g_debug!($crate::LOG_DOMAIN, $($arg)+)
        }
    };
}
pub(crate) use debug;

pub mod backend;
pub mod certificate;
pub mod client;
mod config;
pub mod connection;
pub mod database;
mod error;
#[allow(unsafe_code)]
mod ffi;
#[allow(unsafe_code)]
mod iface;
pub mod listener;
#[allow(unsafe_code)]
pub mod module;
#[allow(unsafe_code)]
mod ossl;
mod second_copy;
pub mod server;
pub mod trust;
mod unsupported;

pub use backend::Backend;
pub use certificate::Certificate;
pub use client::ClientConnection;
pub use database::{file::FileDatabase, Database};
pub use listener::Server;
pub use module::register;
pub use server::ServerConnection;
