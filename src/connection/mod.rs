//! DTLS connections: the I/O-free engine, the core that drives it over a
//! GDatagramBased, and the GObject connection types.

pub mod bio;
pub(crate) mod core;
pub mod engine;
#[allow(unsafe_code)]
pub(crate) mod io;
mod ossl;
