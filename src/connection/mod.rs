//! DTLS connections: the I/O-free engine, the core that drives it over a
//! GDatagramBased, and the GObject connection type both roles derive from.

pub mod base;
mod binding;
pub mod bio;
mod bytes;
#[allow(unsafe_code)]
mod clock;
pub mod cookie;
pub(crate) mod core;
mod datagram;
pub mod engine;
#[allow(unsafe_code)]
pub(crate) mod gso;
mod handshake_async;
#[allow(unsafe_code)]
pub(crate) mod io;
mod ossl;
#[allow(unsafe_code)]
pub(crate) mod peer_socket;
pub(crate) mod properties;
pub mod record;
pub(crate) mod role;
pub(crate) mod session_cache;
#[allow(unsafe_code)]
mod source;
pub mod tickets;
pub mod trace;
mod verify;

pub use base::Connection;
