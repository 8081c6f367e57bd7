//! Stateless DTLS cookies (RFC 6347 §4.2.1): a server answers a ClientHello
//! without a valid cookie with a small HelloVerifyRequest and keeps nothing,
//! so a ClientHello from a spoofed address costs it one datagram.
//!
//! The cookie is HMAC-SHA256 over what binds it to the peer — its address,
//! when the base socket knows it — and the ClientHello's random (the same
//! in both ClientHellos of an exchange), under a process-wide secret that
//! is replaced every [`ROTATION`]; a cookie made under the previous secret
//! still verifies, so no exchange breaks at a rotation.
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

fn mac(secret: &[u8; 32], peer: &[u8], client_random: &[u8]) -> Option<[u8; LEN]> {
    let key = PKey::hmac(secret).ok()?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key).ok()?;
    // Length-prefixed, so (peer, random) pairs cannot collide.
    signer.update(&(peer.len() as u32).to_be_bytes()).ok()?;
    signer.update(peer).ok()?;
    signer.update(client_random).ok()?;
    let mut out = [0u8; LEN];
    signer.sign(&mut out).ok()?;
    Some(out)
}

/// Writes the cookie for this peer and ClientHello into `out`; its length.
pub fn generate(peer: &[u8], client_random: &[u8], out: &mut [u8]) -> Option<usize> {
    let cookie = mac(&secrets()[0], peer, client_random)?;
    out.get_mut(..LEN)?.copy_from_slice(&cookie);
    Some(LEN)
}

/// Whether `cookie` was made by [`generate`] for this peer and ClientHello
/// under the current or the previous secret.
pub fn verify(peer: &[u8], client_random: &[u8], cookie: &[u8]) -> bool {
    cookie.len() == LEN
        && secrets()
            .iter()
            .any(|s| mac(s, peer, client_random).is_some_and(|m| openssl::memcmp::eq(&m, cookie)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bind_peer_and_random() {
        let mut c = [0u8; 255];
        let n = generate(b"10.0.0.1:5684", &[7; 32], &mut c).unwrap();
        assert_eq!(n, LEN);
        assert!(verify(b"10.0.0.1:5684", &[7; 32], &c[..n]));
        assert!(!verify(b"10.0.0.2:5684", &[7; 32], &c[..n]));
        assert!(!verify(b"10.0.0.1:5684", &[8; 32], &c[..n]));
        assert!(!verify(b"10.0.0.1:5684", &[7; 32], &c[..n - 1]));
        let mut forged = c;
        forged[0] ^= 1;
        assert!(!verify(b"10.0.0.1:5684", &[7; 32], &forged[..n]));
        assert!(
            generate(b"x", &[0; 32], &mut [0u8; 16]).is_none(),
            "too small"
        );
    }
}
