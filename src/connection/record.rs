//! Screening of received DTLS 1.0/1.2 records before OpenSSL sees them.
//!
//! DTLS must silently discard what does not authenticate (RFC 6347
//! §4.1.2.7), yet OpenSSL 3.0 ends the whole connection on some forged
//! records: a protected (epoch ≥ 1) AEAD record shorter than its explicit
//! nonce and tag (OpenSSL 3.0.19), and handshake fragments whose lengths do
//! not add up. The transport therefore splits every datagram into records
//! and drops, before OpenSSL reads them:
//! - anything that is not a well-formed DTLS 1.x record (a short header, a
//!   length past the end of the datagram, an unknown content type, a
//!   version that is not DTLS): the rest of that datagram is dropped, as
//!   OpenSSL itself would;
//! - plaintext (epoch 0) handshake records whose fragments are malformed:
//!   a fragment longer than its record, past the end of its message, or a
//!   message longer than [`MAX_HANDSHAKE_MESSAGE`];
//! - at the moment OpenSSL reads them, protected records shorter than the
//!   negotiated cipher's minimum, or for which no cipher is known yet
//!   ([`Protection`]).
//!
//! Nothing here allocates or touches OpenSSL; `bio.rs` applies it.
#![forbid(unsafe_code)]

use std::fmt;

/// Bytes of a DTLS 1.0/1.2 record header.
pub const HEADER_LEN: usize = 13;
/// Bytes of a DTLS handshake message header.
const HANDSHAKE_HEADER_LEN: usize = 12;
/// Largest handshake message accepted: OpenSSL 3.0 refuses (fatally) a
/// message over its `max_cert_list`, 100 KiB by default.
pub const MAX_HANDSHAKE_MESSAGE: usize = 100 * 1024;

const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// The parts of a record header the screening needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Content type (20–23).
    pub content_type: u8,
    /// Epoch: 0 is plaintext, 1 and above are protected.
    pub epoch: u16,
    /// Length of the fragment after the header.
    pub length: usize,
}

impl Header {
    /// Parses a record header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header, Dropped> {
        let h = bytes.get(..HEADER_LEN).ok_or(Dropped::ShortHeader)?;
        let content_type = h[0];
        if !(CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&content_type) {
            return Err(Dropped::NotDtls);
        }
        // DTLS versions are 0xfeXX (1.0 = 0xfeff, 1.2 = 0xfefd).
        if h[1] != 0xfe {
            return Err(Dropped::NotDtls);
        }
        Ok(Header {
            content_type,
            epoch: u16::from_be_bytes([h[3], h[4]]),
            length: usize::from(u16::from_be_bytes([h[11], h[12]])),
        })
    }

    /// Whether the fragment is encrypted and authenticated.
    pub fn is_protected(&self) -> bool {
        self.epoch > 0
    }
}

/// Why a record (and, for framing errors, the rest of its datagram) was
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Fewer than 13 bytes left for a header.
    ShortHeader,
    /// Unknown content type or a version that is not DTLS 1.x.
    NotDtls,
    /// The header's length runs past the end of the datagram.
    PastDatagram {
        /// Length the header claims.
        length: usize,
        /// Bytes left in the datagram.
        left: usize,
    },
    /// A plaintext handshake fragment whose lengths do not add up.
    BadHandshakeFragment,
    /// A handshake message longer than [`MAX_HANDSHAKE_MESSAGE`].
    HandshakeTooLong(usize),
    /// A protected record while no cipher is negotiated yet.
    NoCipherYet,
    /// A protected record shorter than the cipher's nonce and tag.
    TooShort {
        /// Its length.
        length: usize,
        /// The cipher's minimum.
        min: usize,
    },
    /// A record larger than the buffer OpenSSL reads into.
    TooLarge {
        /// Its length, header included.
        size: usize,
        /// OpenSSL's buffer.
        max: usize,
    },
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortHeader => f.write_str("truncated record header"),
            Self::NotDtls => f.write_str("not a DTLS 1.x record"),
            Self::PastDatagram { length, left } => write!(
                f,
                "record length {length} runs past the datagram ({left} bytes left)"
            ),
            Self::BadHandshakeFragment => f.write_str("malformed handshake fragment"),
            Self::HandshakeTooLong(n) => write!(f, "{n}-byte handshake message"),
            Self::NoCipherYet => f.write_str("protected record before a cipher was negotiated"),
            Self::TooShort { length, min } => write!(
                f,
                "{length}-byte protected record, shorter than the cipher's {min}"
            ),
            Self::TooLarge { size, max } => {
                write!(
                    f,
                    "{size}-byte record, larger than the {max} bytes OpenSSL reads"
                )
            }
        }
    }
}

/// What protects records of epoch 1 and above, as far as screening cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// No cipher negotiated yet: no protected record can be genuine.
    Unknown,
    /// An AEAD cipher: a record is at least explicit nonce + tag.
    Aead {
        /// Explicit nonce plus tag, in bytes.
        min_len: usize,
    },
    /// MAC-then-encrypt (CBC) or NULL: OpenSSL discards forgeries itself.
    Other,
}

impl Protection {
    /// Whether a protected record of `length` bytes may reach OpenSSL.
    pub fn admits(self, length: usize) -> Result<(), Dropped> {
        match self {
            Protection::Unknown => Err(Dropped::NoCipherYet),
            Protection::Aead { min_len } if length < min_len => Err(Dropped::TooShort {
                length,
                min: min_len,
            }),
            _ => Ok(()),
        }
    }
}

/// Splits `datagram` into its records, calling `each` in order with every
/// well-formed one (header included) or the reason one was left out. A
/// framing error drops the rest of the datagram.
pub fn split(datagram: &[u8], mut each: impl FnMut(Result<&[u8], Dropped>)) {
    let mut rest = datagram;
    while !rest.is_empty() {
        let header = match Header::parse(rest) {
            Ok(h) => h,
            Err(why) => return each(Err(why)),
        };
        let end = HEADER_LEN + header.length;
        let Some(whole) = rest.get(..end) else {
            return each(Err(Dropped::PastDatagram {
                length: header.length,
                left: rest.len() - HEADER_LEN,
            }));
        };
        rest = &rest[end..];
        each(check_plaintext(&header, &whole[HEADER_LEN..]).map(|()| whole));
    }
}

/// Checks what can be checked of a record's fragment without keys: the
/// handshake fragments of plaintext handshake records.
fn check_plaintext(header: &Header, fragment: &[u8]) -> Result<(), Dropped> {
    if header.is_protected() || header.content_type != HANDSHAKE {
        return Ok(());
    }
    if fragment.is_empty() {
        return Err(Dropped::BadHandshakeFragment);
    }
    let mut rest = fragment;
    while !rest.is_empty() {
        let h = rest
            .get(..HANDSHAKE_HEADER_LEN)
            .ok_or(Dropped::BadHandshakeFragment)?;
        let u24 =
            |i: usize| usize::from(h[i]) << 16 | usize::from(h[i + 1]) << 8 | usize::from(h[i + 2]);
        let (msg_len, offset, frag_len) = (u24(1), u24(6), u24(9));
        if msg_len > MAX_HANDSHAKE_MESSAGE {
            return Err(Dropped::HandshakeTooLong(msg_len));
        }
        if offset + frag_len > msg_len || HANDSHAKE_HEADER_LEN + frag_len > rest.len() {
            return Err(Dropped::BadHandshakeFragment);
        }
        rest = &rest[HANDSHAKE_HEADER_LEN + frag_len..];
    }
    Ok(())
}

/// The record header at the start of `record`, which [`split`] already
/// accepted.
pub fn header_of(record: &[u8]) -> Header {
    Header::parse(record).expect("split() passes only well-formed records")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(content_type: u8, epoch: u16, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type, 0xfe, 0xfd];
        r.extend_from_slice(&epoch.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0, 0, 7]);
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn fragment(msg_len: u32, offset: u32, body: &[u8]) -> Vec<u8> {
        let mut f = vec![1];
        f.extend_from_slice(&msg_len.to_be_bytes()[1..]);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&offset.to_be_bytes()[1..]);
        f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        f.extend_from_slice(body);
        f
    }

    fn run(datagram: &[u8]) -> (Vec<Vec<u8>>, Vec<Dropped>) {
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        split(datagram, |r| match r {
            Ok(r) => kept.push(r.to_vec()),
            Err(d) => dropped.push(d),
        });
        (kept, dropped)
    }

    #[test]
    fn records_are_split_and_kept_whole() {
        let a = rec(23, 1, &[1; 30]);
        let b = rec(22, 0, &fragment(3, 0, &[1, 2, 3]));
        let (kept, dropped) = run(&[a.clone(), b.clone()].concat());
        assert_eq!(kept, vec![a, b]);
        assert!(dropped.is_empty());
    }

    #[test]
    fn framing_errors_drop_the_rest() {
        let good = rec(23, 1, &[1; 30]);
        let mut long = rec(23, 1, &[1; 30]);
        long[12] = 31;
        let mut long = good.clone();
        long[12] = 31;
        let (kept, dropped) = run(&[good.clone(), long].concat());
        assert_eq!(kept, vec![good.clone()]);
        assert_eq!(
            dropped,
            vec![Dropped::PastDatagram {
                length: 31,
                left: 30
            }]
        );
        assert_eq!(run(&good[..12]).1, vec![Dropped::ShortHeader]);
        assert_eq!(run(b"definitely not DTLS").1, vec![Dropped::NotDtls]);
        let mut tls = good.clone();
        tls[1] = 3;
        assert_eq!(run(&tls).1, vec![Dropped::NotDtls]);
        let mut heartbeat = good;
        heartbeat[0] = 24;
        assert_eq!(run(&heartbeat).1, vec![Dropped::NotDtls]);
    }

    #[test]
    fn handshake_fragments_must_add_up() {
        let ok = rec(
            22,
            0,
            &[fragment(10, 0, &[0; 4]), fragment(10, 4, &[0; 6])].concat(),
        );
        assert_eq!(run(&ok).1, vec![]);
        // Longer than its record.
        let mut f = fragment(10, 0, &[0; 4]);
        f[11] = 5;
        assert_eq!(run(&rec(22, 0, &f)).1, vec![Dropped::BadHandshakeFragment]);
        // Past the end of its message.
        assert_eq!(
            run(&rec(22, 0, &fragment(10, 8, &[0; 4]))).1,
            vec![Dropped::BadHandshakeFragment]
        );
        // A 16 MiB message.
        assert_eq!(
            run(&rec(22, 0, &fragment(0xff_ffff, 0, &[0; 4]))).1,
            vec![Dropped::HandshakeTooLong(0xff_ffff)]
        );
        // A truncated fragment header, and an empty handshake record.
        assert_eq!(
            run(&rec(22, 0, &[1, 0, 0])).1,
            vec![Dropped::BadHandshakeFragment]
        );
        assert_eq!(run(&rec(22, 0, &[])).1, vec![Dropped::BadHandshakeFragment]);
        // Protected handshake records cannot be read: left to OpenSSL.
        assert_eq!(run(&rec(22, 1, &[1, 0, 0])).1, vec![]);
    }

    #[test]
    fn protection_sets_the_minimum() {
        assert_eq!(Protection::Unknown.admits(100), Err(Dropped::NoCipherYet));
        let gcm = Protection::Aead { min_len: 24 };
        assert_eq!(
            gcm.admits(23),
            Err(Dropped::TooShort {
                length: 23,
                min: 24
            })
        );
        assert_eq!(gcm.admits(24), Ok(()));
        assert_eq!(Protection::Other.admits(0), Ok(()));
    }
}
