//! The I/O-free DTLS engine: one OpenSSL `SSL` whose datagrams the caller
//! moves.
//!
//! Like rustls, nothing here touches a socket, a clock-driven loop or a
//! thread. The caller:
//! 1. feeds every received datagram to [`Engine::push_datagram`],
//! 2. calls [`Engine::handshake`] / [`Engine::read_record`] /
//!    [`Engine::write_record`] / [`Engine::shutdown`],
//! 3. sends every datagram [`Engine::pop_datagram`] yields (after *every*
//!    call above, including failed ones: a failure may queue an alert),
//! 4. waits at most [`Engine::timeout`] for the next datagram and, when it
//!    elapses, calls [`Engine::handle_timeout`] (which queues the last
//!    flight again) and goes back to 3.
//!
//! Records are datagram-sized: one [`Engine::write_record`] is one DTLS record
//! in one datagram and one [`ReadStatus::Data`] is one record. Nothing is
//! fragmented or truncated; see [`EngineError::MessageTooLarge`] and
//! [`EngineError::Truncated`].
//!
//! Peer verification is the caller's job: the helper contexts turn
//! OpenSSL's own verification off, and [`Engine::peer_chain_der`] hands the
//! chain over after the handshake.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use super::clock::CoarseInstant;

use openssl::error::ErrorStack;
use openssl::pkey::{PKeyRef, Private};
use openssl::ssl::{
    self, AlpnError, ErrorCode, ShutdownState, Ssl, SslContext, SslContextBuilder, SslMethod,
    SslOptions, SslRef, SslStream, SslVerifyMode, SslVersion,
};
use openssl::stack::Stack;
use openssl::x509::{X509Name, X509Ref, X509};

use super::bio::DatagramTransport;
use super::ossl;
use super::trace;

/// `SSL_ERROR_WANT_X509_LOOKUP`, which the `openssl` crate does not name.
const SSL_ERROR_WANT_X509_LOOKUP: std::ffi::c_int = 4;

/// A server's PSK lookup: the key of an identity, `None` when unknown.
pub type PskLookup = Box<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// The DTLS-SRTP protection profiles OpenSSL 3.0 knows (RFC 5764, 7714).
pub const SRTP_PROFILES: &[&str] = &[
    "SRTP_AES128_CM_SHA1_80",
    "SRTP_AES128_CM_SHA1_32",
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM",
];

thread_local! {
    /// Each thread's buffer for one record's plaintext, for reads into a
    /// buffer smaller than the largest record (see [`Engine::read_record`]):
    /// per thread rather than per connection, as idle connections keep it.
    static RECORD_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A connection whose last datagram came at least this long after the one
/// before gives OpenSSL's record buffers back whenever it has read all it
/// received, expecting to stay idle (see [`Engine::release_buffers`]).
/// Giving them back and taking them again costs about 1600 instructions,
/// nothing next to 10 ms; a connection with more than 100 datagrams a second
/// keeps them.
pub const QUIET_GAP: Duration = Duration::from_millis(10);

/// Datagram size used until [`Engine::set_mtu`]: glib-networking's choice.
pub const DEFAULT_MTU: u32 = 1400;
/// Smallest MTU OpenSSL accepts.
pub const MIN_MTU: u32 = 256;
/// Largest plaintext of one record (`SSL3_RT_MAX_PLAIN_LENGTH`).
pub const MAX_RECORD_PLAINTEXT: usize = 16_384;
/// Largest datagram OpenSSL is allowed to build during a handshake.
///
/// OpenSSL packs each flight into a `BIO_f_buffer` of 4096 bytes; when a
/// larger MTU lets it pack more, that buffer overflows and writes part of a
/// record as its own datagram (seen in tests at MTU 9000: the handshake
/// never completes). So the engine gives OpenSSL `min(mtu, 4096)` until the
/// handshake is done and the full MTU afterwards; renegotiation, which
/// would bring the buffer back, is disabled.
pub const HANDSHAKE_MTU_CAP: u32 = 4096;
/// First retransmission timeout of a flight until
/// [`Engine::set_retransmit_timeouts`] (RFC 6347's and OpenSSL's default).
pub const DEFAULT_INITIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest retransmission step until [`Engine::set_retransmit_timeouts`]
/// (OpenSSL's own goes to 60 s). Short enough that a peer never waits long
/// between two copies of a flight (a server that drops a half-open
/// handshake after 10 s of silence still sees one), long enough that
/// [`MAX_RETRANSMISSIONS`] span a minute: with the defaults the flight is
/// sent at 0, 1, 3, 7, 13, … 61 s and given up at 67 s.
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(6);
/// How often OpenSSL retransmits one flight before giving up
/// (`DTLS1_TMO_ALERT_COUNT`).
pub const MAX_RETRANSMISSIONS: u32 = 12;

/// Which end of the connection an [`Engine`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the ClientHello.
    Client,
    /// Answers it.
    Server,
}

/// Whether a server asks for a client certificate. OpenSSL never judges the
/// certificate: the caller verifies [`Engine::peer_chain_der`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No CertificateRequest.
    #[default]
    None,
    /// Ask; carry on if the client sends none.
    Request,
    /// Ask; fail the handshake if the client sends none.
    Require,
}

/// Options for [`client_context`] and [`server_context`].
#[derive(Debug, Clone, Default)]
pub struct ContextConfig {
    /// Oldest version allowed; `None` means DTLS 1.2.
    pub min_version: Option<SslVersion>,
    /// Newest version allowed; `None` means the newest OpenSSL knows.
    pub max_version: Option<SslVersion>,
    /// OpenSSL cipher list for DTLS 1.2 and older; `None` keeps the default.
    pub cipher_list: Option<String>,
    /// Server only: ALPN protocols in preference order (first match in the
    /// server's order wins). Empty: no ALPN answer.
    pub alpn_protocols: Vec<Vec<u8>>,
    /// Server only: client certificate request policy.
    pub client_auth: ClientAuth,
    /// Server only: DER distinguished names sent in the CertificateRequest.
    pub client_ca_names: Vec<Vec<u8>>,
    /// Key exchange groups (OpenSSL's `-groups` syntax); `None` keeps the default.
    pub groups: Option<String>,
    /// Signature algorithms (OpenSSL's `-sigalgs` syntax); `None` keeps the default.
    pub sigalgs: Option<String>,
    /// Appends each connection's secrets to this file in NSS key log
    /// format (`SSLKEYLOGFILE`), for Wireshark.
    pub keylog_file: Option<std::path::PathBuf>,
}

/// A certificate, its private key and the intermediates to send after it.
#[derive(Clone)]
pub struct Identity {
    /// Leaf certificate.
    pub certificate: X509,
    /// Its private key.
    pub key: openssl::pkey::PKey<Private>,
    /// Intermediates, leaf's issuer first; no root needed.
    pub chain: Vec<X509>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("certificate", &self.certificate.subject_name())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A DTLS client context: verification off (`SslVerifyMode::NONE`), DTLS
/// 1.2 at least unless `config` says otherwise, MTU never queried, no
/// renegotiation (see [`HANDSHAKE_MTU_CAP`]).
pub fn client_context(config: &ContextConfig) -> Result<SslContext, EngineError> {
    let mut builder = base_context(SslMethod::dtls_client(), config)?;
    builder.set_verify(SslVerifyMode::NONE);
    ossl::install_cert_request_hook(&mut builder);
    Ok(builder.build())
}

/// A DTLS server context presenting `identity`. With `config.client_auth`
/// other than `None` it asks for a client certificate and accepts any (the
/// verify callback returns true): the caller judges it.
pub fn server_context(
    identity: &Identity,
    config: &ContextConfig,
) -> Result<SslContext, EngineError> {
    let mut builder = server_builder(config)?;
    builder.set_certificate(&identity.certificate)?;
    builder.set_private_key(&identity.key)?;
    for cert in &identity.chain {
        builder.add_extra_chain_cert(cert.clone())?;
    }
    builder.check_private_key()?;
    Ok(builder.build())
}

/// A DTLS server context with no certificate, shared by connections that
/// each set theirs ([`Engine::set_certificate`]) and their own client
/// authentication, CA names, ALPN preferences and cookie exchange.
pub fn shared_server_context(config: &ContextConfig) -> Result<SslContext, EngineError> {
    Ok(server_builder(config)?.build())
}

fn server_builder(config: &ContextConfig) -> Result<SslContextBuilder, EngineError> {
    let mut builder = base_context(SslMethod::dtls_server(), config)?;
    // Sessions resume through tickets (the context's own key) or the
    // context's cache; client certificates are verified by the caller, so
    // one ID context serves every connection.
    builder.set_session_id_context(b"gio-dtls-openssl")?;
    super::tickets::install(&mut builder);
    set_client_auth(&mut builder, config.client_auth);
    if !config.client_ca_names.is_empty() {
        builder.set_client_ca_list(x509_names(&config.client_ca_names)?);
    }
    alpn_wire(config.alpn_protocols.iter().map(Vec::as_slice))?;
    let context_wide = config.alpn_protocols.clone();
    builder.set_alpn_select_callback(move |ssl, client| {
        let ours = ssl
            .ex_data(server_index())
            .map_or(&context_wide, |s| &s.alpn);
        select_alpn(ours, client).ok_or(AlpnError::NOACK)
    });
    builder.set_cookie_generate_cb(|ssl, out| {
        super::cookie::generate(cookie_binding(ssl), out).ok_or_else(ErrorStack::get)
    });
    builder.set_cookie_verify_cb(|ssl, cookie| super::cookie::verify(cookie_binding(ssl), cookie));
    Ok(builder)
}

/// What a server connection configures per SSL (ex_data).
#[derive(Debug, Default)]
struct ServerSettings {
    alpn: Vec<Vec<u8>>,
    /// What the cookie binds: a nonce of the connection and the peer's
    /// address (`cookie::binding`).
    cookie_peer: Vec<u8>,
}

fn server_index() -> openssl::ex_data::Index<Ssl, ServerSettings> {
    static INDEX: std::sync::OnceLock<openssl::ex_data::Index<Ssl, ServerSettings>> =
        std::sync::OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL ex_data index"))
}

/// The cookie of a datagram that starts with an epoch-0 record holding the
/// beginning of a ClientHello; `None` for anything else.
fn client_hello_cookie(d: &[u8]) -> Option<&[u8]> {
    client_hello(d).map(|h| h.cookie)
}

/// What identifies a ClientHello: its random and its cookie (empty when
/// it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The client's 32-byte random: a retransmission repeats it, a new
    /// handshake does not.
    pub random: &'a [u8],
    /// The cookie (empty in a first ClientHello).
    pub cookie: &'a [u8],
}

/// The [`ClientHello`] of a datagram that starts with an epoch-0 record
/// holding the first fragment of a ClientHello; `None` for anything else.
pub fn client_hello(d: &[u8]) -> Option<ClientHello<'_>> {
    // Record header: type, version (2), epoch (2), sequence (6), length (2).
    if *d.first()? != 22 || d.get(3..5)? != [0, 0] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes(d.get(11..13)?.try_into().ok()?));
    let record = d.get(13..13 + len)?;
    // Handshake header: type, length (3), message_seq (2),
    // fragment_offset (3), fragment_length (3).
    if *record.first()? != 1 || record.get(6..9)? != [0, 0, 0] {
        return None;
    }
    // client_version (2), random (32), session_id <0..32>, cookie <0..255>.
    let body = record.get(12..)?;
    let random = body.get(2..34)?;
    let at = 35 + usize::from(*body.get(34)?);
    let cookie_len = usize::from(*body.get(at)?);
    let cookie = body.get(at + 1..at + 1 + cookie_len)?;
    Some(ClientHello { random, cookie })
}

fn cookie_binding(ssl: &SslRef) -> &[u8] {
    ssl.ex_data(server_index())
        .map_or(&[][..], |s| s.cookie_peer.as_slice())
}

fn x509_names(ders: &[Vec<u8>]) -> Result<Stack<X509Name>, EngineError> {
    let mut names = Stack::new()?;
    for der in ders {
        names.push(X509Name::from_der(der)?)?;
    }
    Ok(names)
}

/// Verification mode for `auth`: OpenSSL asks, never judges (the verify
/// callback accepts whatever comes; the caller verifies the chain).
fn set_client_auth(builder: &mut SslContextBuilder, auth: ClientAuth) {
    match auth {
        ClientAuth::None => builder.set_verify(SslVerifyMode::NONE),
        _ => builder.set_verify_callback(auth.verify_mode(), |_, _| true),
    }
}

impl ClientAuth {
    fn verify_mode(self) -> SslVerifyMode {
        match self {
            ClientAuth::None => SslVerifyMode::NONE,
            ClientAuth::Request => SslVerifyMode::PEER,
            ClientAuth::Require => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        }
    }
}

fn base_context(
    method: SslMethod,
    config: &ContextConfig,
) -> Result<SslContextBuilder, EngineError> {
    let mut builder = SslContext::builder(method)?;
    builder.set_min_proto_version(Some(config.min_version.unwrap_or(SslVersion::DTLS1_2)))?;
    builder.set_max_proto_version(config.max_version)?;
    if let Some(list) = &config.cipher_list {
        builder.set_cipher_list(list)?;
    }
    if let Some(groups) = &config.groups {
        builder.set_groups_list(groups)?;
    }
    if let Some(sigalgs) = &config.sigalgs {
        builder.set_sigalgs_list(sigalgs)?;
    }
    if let Some(path) = config.keylog_file.clone() {
        let file = std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| {
                    EngineError::Config(format!("SSLKEYLOGFILE {}: {e}", path.display()))
                })?,
        );
        builder.set_keylog_callback(move |_, line| {
            use std::io::Write;
            if let Ok(mut f) = file.lock() {
                let _ = writeln!(f, "{line}");
            }
        });
    }
    builder.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_RENEGOTIATION);
    Ok(builder)
}

/// The first of `ours` the client offers, as a slice of the client's list.
fn select_alpn<'a>(ours: &[Vec<u8>], client_wire: &'a [u8]) -> Option<&'a [u8]> {
    let mut offered = Vec::new();
    let mut rest = client_wire;
    while let Some((&len, tail)) = rest.split_first() {
        let name = tail.get(..usize::from(len))?;
        offered.push(name);
        rest = &tail[name.len()..];
    }
    ours.iter()
        .find_map(|p| offered.iter().find(|o| **o == p.as_slice()).copied())
}

/// ALPN wire format: each name prefixed by its length.
fn alpn_wire<'a>(protocols: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, EngineError> {
    let mut wire = Vec::new();
    for p in protocols {
        let len = u8::try_from(p.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| EngineError::Config("ALPN names are 1 to 255 bytes".into()))?;
        wire.push(len);
        wire.extend_from_slice(p);
    }
    Ok(wire)
}

/// Outcome of a successful [`Engine::handshake`] step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// The handshake is complete; records may flow.
    Done,
    /// Needs the next datagram, or the timer ([`Engine::timeout`]).
    WantRead,
    /// Client only, after [`Engine::pause_on_certificate_request`]: the
    /// server asked for a certificate and none is set. Set one (or not)
    /// with [`Engine::set_client_certificate`] and call `handshake` again.
    WantCertificate,
}

/// Outcome of [`Engine::listen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listened {
    /// A valid cookie: the engine carries on this client's handshake.
    Verified,
    /// No valid cookie: this HelloVerifyRequest goes back to the sender.
    HelloVerifyRequest(Vec<u8>),
    /// Not a ClientHello OpenSSL could take: nothing to do.
    Dropped,
}

/// Outcome of a successful [`Engine::read_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// One record of this many bytes was copied to the buffer.
    Data(usize),
    /// No complete record yet: push a datagram (or handle the timer).
    WantRead,
    /// The peer sent close_notify; no more data will come.
    Closed,
}

/// Why an engine operation failed. Each variant maps to one GIO error; the
/// strings carry OpenSSL's error stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The handshake failed (alert sent or received, bad message, too many
    /// timeouts). Sticky: every later handshake call returns it again.
    /// GIO: `G_TLS_ERROR_HANDSHAKE` (or `G_TLS_ERROR_BAD_CERTIFICATE` when the
    /// caller's verification failed).
    Handshake(String),
    /// A server that requires a client certificate got none (server side),
    /// or refused the handshake after asking for one this end did not have
    /// (client side). GIO: `G_TLS_ERROR_CERTIFICATE_REQUIRED`.
    CertificateRequired(String),
    /// A server without a certificate could not answer the ClientHello
    /// (OpenSSL alerted the client). GIO: `G_TLS_ERROR_BAD_CERTIFICATE`.
    NoCertificate(String),
    /// The peer did not answer: the handshake's retransmissions ran out.
    /// Sticky like `Handshake`. GIO: `G_IO_ERROR_TIMED_OUT`.
    TimedOut(String),
    /// The peer does not speak DTLS: it sent our ClientHello back (a UDP
    /// echo), or the handshake gave up while every datagram it sent was
    /// dropped as not DTLS. Sticky. GIO: `G_TLS_ERROR_NOT_TLS`.
    NotTls(String),
    /// A fatal error after the handshake (e.g. a fatal alert received).
    /// GIO: `G_TLS_ERROR_MISC`.
    Protocol(String),
    /// Record I/O attempted before the handshake completed. GIO: a caller
    /// bug or `G_IO_ERROR_WOULD_BLOCK` depending on context.
    NotConnected,
    /// Writing after close_notify was sent, or after a fatal error.
    /// GIO: `G_IO_ERROR_CLOSED` / `G_IO_ERROR_BROKEN_PIPE`.
    Closed,
    /// The message does not fit one record in one datagram at the current
    /// MTU; nothing was sent. `max` is the largest that fits.
    /// GIO: `G_IO_ERROR_MESSAGE_TOO_LARGE`.
    MessageTooLarge {
        /// Largest plaintext that fits.
        max: usize,
    },
    /// The received record is larger than the buffer given. The record is
    /// kept: call [`Engine::read_record`] again with at least `needed` bytes,
    /// or drop it with [`Engine::discard_pending_record`].
    /// GIO: `G_IO_ERROR_MESSAGE_TOO_LARGE` (after discarding), or a retry.
    Truncated {
        /// Size of the pending record.
        needed: usize,
    },
    /// Bad configuration (MTU out of range, invalid ALPN name, OpenSSL
    /// refused a setting). GIO: `G_IO_ERROR_INVALID_ARGUMENT`.
    Config(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Handshake(e) => write!(f, "DTLS handshake failed: {e}"),
            Self::TimedOut(e) => write!(f, "DTLS handshake timed out: {e}"),
            Self::NotTls(e) => write!(f, "DTLS handshake failed: {e}"),
            Self::CertificateRequired(e) | Self::NoCertificate(e) => {
                write!(f, "DTLS handshake failed: {e}")
            }
            Self::Protocol(e) => write!(f, "DTLS protocol error: {e}"),
            Self::NotConnected => f.write_str("DTLS handshake not complete"),
            Self::Closed => f.write_str("DTLS connection is closed"),
            Self::MessageTooLarge { max } => {
                write!(
                    f,
                    "message too large for one DTLS record (at most {max} bytes)"
                )
            }
            Self::Truncated { needed } => {
                write!(f, "received record needs a {needed}-byte buffer")
            }
            Self::Config(e) => write!(f, "invalid DTLS configuration: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<ErrorStack> for EngineError {
    fn from(e: ErrorStack) -> Self {
        Self::Config(e.to_string())
    }
}

/// Where the handshake is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    Failed(EngineError),
}

/// One DTLS endpoint with no I/O of its own. See the module docs for the
/// calling protocol.
pub struct Engine {
    stream: SslStream<DatagramTransport>,
    role: Role,
    state: State,
    mtu: u32,
    /// [`Engine::max_plaintext`] once connected (the cipher is then fixed:
    /// renegotiation is off), until the MTU changes.
    max_plaintext: Option<usize>,
    /// A record too large for the caller's last buffer, kept for a retry.
    pending: Option<Vec<u8>>,
    /// OpenSSL's record buffers were given back (see
    /// [`Engine::release_buffers`]); allocated again before the next call
    /// into OpenSSL that may read or write a record.
    buffers_released: bool,
    /// When the last datagram came after the handshake (from its end).
    last_arrival: Option<CoarseInstant>,
    /// The last datagram came at least `quiet_gap` after the one before:
    /// the connection is taken to be quiet, and gives its buffers back
    /// whenever it has read everything.
    quiet: bool,
    quiet_gap: Duration,
    initial_timeout: Duration,
    max_timeout: Duration,
    /// Datagrams received before the handshake completed.
    handshake_datagrams: u64,
    /// A client that received a ClientHello: its own, echoed.
    got_client_hello: bool,
    /// `SSL_read` has asked for more input since the handshake completed:
    /// what OpenSSL buffered during the handshake (early application data,
    /// records of the next epoch) has been delivered.
    drained: bool,
    /// `SSL_read` has nothing to work on until the next datagram: it asked
    /// for more input, or its last record left nothing queued, here or in
    /// OpenSSL (`SSL_has_pending`). [`Engine::read_record`] then answers
    /// `WantRead` without a call certain to fail (a failed `SSL_read` costs
    /// as much as a tenth of a round trip).
    starved: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A new endpoint on `context` (any DTLS `SslContext`; see
    /// [`client_context`], [`server_context`]) with MTU [`DEFAULT_MTU`]
    /// and a 1 s initial retransmission timeout.
    pub fn new(context: &SslContext, role: Role) -> Result<Self, EngineError> {
        let mut ssl = Ssl::new(context)?;
        match role {
            Role::Client => ssl.set_connect_state(),
            Role::Server => ssl.set_accept_state(),
        }
        // Whatever the context says: renegotiation would bring back
        // OpenSSL's flight buffer (see HANDSHAKE_MTU_CAP).
        // Encrypt-then-MAC off: OpenSSL 3.0's DTLS ends the connection on
        // any forged record of a CBC suite with encrypt-then-MAC (a bad MAC
        // is fatal there), while MAC-then-encrypt records that fail are
        // discarded, as DTLS requires. AEAD suites are unaffected.
        ossl::set_options(
            &mut ssl,
            SslOptions::NO_RENEGOTIATION | ossl::NO_ENCRYPT_THEN_MAC,
        );
        let mut stream = SslStream::new(ssl, DatagramTransport::new())?;
        let probe = ossl::ProtectionProbe::new(stream.ssl());
        stream.get_mut().set_probe(probe);
        let mut engine = Engine {
            stream,
            role,
            state: State::Handshaking,
            mtu: DEFAULT_MTU,
            max_plaintext: None,
            pending: None,
            buffers_released: false,
            last_arrival: None,
            quiet: true,
            quiet_gap: QUIET_GAP,
            drained: false,
            starved: false,
            initial_timeout: DEFAULT_INITIAL_TIMEOUT,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            handshake_datagrams: 0,
            got_client_hello: false,
        };
        engine.set_mtu(DEFAULT_MTU)?;
        engine.set_retransmit_timeouts(DEFAULT_INITIAL_TIMEOUT, DEFAULT_MAX_TIMEOUT);
        Ok(engine)
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the handshake has completed.
    pub fn is_handshake_done(&self) -> bool {
        self.state == State::Connected
    }

    fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }

    fn ssl_mut(&mut self) -> &mut SslRef {
        ossl::ssl_mut(&mut self.stream)
    }

    // ---- datagrams -------------------------------------------------------

    /// Queues the records of one received datagram (copied). What cannot
    /// be a genuine record is dropped, here or when OpenSSL gets to it; see
    /// `record.rs`. Empty datagrams are ignored.
    pub fn push_datagram(&mut self, datagram: &[u8]) {
        self.starved = false;
        if self.has_foreign_cookie(datagram) {
            return;
        }
        if self.state == State::Connected {
            let now = CoarseInstant::now();
            self.quiet = self
                .last_arrival
                .is_none_or(|t| now.since(t) >= self.quiet_gap);
            self.last_arrival = Some(now);
        }
        if self.state == State::Handshaking && !datagram.is_empty() {
            self.handshake_datagrams += 1;
            crate::debug!(
                "{:p}: received {} B: {}",
                self,
                datagram.len(),
                trace::describe_datagram(datagram)
            );
            if self.role == Role::Client && trace::has_client_hello(datagram) {
                self.got_client_hello = true;
            }
        }
        self.stream.get_mut().push_inbound(datagram);
    }

    /// Why the peer seems not to speak DTLS, if it answered during the
    /// handshake but none of its datagrams held a DTLS record OpenSSL could
    /// read; `None` otherwise (no answer, or some DTLS came).
    pub fn not_dtls_peer(&self) -> Option<String> {
        let t = self.stream.get_ref();
        (self.state != State::Connected
            && self.handshake_datagrams > 0
            && t.accepted_records() == 0)
            .then(|| {
                format!(
                    "the peer answered, but not with DTLS ({} datagrams received, {} records dropped as not DTLS, none readable)",
                    self.handshake_datagrams,
                    t.dropped_records()
                )
            })
    }

    /// Logs the datagrams queued since the outbound queue held `before`.
    fn log_sent(&self, before: usize) {
        for d in self.stream.get_ref().outbound().skip(before) {
            crate::debug!(
                "{:p}: sending {} B: {}",
                self,
                d.len(),
                trace::describe_datagram(d)
            );
        }
    }

    /// A server with the cookie exchange, before its handshake is done,
    /// given a ClientHello whose cookie this connection did not make (one
    /// from another connection, or forged). OpenSSL 3.0 ends the handshake
    /// on it ("cookie mismatch", fatal), so one unauthenticated datagram
    /// would end the connection: such a ClientHello is dropped instead
    /// (a genuine client's retransmission carries the right cookie).
    fn has_foreign_cookie(&self, datagram: &[u8]) -> bool {
        if self.state != State::Handshaking {
            return false;
        }
        let Some(binding) = self
            .ssl()
            .ex_data(server_index())
            .map(|s| s.cookie_peer.as_slice())
            .filter(|b| !b.is_empty())
        else {
            return false;
        };
        match client_hello_cookie(datagram) {
            Some(cookie) if !cookie.is_empty() => !super::cookie::verify(binding, cookie),
            _ => false,
        }
    }

    /// Received records dropped without reaching OpenSSL so far.
    pub fn dropped_records(&self) -> u64 {
        self.stream.get_ref().dropped_records()
    }

    /// Takes the next datagram to send, oldest first.
    pub fn pop_datagram(&mut self) -> Option<Vec<u8>> {
        self.stream.get_mut().pop_outbound()
    }

    /// Returns a datagram's buffer from [`Engine::pop_datagram`] once sent,
    /// so the next one reuses it.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.stream.get_mut().recycle(buf);
    }

    /// Whether [`Engine::pop_datagram`] has something to give.
    pub fn has_outgoing(&self) -> bool {
        self.stream.get_ref().has_outbound()
    }

    /// Whether received records wait to be processed.
    pub fn has_incoming(&self) -> bool {
        self.stream.get_ref().inbound_len() > 0
    }

    // ---- configuration ---------------------------------------------------

    /// Sets the largest datagram to send (bytes of DTLS records; no IP/UDP
    /// header). Takes effect at once, also mid-handshake, and OpenSSL is
    /// told never to query or lower it. At least [`MIN_MTU`].
    pub fn set_mtu(&mut self, mtu: u32) -> Result<(), EngineError> {
        if !(MIN_MTU..=65_535).contains(&mtu) {
            return Err(EngineError::Config(format!(
                "MTU {mtu} outside {MIN_MTU}..=65535"
            )));
        }
        self.mtu = mtu;
        self.apply_mtu()
    }

    fn apply_mtu(&mut self) -> Result<(), EngineError> {
        self.max_plaintext = None;
        let mtu = match self.state {
            State::Connected => self.mtu,
            _ => self.mtu.min(HANDSHAKE_MTU_CAP),
        };
        if !ossl::set_mtu(self.ssl_mut(), mtu) {
            return Err(EngineError::Config(format!("OpenSSL refused MTU {mtu}")));
        }
        Ok(())
    }

    /// The current MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// First retransmission timeout of each flight (doubling after each
    /// retransmission, up to the maximum, [`DEFAULT_MAX_TIMEOUT`] unless
    /// set). RFC 6347 suggests 1 s. OpenSSL counts a timer with less than
    /// 15 ms left as expired, so below 15 ms every [`Engine::handshake`]
    /// call without news retransmits.
    pub fn set_initial_timeout(&mut self, initial: Duration) {
        self.set_retransmit_timeouts(initial, self.max_timeout);
    }

    /// First retransmission timeout of each flight and the largest step
    /// the doubling may reach. OpenSSL retransmits a flight at most
    /// [`MAX_RETRANSMISSIONS`] times, then the handshake fails with
    /// [`EngineError::TimedOut`].
    pub fn set_retransmit_timeouts(&mut self, initial: Duration, max: Duration) {
        self.initial_timeout = initial;
        self.max_timeout = max;
        ossl::set_retransmit_timeouts(self.ssl_mut(), initial, max);
    }

    /// The first retransmission timeout and the largest step.
    pub fn retransmit_timeouts(&self) -> (Duration, Duration) {
        (self.initial_timeout, self.max_timeout)
    }

    /// Client: the SNI host name to send. Give DNS names only, never IP
    /// literals. Before the handshake.
    pub fn set_server_name(&mut self, host: &str) -> Result<(), EngineError> {
        Ok(self.ssl_mut().set_hostname(host)?)
    }

    /// Client: ALPN protocols to offer, in preference order. Before the
    /// handshake.
    pub fn set_alpn_protocols(&mut self, protocols: &[&[u8]]) -> Result<(), EngineError> {
        let wire = alpn_wire(protocols.iter().copied())?;
        Ok(self.ssl_mut().set_alpn_protos(&wire)?)
    }

    /// The certificate this end presents (a client's, sent if the server
    /// asks; a server's, replacing the context's). Before the handshake.
    pub fn set_certificate(
        &mut self,
        certificate: &X509Ref,
        key: &PKeyRef<Private>,
        chain: &[X509],
    ) -> Result<(), EngineError> {
        let ssl = self.ssl_mut();
        ssl.set_certificate(certificate)?;
        ssl.set_private_key(key)?;
        for cert in chain {
            ssl.add_chain_cert(cert.clone())?;
        }
        Ok(())
    }

    /// Alias of [`Engine::set_certificate`] for a client.
    pub fn set_client_certificate(
        &mut self,
        certificate: &X509Ref,
        key: &PKeyRef<Private>,
        chain: &[X509],
    ) -> Result<(), EngineError> {
        self.set_certificate(certificate, key, chain)
    }

    // ---- server settings (per connection) ----------------------------------

    /// Server: whether and how to ask for a client certificate. OpenSSL
    /// never judges it: the caller verifies [`Engine::peer_chain_der`].
    /// Before the handshake.
    pub fn set_client_auth(&mut self, auth: ClientAuth) {
        match auth {
            ClientAuth::None => self.ssl_mut().set_verify(SslVerifyMode::NONE),
            _ => self
                .ssl_mut()
                .set_verify_callback(auth.verify_mode(), |_, _| true),
        }
    }

    /// Server: DER distinguished names the CertificateRequest lists.
    pub fn set_client_ca_names(&mut self, names: &[Vec<u8>]) -> Result<(), EngineError> {
        let names = x509_names(names)?;
        self.ssl_mut().set_client_ca_list(names);
        Ok(())
    }

    /// Server (on [`shared_server_context`]): ALPN protocols to select from,
    /// in this end's preference order; none: no ALPN answer.
    pub fn set_alpn_preferences(&mut self, protocols: &[&[u8]]) -> Result<(), EngineError> {
        alpn_wire(protocols.iter().copied())?;
        self.server_settings().alpn = protocols.iter().map(|p| p.to_vec()).collect();
        Ok(())
    }

    /// Server (on [`shared_server_context`]): answer a ClientHello without a
    /// valid cookie with a HelloVerifyRequest (see `cookie.rs`); the cookie
    /// binds this connection and `address` (the client's, if known).
    pub fn set_cookie_exchange(&mut self, address: &[u8]) {
        self.server_settings().cookie_peer = super::cookie::binding(address);
        ossl::set_options(self.ssl_mut(), SslOptions::COOKIE_EXCHANGE);
    }

    /// Server (on [`shared_server_context`]), for an engine that runs
    /// [`Engine::listen`]: cookies bind `address` alone, so a cookie made in
    /// one call verifies in a later one — on this engine or on the one that
    /// carries on the handshake — as long as the client keeps its address.
    /// Sets no option: `DTLSv1_listen` sets the cookie exchange itself.
    pub fn set_stateless_cookies(&mut self, address: &[u8]) {
        self.server_settings().cookie_peer = address.to_vec();
    }

    /// Server: OpenSSL's stateless cookie exchange (`DTLSv1_listen`) on one
    /// datagram, whatever was queued before being dropped. Allocates
    /// nothing for the sender unless the cookie is valid:
    /// - [`Listened::HelloVerifyRequest`]: a ClientHello without a valid
    ///   cookie; send the datagram back to its source, keep nothing;
    /// - [`Listened::Verified`]: a ClientHello with a valid cookie (see
    ///   [`Engine::set_stateless_cookies`]); OpenSSL keeps it, and this
    ///   engine now belongs to that client: [`Engine::handshake`] carries
    ///   on from it (the ServerHello flight has message_seq 1);
    /// - [`Listened::Dropped`]: not a first-fragment ClientHello.
    ///
    /// Each call starts with `SSL_clear`, so one engine serves any number
    /// of calls until one returns `Verified`.
    pub fn listen(&mut self, datagram: &[u8]) -> Result<Listened, EngineError> {
        if self.role != Role::Server || self.state != State::Handshaking {
            return Err(EngineError::Config(
                "listen needs a server engine before its handshake".into(),
            ));
        }
        let transport = self.stream.get_mut();
        transport.clear();
        transport.push_inbound(datagram);
        let r = ossl::dtls_listen(self.ssl_mut());
        // OpenSSL reads one record; the rest of the datagram is ignored,
        // as it does.
        let transport = self.stream.get_mut();
        let reply = transport.pop_outbound();
        transport.clear();
        match r {
            1 => Ok(Listened::Verified),
            0 => {
                drop(ErrorStack::get());
                Ok(reply.map_or(Listened::Dropped, Listened::HelloVerifyRequest))
            }
            _ => Err(EngineError::Handshake(ErrorStack::get().to_string())),
        }
    }

    fn server_settings(&mut self) -> &mut ServerSettings {
        let ssl = self.ssl_mut();
        if ssl.ex_data(server_index()).is_none() {
            ssl.set_ex_data(server_index(), ServerSettings::default());
        }
        ssl.ex_data_mut(server_index()).expect("just set")
    }

    // ---- resumption -------------------------------------------------------

    /// Client: offers `session` (from an earlier connection on a context of
    /// the same configuration) for an abbreviated handshake; OpenSSL falls
    /// back to a full one if the server does not resume it.
    pub fn resume(&mut self, session: &openssl::ssl::SslSessionRef) -> bool {
        ossl::set_session(self.ssl_mut(), session)
    }

    /// After a complete handshake, the session to keep for resuming, if it
    /// can be resumed: a copy, since OpenSSL marks the connection's own
    /// session object unresumable when the connection is freed without
    /// close_notify (routine for datagrams, where it may be lost).
    pub fn resumable_session(&self) -> Option<openssl::ssl::SslSession> {
        self.ssl()
            .session()
            .filter(|s| ossl::is_resumable(s))
            .and_then(ossl::dup_session)
    }

    /// Server: never resume this connection (no ticket, no cached session).
    pub fn refuse_resumption(&mut self) {
        ossl::isolate_sessions(self.ssl_mut());
    }

    // ---- DTLS-SRTP, protocol bounds, PSK ------------------------------------

    /// DTLS-SRTP (RFC 5764): the protection profiles to offer (client) or
    /// accept (server), OpenSSL's colon-separated names, e.g.
    /// `SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM`. Before the handshake.
    pub fn set_srtp_profiles(&mut self, profiles: &str) -> Result<(), EngineError> {
        self.ssl_mut().set_tlsext_use_srtp(profiles).map_err(|_| {
            EngineError::Config(format!(
                "unknown DTLS-SRTP profile in {profiles:?} (known: {})",
                SRTP_PROFILES.join(", ")
            ))
        })
    }

    /// The DTLS-SRTP profile negotiated, if any.
    pub fn srtp_profile(&self) -> Option<&'static str> {
        if !self.is_handshake_done() {
            return None;
        }
        self.ssl()
            .selected_srtp_profile()
            .and_then(|p| SRTP_PROFILES.iter().copied().find(|n| *n == p.name()))
    }

    /// Bounds the protocol version of this connection (`None`: keep the
    /// context's). Allowing DTLS 1.0 also lowers this connection's OpenSSL
    /// security level to 0: OpenSSL 3.0 refuses DTLS 1.0 at any other.
    pub fn set_protocol_bounds(
        &mut self,
        min: Option<SslVersion>,
        max: Option<SslVersion>,
    ) -> Result<(), EngineError> {
        let ssl = self.ssl_mut();
        if let Some(v) = min {
            ssl.set_min_proto_version(Some(v))?;
            if v == SslVersion::DTLS1 {
                ssl.set_security_level(0);
            }
        }
        if let Some(v) = max {
            ssl.set_max_proto_version(Some(v))?;
        }
        Ok(())
    }

    /// Client: offer PSK cipher suites with this identity and key (RFC 4279).
    /// Before the handshake.
    pub fn set_psk_client(&mut self, identity: &str, key: &[u8]) -> Result<(), EngineError> {
        let identity = std::ffi::CString::new(identity)
            .map_err(|_| EngineError::Config("a PSK identity cannot contain NUL".into()))?;
        if key.is_empty() || key.len() > ossl::MAX_PSK_LEN {
            return Err(EngineError::Config(format!(
                "a PSK is 1 to {} bytes",
                ossl::MAX_PSK_LEN
            )));
        }
        ossl::set_psk_client(self.ssl_mut(), identity, key.to_vec());
        Ok(())
    }

    /// Server: accept PSK cipher suites, asking `lookup` for the key of the
    /// client's identity (`None`: unknown, the handshake fails with an
    /// unknown_psk_identity alert). `lookup` runs inside
    /// [`Engine::handshake`]. `hint` is sent in the ServerKeyExchange.
    pub fn set_psk_server(
        &mut self,
        hint: Option<&str>,
        lookup: PskLookup,
    ) -> Result<(), EngineError> {
        let hint = hint
            .map(std::ffi::CString::new)
            .transpose()
            .map_err(|_| EngineError::Config("a PSK identity hint cannot contain NUL".into()))?;
        if !ossl::set_psk_server(self.ssl_mut(), hint.as_deref(), lookup) {
            return Err(EngineError::Config(
                "OpenSSL refused the PSK identity hint".into(),
            ));
        }
        Ok(())
    }

    /// Whether the negotiated cipher suite authenticates with a PSK alone
    /// (PSK, ECDHE-PSK, DHE-PSK: the server sends no certificate).
    pub fn psk_authenticated(&self) -> bool {
        self.is_handshake_done()
            && self
                .ssl()
                .current_cipher()
                .is_some_and(ossl::cipher_authenticates_with_psk)
    }

    // ---- handshake and timer ---------------------------------------------

    /// Client: pause the handshake with [`HandshakeStatus::WantCertificate`]
    /// when the server requests a certificate and none is set.
    pub fn pause_on_certificate_request(&mut self) {
        ossl::pause_on_certificate_request(ossl::ssl_mut(&mut self.stream));
    }

    /// Advances the handshake with the queued datagrams. Queues the
    /// answers for [`Engine::pop_datagram`]. A failure is final and also
    /// queues an alert to send.
    pub fn handshake(&mut self) -> Result<HandshakeStatus, EngineError> {
        match &self.state {
            State::Connected => return Ok(HandshakeStatus::Done),
            State::Failed(e) => return Err(e.clone()),
            State::Handshaking => {}
        }
        self.reclaim_buffers()?;
        // OpenSSL may answer WANT_READ with records still queued (after
        // discarding an early ChangeCipherSpec it takes its input as
        // exhausted, one read being one record here): go on while it
        // consumes them, so that WantRead means "needs a datagram".
        let outbound_before = self.stream.get_ref().outbound().count();
        let result = loop {
            let queued = self.stream.get_ref().inbound_len();
            match self.stream.do_handshake() {
                Err(e)
                    if is_retry(&e)
                        && (1..queued).contains(&self.stream.get_ref().inbound_len()) => {}
                other => break other,
            }
        };
        self.log_sent(outbound_before);
        match result {
            Err(e) if e.code() == ErrorCode::from_raw(SSL_ERROR_WANT_X509_LOOKUP) => {
                Ok(HandshakeStatus::WantCertificate)
            }
            Ok(()) => {
                self.state = State::Connected;
                self.apply_mtu()?;
                // An established connection is idle until the application
                // reads or writes; a last flight to retransmit is kept
                // apart (OpenSSL's sent-message queue).
                self.release_buffers();
                self.stream.get_mut().shrink();
                self.last_arrival = Some(CoarseInstant::now());
                Ok(HandshakeStatus::Done)
            }
            Err(e) if is_retry(&e) => Ok(HandshakeStatus::WantRead),
            Err(e) => {
                let err = self.classify_failure(&e, outbound_before);
                crate::debug!("{:p}: {err}", self);
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// Time left before [`Engine::handle_timeout`] should be called; `None`
    /// when no retransmission timer runs (e.g. after the handshake, or when
    /// this end sent the last flight). Zero means "now". OpenSSL's timer
    /// runs on the real-time clock.
    pub fn timeout(&self) -> Option<Duration> {
        ossl::get_timeout(self.ssl())
    }

    /// Retransmits the last flight into the outgoing queue if the timer has
    /// expired. `Ok(true)`: something was queued; `Ok(false)`: the timer had
    /// not expired. After [`MAX_RETRANSMISSIONS`] of one flight the
    /// handshake fails with [`EngineError::TimedOut`].
    pub fn handle_timeout(&mut self) -> Result<bool, EngineError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.reclaim_buffers()?;
        match ossl::handle_timeout(self.ssl_mut()) {
            0 => Ok(false),
            n if n > 0 => Ok(true),
            _ => {
                // OpenSSL's only failure here is SSL_R_READ_TIMEOUT_EXPIRED.
                drop(ErrorStack::get());
                let err = self.retransmissions_exhausted();
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    // ---- memory ----------------------------------------------------------

    /// Gives OpenSSL's record buffers back while the connection is idle:
    /// about 33 KB, almost half of what an idle connection held. Called
    /// when the handshake completes, and when a quiet connection (see
    /// [`QUIET_GAP`]) has read all it received. OpenSSL's
    /// `SSL_MODE_RELEASE_BUFFERS` does this for TLS only. The last flight
    /// (for retransmission) lives apart, in OpenSSL's sent-message queue,
    /// and stays; [`Engine::reclaim_buffers`] allocates the buffers again
    /// before OpenSSL next reads or writes a record.
    fn release_buffers(&mut self) {
        if self.state == State::Connected && !self.buffers_released {
            self.buffers_released = ossl::free_buffers(self.ssl_mut());
        }
    }

    /// The record buffers again after [`Engine::release_buffers`]: OpenSSL
    /// 3.0's DTLS code allocates them on its read path only, and would
    /// write a record through a null buffer. Call before every call into
    /// OpenSSL that may read or write a record.
    #[inline]
    fn reclaim_buffers(&mut self) -> Result<(), EngineError> {
        if self.buffers_released {
            self.alloc_buffers()
        } else {
            Ok(())
        }
    }

    fn alloc_buffers(&mut self) -> Result<(), EngineError> {
        if !ossl::alloc_buffers(self.ssl_mut()) {
            drop(ErrorStack::get());
            return Err(EngineError::Protocol(
                "out of memory for the record buffers".into(),
            ));
        }
        self.buffers_released = false;
        Ok(())
    }

    /// Whether OpenSSL's record buffers are given back now (for tests).
    #[cfg(test)]
    pub(crate) fn buffers_released(&self) -> bool {
        self.buffers_released
    }

    /// Sets the gap between datagrams from which the connection counts as
    /// quiet and gives its record buffers back whenever it has read all it
    /// received ([`QUIET_GAP`] unless set). Zero: always, as tests (and
    /// the fuzzer) use to exercise giving them back and taking them again.
    pub fn set_quiet_gap(&mut self, gap: Duration) {
        self.quiet_gap = gap;
    }

    // ---- records ---------------------------------------------------------

    /// The largest message [`Engine::write_record`] accepts now: what fits
    /// one record in one datagram at the current MTU with the negotiated
    /// cipher (`DTLS_get_data_mtu`), capped at 16 KiB. 0 before the
    /// handshake.
    pub fn max_plaintext(&self) -> usize {
        if let Some(max) = self.max_plaintext {
            return max;
        }
        ossl::data_mtu(self.ssl()).min(MAX_RECORD_PLAINTEXT)
    }

    /// Sends `message` as one record in one datagram. Never fragments or
    /// truncates: a message over [`Engine::max_plaintext`] is refused with
    /// [`EngineError::MessageTooLarge`]. An empty message sends nothing
    /// (OpenSSL does not emit empty records).
    pub fn write_record(&mut self, message: &[u8]) -> Result<(), EngineError> {
        self.check_connected()?;
        if self.sent_close_notify() {
            return Err(EngineError::Closed);
        }
        let max = self.max_plaintext();
        // (Connected, as checked above: the cipher is fixed now.)
        self.max_plaintext = Some(max);
        if message.len() > max {
            return Err(EngineError::MessageTooLarge { max });
        }
        if message.is_empty() {
            return Ok(());
        }
        self.reclaim_buffers()?;
        match self.stream.ssl_write(message) {
            Ok(n) if n == message.len() => Ok(()),
            Ok(n) => Err(EngineError::Protocol(format!(
                "OpenSSL wrote {n} of {} bytes",
                message.len()
            ))),
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => Err(EngineError::Closed),
            Err(e) => Err(EngineError::Protocol(describe(&e))),
        }
    }

    /// Reads the next record into `buf`.
    ///
    /// A record longer than `buf` is not cut: the call fails with
    /// [`EngineError::Truncated`] and the record stays pending for a retry
    /// with a larger buffer (or [`Engine::discard_pending_record`]).
    /// Received records that cannot be genuine (malformed, too short for
    /// the cipher, larger than OpenSSL reads) were dropped on the way and
    /// never show here. After the peer's close_notify every call returns
    /// [`ReadStatus::Closed`].
    ///
    /// Keep calling this after the handshake even when not expecting data:
    /// it answers the peer's retransmissions of its last flight.
    pub fn read_record(&mut self, buf: &mut [u8]) -> Result<ReadStatus, EngineError> {
        if let Some(record) = &self.pending {
            if record.len() > buf.len() {
                return Err(EngineError::Truncated {
                    needed: record.len(),
                });
            }
            let n = record.len();
            buf[..n].copy_from_slice(record);
            self.pending = None;
            return Ok(ReadStatus::Data(n));
        }
        self.check_connected()?;
        if self.received_close_notify() {
            return Ok(ReadStatus::Closed);
        }
        let status = if self.starved {
            // Nothing for SSL_read to work on until the next datagram.
            Ok(ReadStatus::WantRead)
        } else if buf.len() >= MAX_RECORD_PLAINTEXT
            || (self.drained && self.stream.get_ref().largest_queued_body() <= buf.len())
        {
            // No record can be larger (OpenSSL's own queues drained, what
            // SSL_read may return is in one of the records queued here):
            // straight into the caller's buffer.
            self.reclaim_buffers()?;
            let result = self.stream.ssl_read(buf);
            self.read_status(result)
        } else {
            // Into this thread's scratch, so that a larger record is kept
            // whole. Moved out while in use (OpenSSL runs no application
            // code here, but a nested call would find the slot empty and
            // get a buffer of its own).
            self.reclaim_buffers()?;
            let mut scratch = RECORD_SCRATCH.take();
            scratch.resize(MAX_RECORD_PLAINTEXT, 0);
            let result = self.stream.ssl_read(&mut scratch);
            let status = match result {
                Ok(n) => {
                    self.got_record();
                    if n > buf.len() {
                        self.pending = Some(scratch[..n].to_vec());
                        Err(EngineError::Truncated { needed: n })
                    } else {
                        buf[..n].copy_from_slice(&scratch[..n]);
                        Ok(ReadStatus::Data(n))
                    }
                }
                Err(e) => self.read_status(Err(e)),
            };
            RECORD_SCRATCH.set(scratch);
            status
        };
        if self.quiet && matches!(status, Ok(ReadStatus::WantRead)) && !self.has_incoming() {
            // Everything read on a quiet connection: most likely idle
            // until its next datagram. (A busy one keeps its buffers:
            // giving them back costs about 1600 instructions.)
            self.release_buffers();
            self.stream.get_mut().trim();
        }
        status
    }

    /// [`Engine::read_record`]'s answer for what `SSL_read` returned.
    #[inline]
    fn read_status(
        &mut self,
        result: Result<usize, ssl::Error>,
    ) -> Result<ReadStatus, EngineError> {
        match result {
            Ok(n) => {
                self.got_record();
                Ok(ReadStatus::Data(n))
            }
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => Ok(ReadStatus::Closed),
            Err(e) if is_retry(&e) && self.received_close_notify() => Ok(ReadStatus::Closed),
            Err(e) if is_retry(&e) => {
                self.drained = true;
                self.starved = self.stream.get_ref().inbound_len() == 0;
                Ok(ReadStatus::WantRead)
            }
            Err(e) => Err(EngineError::Protocol(describe(&e))),
        }
    }

    /// After `SSL_read` returned a record: whether it is starved now.
    #[inline]
    fn got_record(&mut self) {
        self.starved = self.drained
            && self.stream.get_ref().inbound_len() == 0
            && !ossl::has_pending(self.ssl());
    }

    /// Size of the record kept after [`EngineError::Truncated`], if any.
    pub fn pending_record_len(&self) -> Option<usize> {
        self.pending.as_ref().map(Vec::len)
    }

    /// Drops the record kept after [`EngineError::Truncated`]; returns its
    /// size.
    pub fn discard_pending_record(&mut self) -> Option<usize> {
        self.pending.take().map(|r| r.len())
    }

    // ---- close -----------------------------------------------------------

    /// Queues close_notify (once). Does not wait for the peer's: DTLS has
    /// no reliable delivery, and the caller decides whether to wait. Before
    /// the handshake completes there is nothing to close and nothing is
    /// sent.
    pub fn shutdown(&mut self) -> Result<(), EngineError> {
        self.starved = false;
        if self.state != State::Connected || self.sent_close_notify() {
            return Ok(());
        }
        self.reclaim_buffers()?;
        match self.stream.shutdown() {
            Ok(_) => Ok(()),
            Err(e) if is_retry(&e) => Ok(()),
            Err(e) => Err(EngineError::Protocol(describe(&e))),
        }
    }

    /// Whether the peer's close_notify has been processed.
    pub fn received_close_notify(&mut self) -> bool {
        self.stream.get_shutdown().contains(ShutdownState::RECEIVED)
    }

    /// Whether this end has queued close_notify.
    pub fn sent_close_notify(&mut self) -> bool {
        self.stream.get_shutdown().contains(ShutdownState::SENT)
    }

    // ---- after the handshake ---------------------------------------------

    /// "DTLSv1.2" (or "DTLSv1") once connected.
    pub fn protocol_version(&self) -> Option<&'static str> {
        self.is_handshake_done().then(|| self.ssl().version_str())
    }

    /// IANA name of the negotiated cipher suite, e.g.
    /// "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".
    pub fn cipher_iana_name(&self) -> Option<&'static str> {
        if !self.is_handshake_done() {
            return None;
        }
        self.ssl().current_cipher().and_then(|c| c.standard_name())
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn_selected(&self) -> Option<&[u8]> {
        self.ssl().selected_alpn_protocol()
    }

    /// The peer's certificates, leaf first, as sent (unverified), already
    /// parsed: OpenSSL's own objects, shared (no DER round trip, which costs
    /// OpenSSL 3.0 a public-key decoder per certificate). OpenSSL's chain
    /// includes the leaf on a client but not on a server; both cases give
    /// the same shape here.
    pub fn peer_chain(&self) -> Vec<openssl::x509::X509> {
        let ssl = self.ssl();
        let leaf = ssl.peer_certificate();
        let mut out: Vec<openssl::x509::X509> = leaf.iter().cloned().collect();
        if let Some(chain) = ssl.peer_cert_chain() {
            for (i, cert) in chain.iter().enumerate() {
                if i == 0 && leaf.as_deref() == Some(cert) {
                    continue;
                }
                out.push(cert.to_owned());
            }
        }
        out
    }

    /// [`Engine::peer_chain`] in DER.
    #[cfg(test)]
    pub fn peer_chain_der(&self) -> Vec<Vec<u8>> {
        self.peer_chain()
            .iter()
            .filter_map(|c| c.to_der().ok())
            .collect()
    }

    /// The server's certificate in DER (the peer's on a client, this end's
    /// on a server), for tls-server-end-point.
    pub fn server_certificate_der(&self) -> Option<Vec<u8>> {
        match self.role {
            Role::Client => self.ssl().peer_certificate(),
            Role::Server => self.ssl().certificate().map(|c| c.to_owned()),
        }
        .and_then(|c| c.to_der().ok())
    }

    /// RFC 5705 keying material exporter.
    pub fn export_keying_material(
        &self,
        label: &str,
        context: Option<&[u8]>,
        len: usize,
    ) -> Result<Vec<u8>, EngineError> {
        self.check_connected()?;
        let mut out = vec![0; len];
        self.ssl()
            .export_keying_material(&mut out, label, context)
            .map_err(|e| EngineError::Protocol(e.to_string()))?;
        Ok(out)
    }

    /// This end's last Finished message (verify_data).
    pub fn finished(&self) -> Option<Vec<u8>> {
        finished_with(|buf| self.ssl().finished(buf))
    }

    /// The peer's last Finished message (verify_data).
    pub fn peer_finished(&self) -> Option<Vec<u8>> {
        finished_with(|buf| self.ssl().peer_finished(buf))
    }

    /// RFC 5929 tls-unique: the first Finished of the latest handshake
    /// (the client's in a full handshake, the server's on resumption).
    pub fn tls_unique(&self) -> Option<Vec<u8>> {
        if !self.is_handshake_done() {
            return None;
        }
        let ours_first = (self.role == Role::Client) != self.ssl().session_reused();
        if ours_first {
            self.finished()
        } else {
            self.peer_finished()
        }
    }

    /// DER distinguished names: on a client, those the server listed in its
    /// CertificateRequest (empty if it sent none or did not ask); on a
    /// server, its own list.
    pub fn client_ca_names(&self) -> Vec<Vec<u8>> {
        ossl::client_ca_names(self.ssl())
    }

    /// Whether the last handshake resumed a session.
    pub fn session_reused(&self) -> bool {
        self.ssl().session_reused()
    }

    /// Borrow of the underlying `SslRef`, for what this API does not cover.
    pub fn ssl_ref(&self) -> &SslRef {
        self.ssl()
    }

    // ---- helpers ---------------------------------------------------------

    /// The handshake's error once OpenSSL gave up retransmitting.
    fn retransmissions_exhausted(&self) -> EngineError {
        match self.not_dtls_peer() {
            Some(why) => EngineError::NotTls(format!(
                "{why}; gave up after {MAX_RETRANSMISSIONS} retransmissions"
            )),
            None => EngineError::TimedOut(format!(
                "no answer from the peer after {MAX_RETRANSMISSIONS} retransmissions"
            )),
        }
    }

    /// The error of a failed handshake: plain words first (what happened,
    /// what to change), then the alert received or sent and OpenSSL's
    /// reasons in parentheses. `outbound_before`: datagrams queued before
    /// the failing step (the alert OpenSSL sent is among the later ones).
    fn classify_failure(&self, e: &ssl::Error, outbound_before: usize) -> EngineError {
        if is_read_timeout(e) {
            return self.retransmissions_exhausted();
        }
        let received = peer_alert(e);
        let sent = self
            .stream
            .get_ref()
            .outbound()
            .skip(outbound_before)
            .find_map(trace::plaintext_alert);
        let mut detail = Vec::new();
        if let Some(a) = received {
            detail.push(format!("peer alert {}", trace::alert_label(a)));
        }
        if let Some(a) = sent {
            detail.push(format!("alert {} sent to the peer", trace::alert_label(a)));
        }
        detail.push(format!("OpenSSL: {}", describe(e)));
        let detail = detail.join("; ");
        if self.got_client_hello && received.is_none() {
            return EngineError::NotTls(format!(
                "the peer does not speak DTLS: it sent a ClientHello back, as a UDP echo does ({detail})"
            ));
        }
        if let Some(why) = self.missing_certificate(e) {
            return EngineError::CertificateRequired(format!("{why} ({detail})"));
        }
        if let Some(why) = known_cause(e) {
            return EngineError::Handshake(format!("{why} ({detail})"));
        }
        if self.role == Role::Server && self.ssl().certificate().is_none() {
            return EngineError::NoCertificate(format!(
                "this server has no certificate to present (set one: the certificate property, or g_dtls_server_connection_new's certificate; or serve PSK through a psk-lookup handler) ({detail})"
            ));
        }
        let why = match received {
            Some(a) => trace::alert_meaning(a),
            None => local_cause(e).unwrap_or("the peer's handshake messages were not acceptable"),
        };
        EngineError::Handshake(format!("{why} ({detail})"))
    }

    /// Whether a failed handshake failed for want of a client certificate.
    fn missing_certificate(&self, e: &ssl::Error) -> Option<&'static str> {
        const PEER_DID_NOT_RETURN_A_CERTIFICATE: std::ffi::c_int = 199;
        const ALERT_HANDSHAKE_FAILURE: std::ffi::c_int = 1040;
        const ALERT_CERTIFICATE_REQUIRED: std::ffi::c_int = 1116;
        let reasons: Vec<_> = e
            .ssl_error()
            .map(|s| s.errors().iter().map(|e| e.reason_code()).collect())
            .unwrap_or_default();
        match self.role {
            Role::Server if reasons.contains(&PEER_DID_NOT_RETURN_A_CERTIFICATE) => {
                Some("the client sent no certificate, and this server requires one")
            }
            Role::Client
                if ossl::certificate_requested(self.ssl())
                    && self.ssl().certificate().is_none()
                    && reasons.iter().any(|r| {
                        [ALERT_HANDSHAKE_FAILURE, ALERT_CERTIFICATE_REQUIRED].contains(r)
                    }) =>
            {
                Some("the server requires a client certificate, and none is set")
            }
            _ => None,
        }
    }

    fn check_connected(&self) -> Result<(), EngineError> {
        match &self.state {
            State::Connected => Ok(()),
            State::Handshaking => Err(EngineError::NotConnected),
            State::Failed(_) => Err(EngineError::Closed),
        }
    }
}

fn finished_with(get: impl Fn(&mut [u8]) -> usize) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let n = get(&mut buf);
    (n > 0).then(|| buf[..n.min(buf.len())].to_vec())
}

fn is_retry(e: &ssl::Error) -> bool {
    e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE
}

/// `SSL_R_READ_TIMEOUT_EXPIRED`: OpenSSL retransmitted a flight
/// [`MAX_RETRANSMISSIONS`] times (inside `SSL_do_handshake` when the timer
/// has less than 15 ms left, else in `DTLSv1_handle_timeout`).
fn is_read_timeout(e: &ssl::Error) -> bool {
    const SSL_R_READ_TIMEOUT_EXPIRED: std::ffi::c_int = 312;
    e.ssl_error().is_some_and(|s| {
        s.errors()
            .iter()
            .any(|e| e.reason_code() == SSL_R_READ_TIMEOUT_EXPIRED)
    })
}

/// A plain-words cause for the handshake failures the API's own settings
/// explain (PSK, protocol bounds).
fn known_cause(e: &ssl::Error) -> Option<&'static str> {
    const PSK_IDENTITY_NOT_FOUND: std::ffi::c_int = 223;
    const ALERT_UNKNOWN_PSK_IDENTITY: std::ffi::c_int = 1115;
    const NO_PROTOCOLS_AVAILABLE: std::ffi::c_int = 191;
    const UNSUPPORTED_PROTOCOL: std::ffi::c_int = 258;
    const WRONG_SSL_VERSION: std::ffi::c_int = 266;
    const ALERT_PROTOCOL_VERSION: std::ffi::c_int = 1070;
    let reasons: Vec<_> = e
        .ssl_error()
        .map(|s| s.errors().iter().map(|e| e.reason_code()).collect())
        .unwrap_or_default();
    let has = |r| reasons.contains(&r);
    if has(PSK_IDENTITY_NOT_FOUND) {
        Some("unknown PSK identity: no key for the client's identity (psk-lookup returned NULL)")
    } else if has(ALERT_UNKNOWN_PSK_IDENTITY) {
        Some("the server does not know this PSK identity (unknown_psk_identity alert)")
    } else if has(NO_PROTOCOLS_AVAILABLE) {
        Some("no protocol version is allowed (min-protocol-version, max-protocol-version)")
    } else if has(UNSUPPORTED_PROTOCOL) || has(WRONG_SSL_VERSION) || has(ALERT_PROTOCOL_VERSION) {
        Some("no protocol version in common with the peer (min-protocol-version, max-protocol-version)")
    } else {
        None
    }
}

/// The fatal alert the peer sent, if that is what ended the handshake
/// (OpenSSL's reason is `SSL_AD_REASON_OFFSET` + the alert).
fn peer_alert(e: &ssl::Error) -> Option<u8> {
    const SSL_AD_REASON_OFFSET: std::ffi::c_int = 1000;
    e.ssl_error()?.errors().iter().find_map(|e| {
        u8::try_from(e.reason_code() - SSL_AD_REASON_OFFSET)
            .ok()
            .filter(|a| trace::alert_name(*a).is_some())
    })
}

/// Plain words for what this end found wrong with the peer's messages.
fn local_cause(e: &ssl::Error) -> Option<&'static str> {
    const NO_SUITABLE_SIGNATURE_ALGORITHM: std::ffi::c_int = 118;
    const NO_CIPHERS_AVAILABLE: std::ffi::c_int = 181;
    const NO_SHARED_CIPHER: std::ffi::c_int = 193;
    const UNEXPECTED_MESSAGE: std::ffi::c_int = 244;
    const UNEXPECTED_RECORD: std::ffi::c_int = 245;
    const WRONG_CIPHER_RETURNED: std::ffi::c_int = 261;
    const NO_SHARED_SIGNATURE_ALGORITHMS: std::ffi::c_int = 376;
    const NO_SHARED_GROUPS: std::ffi::c_int = 410;
    let reasons: Vec<_> = e
        .ssl_error()
        .map(|s| s.errors().iter().map(|e| e.reason_code()).collect())
        .unwrap_or_default();
    let has = |r| reasons.contains(&r);
    if has(NO_SHARED_CIPHER) || has(WRONG_CIPHER_RETURNED) || has(NO_CIPHERS_AVAILABLE) {
        Some("no cipher suite in common with the peer (DTLS_OPENSSL_CIPHER_LIST, the peer's cipher list)")
    } else if has(NO_SHARED_GROUPS) {
        Some("no key exchange group in common with the peer (DTLS_OPENSSL_GROUPS)")
    } else if has(NO_SHARED_SIGNATURE_ALGORITHMS) || has(NO_SUITABLE_SIGNATURE_ALGORITHM) {
        Some("no signature algorithm in common with the peer (DTLS_OPENSSL_SIGALGS)")
    } else if has(UNEXPECTED_MESSAGE) || has(UNEXPECTED_RECORD) {
        Some("the peer sent a handshake message out of order")
    } else {
        None
    }
}

fn describe(e: &ssl::Error) -> String {
    match e.ssl_error() {
        Some(stack) => stack.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
