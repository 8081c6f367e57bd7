//! Integration tests through GIO's public API, with the module loaded from a
//! temporary module directory and `GIO_USE_TLS=dtls-openssl`.

mod common;

#[path = "gio/backend.rs"]
mod backend;
#[path = "gio/certificate.rs"]
mod certificate;
#[path = "gio/database.rs"]
mod database;
#[path = "gio/dtls_client.rs"]
mod dtls_client;
#[path = "gio/dtls_errors.rs"]
mod dtls_errors;
#[path = "gio/reentry.rs"]
mod reentry;
