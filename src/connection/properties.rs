//! What the application configures (settings) and what the handshake
//! reports (results), and the GObject property table over both.

use glib::prelude::*;

use super::engine::DEFAULT_MTU;

/// Largest `mtu`: the largest UDP payload over IPv4.
pub const MAX_MTU: u32 = 65_507;

/// Values the application sets.
#[derive(Debug)]
pub struct Settings {
    pub base_socket: Option<gio::DatagramBased>,
    pub certificate: Option<gio::TlsCertificate>,
    /// `None` until init sets the backend's default database; the
    /// application may set NULL afterwards (then nothing is trusted).
    pub database: Option<gio::TlsDatabase>,
    pub interaction: Option<gio::TlsInteraction>,
    pub require_close_notify: bool,
    /// Deprecated in GIO and ignored (renegotiation is disabled).
    #[allow(deprecated)]
    pub rehandshake_mode: gio::TlsRehandshakeMode,
    pub advertised_protocols: Option<Vec<String>>,
    pub mtu: u32,
    /// DTLS-SRTP profiles to offer or accept (OpenSSL's names, `:`-separated).
    pub srtp_profiles: Option<String>,
    /// Protocol bounds; `Unknown`: the environment's (or OpenSSL's).
    pub min_protocol_version: gio::TlsProtocolVersion,
    pub max_protocol_version: gio::TlsProtocolVersion,
    /// Retransmission and handshake time limits.
    pub timing: crate::config::Timing,
    /// Offer (client) or allow (server) session resumption.
    pub resumption: bool,
}

#[allow(deprecated)]
impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_socket: None,
            certificate: None,
            database: None,
            interaction: None,
            require_close_notify: true,
            rehandshake_mode: gio::TlsRehandshakeMode::Safely,
            advertised_protocols: None,
            mtu: DEFAULT_MTU,
            srtp_profiles: None,
            min_protocol_version: gio::TlsProtocolVersion::Unknown,
            max_protocol_version: gio::TlsProtocolVersion::Unknown,
            timing: crate::config::timing(),
            resumption: true,
        }
    }
}

/// Values the handshake sets.
#[derive(Debug)]
pub struct Results {
    pub peer_certificate: Option<gio::TlsCertificate>,
    pub peer_certificate_errors: gio::TlsCertificateFlags,
    pub protocol_version: gio::TlsProtocolVersion,
    pub ciphersuite_name: Option<String>,
    /// The handshake resumed an earlier session.
    pub session_resumed: bool,
    /// The DTLS-SRTP profile negotiated.
    pub srtp_profile: Option<String>,
    /// `max-payload`: set by the handshake, then by MTU changes.
    pub max_payload: u32,
}

impl Default for Results {
    fn default() -> Self {
        Results {
            peer_certificate: None,
            peer_certificate_errors: gio::TlsCertificateFlags::empty(),
            protocol_version: gio::TlsProtocolVersion::Unknown,
            ciphersuite_name: None,
            session_resumed: false,
            srtp_profile: None,
            max_payload: 0,
        }
    }
}

/// GDtlsConnection's properties, overridden by the base connection type,
/// plus our own `mtu`.
pub fn connection_properties() -> Vec<glib::ParamSpec> {
    let mut props: Vec<glib::ParamSpec> = [
        "base-socket",
        "certificate",
        "database",
        "interaction",
        "require-close-notify",
        "rehandshake-mode",
        "peer-certificate",
        "peer-certificate-errors",
        "advertised-protocols",
        "negotiated-protocol",
        "protocol-version",
        "ciphersuite-name",
    ]
    .into_iter()
    .map(glib::ParamSpecOverride::for_interface::<gio::DtlsConnection>)
    .collect();
    props.push(
        glib::ParamSpecUInt::builder("mtu")
            .nick("MTU")
            .blurb(
                "Largest datagram the connection sends, in bytes (IP and UDP headers not included)",
            )
            .minimum(super::engine::MIN_MTU)
            .maximum(MAX_MTU)
            .default_value(DEFAULT_MTU)
            .explicit_notify()
            .build(),
    );
    props.push(
        glib::ParamSpecUInt::builder("max-payload")
            .nick("Largest payload")
            .blurb("Largest application datagram that fits the MTU with the negotiated cipher suite, in bytes; 0 before the handshake")
            .maximum(super::engine::MAX_RECORD_PLAINTEXT as u32)
            .read_only()
            .build(),
    );
    props.push(
        glib::ParamSpecString::builder("srtp-profiles")
            .nick("DTLS-SRTP profiles")
            .blurb("DTLS-SRTP protection profiles (RFC 5764) the client offers or the server accepts (the server picks the first of its list the client offers), separated by colons, e.g. SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM; NULL for no DTLS-SRTP")
            .build(),
    );
    props.push(
        glib::ParamSpecString::builder("srtp-profile")
            .nick("DTLS-SRTP profile")
            .blurb("The DTLS-SRTP protection profile the handshake selected, or NULL")
            .read_only()
            .build(),
    );
    for (name, nick, blurb) in [
        ("min-protocol-version", "Oldest protocol version", "Oldest DTLS version allowed (G_TLS_PROTOCOL_VERSION_DTLS_1_0 or _DTLS_1_2); UNKNOWN: DTLS_OPENSSL_MIN_PROTOCOL, else DTLS 1.2"),
        ("max-protocol-version", "Newest protocol version", "Newest DTLS version allowed (G_TLS_PROTOCOL_VERSION_DTLS_1_0 or _DTLS_1_2); UNKNOWN: DTLS_OPENSSL_MAX_PROTOCOL, else no bound"),
    ] {
        props.push(
            glib::ParamSpecEnum::builder_with_default(name, gio::TlsProtocolVersion::Unknown)
                .nick(nick)
                .blurb(blurb)
                .build(),
        );
    }
    let d = crate::config::Timing::DEFAULT;
    let ms =
        |name: &str, nick: &str, blurb: &str, range: std::ops::RangeInclusive<u32>, default| {
            glib::ParamSpecUInt::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(*range.start())
                .maximum(*range.end())
                .default_value(default)
                .build()
        };
    let rt = crate::config::RETRANSMIT_MS;
    props.push(ms(
        "retransmit-timeout",
        "Retransmission timeout",
        "First retransmission timeout of each handshake flight, in milliseconds (doubles after each retransmission)",
        rt.clone(),
        d.retransmit_ms,
    ));
    props.push(ms(
        "max-retransmit-timeout",
        "Largest retransmission timeout",
        "Largest step the retransmission timeout doubles to, in milliseconds",
        rt,
        d.max_retransmit_ms,
    ));
    props.push(ms(
        "handshake-timeout",
        "Handshake timeout",
        "The handshake fails with G_IO_ERROR_TIMED_OUT when not complete after this many milliseconds; 0 for no limit",
        0..=u32::MAX,
        d.handshake_ms,
    ));
    props.push(
        glib::ParamSpecBoolean::builder("session-resumption")
            .nick("Session resumption")
            .blurb("Resume earlier sessions: a client offers the last session with the same server, a server accepts tickets and cached sessions")
            .default_value(true)
            .build(),
    );
    props.push(
        glib::ParamSpecBoolean::builder("session-resumed")
            .nick("Session resumed")
            .blurb("Whether the handshake resumed an earlier session (the peer's certificate is verified all the same)")
            .read_only()
            .build(),
    );
    props
}

/// GDtlsClientConnection's properties.
pub fn client_properties() -> Vec<glib::ParamSpec> {
    ["server-identity", "validation-flags", "accepted-cas"]
        .into_iter()
        .map(glib::ParamSpecOverride::for_interface::<gio::DtlsClientConnection>)
        .collect()
}

/// `accepted-cas`: a GList of GByteArray (DER names), as a pointer value.
pub fn accepted_cas_value(cas: &[Vec<u8>]) -> glib::Value {
    crate::iface::values::byte_array_list(cas)
}

pub fn protocols_value(p: &Option<Vec<String>>) -> glib::Value {
    match p {
        Some(v) => glib::StrV::from(
            v.iter()
                .map(|s| glib::GString::from(s.as_str()))
                .collect::<Vec<_>>(),
        )
        .to_value(),
        None => glib::Value::from_type(glib::StrV::static_type()),
    }
}
