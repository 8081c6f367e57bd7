//! `DtlsOpensslConnection`: the abstract GObject both DTLS roles derive
//! from. It implements GDtlsConnection, GDatagramBased and GInitable over a
//! [`Core`], runs peer verification (see `verify.rs`) and keeps the shared
//! properties; what differs by role comes from the role's hooks
//! (`role.rs`), implemented by the client and server types.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use gio::prelude::*;
use gio::subclass::prelude::*;

use super::core::{Claim, Core, Deadline, Received, Step};
use super::engine::Engine;
use super::properties::{self, Results, Settings};
use crate::error;
use crate::iface::datagram_based::{DatagramBasedImpl, InputMessage, OutputMessage};
use crate::iface::dtls_connection::DtlsConnectionImpl;
use crate::iface::task::Completion;

glib::wrapper! {
    /// A DTLS connection over a GDatagramBased (abstract: see
    /// [`crate::client::ClientConnection`]).
    pub struct Connection(ObjectSubclass<imp::Connection>)
        @implements gio::DtlsConnection, gio::DatagramBased, gio::Initable;
}

impl Connection {
    pub(crate) fn core(&self) -> Result<&Core, glib::Error> {
        self.imp().core.get().ok_or_else(|| {
            error::io(
                gio::IOErrorEnum::NotInitialized,
                "The DTLS connection was not initialised (g_initable_init)",
            )
        })
    }

    pub(crate) fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.imp().settings.lock().unwrap()
    }

    pub(crate) fn results(&self) -> std::sync::MutexGuard<'_, Results> {
        self.imp().results.lock().unwrap()
    }

    /// Makes `init` (`g_initable_init`) use `engine` rather than a new one:
    /// for connections whose handshake began elsewhere (a listener's
    /// cookie exchange). Call before `init`; no effect after.
    pub(crate) fn set_preset_engine(&self, engine: Engine) {
        *self.imp().preset_engine.lock().unwrap() = Some(engine);
    }

    /// Whether the handshake has succeeded (`Some(true)`), failed
    /// (`Some(false)`) or not ended yet (`None`).
    pub(crate) fn handshake_succeeded(&self) -> Option<bool> {
        self.core()
            .ok()
            .and_then(|c| c.handshake_outcome())
            .map(|r| r.is_ok())
    }

    /// Whether the application closed both directions.
    pub(crate) fn is_closed(&self) -> bool {
        let imp = self.imp();
        imp.read_closed.load(Ordering::Acquire) && imp.write_closed.load(Ordering::Acquire)
    }

    /// Whether a handshake has been attempted.
    pub(crate) fn handshake_started(&self) -> bool {
        self.imp().prepared.load(Ordering::Acquire)
    }

    pub(crate) fn check_open(&self, reading: bool) -> Result<(), glib::Error> {
        let imp = self.imp();
        let closed = if reading {
            &imp.read_closed
        } else {
            &imp.write_closed
        };
        if closed.load(Ordering::Acquire) {
            return Err(error::io(gio::IOErrorEnum::Closed, "Connection is closed"));
        }
        Ok(())
    }

    /// A handshake needs both directions open (GIO answers
    /// `G_IO_ERROR_CLOSED` after close, as glib-networking does).
    pub(crate) fn check_handshake_open(&self) -> Result<(), glib::Error> {
        self.check_open(true)?;
        self.check_open(false)
    }

    /// `deadline`, bounded by the base socket's own timeout
    /// (`g_socket_set_timeout`), for the operations that have no timeout of
    /// their own — the explicit handshake, sync and async: like GSocket's
    /// blocking calls, it fails with `G_IO_ERROR_TIMED_OUT` when it has not
    /// finished within it. GDatagramBased operations carry their own
    /// timeout and ignore the socket's: GIO forbids TIMED_OUT for a
    /// timeout of −1 (a CRITICAL in `g_datagram_based_receive_messages`),
    /// and GLib's own GSocket requires per-operation timeouts for datagram
    /// operations.
    pub(crate) fn bounded(&self, deadline: Deadline) -> Deadline {
        let Some(limit) = self
            .core()
            .ok()
            .and_then(|c| super::io::socket_timeout(c.base()))
            .map(|t| std::time::Instant::now() + t)
        else {
            return deadline;
        };
        match deadline {
            Deadline::Now => Deadline::Now,
            Deadline::At(t) if t <= limit => deadline,
            _ => Deadline::At(limit),
        }
    }

    /// Applies the settings the engine needs before the first flight: the
    /// shared ones here, the role's through its `prepare` hook.
    pub(crate) fn prepare(&self, core: &Core) -> Result<(), glib::Error> {
        if self.imp().prepared.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (certificate, mtu, timing, srtp, bounds) = {
            let s = self.settings();
            (
                s.certificate.clone(),
                s.mtu,
                s.timing,
                s.srtp_profiles.clone(),
                (s.min_protocol_version, s.max_protocol_version),
            )
        };
        let (min, max) = (ssl_version(bounds.0)?, ssl_version(bounds.1)?);
        if let (Some(min), Some(max)) = (min, max) {
            if min == openssl::ssl::SslVersion::DTLS1_2 && max == openssl::ssl::SslVersion::DTLS1 {
                return Err(error::io(
                    gio::IOErrorEnum::InvalidArgument,
                    "min-protocol-version (DTLS 1.2) is newer than max-protocol-version (DTLS 1.0)",
                ));
            }
        }
        core.start_handshake_clock(timing.handshake());
        // Reading the certificate may run application code (a
        // GTlsCertificate of another class): before the engine is locked.
        let material = certificate.as_ref().map(certificate_material).transpose()?;
        let mut engine = core.engine();
        engine.set_mtu(mtu).map_err(super::core::engine_error)?;
        engine.set_retransmit_timeouts(timing.retransmit(), timing.max_retransmit());
        engine
            .set_protocol_bounds(min, max)
            .map_err(super::core::engine_error)?;
        if let Some(p) = srtp.as_deref().filter(|p| !p.is_empty()) {
            engine
                .set_srtp_profiles(p)
                .map_err(super::core::engine_error)?;
        }
        (self.hooks().prepare)(self, &mut engine, material.as_ref())
    }

    /// Asks the interaction for a certificate and hands it to the engine.
    pub(crate) fn request_certificate(
        &self,
        core: &Core,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        let interaction = self.settings().interaction.clone();
        if let Some(interaction) = interaction {
            let handled = {
                let _calling = core.calling("GTlsInteraction request_certificate");
                crate::iface::interaction::request_certificate(
                    &interaction,
                    self.upcast_ref(),
                    cancellable,
                )?
            };
            crate::debug!(
                "{:?}: interaction request_certificate handled={}",
                self.as_ptr(),
                handled
            );
        }
        self.use_requested_certificate(core)
    }

    /// [`Self::request_certificate`] for the async handshake: an
    /// interaction that implements the async request (e.g. one showing a
    /// dialog) is asked that way, so the caller's context keeps running.
    pub(crate) fn request_certificate_async<F: FnOnce(Result<(), glib::Error>) + 'static>(
        &self,
        cancellable: Option<&gio::Cancellable>,
        done: F,
    ) {
        let interaction = self.settings().interaction.clone();
        let Some(interaction) = interaction.filter(crate::iface::interaction::has_async_request)
        else {
            return done(
                self.core()
                    .and_then(|core| self.request_certificate(core, cancellable)),
            );
        };
        let conn = self.clone();
        let _calling = self
            .core()
            .ok()
            .map(|core| core.calling("GTlsInteraction request_certificate_async"));
        crate::iface::interaction::request_certificate_async(
            &interaction,
            self.upcast_ref(),
            cancellable,
            move |r| {
                done(r.and_then(|_| {
                    conn.core()
                        .and_then(|core| conn.use_requested_certificate(core))
                }))
            },
        );
    }

    /// Gives the engine the certificate the interaction set, if any.
    fn use_requested_certificate(&self, core: &Core) -> Result<(), glib::Error> {
        let cert = self.settings().certificate.clone();
        if let Some(cert) = cert {
            let material = certificate_material(&cert)?;
            set_engine_certificate(&mut core.engine(), &material)?;
        }
        Ok(())
    }

    /// The whole handshake, blocking as `deadline` allows. Errors other
    /// than a deadline are sticky.
    pub(crate) fn handshake_blocking(
        &self,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        let core = self.core()?;
        let driver = match core.claim_handshake(deadline, cancellable)? {
            Claim::Finished(r) => return r,
            Claim::Drive(d) => d,
        };
        let result = (|| {
            self.prepare(core)?;
            loop {
                match core.handshake_blocking(deadline, cancellable)? {
                    Step::Done => return self.complete_handshake(cancellable),
                    Step::WantCertificate => self.request_certificate(core, cancellable)?,
                    Step::Wait(_) => unreachable!("handshake_blocking only returns when done"),
                }
            }
        })();
        match result {
            Err(e) if is_deadline(&e) => Err(e),
            r => driver.finish(r),
        }
    }

    /// After OpenSSL's handshake: record what was negotiated, verify the
    /// peer, let `accept-certificate` decide.
    pub(crate) fn complete_handshake(
        &self,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        let peer = self.record_negotiated()?;
        let verdict = super::verify::verify_peer(self, peer.as_ref(), cancellable);
        self.conclude(verdict)
    }

    /// [`Self::complete_handshake`] for the async handshake (the
    /// verification may run off the caller's context).
    pub(crate) fn complete_handshake_async<F: FnOnce(Result<(), glib::Error>) + 'static>(
        &self,
        cancellable: Option<&gio::Cancellable>,
        done: F,
    ) {
        let peer = match self.record_negotiated() {
            Ok(p) => p,
            Err(e) => return done(Err(e)),
        };
        let conn = self.clone();
        super::verify::verify_peer_async(self, peer, cancellable, move |verdict| {
            done(conn.conclude(verdict))
        });
    }

    /// Stores and announces what the handshake negotiated; returns the
    /// peer's certificate chain.
    fn record_negotiated(&self) -> Result<Option<gio::TlsCertificate>, glib::Error> {
        let core = self.core()?;
        let (chain, alpn, version, cipher, resumed, (srtp, payload), role_notifies) = {
            let e = core.engine();
            (
                e.peer_chain(),
                e.alpn_selected().map(|a| a.to_vec()),
                e.protocol_version(),
                e.cipher_iana_name().map(str::to_string),
                e.session_reused(),
                (e.srtp_profile(), payload_u32(e.max_plaintext())),
                (self.hooks().negotiated)(self, &e),
            )
        };
        crate::debug!("{:?}: handshake complete: {}, cipher suite {}, {}, ALPN {}, SRTP profile {}, largest message {} B, peer sent {} certificate(s)",
            self.as_ptr(),
            match version {
                Some("DTLSv1.2") => "DTLS 1.2",
                Some("DTLSv1") => "DTLS 1.0",
                Some(v) => v,
                None => "unknown version",
            },
            cipher.as_deref().unwrap_or("unknown"),
            if resumed { "session resumed" } else { "full handshake" },
            alpn.as_deref().map_or_else(|| "none".into(), String::from_utf8_lossy),
            srtp.unwrap_or("none"),
            payload,
            chain.len()
        );
        let peer = super::verify::certificate_chain(chain)?;
        let alpn_chosen = alpn.is_some();
        let _ = self
            .imp()
            .negotiated_protocol
            .set(alpn.and_then(|a| std::ffi::CString::new(a).ok()));
        // Properties whose value changed, to notify (GObject notifies even
        // an unchanged value; each notification is a signal emission).
        let changed = {
            let mut r = self.results();
            let protocol_version = match version {
                Some("DTLSv1.2") => gio::TlsProtocolVersion::Dtls12,
                Some("DTLSv1") => gio::TlsProtocolVersion::Dtls10,
                Some(_) => gio::TlsProtocolVersion::Unknown,
                None => gio::TlsProtocolVersion::Unknown,
            };
            let srtp_profile = srtp.map(str::to_string);
            let changed = [
                ("negotiated-protocol", alpn_chosen),
                ("protocol-version", r.protocol_version != protocol_version),
                ("ciphersuite-name", r.ciphersuite_name != cipher),
                ("srtp-profile", r.srtp_profile != srtp_profile),
                ("max-payload", r.max_payload != payload),
            ];
            r.protocol_version = protocol_version;
            r.ciphersuite_name = cipher;
            r.session_resumed = resumed;
            r.srtp_profile = srtp_profile;
            r.max_payload = payload;
            changed
        };
        let _calling = core.calling("notify");
        for p in changed
            .iter()
            .filter(|(_, c)| *c)
            .map(|(p, _)| p)
            .chain(role_notifies)
        {
            self.notify(p);
        }
        Ok(peer)
    }

    /// Announces the verification's outcome; a rejected peer is told with
    /// close_notify, so it does not wait for data that never comes.
    fn conclude(&self, verdict: Result<(), glib::Error>) -> Result<(), glib::Error> {
        {
            let _calling = self.core().ok().map(|core| core.calling("notify"));
            self.notify("peer-certificate");
            self.notify("peer-certificate-errors");
        }
        if verdict.is_ok() {
            if let Ok(core) = self.core() {
                (self.hooks().established)(self, &core.engine());
            }
        }
        if let Err(e) = &verdict {
            crate::debug!("{:?}: peer rejected: {}", self.as_ptr(), e);
            let _ = self.core().map(|core| core.close_notify(None));
        }
        verdict
    }

    /// Runs the implicit handshake an operation needs.
    fn ensure_handshake(
        &self,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        let core = self.core()?;
        let result = match core.handshake_outcome() {
            Some(r) => r,
            None => self.handshake_blocking(deadline, cancellable),
        };
        result.map_err(|e| match deadline {
            // GIO allows G_IO_ERROR_TIMED_OUT only from an operation with a
            // positive timeout (and asserts it): a blocking or non-blocking
            // operation reports the handshake's own time-out as a failed
            // handshake.
            Deadline::Never | Deadline::Now if e.matches(gio::IOErrorEnum::TimedOut) => {
                error::tls(gio::TlsError::Handshake, e.message())
            }
            _ => e,
        })
    }

    /// Receives one record into `buf` (implicit handshake included).
    pub(crate) fn receive_record(
        &self,
        buf: &mut [u8],
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<Received, glib::Error> {
        self.check_open(true)?;
        self.ensure_handshake(deadline, cancellable)?;
        let core = self.core()?;
        let _op = lock_op(&core.read_op, deadline)?;
        let r = core.read(buf, deadline, cancellable);
        if matches!(r, Ok(Received::Eof)) {
            self.imp().peer_closed.store(true, Ordering::Release);
        }
        r
    }

    /// Sends one record (implicit handshake included).
    pub(crate) fn send_record(
        &self,
        data: &[u8],
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        self.check_open(false)?;
        self.ensure_handshake(deadline, cancellable)?;
        let core = self.core()?;
        let _op = lock_op(&core.write_op, deadline)?;
        core.write(data, deadline, cancellable)
    }

    /// Sends `count` records made by `record` (see [`Core::write_many`]),
    /// batched on the base socket (implicit handshake included).
    pub(crate) fn send_records(
        &self,
        count: usize,
        deadline: Deadline,
        cancellable: Option<&gio::Cancellable>,
        record: impl FnMut(usize, &mut super::engine::Engine) -> Result<(), glib::Error>,
    ) -> Result<usize, glib::Error> {
        self.check_open(false)?;
        self.ensure_handshake(deadline, cancellable)?;
        let core = self.core()?;
        let _op = lock_op(&core.write_op, deadline)?;
        core.write_many(count, deadline, cancellable, record)
    }

    fn shutdown_blocking(
        &self,
        read: bool,
        write: bool,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        let imp = self.imp();
        let mut result = Ok(());
        if write && !imp.write_closed.swap(true, Ordering::AcqRel) {
            let core = self.core()?;
            // close_notify only means something after a handshake.
            if matches!(core.handshake_outcome(), Some(Ok(()))) {
                let _op = core.write_op.lock().unwrap();
                result = core.close_notify(cancellable);
            }
        }
        if read {
            imp.read_closed.store(true, Ordering::Release);
        }
        result
    }
}

// SAFETY: every field of the instance is behind a Mutex, an atomic or a
// OnceLock, and GIO's connections are documented as usable from several
// threads (one reading while another writes).
#[allow(unsafe_code)]
unsafe impl Send for Connection {}
#[allow(unsafe_code)]
unsafe impl Sync for Connection {}

/// A certificate's chain (leaf first) and private key.
pub(crate) type Material = (
    Vec<openssl::x509::X509>,
    openssl::pkey::PKey<openssl::pkey::Private>,
);

/// Reads a certificate's [`Material`] without any lock held (the
/// certificate may be of an application's class).
fn certificate_material(cert: &gio::TlsCertificate) -> Result<Material, glib::Error> {
    let chain = crate::certificate::chain_of(cert)?;
    let key = cert
        .downcast_ref::<crate::Certificate>()
        .and_then(|c| c.private_key())
        .or_else(|| {
            let pem: Option<String> = cert.property("private-key-pem");
            pem.and_then(|p| openssl::pkey::PKey::private_key_from_pem(p.as_bytes()).ok())
        })
        .ok_or_else(|| {
            error::tls(
                gio::TlsError::BadCertificate,
                "The certificate has no private key",
            )
        })?;
    Ok((chain, key))
}

/// Makes `material` the certificate this end presents.
pub(crate) fn set_engine_certificate(
    engine: &mut Engine,
    (chain, key): &Material,
) -> Result<(), glib::Error> {
    engine
        .set_certificate(&chain[0], key, &chain[1..])
        .map_err(super::core::engine_error)
}

/// A payload size as the `max-payload` property's type.
fn payload_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A `min-`/`max-protocol-version` value as OpenSSL's; `None`: no bound.
fn ssl_version(
    v: gio::TlsProtocolVersion,
) -> Result<Option<openssl::ssl::SslVersion>, glib::Error> {
    match v {
        gio::TlsProtocolVersion::Unknown => Ok(None),
        gio::TlsProtocolVersion::Dtls10 => Ok(Some(openssl::ssl::SslVersion::DTLS1)),
        gio::TlsProtocolVersion::Dtls12 => Ok(Some(openssl::ssl::SslVersion::DTLS1_2)),
        other => Err(error::io(
            gio::IOErrorEnum::InvalidArgument,
            format!(
                "{other:?} is not a DTLS version: use DTLS_1_0, DTLS_1_2 or UNKNOWN (no bound)"
            ),
        )),
    }
}

fn is_deadline(e: &glib::Error) -> bool {
    e.matches(gio::IOErrorEnum::WouldBlock) || e.matches(gio::IOErrorEnum::TimedOut)
}

/// Takes a per-direction operation lock; with timeout 0 a busy lock is
/// WOULD_BLOCK rather than a wait.
fn lock_op(
    lock: &Mutex<()>,
    deadline: Deadline,
) -> Result<std::sync::MutexGuard<'_, ()>, glib::Error> {
    match deadline {
        Deadline::Now => lock.try_lock().map_err(|_| {
            error::io(
                gio::IOErrorEnum::WouldBlock,
                "Another operation is in progress",
            )
        }),
        _ => Ok(lock.lock().unwrap()),
    }
}

pub(crate) mod imp {
    use super::*;

    #[derive(Debug, Default)]
    pub struct Connection {
        pub(super) settings: Mutex<Settings>,
        pub(super) results: Mutex<Results>,
        pub(super) core: OnceLock<Core>,
        pub(super) prepared: AtomicBool,
        pub(super) read_closed: AtomicBool,
        pub(super) write_closed: AtomicBool,
        pub(super) peer_closed: AtomicBool,
        /// ALPN result, set once by the handshake (returned unowned to C).
        pub(super) negotiated_protocol: OnceLock<Option<std::ffi::CString>>,
        /// An engine made elsewhere (a listener's, past the cookie
        /// exchange), used by `init` instead of a new one.
        pub(super) preset_engine: Mutex<Option<Engine>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Connection {
        const NAME: &'static str = "DtlsOpensslConnection";
        const ABSTRACT: bool = true;
        type Type = super::Connection;
        type Class = super::super::role::ConnectionClass;
        type Interfaces = (gio::DatagramBased, gio::DtlsConnection, gio::Initable);
    }

    impl ObjectImpl for Connection {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> =
                std::sync::LazyLock::new(properties::connection_properties);
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut s = self.settings.lock().unwrap();
            match pspec.name() {
                "base-socket" => s.base_socket = value.get().ok().flatten(),
                "certificate" => s.certificate = value.get().ok().flatten(),
                "database" => s.database = value.get().ok().flatten(),
                "interaction" => s.interaction = value.get().ok().flatten(),
                "require-close-notify" => s.require_close_notify = value.get().unwrap_or(true),
                #[allow(deprecated)]
                "rehandshake-mode" => {
                    s.rehandshake_mode = value.get().unwrap_or(gio::TlsRehandshakeMode::Safely)
                }
                "advertised-protocols" => {
                    let v: Vec<String> = value
                        .get::<glib::StrV>()
                        .map(|v| v.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default();
                    s.advertised_protocols = (!v.is_empty()).then_some(v);
                }
                "mtu" => {
                    let mtu: u32 = value.get().unwrap_or(s.mtu);
                    if mtu != s.mtu {
                        s.mtu = mtu;
                        drop(s);
                        let payload = self.core.get().and_then(|c| c.set_mtu(mtu));
                        if let Some(p) = payload {
                            self.results.lock().unwrap().max_payload = payload_u32(p);
                        }
                        self.obj().notify("mtu");
                        if payload.is_some() {
                            self.obj().notify("max-payload");
                        }
                    }
                }
                "srtp-profiles" => s.srtp_profiles = value.get().ok().flatten(),
                "min-protocol-version" => {
                    s.min_protocol_version = value.get().unwrap_or(gio::TlsProtocolVersion::Unknown)
                }
                "max-protocol-version" => {
                    s.max_protocol_version = value.get().unwrap_or(gio::TlsProtocolVersion::Unknown)
                }
                "retransmit-timeout" => {
                    s.timing.retransmit_ms = value.get().unwrap_or(s.timing.retransmit_ms)
                }
                "max-retransmit-timeout" => {
                    s.timing.max_retransmit_ms = value.get().unwrap_or(s.timing.max_retransmit_ms)
                }
                "handshake-timeout" => {
                    s.timing.handshake_ms = value.get().unwrap_or(s.timing.handshake_ms)
                }
                "session-resumption" => s.resumption = value.get().unwrap_or(true),
                other => glib::g_warning!(crate::LOG_DOMAIN, "property {} is read-only", other),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let s = self.settings.lock().unwrap();
            let r = self.results.lock().unwrap();
            match pspec.name() {
                "base-socket" => s.base_socket.to_value(),
                "certificate" => s.certificate.to_value(),
                "database" => s.database.to_value(),
                "interaction" => s.interaction.to_value(),
                "require-close-notify" => s.require_close_notify.to_value(),
                "rehandshake-mode" => s.rehandshake_mode.to_value(),
                "advertised-protocols" => properties::protocols_value(&s.advertised_protocols),
                "mtu" => s.mtu.to_value(),
                "retransmit-timeout" => s.timing.retransmit_ms.to_value(),
                "max-retransmit-timeout" => s.timing.max_retransmit_ms.to_value(),
                "handshake-timeout" => s.timing.handshake_ms.to_value(),
                "session-resumption" => s.resumption.to_value(),
                "session-resumed" => r.session_resumed.to_value(),
                "peer-certificate" => r.peer_certificate.to_value(),
                "peer-certificate-errors" => r.peer_certificate_errors.to_value(),
                "negotiated-protocol" => self
                    .negotiated_protocol
                    .get()
                    .and_then(|p| p.as_ref())
                    .map(|c| c.to_string_lossy().into_owned())
                    .to_value(),
                "protocol-version" => r.protocol_version.to_value(),
                "ciphersuite-name" => r.ciphersuite_name.to_value(),
                "srtp-profiles" => s.srtp_profiles.to_value(),
                "srtp-profile" => r.srtp_profile.to_value(),
                "max-payload" => r.max_payload.to_value(),
                "min-protocol-version" => s.min_protocol_version.to_value(),
                "max-protocol-version" => s.max_protocol_version.to_value(),
                _ => glib::Value::from_type(pspec.value_type()),
            }
        }
    }

    impl InitableImpl for Connection {
        fn init(&self, _cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
            if self.core.get().is_some() {
                return Ok(());
            }
            let obj = self.obj();
            let base = self
                .settings
                .lock()
                .unwrap()
                .base_socket
                .clone()
                .ok_or_else(|| {
                    error::io(
                        gio::IOErrorEnum::InvalidArgument,
                        "A DTLS connection needs a base-socket (a GDatagramBased)",
                    )
                })?;
            let role = obj.role();
            let preset = self.preset_engine.lock().unwrap().take();
            let engine = match preset {
                Some(engine) => engine,
                None => {
                    let context = crate::config::context(role)?;
                    Engine::new(&context, role).map_err(super::super::core::engine_error)?
                }
            };
            {
                let mut s = self.settings.lock().unwrap();
                if s.database.is_none() {
                    s.database = Some(crate::backend::default_database());
                }
            }
            let _ = self.core.set(Core::new(base, engine));
            crate::debug!(
                "{:?}: new DTLS {} connection",
                obj.as_ptr(),
                match role {
                    super::super::engine::Role::Client => "client",
                    super::super::engine::Role::Server => "server",
                }
            );
            Ok(())
        }
    }

    impl DtlsConnectionImpl for Connection {
        fn handshake(&self, cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
            let obj = self.obj();
            obj.check_handshake_open()?;
            obj.handshake_blocking(obj.bounded(Deadline::Never), cancellable)
        }

        fn handshake_async(
            &self,
            _priority: glib::Priority,
            cancellable: Option<gio::Cancellable>,
            done: Completion,
        ) {
            if let Err(e) = self.obj().check_handshake_open() {
                return done.complete(Err(e));
            }
            super::super::handshake_async::start(self.obj().clone(), cancellable, done);
        }

        fn shutdown(
            &self,
            read: bool,
            write: bool,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<(), glib::Error> {
            self.obj().shutdown_blocking(read, write, cancellable)
        }

        fn shutdown_async(
            &self,
            read: bool,
            write: bool,
            _priority: glib::Priority,
            cancellable: Option<gio::Cancellable>,
            done: Completion,
        ) {
            // close_notify is one datagram: sending it does not block on a
            // datagram socket unless its buffer is full.
            done.complete(
                self.obj()
                    .shutdown_blocking(read, write, cancellable.as_ref()),
            );
        }

        fn set_advertised_protocols(&self, protocols: Option<Vec<String>>) {
            self.settings.lock().unwrap().advertised_protocols = protocols;
            self.obj().notify("advertised-protocols");
        }

        fn negotiated_protocol(&self) -> Option<&std::ffi::CStr> {
            self.negotiated_protocol.get().and_then(|p| p.as_deref())
        }

        fn binding_data(&self, kind: gio::TlsChannelBindingType) -> Result<Vec<u8>, glib::Error> {
            super::super::binding::binding_data(&self.obj(), kind)
        }
    }

    impl DatagramBasedImpl for Connection {
        fn receive_messages(
            &self,
            messages: &mut [InputMessage],
            flags: i32,
            timeout_us: i64,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<usize, glib::Error> {
            super::super::datagram::receive_messages(
                &self.obj(),
                messages,
                flags,
                timeout_us,
                cancellable,
            )
        }

        fn send_messages(
            &self,
            messages: &mut [OutputMessage],
            flags: i32,
            timeout_us: i64,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<usize, glib::Error> {
            super::super::datagram::send_messages(
                &self.obj(),
                messages,
                flags,
                timeout_us,
                cancellable,
            )
        }

        fn create_source(
            &self,
            condition: glib::IOCondition,
            cancellable: Option<&gio::Cancellable>,
        ) -> glib::Source {
            super::super::source::new(&self.obj(), condition, cancellable)
        }

        fn condition_check(&self, condition: glib::IOCondition) -> glib::IOCondition {
            super::super::datagram::condition_check(&self.obj(), condition)
        }

        fn condition_wait(
            &self,
            condition: glib::IOCondition,
            timeout_us: i64,
            cancellable: Option<&gio::Cancellable>,
        ) -> Result<(), glib::Error> {
            super::super::datagram::condition_wait(&self.obj(), condition, timeout_us, cancellable)
        }
    }
}

// SAFETY: the trampolines are for `imp::Connection`, whose instances these
// interfaces are added to.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::Connection> for gio::DtlsConnection {
    fn interface_init(iface: &mut glib::Interface<Self>) {
        crate::iface::dtls_connection::init::<imp::Connection>(iface.as_mut());
    }
}

// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl IsImplementable<imp::Connection> for gio::DatagramBased {
    fn interface_init(iface: &mut glib::Interface<Self>) {
        crate::iface::datagram_based::init::<imp::Connection>(iface.as_mut());
    }
}
