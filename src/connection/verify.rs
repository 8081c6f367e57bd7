//! Peer verification. OpenSSL does not decide: the peer's chain goes to the
//! connection's GTlsDatabase (any implementation), the result is masked by
//! validation-flags, and `accept-certificate` has the last word.

use gio::prelude::*;

use super::base::Connection;
use super::role::Verification;
use crate::certificate::Certificate;
use crate::error;

/// The peer's chain as linked GTlsCertificates (`chain` is leaf first).
///
/// They are of the default backend's certificate type: ours when GIO uses
/// this backend; otherwise that backend's, because its databases (e.g.
/// glib-networking's GnuTLS one) only accept their own certificates, while
/// ours accept any.
pub(crate) fn certificate_chain(
    chain: Vec<openssl::x509::X509>,
) -> Result<Option<gio::TlsCertificate>, glib::Error> {
    // GIO settles its default backend once per process.
    static TYPE: std::sync::OnceLock<glib::Type> = std::sync::OnceLock::new();
    let ty = *TYPE.get_or_init(|| gio::TlsBackend::default().certificate_type());
    let mut issuer: Option<gio::TlsCertificate> = None;
    for x509 in chain.into_iter().rev() {
        let cert =
            if ty == Certificate::static_type() || !ty.is_a(gio::TlsCertificate::static_type()) {
                Certificate::from_x509(x509, issuer.as_ref()).upcast()
            } else {
                let der = x509
                    .to_der()
                    .map_err(|e| error::bad_certificate("Peer sent an invalid certificate", &e))?;
                gio::Initable::builder_with_type(ty)
                    .property("certificate", glib::ByteArray::from(der.as_slice()))
                    .property("issuer", issuer.clone())
                    .build(gio::Cancellable::NONE)?
                    .downcast::<gio::TlsCertificate>()
                    .map_err(|_| {
                        error::tls(
                            gio::TlsError::BadCertificate,
                            "The default TLS backend made no certificate",
                        )
                    })?
            };
        issuer = Some(cert);
    }
    Ok(issuer)
}

/// What verifying the peer needs, read from the connection once: the
/// shared settings and the role's [`Verification`].
struct Request {
    database: Option<gio::TlsDatabase>,
    interaction: Option<gio::TlsInteraction>,
    role: Verification,
}

impl Request {
    fn of(conn: &Connection) -> Request {
        let role = (conn.hooks().verification)(conn);
        let s = conn.settings();
        Request {
            database: s.database.clone(),
            interaction: s.interaction.clone(),
            role,
        }
    }

    /// Whether the database may block (run it off the caller's context in
    /// the async handshake): any but ours, which verifies in memory.
    fn database_may_block(&self) -> bool {
        self.database
            .as_ref()
            .is_some_and(|db| !db.is::<crate::database::Database>())
    }

    /// Logs what verification is about to use: the expected identity, the
    /// database and the peer's chain (public data only).
    fn log(&self, conn: &Connection, peer: &gio::TlsCertificate) {
        let identity = self
            .role
            .identity
            .as_ref()
            .map_or_else(|| "none".to_string(), |i| i.to_string().to_string());
        let database = match &self.database {
            Some(db) => match db.downcast_ref::<crate::database::Database>() {
                Some(ours) => ours.describe(),
                None => format!("{} (application's)", db.type_().name()),
            },
            None => "none (database is NULL: accept-certificate decides)".to_string(),
        };
        crate::debug!("{:?}: verifying the peer for the {} purpose: expected identity {identity}{}; database: {database}",
            conn.as_ptr(),
            if self.role.purpose == gio::TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER {
                "server"
            } else {
                "client"
            },
            if self.role.identity_required { " (required)" } else { "" },
        );
        let mut cert = Some(peer.clone());
        let mut i = 0;
        while let Some(c) = cert {
            crate::debug!(
                "{:?}: peer certificate {i}: {}",
                conn.as_ptr(),
                describe_certificate(&c)
            );
            cert = c.issuer();
            i += 1;
        }
    }

    fn verify_sync(
        &self,
        conn: &Connection,
        peer: &gio::TlsCertificate,
        cancellable: Option<&gio::Cancellable>,
    ) -> Option<Result<gio::TlsCertificateFlags, glib::Error>> {
        let db = self.database.as_ref()?;
        let _calling = calling(conn, "GTlsDatabase verify_chain");
        Some(db.verify_chain(
            peer,
            self.role.purpose,
            self.role.identity.as_ref(),
            self.interaction.as_ref(),
            gio::TlsDatabaseVerifyFlags::NONE,
            cancellable,
        ))
    }

    /// The flags GIO reports for `peer` given the database's answer (`None`:
    /// no database), and the database's own error message if it failed
    /// (reported as GENERIC_ERROR). Cancellation stays an error.
    fn flags(
        &self,
        conn: &Connection,
        peer: &gio::TlsCertificate,
        answer: Option<Result<gio::TlsCertificateFlags, glib::Error>>,
    ) -> Result<(gio::TlsCertificateFlags, Option<String>), glib::Error> {
        use gio::TlsCertificateFlags as F;
        let mut detail = None;
        let mut flags = match answer {
            Some(Ok(f)) => f,
            Some(Err(e)) if e.matches(gio::IOErrorEnum::Cancelled) => return Err(e),
            Some(Err(e)) => {
                crate::debug!("{:?}: verify_chain failed: {}", conn.as_ptr(), e);
                detail = Some(e.message().to_string());
                F::GENERIC_ERROR
            }
            // No database: nothing is trusted, but dates and identity still count.
            None => {
                F::UNKNOWN_CA
                    | peer.verify(self.role.identity.as_ref(), None::<&gio::TlsCertificate>)
            }
        };
        if self.role.identity_required && self.role.identity.is_none() {
            flags |= F::BAD_IDENTITY;
        }
        Ok((flags, detail))
    }
}

/// Records the verdict's flags and lets validation-flags and
/// `accept-certificate` decide.
fn decide(
    conn: &Connection,
    peer: &gio::TlsCertificate,
    errors: gio::TlsCertificateFlags,
    detail: Option<String>,
    mask: gio::TlsCertificateFlags,
) -> Result<(), glib::Error> {
    {
        let mut r = conn.results();
        r.peer_certificate = Some(peer.clone());
        r.peer_certificate_errors = errors;
    }
    crate::debug!(
        "{:?}: verification found: {}{}",
        conn.as_ptr(),
        if errors.is_empty() {
            "no problem".to_string()
        } else {
            describe(errors)
        },
        if errors.is_empty() || !(errors & mask).is_empty() {
            ""
        } else {
            " (ignored by validation-flags)"
        }
    );
    if (errors & mask).is_empty() {
        return Ok(());
    }
    crate::debug!("{:?}: asking accept-certificate", conn.as_ptr());
    // No lock is held here: handlers may call back into the connection
    // (another thread waits for the handshake; this one gets an error).
    let accepted: bool = {
        let _calling = calling(conn, "accept-certificate");
        conn.emit_by_name("accept-certificate", &[peer, &errors])
    };
    if accepted {
        Ok(())
    } else {
        let why = match detail {
            Some(d) => format!("{}: {d}", describe(errors)),
            None => describe(errors),
        };
        Err(error::tls(
            gio::TlsError::BadCertificate,
            format!("Unacceptable TLS certificate ({why})"),
        ))
    }
}

/// Verifies the peer after OpenSSL's handshake; `Err` rejects it.
pub(crate) fn verify_peer(
    conn: &Connection,
    peer: Option<&gio::TlsCertificate>,
    cancellable: Option<&gio::Cancellable>,
) -> Result<(), glib::Error> {
    let req = Request::of(conn);
    let Some(peer) = peer else {
        return req.role.without_certificate;
    };
    if crate::debug_enabled() {
        req.log(conn, peer);
    }
    let (errors, detail) = req.flags(conn, peer, req.verify_sync(conn, peer, cancellable))?;
    decide(conn, peer, errors, detail, req.role.mask)
}

/// [`verify_peer`] for the async handshake: a database other than ours
/// (which may block, e.g. one written in Python) is asked through
/// `verify_chain_async`, so the caller's main context keeps running.
pub(crate) fn verify_peer_async<F: FnOnce(Result<(), glib::Error>) + 'static>(
    conn: &Connection,
    peer: Option<gio::TlsCertificate>,
    cancellable: Option<&gio::Cancellable>,
    done: F,
) {
    let req = Request::of(conn);
    let (Some(peer), true) = (peer.clone(), req.database_may_block()) else {
        return done(verify_peer(conn, peer.as_ref(), cancellable));
    };
    if crate::debug_enabled() {
        req.log(conn, &peer);
    }
    let db = req.database.clone().expect("may block implies a database");
    let (purpose, identity, interaction) = (
        req.role.purpose,
        req.role.identity.clone(),
        req.interaction.clone(),
    );
    let _calling = calling(conn, "GTlsDatabase verify_chain_async");
    let conn = conn.clone();
    db.verify_chain_async(
        &peer.clone(),
        purpose,
        identity.as_ref(),
        interaction.as_ref(),
        gio::TlsDatabaseVerifyFlags::NONE,
        cancellable,
        move |answer| {
            let verdict = req
                .flags(&conn, &peer, Some(answer))
                .and_then(|(errors, detail)| decide(&conn, &peer, errors, detail, req.role.mask));
            done(verdict)
        },
    );
}

/// Marks the handshake as running application code (see
/// [`super::core::Core::calling`]).
fn calling<'a>(conn: &'a Connection, what: &'static str) -> Option<super::core::Calling<'a>> {
    conn.core().ok().map(|core| core.calling(what))
}

/// Subject, subject alternative names, issuer and validity of a
/// certificate, for the debug log.
fn describe_certificate(cert: &gio::TlsCertificate) -> String {
    let Ok(x) = crate::certificate::x509_of(cert) else {
        return "(unreadable)".to_string();
    };
    let name = |n: &openssl::x509::X509NameRef| {
        n.entries()
            .map(|e| {
                let key = e.object().nid().short_name().unwrap_or("?");
                let value = e.data().to_string().unwrap_or_else(|_| "?".to_string());
                format!("{key}={value}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sans = x.subject_alt_names().map_or_else(
        || "none".to_string(),
        |names| {
            names
                .iter()
                .map(|n| {
                    if let Some(d) = n.dnsname() {
                        format!("DNS:{d}")
                    } else if let Some(ip) = n.ipaddress() {
                        match <[u8; 4]>::try_from(ip) {
                            Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
                            Err(_) => match <[u8; 16]>::try_from(ip) {
                                Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                                Err(_) => "IP:?".to_string(),
                            },
                        }
                    } else if let Some(e) = n.email() {
                        format!("email:{e}")
                    } else if let Some(u) = n.uri() {
                        format!("URI:{u}")
                    } else {
                        "other".to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    format!(
        "subject {}; SAN {sans}; issuer {}; valid {} to {}",
        name(x.subject_name()),
        name(x.issuer_name()),
        x.not_before(),
        x.not_after()
    )
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
    names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}
