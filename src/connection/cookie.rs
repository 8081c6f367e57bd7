//! Stateless DTLS cookies (RFC 6347 §4.2.1): a server answers a ClientHello
//! without a valid cookie with a small HelloVerifyRequest and keeps nothing,
//! so a ClientHello from a spoofed address costs it one datagram.
//!
//! The cookie is HMAC-SHA256 over what binds it to the peer — its address,
//! when the base socket knows it, and a random nonce of the connection —
//! under a process-wide secret that is replaced every [`ROTATION`]; a
//! cookie made under the previous secret still verifies, so no exchange
//! breaks at a rotation. (OpenSSL 3.0 asks for the cookie before it has
//! parsed the first ClientHello's random, so the ClientHello itself cannot
//! be bound; a cookie is only good for the connection that made it.)
#![forbid(unsafe_code)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// How long one secret makes cookies.
pub const ROTATION: Duration = Duration::from_secs(300);
/// Bytes of a cookie (HMAC-SHA256).
pub const LEN: usize = 32;

struct Secrets {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
    since: Instant,
}

fn fresh() -> [u8; 32] {
    let mut s = [0u8; 32];
    openssl::rand::rand_bytes(&mut s).expect("OpenSSL's random generator");
    s
}

static SECRETS: Mutex<Option<Secrets>> = Mutex::new(None);

/// The secrets a cookie may be made with, current first, rotating if due.
fn secrets() -> Vec<[u8; 32]> {
    let mut guard = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let s = guard.get_or_insert_with(|| Secrets {
        current: fresh(),
        previous: None,
        since: Instant::now(),
    });
    if s.since.elapsed() >= ROTATION {
        s.previous = Some(s.current);
        s.current = fresh();
        s.since = Instant::now();
    }
    std::iter::once(s.current).chain(s.previous).collect()
}

fn mac(secret: &[u8; 32], peer: &[u8]) -> Option<[u8; LEN]> {
    let key = PKey::hmac(secret).ok()?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).ok()?;
    signer.update(peer).ok()?;
    let mut out = [0u8; LEN];
    signer.sign(&mut out).ok()?;
    Some(out)
}

/// Writes the cookie for `peer` (what binds it: nonce and address) into
/// `out`; its length.
pub fn generate(peer: &[u8], out: &mut [u8]) -> Option<usize> {
    let cookie = mac(&secrets()[0], peer)?;
    out.get_mut(..LEN)?.copy_from_slice(&cookie);
    Some(LEN)
}

/// Whether `cookie` was made by [`generate`] for `peer` under the current
/// or the previous secret.
pub fn verify(peer: &[u8], cookie: &[u8]) -> bool {
    cookie.len() == LEN
        && secrets()
            .iter()
            .any(|s| mac(s, peer).is_some_and(|m| openssl::memcmp::eq(&m, cookie)))
}

/// What a cookie binds: a fresh random nonce (so a cookie is good for one
/// connection only) followed by `address` (empty when unknown).
pub fn binding(address: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    openssl::rand::rand_bytes(&mut b).expect("OpenSSL's random generator");
    b.extend_from_slice(address);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bind_their_connection_and_peer() {
        let peer = binding(b"10.0.0.1:5684");
        let mut c = [0u8; 255];
        let n = generate(&peer, &mut c).unwrap();
        assert_eq!(n, LEN);
        assert!(verify(&peer, &c[..n]));
        let mut other_address = peer.clone();
        *other_address.last_mut().unwrap() = b'5';
        assert!(!verify(&other_address, &c[..n]));
        assert!(
            !verify(&binding(b"10.0.0.1:5684"), &c[..n]),
            "another connection"
        );
        assert!(!verify(&peer, &c[..n - 1]));
        let mut forged = c;
        forged[0] ^= 1;
        assert!(!verify(&peer, &forged[..n]));
        assert!(generate(&peer, &mut [0u8; 16]).is_none(), "too small");
    }
}
