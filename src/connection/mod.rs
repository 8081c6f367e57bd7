//! DTLS connections. So far: the I/O-free engine and its transport.

pub mod bio;
pub mod engine;
mod ossl;
