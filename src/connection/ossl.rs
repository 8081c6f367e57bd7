//! Safe wrappers for the few OpenSSL 3.0 calls rust-openssl does not bind:
//! the DTLS timer, the data MTU, `SSL_set_options` on an `SSL`, and the
//! client-CA list a client received. Every `unsafe` block of the engine
//! lives here.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_long, c_uint, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::Duration;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::nid::Nid;
use openssl::ssl::{Ssl, SslCipherRef, SslOptions, SslRef, SslSessionRef, SslStream};
use openssl::stack::StackRef;
use openssl::x509::X509Name;
use openssl_sys as ffi;

use super::record::Protection;

/// `DTLS_CTRL_GET_TIMEOUT` (`DTLSv1_get_timeout`).
const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
/// `DTLS_CTRL_HANDLE_TIMEOUT` (`DTLSv1_handle_timeout`).
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;
/// `DTLS_CTRL_SET_LINK_MTU` (`DTLS_set_link_mtu`).
const DTLS_CTRL_SET_LINK_MTU: c_int = 120;
/// `SSL_OP_NO_ENCRYPT_THEN_MAC` (OpenSSL 3.0), which rust-openssl does not name.
pub(crate) const NO_ENCRYPT_THEN_MAC: SslOptions = SslOptions::from_bits_retain(1 << 19);
/// OpenSSL's own ceiling for the retransmission timer.
const MAX_TIMEOUT_US: u32 = 60_000_000;

type DtlsTimerCb = unsafe extern "C" fn(*mut ffi::SSL, c_uint) -> c_uint;

extern "C" {
    // All present since OpenSSL 1.1.1; signatures as in OpenSSL 3.0's ssl.h.
    fn DTLS_get_data_mtu(s: *const ffi::SSL) -> usize;
    fn DTLS_set_timer_cb(s: *mut ffi::SSL, cb: Option<DtlsTimerCb>);
    fn SSL_set_options(s: *mut ffi::SSL, op: u64) -> u64;
    fn SSL_get_client_CA_list(s: *const ffi::SSL) -> *mut ffi::stack_st_X509_NAME;
    fn SSL_get_pending_cipher(s: *const ffi::SSL) -> *const ffi::SSL_CIPHER;
    fn SSL_SESSION_is_resumable(s: *const ffi::SSL_SESSION) -> c_int;
    fn SSL_SESSION_dup(src: *const ffi::SSL_SESSION) -> *mut ffi::SSL_SESSION;
    fn SSL_set_session_id_context(s: *mut ffi::SSL, sid_ctx: *const u8, len: c_uint) -> c_int;
    fn SSL_CIPHER_is_aead(c: *const ffi::SSL_CIPHER) -> c_int;
    fn SSL_has_pending(s: *const ffi::SSL) -> c_int;
    #[cfg(test)]
    fn SSL_clear_options(s: *mut ffi::SSL, op: u64) -> u64;
    #[cfg(test)]
    fn SSL_renegotiate(s: *mut ffi::SSL) -> c_int;
    fn SSL_free_buffers(s: *mut ffi::SSL) -> c_int;
    fn SSL_alloc_buffers(s: *mut ffi::SSL) -> c_int;
    fn SSL_CTX_set_cert_cb(
        ctx: *mut ffi::SSL_CTX,
        cb: Option<unsafe extern "C" fn(*mut ffi::SSL, *mut c_void) -> c_int>,
        arg: *mut c_void,
    );
}

/// Whether OpenSSL holds input it has not processed yet (the rest of a
/// datagram, or records it set aside).
pub(crate) fn has_pending(ssl: &SslRef) -> bool {
    // SAFETY: `ssl` is a live SSL; SSL_has_pending only reads it.
    unsafe { SSL_has_pending(ssl.as_ptr()) != 0 }
}

/// Gives `&mut SslRef` for the `Ssl` owned by `stream`, for the setters
/// rust-openssl only offers on `&mut SslRef`.
pub(crate) fn ssl_mut<S>(stream: &mut SslStream<S>) -> &mut SslRef {
    let ptr = stream.ssl().as_ptr();
    // SAFETY: `ptr` is the live `SSL` owned by `stream`, and we hold the
    // only (`&mut`) borrow of the stream for the lifetime of the result, so
    // no other Rust reference to that `SslRef` can be used meanwhile.
    unsafe { SslRef::from_ptr_mut(ptr) }
}

/// ORs `options` into the SSL's options (`SSL_set_options`).
pub(crate) fn set_options(ssl: &mut SslRef, options: SslOptions) {
    // SAFETY: `ssl` is a live SSL we hold mutably; the call only ORs bits
    // into its option word.
    unsafe { SSL_set_options(ssl.as_ptr(), options.bits()) };
}

/// What protects records of epoch 1 and above: the cipher being negotiated
/// (`SSL_get_pending_cipher`, known from the ServerHello on) or else the
/// current one.
pub(crate) fn protection(ssl: &SslRef) -> Protection {
    // SAFETY: `ssl` is live; the getter only reads a field. The cipher it
    // returns (possibly NULL) is a static table entry of OpenSSL's.
    let pending = unsafe { SSL_get_pending_cipher(ssl.as_ptr()) };
    let cipher = if pending.is_null() {
        ssl.current_cipher()
    } else {
        // SAFETY: non-null pointer to one of OpenSSL's static ciphers.
        Some(unsafe { SslCipherRef::from_ptr(pending as *mut ffi::SSL_CIPHER) })
    };
    let Some(cipher) = cipher else {
        return Protection::Unknown;
    };
    // SAFETY: `cipher` is a live SSL_CIPHER; the call only reads it.
    if unsafe { SSL_CIPHER_is_aead(cipher.as_ptr()) } == 0 {
        return Protection::Other;
    }
    // TLS 1.2 AEADs: ChaCha20-Poly1305 has no explicit nonce and a 16-byte
    // tag; GCM and CCM an 8-byte nonce and a 16-byte tag (CCM_8: 8).
    let no_nonce = cipher.cipher_nid() == Some(Nid::CHACHA20_POLY1305);
    let short_tag = cipher.standard_name().is_some_and(|n| n.ends_with("CCM_8"));
    let min_len = if no_nonce || short_tag { 16 } else { 24 };
    Protection::Aead { min_len }
}

/// A handle on the `SSL` that owns a transport, so the transport can ask
/// [`protection`] at the moment OpenSSL reads a record from it. The answer
/// is kept for the ciphers it was computed from (only a handshake changes
/// them): every record is screened, and working it out again costs a tenth
/// of what decrypting a small record does.
pub(crate) struct ProtectionProbe {
    ssl: *const ffi::SSL,
    /// The pending and current cipher last seen, and their protection.
    last: std::cell::Cell<Option<CipherPair>>,
}

type CipherPair = (*const ffi::SSL_CIPHER, *const ffi::SSL_CIPHER, Protection);

// SAFETY: the probe lives inside the transport that its SSL owns (through
// the BIO) and is only used from the transport's `read`, which OpenSSL
// calls from within an SSL call on that same SSL: whoever moves the engine
// to another thread moves the SSL, the transport and the probe together.
unsafe impl Send for ProtectionProbe {}

impl ProtectionProbe {
    /// A probe on `ssl`, which must own the transport the probe is put in.
    pub(crate) fn new(ssl: &SslRef) -> Self {
        ProtectionProbe {
            ssl: ssl.as_ptr(),
            last: std::cell::Cell::new(None),
        }
    }

    pub(crate) fn protection(&self) -> Protection {
        // SAFETY: see `ProtectionProbe`: the SSL owns the transport holding
        // this probe, so it is alive whenever the transport is read.
        let ssl = unsafe { SslRef::from_ptr(self.ssl as *mut ffi::SSL) };
        // SAFETY: `ssl` is live; the getters only read fields. The ciphers
        // are static table entries of OpenSSL's, so equal pointers are the
        // same cipher.
        let ciphers = unsafe {
            (
                SSL_get_pending_cipher(ssl.as_ptr()),
                ffi::SSL_get_current_cipher(ssl.as_ptr()),
            )
        };
        match self.last.get() {
            Some((pending, current, p)) if (pending, current) == ciphers => p,
            _ => {
                let p = protection(ssl);
                self.last.set(Some((ciphers.0, ciphers.1, p)));
                p
            }
        }
    }
}

impl std::fmt::Debug for ProtectionProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProtectionProbe")
    }
}

/// Offers `session` for resumption (`SSL_set_session`).
pub(crate) fn set_session(ssl: &mut SslRef, session: &SslSessionRef) -> bool {
    // SAFETY: both are live; OpenSSL takes its own reference to the
    // session. rust-openssl marks this unsafe because a session must come
    // from an SSL of the same context: every client connection shares one
    // context per configuration (config.rs), which is where sessions come
    // from, and OpenSSL checks the rest (version, cipher) and falls back to
    // a full handshake.
    unsafe { ssl.set_session(session) }.is_ok()
}

/// Whether `session` can be offered again (`SSL_SESSION_is_resumable`).
pub(crate) fn is_resumable(session: &SslSessionRef) -> bool {
    // SAFETY: the session is live; the call only reads it.
    unsafe { SSL_SESSION_is_resumable(session.as_ptr()) == 1 }
}

/// A copy of `session` that shares no state with it (`SSL_SESSION_dup`:
/// keys, ticket and the peer's whole chain; DER would keep only the leaf).
pub(crate) fn dup_session(session: &SslSessionRef) -> Option<openssl::ssl::SslSession> {
    // SAFETY: the session is live; the copy is a new object we own.
    let copy = unsafe { SSL_SESSION_dup(session.as_ptr()) };
    // SAFETY: non-NULL result of SSL_SESSION_dup, owned by the wrapper.
    (!copy.is_null()).then(|| unsafe { openssl::ssl::SslSession::from_ptr(copy) })
}

/// Gives this SSL its own session ID context, so no cached session (and no
/// ticket) of the shared context can resume it.
pub(crate) fn isolate_sessions(ssl: &mut SslRef) {
    let mut ctx = [0u8; 32];
    let _ = openssl::rand::rand_bytes(&mut ctx);
    // SAFETY: the SSL is live; OpenSSL copies the 32 bytes.
    unsafe { SSL_set_session_id_context(ssl.as_ptr(), ctx.as_ptr(), ctx.len() as c_uint) };
    set_options(ssl, SslOptions::NO_TICKET);
}

/// Makes `mtu` (bytes per datagram, headers of the DTLS records included)
/// the size OpenSSL fragments to, and stops OpenSSL from querying or
/// lowering it behind our back (which it does after two timeouts, asking
/// the BIO for a fallback MTU it does not have).
pub(crate) fn set_mtu(ssl: &mut SslRef, mtu: u32) -> bool {
    set_options(ssl, SslOptions::NO_QUERY_MTU);
    let ptr = ssl.as_ptr();
    // SAFETY: `ptr` is a live SSL we hold mutably; `DTLS_set_link_mtu` only
    // stores the value (after a range check) and takes no pointer argument.
    let link = unsafe {
        ffi::SSL_ctrl(
            ptr,
            DTLS_CTRL_SET_LINK_MTU,
            mtu as c_long,
            std::ptr::null_mut(),
        )
    };
    // The link MTU takes effect at the next write; `SSL_set_mtu` makes it
    // effective now, so `DTLS_get_data_mtu` agrees at once.
    link == 1 && ssl.set_mtu(mtu).is_ok()
}

/// The largest plaintext one record can carry within the current MTU with
/// the negotiated cipher (`DTLS_get_data_mtu`); 0 before a cipher is set.
pub(crate) fn data_mtu(ssl: &SslRef) -> usize {
    // SAFETY: `ssl` is a live SSL; the call only reads it.
    unsafe { DTLS_get_data_mtu(ssl.as_ptr()) }
}

/// `SSL_free_buffers`: gives back the SSL's record buffers (one to read
/// and one to write records, about 16.5 KB each in OpenSSL 3.0), which
/// `SSL_MODE_RELEASE_BUFFERS` never releases for DTLS. False, and nothing
/// freed, when a record is partly read or written.
///
/// OpenSSL's DTLS code only allocates them again on its read path: before
/// any other call that may write (`SSL_write`, `SSL_shutdown`,
/// `DTLSv1_handle_timeout`) the caller must call [`alloc_buffers`].
pub(crate) fn free_buffers(ssl: &mut SslRef) -> bool {
    // SAFETY: the SSL is live and mutably held; the call frees buffers the
    // SSL owns and clears its pointers to them.
    unsafe { SSL_free_buffers(ssl.as_ptr()) == 1 }
}

/// `SSL_alloc_buffers`: the record buffers again, after [`free_buffers`]
/// (a no-op for buffers already there). False when out of memory.
pub(crate) fn alloc_buffers(ssl: &mut SslRef) -> bool {
    // SAFETY: the SSL is live and mutably held; the call allocates the
    // buffers the SSL lacks.
    unsafe { SSL_alloc_buffers(ssl.as_ptr()) == 1 }
}

/// For tests: lets this SSL renegotiate after all (it was made with
/// `SSL_OP_NO_RENEGOTIATION`) and starts a renegotiation
/// (`SSL_renegotiate`): its next read sends a ClientHello, as a peer that
/// renegotiates would.
#[cfg(test)]
pub(crate) fn start_renegotiation(ssl: &mut SslRef) -> bool {
    // SAFETY: the SSL is live and mutably held; the calls clear an option
    // bit and set the SSL's renegotiation flags.
    unsafe {
        SSL_clear_options(ssl.as_ptr(), SslOptions::NO_RENEGOTIATION.bits());
        SSL_renegotiate(ssl.as_ptr()) == 1
    }
}

/// Time left on the DTLS retransmission timer (`DTLSv1_get_timeout`); `None`
/// when no timer runs. OpenSSL reports less than 15 ms left as zero.
pub(crate) fn get_timeout(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: DTLS_CTRL_GET_TIMEOUT writes one `struct timeval` through
    // `parg`, which points at our local; the SSL is live.
    let running = unsafe {
        ffi::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&mut tv as *mut libc::timeval).cast::<c_void>(),
        )
    };
    (running == 1).then(|| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    })
}

/// `DTLSv1_handle_timeout`: 1 when the last flight was queued again, 0 when
/// the timer had not expired, -1 when OpenSSL gave up (too many timeouts).
pub(crate) fn handle_timeout(ssl: &mut SslRef) -> c_long {
    // SAFETY: the SSL is live and mutably held; the ctrl takes no argument.
    unsafe {
        ffi::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_HANDLE_TIMEOUT,
            0,
            std::ptr::null_mut(),
        )
    }
}

/// Retransmission back-off of one SSL, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    initial_us: u32,
    max_us: u32,
}

fn timer_index() -> openssl::ex_data::Index<Ssl, Backoff> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, Backoff>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ran out of ex_data indices"))
}

/// Installs our timer callback: the first timeout of every flight is
/// `initial`, each retransmission doubles it, up to `max` (OpenSSL's own
/// policy is 1 s doubling to 60 s). Both are clamped to 1 µs..=60 s.
pub(crate) fn set_retransmit_timeouts(ssl: &mut SslRef, initial: Duration, max: Duration) {
    let us = |d: Duration| d.as_micros().clamp(1, u128::from(MAX_TIMEOUT_US)) as u32;
    let initial_us = us(initial);
    ssl.set_ex_data(
        timer_index(),
        Backoff {
            initial_us,
            max_us: us(max).max(initial_us),
        },
    );
    // SAFETY: the SSL is live; `timer_cb` matches `DTLS_timer_cb` and
    // stays valid for the life of the program.
    unsafe { DTLS_set_timer_cb(ssl.as_ptr(), Some(timer_cb)) };
}

unsafe extern "C" fn timer_cb(ssl: *mut ffi::SSL, timer_us: c_uint) -> c_uint {
    let next = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls us with the live SSL whose timer this is.
        let ssl = unsafe { SslRef::from_ptr(ssl) };
        let b = ssl.ex_data(timer_index()).copied().unwrap_or(Backoff {
            initial_us: 1_000_000,
            max_us: MAX_TIMEOUT_US,
        });
        if timer_us == 0 {
            b.initial_us
        } else {
            timer_us.saturating_mul(2).min(b.max_us)
        }
    }));
    // A panic cannot really happen here, but must not unwind into C.
    next.unwrap_or(1_000_000)
}

/// DER-encoded names of the client-CA list: on a client, the names the
/// server sent in its CertificateRequest; on a server, its configured list.
pub(crate) fn client_ca_names(ssl: &SslRef) -> Vec<Vec<u8>> {
    // SAFETY: the SSL is live; the returned stack (possibly NULL) is owned
    // by the SSL and not freed by us.
    let list = unsafe { SSL_get_client_CA_list(ssl.as_ptr()) };
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: non-null stack of X509_NAME owned by `ssl`, which outlives
    // this borrow (we hold `&SslRef` until we return).
    let names: &StackRef<X509Name> = unsafe { StackRef::from_ptr(list) };
    names.iter().filter_map(|n| n.to_der().ok()).collect()
}

/// Whether a client pauses its handshake when the server asks for a
/// certificate and none is set, so the caller can find one (GTlsInteraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertRequest {
    Ask,
    Asked,
}

fn cert_request_index() -> openssl::ex_data::Index<Ssl, CertRequest> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, CertRequest>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Installs the certificate callback on a client context: it suspends the
/// handshake (SSL_ERROR_WANT_X509_LOOKUP) once for SSLs that asked for it.
pub(crate) fn install_cert_request_hook(ctx: &mut openssl::ssl::SslContextBuilder) {
    // SAFETY: the context is live; `cert_cb` matches the callback type and
    // lives for the program's duration; the argument is unused.
    unsafe { SSL_CTX_set_cert_cb(ctx.as_ptr(), Some(cert_cb), std::ptr::null_mut()) };
}

/// Makes the next certificate request from the server pause the handshake.
pub(crate) fn pause_on_certificate_request(ssl: &mut SslRef) {
    ssl.set_ex_data(cert_request_index(), CertRequest::Ask);
}

fn requested_index() -> openssl::ex_data::Index<Ssl, bool> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, bool>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Client: whether the server sent a CertificateRequest.
pub(crate) fn certificate_requested(ssl: &SslRef) -> bool {
    ssl.ex_data(requested_index()).copied().unwrap_or(false)
}

unsafe extern "C" fn cert_cb(ssl: *mut ffi::SSL, _arg: *mut c_void) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls us with the live SSL being handshaken.
        let ssl = unsafe { SslRef::from_ptr_mut(ssl) };
        ssl.set_ex_data(requested_index(), true);
        let has_certificate = ssl.certificate().is_some();
        match ssl.ex_data_mut(cert_request_index()) {
            Some(state @ CertRequest::Ask) if !has_certificate => {
                *state = CertRequest::Asked;
                -1
            }
            _ => 1,
        }
    }));
    result.unwrap_or(1)
}

// ---- PSK (RFC 4279) ----------------------------------------------------------

/// `PSK_MAX_PSK_LEN` of OpenSSL 3.0.
pub(crate) const MAX_PSK_LEN: usize = 512;
/// `NID_auth_psk`.
const NID_AUTH_PSK: c_int = 1048;

type PskClientCb = unsafe extern "C" fn(
    *mut ffi::SSL,
    *const c_char,
    *mut c_char,
    c_uint,
    *mut u8,
    c_uint,
) -> c_uint;
type PskServerCb = unsafe extern "C" fn(*mut ffi::SSL, *const c_char, *mut u8, c_uint) -> c_uint;

extern "C" {
    // OpenSSL 3.0's ssl.h; openssl-sys binds only the SSL_CTX variants.
    fn SSL_set_psk_client_callback(s: *mut ffi::SSL, cb: Option<PskClientCb>);
    fn SSL_set_psk_server_callback(s: *mut ffi::SSL, cb: Option<PskServerCb>);
    fn SSL_use_psk_identity_hint(s: *mut ffi::SSL, hint: *const c_char) -> c_int;
    fn SSL_CIPHER_get_auth_nid(c: *const ffi::SSL_CIPHER) -> c_int;
}

/// A client's PSK. Its `Debug` shows no key.
struct PskClient {
    identity: CString,
    key: Vec<u8>,
}

use super::engine::PskLookup;

fn psk_client_index() -> openssl::ex_data::Index<Ssl, PskClient> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, PskClient>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

fn psk_server_index() -> openssl::ex_data::Index<Ssl, PskLookup> {
    static INDEX: OnceLock<openssl::ex_data::Index<Ssl, PskLookup>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// Client: offer PSK suites with `identity` and `key` (at most
/// [`MAX_PSK_LEN`] bytes, checked by the caller).
pub(crate) fn set_psk_client(ssl: &mut SslRef, identity: CString, key: Vec<u8>) {
    ssl.set_ex_data(psk_client_index(), PskClient { identity, key });
    // SAFETY: the SSL is live and held mutably; `psk_client_cb` matches
    // OpenSSL's SSL_psk_client_cb_func and lives for the program.
    unsafe { SSL_set_psk_client_callback(ssl.as_ptr(), Some(psk_client_cb)) };
}

/// Server: accept PSK suites, finding keys with `lookup`; `hint` goes in
/// the ServerKeyExchange. False if OpenSSL refused the hint (too long).
pub(crate) fn set_psk_server(ssl: &mut SslRef, hint: Option<&CStr>, lookup: PskLookup) -> bool {
    ssl.set_ex_data(psk_server_index(), lookup);
    // SAFETY: the SSL is live and held mutably; `psk_server_cb` matches
    // SSL_psk_server_cb_func and lives for the program; OpenSSL copies the
    // hint (a NUL-terminated string or NULL).
    unsafe {
        SSL_set_psk_server_callback(ssl.as_ptr(), Some(psk_server_cb));
        SSL_use_psk_identity_hint(ssl.as_ptr(), hint.map_or(std::ptr::null(), CStr::as_ptr)) == 1
    }
}

/// Whether `cipher` authenticates with a PSK alone (`NID_auth_psk`).
pub(crate) fn cipher_authenticates_with_psk(cipher: &SslCipherRef) -> bool {
    // SAFETY: a live SSL_CIPHER; the call only reads it.
    unsafe { SSL_CIPHER_get_auth_nid(cipher.as_ptr()) == NID_AUTH_PSK }
}

/// Copies `src` into OpenSSL's buffer of `max` bytes; its length, or 0
/// (OpenSSL's "no PSK") when it does not fit.
///
/// # Safety
/// `dst` points at `max` writable bytes.
unsafe fn copy_out(src: &[u8], dst: *mut u8, max: c_uint) -> c_uint {
    if src.is_empty() || src.len() > max as usize {
        return 0;
    }
    // SAFETY: per the contract, and `src.len() <= max`.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
    src.len() as c_uint
}

unsafe extern "C" fn psk_client_cb(
    ssl: *mut ffi::SSL,
    _hint: *const c_char,
    identity: *mut c_char,
    max_identity_len: c_uint,
    psk: *mut u8,
    max_psk_len: c_uint,
) -> c_uint {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls us with the live SSL being handshaken.
        let ssl = unsafe { SslRef::from_ptr(ssl) };
        let Some(p) = ssl.ex_data(psk_client_index()) else {
            return 0;
        };
        let id = p.identity.as_bytes_with_nul();
        // The identity buffer holds max_identity_len + 1 bytes (OpenSSL
        // passes sizeof(buf) - 1 and NUL-terminates itself).
        if id.len() > max_identity_len as usize + 1 {
            return 0;
        }
        // SAFETY: OpenSSL's buffers: `identity` has max_identity_len + 1
        // bytes (checked above), `psk` max_psk_len.
        unsafe {
            std::ptr::copy_nonoverlapping(id.as_ptr(), identity.cast::<u8>(), id.len());
            copy_out(&p.key, psk, max_psk_len)
        }
    }));
    result.unwrap_or(0)
}

unsafe extern "C" fn psk_server_cb(
    ssl: *mut ffi::SSL,
    identity: *const c_char,
    psk: *mut u8,
    max_psk_len: c_uint,
) -> c_uint {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls us with the live SSL being handshaken.
        let ssl = unsafe { SslRef::from_ptr(ssl) };
        let Some(lookup) = ssl.ex_data(psk_server_index()) else {
            return 0;
        };
        let identity = if identity.is_null() {
            String::new()
        } else {
            // SAFETY: OpenSSL passes a NUL-terminated identity.
            unsafe { CStr::from_ptr(identity) }
                .to_string_lossy()
                .into_owned()
        };
        match lookup(&identity) {
            // SAFETY: `psk` has max_psk_len writable bytes.
            Some(key) => unsafe { copy_out(&key, psk, max_psk_len) },
            None => 0,
        }
    }));
    // A panic (e.g. in a signal handler) fails the lookup, never unwinds into C.
    result.unwrap_or(0)
}

// ---- DTLSv1_listen (the listener's stateless cookie exchange) ----------------

extern "C" {
    // OpenSSL 3.0's ssl.h and bio.h; `BIO_ADDR` is opaque.
    fn DTLSv1_listen(s: *mut ffi::SSL, client: *mut c_void) -> c_int;
    fn BIO_ADDR_new() -> *mut c_void;
    fn BIO_ADDR_free(a: *mut c_void);
}

/// `DTLSv1_listen` on a server SSL: 1 when the ClientHello read from the
/// SSL's BIO carried a valid cookie (OpenSSL then buffers it for the
/// handshake that follows), 0 when it answered with a HelloVerifyRequest
/// written to the BIO or dropped what it read, or when nothing was there to
/// read; −1 on a fatal error. Calls `SSL_clear` first.
pub(crate) fn dtls_listen(ssl: &mut SslRef) -> c_int {
    // SAFETY: BIO_ADDR_new returns an owned, zeroed address or NULL.
    let client = unsafe { BIO_ADDR_new() };
    if client.is_null() {
        return -1;
    }
    // SAFETY: `ssl` is a live SSL held mutably; `client` is a live BIO_ADDR
    // that OpenSSL fills or clears (our BIO knows no peer address: it is
    // cleared). Both outlive the call.
    let r = unsafe { DTLSv1_listen(ssl.as_ptr(), client) };
    // SAFETY: allocated above, freed once.
    unsafe { BIO_ADDR_free(client) };
    r
}
