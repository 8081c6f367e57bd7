//! DTLS connections. So far: the I/O-free engine and its transport.

pub mod bio;
