//! gio-dtls-openssl: a GIO TLS backend whose DTLS connections run on OpenSSL.
#![deny(unsafe_op_in_unsafe_fn)]

/// Log domain of every message this library logs (`G_MESSAGES_DEBUG=dtls-openssl`).
pub const LOG_DOMAIN: &str = "dtls-openssl";

pub mod connection;
