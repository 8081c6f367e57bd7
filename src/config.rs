//! Configuration from the environment, in the spirit of glib-networking's
//! OpenSSL module, and the OpenSSL contexts built from it (one per role and
//! process: every connection shares it).
//!
//! | variable | meaning |
//! | --- | --- |
//! | `DTLS_OPENSSL_CIPHER_LIST` (or `G_TLS_OPENSSL_CIPHER_LIST`) | OpenSSL cipher list |
//! | `DTLS_OPENSSL_GROUPS` (or `G_TLS_OPENSSL_CURVES_LIST`) | key exchange groups |
//! | `DTLS_OPENSSL_SIGALGS` (or `G_TLS_OPENSSL_SIGNATURE_ALGORITHM_LIST`) | signature algorithms |
//! | `DTLS_OPENSSL_MAX_PROTOCOL` | `dtls1.0` or `dtls1.2` |
//! | `DTLS_OPENSSL_MIN_PROTOCOL` | `dtls1.0` or `dtls1.2` (default `dtls1.2`) |
//! | `SSLKEYLOGFILE` | append session secrets for Wireshark |
//! | `DTLS_OPENSSL_RETRANSMIT_TIMEOUT_MS` | default of `retransmit-timeout` (1000) |
//! | `DTLS_OPENSSL_MAX_RETRANSMIT_TIMEOUT_MS` | default of `max-retransmit-timeout` (6000) |
//! | `DTLS_OPENSSL_HANDSHAKE_TIMEOUT_MS` | default of `handshake-timeout` (60000; 0: none) |
//! | `DTLS_OPENSSL_GSO` | `0`: never use UDP segmentation offload (see `connection::gso`) |

use std::sync::OnceLock;
use std::time::Duration;

use openssl::ssl::{SslContext, SslVersion};

use crate::connection::engine::{self, ContextConfig, Role};
use crate::error;

fn var(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.is_empty())
}

fn version(name: &str) -> Result<Option<SslVersion>, String> {
    match var(&[name])
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Ok(None),
        Some("dtls1.0" | "dtls1" | "dtlsv1" | "dtlsv1.0") => Ok(Some(SslVersion::DTLS1)),
        Some("dtls1.2" | "dtlsv1.2") => Ok(Some(SslVersion::DTLS1_2)),
        Some(other) => Err(format!("{name}={other}: expected dtls1.0 or dtls1.2")),
    }
}

/// The configuration the environment asks for.
pub fn from_env() -> Result<ContextConfig, String> {
    Ok(ContextConfig {
        min_version: version("DTLS_OPENSSL_MIN_PROTOCOL")?,
        max_version: version("DTLS_OPENSSL_MAX_PROTOCOL")?,
        cipher_list: var(&["DTLS_OPENSSL_CIPHER_LIST", "G_TLS_OPENSSL_CIPHER_LIST"]),
        groups: var(&["DTLS_OPENSSL_GROUPS", "G_TLS_OPENSSL_CURVES_LIST"]),
        sigalgs: var(&[
            "DTLS_OPENSSL_SIGALGS",
            "G_TLS_OPENSSL_SIGNATURE_ALGORITHM_LIST",
        ]),
        keylog_file: var(&["SSLKEYLOGFILE"]).map(Into::into),
        ..ContextConfig::default()
    })
}

/// Time limits of the handshake: the defaults of every connection's
/// `retransmit-timeout`, `max-retransmit-timeout` and `handshake-timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// First retransmission timeout of a flight, in ms.
    pub retransmit_ms: u32,
    /// Largest retransmission step, in ms.
    pub max_retransmit_ms: u32,
    /// Whole handshake, in ms; 0 for no limit.
    pub handshake_ms: u32,
}

/// Range of the retransmission timeouts, in ms (OpenSSL's ceiling is 60 s).
pub const RETRANSMIT_MS: std::ops::RangeInclusive<u32> = 1..=60_000;

impl Timing {
    /// The built-in defaults: RFC 6347's 1 s first timeout, steps of at
    /// most 6 s (see `engine::DEFAULT_MAX_TIMEOUT`), glib-networking's 60 s
    /// for the whole handshake.
    pub const DEFAULT: Timing = Timing {
        retransmit_ms: 1_000,
        max_retransmit_ms: 6_000,
        handshake_ms: 60_000,
    };

    pub fn retransmit(&self) -> Duration {
        Duration::from_millis(self.retransmit_ms.into())
    }

    pub fn max_retransmit(&self) -> Duration {
        Duration::from_millis(self.max_retransmit_ms.into())
    }

    pub fn handshake(&self) -> Option<Duration> {
        (self.handshake_ms > 0).then(|| Duration::from_millis(self.handshake_ms.into()))
    }
}

/// The environment's timing, each variable falling back to the built-in
/// default (with a warning when it is not a number in range).
pub fn timing() -> Timing {
    static TIMING: OnceLock<Timing> = OnceLock::new();
    *TIMING.get_or_init(|| {
        let d = Timing::DEFAULT;
        let ms = |name: &str, range: std::ops::RangeInclusive<u32>, default: u32| {
            let Some(v) = var(&[name]) else {
                return default;
            };
            match v.trim().parse::<u32>() {
                Ok(n) if range.contains(&n) => n,
                _ => {
                    glib::g_warning!(
                        crate::LOG_DOMAIN,
                        "{name}={v}: expected milliseconds in {range:?}; using {default}"
                    );
                    default
                }
            }
        };
        let t = Timing {
            retransmit_ms: ms(
                "DTLS_OPENSSL_RETRANSMIT_TIMEOUT_MS",
                RETRANSMIT_MS,
                d.retransmit_ms,
            ),
            max_retransmit_ms: ms(
                "DTLS_OPENSSL_MAX_RETRANSMIT_TIMEOUT_MS",
                RETRANSMIT_MS,
                d.max_retransmit_ms,
            ),
            handshake_ms: ms(
                "DTLS_OPENSSL_HANDSHAKE_TIMEOUT_MS",
                0..=u32::MAX,
                d.handshake_ms,
            ),
        };
        if t != d {
            crate::debug!("timing from the environment: {t:?}");
        }
        t
    })
}

/// Whether batches may use UDP segmentation offload: yes unless
/// `DTLS_OPENSSL_GSO` is `0` (or `off`, `no`, `false`). Read once.
pub fn gso_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        let off = var(&["DTLS_OPENSSL_GSO"]).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "0" | "off" | "no" | "false"
            )
        });
        if off {
            glib::g_debug!(
                crate::LOG_DOMAIN,
                "UDP segmentation offload off (DTLS_OPENSSL_GSO)"
            );
        }
        !off
    })
}

/// The environment's configuration for the debug log (never the key log's
/// contents: only whether one is written).
fn in_words(c: &engine::ContextConfig) -> String {
    let version = |v: Option<openssl::ssl::SslVersion>, default: &str| match v {
        None => default.to_string(),
        Some(v) if v == openssl::ssl::SslVersion::DTLS1 => "DTLS 1.0".to_string(),
        Some(v) if v == openssl::ssl::SslVersion::DTLS1_2 => "DTLS 1.2".to_string(),
        Some(_) => "another version".to_string(),
    };
    format!(
        "protocol {} to {}, cipher list {}, groups {}, signature algorithms {}, key log {}",
        version(c.min_version, "DTLS 1.2"),
        version(c.max_version, "the newest"),
        c.cipher_list.as_deref().unwrap_or("OpenSSL's default"),
        c.groups.as_deref().unwrap_or("OpenSSL's default"),
        c.sigalgs.as_deref().unwrap_or("OpenSSL's default"),
        c.keylog_file
            .as_ref()
            .map_or_else(|| "off".to_string(), |p| format!("to {}", p.display()))
    )
}

/// The shared context for `role`, built on first use from the environment
/// (every connection of the role shares it and sets its own certificate,
/// ALPN, client authentication and cookie exchange on its own SSL).
pub fn context(role: Role) -> Result<SslContext, glib::Error> {
    static CLIENT: OnceLock<Result<SslContext, String>> = OnceLock::new();
    static SERVER: OnceLock<Result<SslContext, String>> = OnceLock::new();
    let (cell, build): (_, fn(&engine::ContextConfig) -> _) = match role {
        Role::Client => (&CLIENT, engine::client_context),
        Role::Server => (&SERVER, engine::shared_server_context),
    };
    cell.get_or_init(|| {
        let config = from_env()?;
        crate::debug!(
            "{} configuration: {}",
            match role {
                Role::Client => "client",
                Role::Server => "server",
            },
            in_words(&config)
        );
        build(&config).map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| {
        error::io(
            gio::IOErrorEnum::InvalidArgument,
            format!("Invalid DTLS configuration: {e}"),
        )
    })
}
