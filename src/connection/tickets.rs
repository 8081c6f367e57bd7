//! Session-ticket keys of the server contexts, rotated.
//!
//! OpenSSL's default is one random ticket key per context for the life of
//! the process: whoever reads it later can decrypt every ticket ever issued
//! (and with it the sessions' master secrets). Here a server context
//! encrypts tickets (AES-256-CBC, HMAC-SHA256, RFC 5077's layout) under a
//! process-wide key that is replaced every [`ROTATION`]; tickets under the
//! previous key are still accepted, and renewed, for one more period; older
//! ones fall back to a full handshake.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openssl::ssl::SslContextBuilder;
use openssl_sys as ffi;

/// How long one key issues tickets.
pub const ROTATION: Duration = Duration::from_secs(3600);

type TicketCb = unsafe extern "C" fn(
    *mut ffi::SSL,
    *mut u8,
    *mut u8,
    *mut ffi::EVP_CIPHER_CTX,
    *mut ffi::EVP_MAC_CTX,
    c_int,
) -> c_int;

extern "C" {
    // OpenSSL 3.0's ssl.h and params.h.
    fn SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx: *mut ffi::SSL_CTX, cb: Option<TicketCb>) -> c_int;
    fn OSSL_PARAM_construct_utf8_string(
        key: *const c_char,
        buf: *mut c_char,
        bsize: usize,
    ) -> ffi::OSSL_PARAM;
}

#[derive(Clone, Copy)]
struct Key {
    name: [u8; 16],
    aes: [u8; 32],
    hmac: [u8; 32],
}

impl Key {
    fn fresh() -> Key {
        let mut k = Key {
            name: [0; 16],
            aes: [0; 32],
            hmac: [0; 32],
        };
        for buf in [&mut k.name[..], &mut k.aes[..], &mut k.hmac[..]] {
            openssl::rand::rand_bytes(buf).expect("OpenSSL's random generator");
        }
        k
    }
}

struct Keys {
    current: Key,
    previous: Option<Key>,
    since: Instant,
}

static KEYS: Mutex<Option<Keys>> = Mutex::new(None);

/// The current key and the previous one, rotating when due.
fn keys() -> (Key, Option<Key>) {
    let mut guard = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let k = guard.get_or_insert_with(|| Keys {
        current: Key::fresh(),
        previous: None,
        since: Instant::now(),
    });
    if k.since.elapsed() >= ROTATION {
        rotate(k);
    }
    (k.current, k.previous)
}

fn rotate(k: &mut Keys) {
    k.previous = Some(k.current);
    k.current = Key::fresh();
    k.since = Instant::now();
}

/// Rotates now, as if [`ROTATION`] had passed (tests).
pub fn rotate_now() {
    let _ = keys();
    if let Some(k) = KEYS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        rotate(k);
    }
}

/// Makes `builder`'s context encrypt and accept tickets with the rotating
/// keys.
pub(crate) fn install(builder: &mut SslContextBuilder) {
    // SAFETY: the context is live; `ticket_cb` matches OpenSSL 3.0's
    // ticket-key callback type and lives for the program.
    unsafe { SSL_CTX_set_tlsext_ticket_key_evp_cb(builder.as_ptr(), Some(ticket_cb)) };
}

/// Keys the HMAC with `key` and SHA-256.
///
/// # Safety
/// `hctx` is the live EVP_MAC_CTX OpenSSL passed to the callback.
unsafe fn init_mac(hctx: *mut ffi::EVP_MAC_CTX, key: &[u8; 32]) -> bool {
    let mut key = *key;
    let mut digest = *b"SHA256\0";
    // SAFETY: the parameter names are NUL-terminated constants; the
    // buffers outlive the call, which copies them.
    unsafe {
        let params = [
            ffi::OSSL_PARAM_construct_octet_string(
                c"key".as_ptr(),
                key.as_mut_ptr().cast::<c_void>(),
                key.len(),
            ),
            OSSL_PARAM_construct_utf8_string(
                c"digest".as_ptr(),
                digest.as_mut_ptr().cast::<c_char>(),
                0,
            ),
            ffi::OSSL_PARAM_construct_end(),
        ];
        ffi::EVP_MAC_CTX_set_params(hctx, params.as_ptr()) == 1
    }
}

/// OpenSSL's ticket-key callback: `enc` 1 to issue a ticket (fill name and
/// IV, set up encryption: 1), 0 to open one (find the key by name: 1, or 2
/// to have it renewed under the current key; 0 unknown: full handshake).
unsafe extern "C" fn ticket_cb(
    _ssl: *mut ffi::SSL,
    name: *mut u8,
    iv: *mut u8,
    cctx: *mut ffi::EVP_CIPHER_CTX,
    hctx: *mut ffi::EVP_MAC_CTX,
    enc: c_int,
) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (current, previous) = keys();
        // SAFETY (for the raw slices below): OpenSSL passes a 16-byte key
        // name and an EVP_MAX_IV_LENGTH (16) byte IV buffer.
        if enc == 1 {
            let iv = unsafe { std::slice::from_raw_parts_mut(iv, 16) };
            if openssl::rand::rand_bytes(iv).is_err() {
                return -1;
            }
            unsafe { std::ptr::copy_nonoverlapping(current.name.as_ptr(), name, 16) };
            // SAFETY: live contexts from OpenSSL; key and IV of AES-256-CBC's sizes.
            let ok = unsafe {
                ffi::EVP_EncryptInit_ex(
                    cctx,
                    ffi::EVP_aes_256_cbc(),
                    std::ptr::null_mut(),
                    current.aes.as_ptr(),
                    iv.as_ptr(),
                ) == 1
                    && init_mac(hctx, &current.hmac)
            };
            return if ok { 1 } else { -1 };
        }
        let wanted = unsafe { std::slice::from_raw_parts(name, 16) };
        let (key, renew) = if wanted == current.name {
            (current, false)
        } else if let Some(p) = previous.filter(|p| wanted == p.name) {
            (p, true)
        } else {
            return 0;
        };
        // SAFETY: as above.
        let ok = unsafe {
            ffi::EVP_DecryptInit_ex(
                cctx,
                ffi::EVP_aes_256_cbc(),
                std::ptr::null_mut(),
                key.aes.as_ptr(),
                iv,
            ) == 1
                && init_mac(hctx, &key.hmac)
        };
        match (ok, renew) {
            (false, _) => -1,
            (true, true) => 2,
            (true, false) => 1,
        }
    }));
    // Never unwind into OpenSSL; a failure means "no ticket".
    result.unwrap_or(0)
}
