//! Channel binding data (`g_dtls_connection_get_channel_binding_data`).

use super::base::Connection;
use crate::error;

fn binding_error(code: gio::TlsChannelBindingError, msg: &str) -> glib::Error {
    glib::Error::new(code, msg)
}

/// tls-unique (RFC 5929), tls-server-end-point (RFC 5929) and
/// tls-exporter (RFC 9266) for the established connection.
pub(crate) fn binding_data(
    conn: &Connection,
    kind: gio::TlsChannelBindingType,
) -> Result<Vec<u8>, glib::Error> {
    let core = conn.core()?;
    if !matches!(core.handshake_outcome(), Some(Ok(()))) {
        return Err(binding_error(
            gio::TlsChannelBindingError::InvalidState,
            "The handshake is not complete",
        ));
    }
    let engine = core.engine();
    match kind {
        gio::TlsChannelBindingType::Unique => engine.tls_unique().ok_or_else(|| {
            binding_error(
                gio::TlsChannelBindingError::NotAvailable,
                "tls-unique is not available",
            )
        }),
        gio::TlsChannelBindingType::ServerEndPoint => {
            let der = engine.server_certificate_der().ok_or_else(|| {
                binding_error(
                    gio::TlsChannelBindingError::NotAvailable,
                    "No server certificate",
                )
            })?;
            server_end_point(&der)
        }
        gio::TlsChannelBindingType::Exporter => engine
            .export_keying_material("EXPORTER-Channel-Binding", Some(&[]), 32)
            .map_err(|e| binding_error(gio::TlsChannelBindingError::GeneralError, &e.to_string())),
        _ => Err(binding_error(
            gio::TlsChannelBindingError::NotImplemented,
            "Unknown channel binding type",
        )),
    }
}

/// The certificate's hash with its signature's digest (SHA-256 for MD5 and
/// SHA-1), per RFC 5929 section 4.1.
fn server_end_point(der: &[u8]) -> Result<Vec<u8>, glib::Error> {
    use openssl::hash::{hash, MessageDigest};
    use openssl::nid::Nid;
    let cert = openssl::x509::X509::from_der(der)
        .map_err(|e| error::bad_certificate("Invalid certificate", &e))?;
    let sig = cert.signature_algorithm().object().nid();
    let digest = sig
        .signature_algorithms()
        .and_then(|a| MessageDigest::from_nid(a.digest))
        .filter(|d| ![Nid::MD5, Nid::SHA1].contains(&d.type_()))
        .unwrap_or_else(MessageDigest::sha256);
    hash(digest, der).map(|d| d.to_vec()).map_err(|e| {
        binding_error(
            gio::TlsChannelBindingError::GeneralError,
            &error::reason(&e),
        )
    })
}
