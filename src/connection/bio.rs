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
//! Nothing is ever truncated, and nothing unauthenticated can end the
//! connection: every received datagram is split into its records and
//! screened (`record.rs`) as it is queued and again as OpenSSL reads it, so
//! one `read` call hands OpenSSL one record. A record that fails, or that is
//! larger than the buffer OpenSSL offers (16717 bytes in OpenSSL 3.0: a
//! maximum record plus overheads), is dropped and logged at debug level.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use super::ossl::ProtectionProbe;
use super::record::{self, Dropped};

/// Datagram-preserving in-memory transport used as the SSL's BIO stream.
#[derive(Debug, Default)]
pub struct DatagramTransport {
    /// Received records, each one whole, in arrival order.
    inbound: VecDeque<Vec<u8>>,
    outbound: VecDeque<Vec<u8>>,
    /// Which cipher protects records, asked when OpenSSL reads one.
    probe: Option<ProtectionProbe>,
    /// Records dropped by screening so far.
    dropped: u64,
    /// Records handed to OpenSSL so far.
    accepted: u64,
    largest_read_buffer: usize,
    /// Buffers of datagrams already consumed, reused so that the steady
    /// state allocates nothing per datagram.
    spare: Vec<Vec<u8>>,
}

/// Spare buffers kept at most (a flight or a burst of records).
const MAX_SPARE: usize = 32;
/// Spare buffers kept while idle (see [`DatagramTransport::trim`]).
const IDLE_SPARE: usize = 2;
/// Room the lists keep while idle, in entries: what a list of 24-byte
/// entries gets on its first push, so trimming to it never reallocates in
/// the steady state.
const IDLE_ROOM: usize = 4;

impl DatagramTransport {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the transport ask which cipher protects records; until then
    /// every protected record is taken as genuine (tests of the queues).
    pub(crate) fn set_probe(&mut self, probe: ProtectionProbe) {
        self.probe = Some(probe);
    }

    /// Queues the records of one received datagram for the SSL to read,
    /// each in a recycled buffer. Malformed records are dropped here.
    pub fn push_inbound(&mut self, datagram: &[u8]) {
        record::split(datagram, |r| match r {
            Ok(rec) => {
                let buf = self.buffer_with(rec);
                self.inbound.push_back(buf);
            }
            Err(why) => self.drop_record(why),
        });
    }

    fn drop_record(&mut self, why: Dropped) {
        self.dropped += 1;
        crate::debug!("dropped a received record: {why}");
    }

    /// Records dropped by screening since the transport was made.
    pub fn dropped_records(&self) -> u64 {
        self.dropped
    }

    /// Records handed to the SSL (not dropped) since the transport was made.
    pub fn accepted_records(&self) -> u64 {
        self.accepted
    }

    /// The datagrams waiting to be sent, oldest first.
    pub fn outbound(&self) -> impl Iterator<Item = &[u8]> {
        self.outbound.iter().map(Vec::as_slice)
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

    /// After the handshake: gives back the spare buffers (sized for
    /// handshake flights) and the queues' room, keeping what is queued.
    /// The first records after the handshake allocate what the steady
    /// state reuses.
    pub fn shrink(&mut self) {
        self.spare = Vec::new();
        self.inbound.shrink_to_fit();
        self.outbound.shrink_to_fit();
    }

    /// When idle: keeps only the few spare buffers a request and its
    /// answer reuse ([`IDLE_SPARE`]), so that a burst does not stay
    /// allocated, and gives back the room a burst made in the lists. In
    /// the steady state (no bursts) this frees and reallocates nothing.
    pub fn trim(&mut self) {
        self.spare.truncate(IDLE_SPARE);
        if self.spare.capacity() > IDLE_ROOM {
            self.spare.shrink_to(IDLE_ROOM);
        }
        if self.inbound.capacity() > IDLE_ROOM {
            self.inbound.shrink_to(IDLE_ROOM);
        }
        if self.outbound.capacity() > IDLE_ROOM {
            self.outbound.shrink_to(IDLE_ROOM);
        }
    }

    /// Drops every queued record and datagram, both ways (the listening
    /// engine starts each ClientHello afresh).
    pub fn clear(&mut self) {
        while let Some(buf) = self.inbound.pop_front() {
            self.recycle(buf);
        }
        while let Some(buf) = self.outbound.pop_front() {
            self.recycle(buf);
        }
    }

    /// Number of received records the SSL has not read yet.
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// A bound on the plaintext any queued record can carry: the largest
    /// record's length past its header (0 when none is queued).
    pub fn largest_queued_body(&self) -> usize {
        self.inbound
            .iter()
            .map(|r| r.len().saturating_sub(record::HEADER_LEN))
            .max()
            .unwrap_or(0)
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

    /// The largest read buffer OpenSSL has offered so far (0 before the
    /// first read); useful to know the largest record accepted.
    pub fn largest_read_buffer(&self) -> usize {
        self.largest_read_buffer
    }

    /// Screening at read time: what depends on the SSL's state now.
    fn admits(&self, rec: &[u8], capacity: usize) -> Result<(), Dropped> {
        if rec.len() > capacity {
            return Err(Dropped::TooLarge {
                size: rec.len(),
                max: capacity,
            });
        }
        let header = record::header_of(rec);
        match &self.probe {
            Some(probe) if header.is_protected() => probe.protection().admits(header.length),
            _ => Ok(()),
        }
    }
}

impl Read for DatagramTransport {
    /// One call = one record. An empty queue is `WouldBlock`, which the
    /// BIO turns into a retryable read (`SSL_ERROR_WANT_READ`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_read_buffer = self.largest_read_buffer.max(buf.len());
        while let Some(rec) = self.inbound.pop_front() {
            if let Err(why) = self.admits(&rec, buf.len()) {
                self.drop_record(why);
                self.recycle(rec);
                continue;
            }
            buf[..rec.len()].copy_from_slice(&rec);
            let n = rec.len();
            self.accepted += 1;
            self.recycle(rec);
            return Ok(n);
        }
        Err(io::ErrorKind::WouldBlock.into())
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

    fn rec(body: &[u8]) -> Vec<u8> {
        let mut r = vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn one_read_is_one_record() {
        let mut t = DatagramTransport::new();
        let (a, b, c) = (rec(&[1, 2, 3]), rec(&[4]), rec(&[5; 40]));
        t.push_inbound(&[a.clone(), b.clone()].concat());
        t.push_inbound(&[]);
        t.push_inbound(&c);
        assert_eq!(t.inbound_len(), 3);
        let mut buf = [0u8; 64];
        for expected in [a, b, c] {
            let n = t.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], expected);
        }
        assert_eq!(
            t.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(t.dropped_records(), 0);

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
        t.push_inbound(&rec(&[1; 100]));
        let mut buf = [0u8; 200];
        assert_eq!(t.read(&mut buf).unwrap(), 113);
        let ptr = t.spare.last().unwrap().as_ptr();
        t.write_all(&[2; 50]).unwrap();
        let out = t.pop_outbound().unwrap();
        assert_eq!(
            out.as_ptr(),
            ptr,
            "the consumed record's buffer carried the write"
        );
        t.recycle(out);
        t.push_inbound(&rec(&[3; 10]));
        assert!(t.spare.is_empty());
    }

    #[test]
    fn oversize_and_garbage_are_dropped_not_truncated() {
        let mut t = DatagramTransport::new();
        t.push_inbound(&rec(&[7; 10]));
        t.push_inbound(b"not DTLS at all");
        t.push_inbound(&rec(&[5; 2]));
        let mut buf = [0u8; 16];
        assert_eq!(t.read(&mut buf).unwrap(), 15, "the first fitting record");
        assert_eq!(&buf[13..15], &[5, 5]);
        assert_eq!(t.dropped_records(), 2);
        assert_eq!(
            t.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
