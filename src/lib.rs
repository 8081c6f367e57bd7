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
