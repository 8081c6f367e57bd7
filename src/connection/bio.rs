//! The SSL's transport: two in-memory datagram queues.
//!
//! [`DatagramTransport`] is the `Read + Write` stream of the engine's
//! `openssl::ssl::SslStream`, whose BIO hands us exactly one OpenSSL
//! `BIO_read`/`BIO_write` per call. Boundaries are kept: one `write` call is
//! one outbound datagram, one `read` call consumes one inbound datagram.
//!
//! Why not a custom `BIO_METHOD`: the engine always sets
//! `SSL_OP_NO_QUERY_MTU` and the MTU itself, so OpenSSL's DTLS code needs
//! from its BIO only `BIO_CTRL_FLUSH` (answered: success),
//! `BIO_CTRL_WPENDING` and `BIO_CTRL_DGRAM_GET_MTU_OVERHEAD` (answered 0,
//! which is right: nothing is buffered below the SSL, and our MTU is the
//! whole datagram, with no IP/UDP header to subtract) and the informational
//! `BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT`. `BIO_CTRL_DGRAM_GET_PEER` is only used
//! by `DTLSv1_listen`, which we do not use; without `SSL_OP_NO_QUERY_MTU` a
//! 0 from `BIO_CTRL_DGRAM_QUERY_MTU`/`GET_FALLBACK_MTU` would shrink records
//! to 256 bytes, hence the option. rust-openssl's BIO answers exactly so and
//! catches panics from `read`/`write`, resurfacing them on the Rust side, so
//! no panic crosses the C boundary from here. The engine tests check every
//! handshake datagram against the MTU and the record framing.
//!
//! One OpenSSL behaviour the transport cannot fix: during a handshake
//! OpenSSL packs records through a 4096-byte `BIO_f_buffer` above this
//! transport, which splits a record across two writes once the MTU allows
//! more than 4096 bytes; the engine caps the handshake MTU for that
//! (`engine::HANDSHAKE_MTU_CAP`).
//!
//! Nothing is ever truncated. OpenSSL 3.0 reads each datagram with a
//! 16717-byte buffer (a maximum record plus overheads); a datagram longer
//! than the buffer offered is dropped whole and recorded, so the engine can
//! report it, instead of being cut.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// An inbound datagram that was too large for OpenSSL's read buffer and
/// was therefore dropped (not truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OversizeDatagram {
    /// Length of the dropped datagram.
    pub size: usize,
    /// Size of the buffer OpenSSL offered.
    pub capacity: usize,
}

/// Datagram-preserving in-memory transport used as the SSL's BIO stream.
#[derive(Debug, Default)]
pub struct DatagramTransport {
    inbound: VecDeque<Vec<u8>>,
    outbound: VecDeque<Vec<u8>>,
    oversize: Option<OversizeDatagram>,
    largest_read_buffer: usize,
    /// Buffers of datagrams already consumed, reused so that the steady
    /// state allocates nothing per datagram.
    spare: Vec<Vec<u8>>,
}

/// Spare buffers kept at most (a flight or a burst of records).
const MAX_SPARE: usize = 32;

impl DatagramTransport {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a received datagram for the SSL to read. Empty datagrams
    /// carry no DTLS record and are ignored (a 0-byte read would look like
    /// end-of-file to OpenSSL).
    pub fn push_inbound(&mut self, datagram: Vec<u8>) {
        if !datagram.is_empty() {
            self.inbound.push_back(datagram);
        }
    }

    /// Number of received datagrams the SSL has not read yet.
    /// Queues a copy of one received datagram in a recycled buffer.
    pub fn push_inbound_copy(&mut self, datagram: &[u8]) {
        if !datagram.is_empty() {
            let buf = self.buffer_with(datagram);
            self.inbound.push_back(buf);
        }
    }

    /// Gives back a buffer (e.g. from [`Self::pop_outbound`]) for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < MAX_SPARE {
            buf.clear();
            self.spare.push(buf);
        }
    }

    fn buffer_with(&mut self, data: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// Takes the oldest datagram the SSL has written.
    pub fn pop_outbound(&mut self) -> Option<Vec<u8>> {
        self.outbound.pop_front()
    }

    /// Length of the oldest datagram waiting to be sent.
    pub fn peek_outbound_len(&self) -> Option<usize> {
        self.outbound.front().map(Vec::len)
    }

    /// Whether the SSL has written datagrams that nobody has taken yet.
    pub fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// Takes the record of the last inbound datagram dropped for being
    /// larger than OpenSSL's read buffer.
    pub fn take_oversize(&mut self) -> Option<OversizeDatagram> {
        self.oversize.take()
    }

    /// The largest read buffer OpenSSL has offered so far (0 before the
    /// first read); useful to know the largest datagram accepted.
    pub fn largest_read_buffer(&self) -> usize {
        self.largest_read_buffer
    }
}

impl Read for DatagramTransport {
    /// One call = one datagram. An empty queue is `WouldBlock`, which the
    /// BIO turns into a retryable read (`SSL_ERROR_WANT_READ`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_read_buffer = self.largest_read_buffer.max(buf.len());
        let Some(datagram) = self.inbound.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        if datagram.len() > buf.len() {
            self.oversize = Some(OversizeDatagram {
                size: datagram.len(),
                capacity: buf.len(),
            });
            // Retry rather than fail: a hard BIO error would end the
            // connection, whereas UDP semantics say "drop it".
            return Err(io::ErrorKind::WouldBlock.into());
        }
        buf[..datagram.len()].copy_from_slice(&datagram);
        let n = datagram.len();
        self.recycle(datagram);
        Ok(n)
    }
}

impl Write for DatagramTransport {
    /// One call = one datagram; never blocks.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let datagram = self.buffer_with(buf);
        self.outbound.push_back(datagram);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_kept() {
        let mut t = DatagramTransport::new();
        t.push_inbound(vec![1, 2, 3]);
        t.push_inbound(Vec::new());
        t.push_inbound(vec![4]);
        assert_eq!(t.inbound_len(), 2);
        let mut buf = [0u8; 8];
        assert_eq!(t.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], &[1, 2, 3]);
        assert_eq!(t.read(&mut buf).unwrap(), 1);
        assert_eq!(
            t.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );

        t.write_all(&[9, 9]).unwrap();
        t.write_all(&[8]).unwrap();
        assert_eq!(t.peek_outbound_len(), Some(2));
        assert_eq!(t.pop_outbound().unwrap(), vec![9, 9]);
        assert_eq!(t.pop_outbound().unwrap(), vec![8]);
        assert!(!t.has_outbound());
    }

    #[test]
    fn buffers_are_reused() {
        let mut t = DatagramTransport::new();
        t.push_inbound_copy(&[1; 100]);
        let mut buf = [0u8; 200];
        assert_eq!(t.read(&mut buf).unwrap(), 100);
        let ptr = t.spare.last().unwrap().as_ptr();
        t.write_all(&[2; 50]).unwrap();
        let out = t.pop_outbound().unwrap();
        assert_eq!(
            out.as_ptr(),
            ptr,
            "the consumed datagram's buffer carried the write"
        );
        t.recycle(out);
        t.push_inbound_copy(&[3; 10]);
        assert!(t.spare.is_empty());
    }

    #[test]
    fn oversize_is_dropped_not_truncated() {
        let mut t = DatagramTransport::new();
        t.push_inbound(vec![7; 10]);
        t.push_inbound(vec![5; 2]);
        let mut buf = [0u8; 4];
        assert_eq!(
            t.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(
            t.take_oversize(),
            Some(OversizeDatagram {
                size: 10,
                capacity: 4
            })
        );
        assert_eq!(buf, [0; 4]);
        assert_eq!(t.read(&mut buf).unwrap(), 2);
        assert_eq!(t.take_oversize(), None);
    }
}
