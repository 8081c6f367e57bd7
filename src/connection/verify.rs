//! Peer verification. OpenSSL does not decide: the peer's chain goes to the
//! connection's GTlsDatabase (any implementation), the result is masked by
//! validation-flags, and `accept-certificate` has the last word.

use gio::prelude::*;

use super::base::Connection;
use super::engine::Role;
use crate::certificate::Certificate;
use crate::error;
use crate::trust::{PURPOSE_CLIENT, PURPOSE_SERVER};

/// The peer's chain as linked GTlsCertificates (leaf first in `der`).
///
/// They are of the default backend's certificate type: ours when GIO uses
/// this backend; otherwise that backend's, because its databases (e.g.
/// glib-networking's GnuTLS one) only accept their own certificates, while
/// ours accept any.
pub(crate) fn certificate_chain(der: &[Vec<u8>]) -> Result<Option<gio::TlsCertificate>, glib::Error> {
    let ty = gio::TlsBackend::default().certificate_type();
    let mut issuer: Option<gio::TlsCertificate> = None;
    for d in der.iter().rev() {
        let x509 = openssl::x509::X509::from_der(d).map_err(|e| error::bad_certificate("Peer sent an invalid certificate", &e))?;
        let cert = if ty == Certificate::static_type() || !ty.is_a(gio::TlsCertificate::static_type()) {
            Certificate::from_x509(x509, issuer.as_ref()).upcast()
        } else {
            gio::Initable::builder_with_type(ty)
                .property("certificate", glib::ByteArray::from(d.as_slice()))
                .property("issuer", issuer.clone())
                .build(gio::Cancellable::NONE)?
                .downcast::<gio::TlsCertificate>()
                .map_err(|_| error::tls(gio::TlsError::BadCertificate, "The default TLS backend made no certificate"))?
        };
        issuer = Some(cert);
    }
    Ok(issuer)
}

/// The flags GIO would report for `peer`, and the database's own error
/// message if it failed (reported as GENERIC_ERROR).
fn peer_errors(
    conn: &Connection,
    peer: &gio::TlsCertificate,
    cancellable: Option<&gio::Cancellable>,
) -> Result<(gio::TlsCertificateFlags, Option<String>), glib::Error> {
    use gio::TlsCertificateFlags as F;
    let role = conn.role();
    let (database, identity, interaction) = {
        let s = conn.settings();
        (s.database.clone(), s.server_identity.clone(), s.interaction.clone())
    };
    let identity = if role == Role::Client { identity } else { None };
    let purpose = if role == Role::Client { PURPOSE_SERVER } else { PURPOSE_CLIENT };
    let mut detail = None;
    let mut flags = match &database {
        Some(db) => match db.verify_chain(peer, purpose, identity.as_ref(), interaction.as_ref(), gio::TlsDatabaseVerifyFlags::NONE, cancellable) {
            Ok(f) => f,
            Err(e) if e.matches(gio::IOErrorEnum::Cancelled) => return Err(e),
            Err(e) => {
                glib::g_debug!(crate::LOG_DOMAIN, "{:?}: verify_chain failed: {}", conn.as_ptr(), e);
                detail = Some(e.message().to_string());
                F::GENERIC_ERROR
            }
        },
        // No database: nothing is trusted, but dates and identity still count.
        None => F::UNKNOWN_CA | peer.verify(identity.as_ref(), None::<&gio::TlsCertificate>),
    };
    if role == Role::Client && identity.is_none() {
        flags |= F::BAD_IDENTITY;
    }
    Ok((flags, detail))
}

/// Verifies the peer after OpenSSL's handshake; `Err` rejects it.
pub(crate) fn verify_peer(conn: &Connection, peer: Option<&gio::TlsCertificate>, cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
    let role = conn.role();
    let Some(peer) = peer else {
        return match role {
            Role::Client => Err(error::tls(gio::TlsError::BadCertificate, "The server sent no certificate")),
            Role::Server => Ok(()),
        };
    };
    let (errors, detail) = peer_errors(conn, peer, cancellable)?;
    {
        let mut r = conn.results();
        r.peer_certificate = Some(peer.clone());
        r.peer_certificate_errors = errors;
    }
    let mask = match role {
        Role::Client => conn.settings().validation_flags,
        Role::Server => gio::TlsCertificateFlags::VALIDATE_ALL,
    };
    if (errors & mask).is_empty() {
        return Ok(());
    }
    glib::g_debug!(crate::LOG_DOMAIN, "{:?}: peer certificate errors {:?}: asking accept-certificate", conn.as_ptr(), errors);
    // No lock is held here: handlers may call back into the connection.
    let accepted: bool = conn.emit_by_name("accept-certificate", &[peer, &errors]);
    if accepted {
        Ok(())
    } else {
        let why = match detail {
            Some(d) => format!("{}: {d}", describe(errors)),
            None => describe(errors),
        };
        Err(error::tls(gio::TlsError::BadCertificate, format!("Unacceptable TLS certificate ({why})")))
    }
}

/// A readable list of certificate flags.
fn describe(flags: gio::TlsCertificateFlags) -> String {
    use gio::TlsCertificateFlags as F;
    let names = [
        (F::UNKNOWN_CA, "unknown CA"),
        (F::BAD_IDENTITY, "bad identity"),
        (F::NOT_ACTIVATED, "not yet valid"),
        (F::EXPIRED, "expired"),
        (F::REVOKED, "revoked"),
        (F::INSECURE, "insecure"),
        (F::GENERIC_ERROR, "generic error"),
    ];
    names.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}
