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
#[path = "gio/dtls_edges.rs"]
mod dtls_edges;
#[path = "gio/dtls_errors.rs"]
mod dtls_errors;
#[path = "gio/dtls_features.rs"]
mod dtls_features;
#[path = "gio/dtls_server.rs"]
mod dtls_server;
#[path = "gio/dtls_server_auth.rs"]
mod dtls_server_auth;
#[path = "gio/dtls_server_p2p.rs"]
mod dtls_server_p2p;
#[path = "gio/error_table.rs"]
mod error_table;
#[path = "gio/gso.rs"]
mod gso;
#[path = "gio/hostile.rs"]
mod hostile;
#[path = "gio/identity.rs"]
mod identity;
#[path = "gio/idle.rs"]
mod idle;
#[path = "gio/listener.rs"]
mod listener;
#[path = "gio/loss.rs"]
mod loss;
#[path = "gio/reentry.rs"]
mod reentry;
#[path = "gio/resumption.rs"]
mod resumption;
#[path = "gio/server_peers.rs"]
mod server_peers;
#[path = "gio/time_limits.rs"]
mod time_limits;
