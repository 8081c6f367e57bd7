//! Building GErrors: the one place that maps failures to GIO's domains.

use openssl::error::ErrorStack;

/// A `G_TLS_ERROR` with `code`.
pub(crate) fn tls(code: gio::TlsError, msg: impl AsRef<str>) -> glib::Error {
    glib::Error::new(code, msg.as_ref())
}

/// A `G_IO_ERROR` with `code`.
pub(crate) fn io(code: gio::IOErrorEnum, msg: impl AsRef<str>) -> glib::Error {
    glib::Error::new(code, msg.as_ref())
}

/// `G_TLS_ERROR_BAD_CERTIFICATE`, with OpenSSL's reason appended.
pub(crate) fn bad_certificate(what: &str, e: &ErrorStack) -> glib::Error {
    tls(
        gio::TlsError::BadCertificate,
        format!("{what}: {}", reason(e)),
    )
}

/// A short, readable form of an OpenSSL error stack.
pub(crate) fn reason(e: &ErrorStack) -> String {
    let reasons: Vec<String> = e
        .errors()
        .iter()
        .map(|err| match (err.reason(), err.data()) {
            (Some(r), Some(d)) if !d.is_empty() => format!("{r} ({d})"),
            (Some(r), _) => r.to_string(),
            (None, _) => format!("error {:#x}", err.code()),
        })
        .collect();
    if reasons.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        reasons.join("; ")
    }
}
