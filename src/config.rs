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

use std::sync::OnceLock;

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

/// The shared context for `role`, built on first use.
pub fn context(role: Role) -> Result<SslContext, glib::Error> {
    static CLIENT: OnceLock<Result<SslContext, String>> = OnceLock::new();
    match role {
        Role::Client => CLIENT
            .get_or_init(|| {
                let config = from_env()?;
                glib::g_debug!(crate::LOG_DOMAIN, "client configuration: {:?}", config);
                engine::client_context(&config).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| {
                error::io(
                    gio::IOErrorEnum::InvalidArgument,
                    format!("Invalid DTLS configuration: {e}"),
                )
            }),
        Role::Server => Err(error::io(
            gio::IOErrorEnum::NotSupported,
            "DTLS server connections are not implemented yet",
        )),
    }
}
