//! Words for what travels on the wire, for errors and debug logs: alert
//! names (RFC 8446 §6, RFC 5246 §7.2), handshake message types and a
//! one-line summary of a datagram's records. Never prints a record's
//! contents beyond its header and a plaintext handshake message's type.
#![forbid(unsafe_code)]

use std::fmt::Write;

use super::record::HEADER_LEN;

/// The name of alert `description`, as the RFCs spell it.
pub fn alert_name(description: u8) -> Option<&'static str> {
    Some(match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return None,
    })
}

/// An alert's name, or its number when unknown.
pub fn alert_label(description: u8) -> String {
    alert_name(description).map_or_else(|| format!("alert {description}"), str::to_string)
}

/// What a fatal alert received from the peer means, in plain words.
pub fn alert_meaning(description: u8) -> &'static str {
    match description {
        40 => "the peer refused the handshake: no cipher suite, group or signature algorithm in common, or it requires something this end did not send",
        41 | 116 => "the peer requires a certificate from this end, and none was sent",
        42 => "the peer rejected this end's certificate",
        43 => "the peer cannot use this end's certificate (unsupported type)",
        44 => "the peer found this end's certificate revoked",
        45 => "the peer found this end's certificate expired",
        46 => "the peer did not accept this end's certificate",
        48 => "the peer does not trust the CA that issued this end's certificate",
        49 => "the peer denied access",
        70 => "the peer supports no protocol version this end allows (min-protocol-version, max-protocol-version)",
        71 => "the peer requires stronger security than this end offered",
        86 => "the peer detected a protocol version downgrade",
        112 => "the peer does not serve the requested server name",
        115 => "the peer does not know this PSK identity",
        120 => "no application protocol (ALPN) in common with the peer",
        0 | 90 => "the peer closed the connection during the handshake",
        80 => "the peer reported an internal error",
        _ => "the peer ended the handshake with an error",
    }
}

/// Name of handshake message type `t`.
pub fn handshake_name(t: u8) -> &'static str {
    match t {
        0 => "HelloRequest",
        1 => "ClientHello",
        2 => "ServerHello",
        3 => "HelloVerifyRequest",
        4 => "NewSessionTicket",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        _ => "unknown handshake message",
    }
}

/// The records of one datagram, each with its size: e.g.
/// "ServerHello (seq 1, 90 B), Certificate (seq 2, fragment 0+1000 of 1708 B)".
pub fn describe_datagram(datagram: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let Some(h) = rest.get(..HEADER_LEN) else {
            let _ = write!(out, "{} stray bytes", rest.len());
            break;
        };
        let epoch = u16::from_be_bytes([h[3], h[4]]);
        let len = usize::from(u16::from_be_bytes([h[11], h[12]]));
        let body = rest.get(HEADER_LEN..HEADER_LEN + len);
        let Some(body) = body else {
            let _ = write!(out, "a truncated record ({} B)", rest.len());
            break;
        };
        match (h[0], epoch) {
            (20, _) => out.push_str("ChangeCipherSpec"),
            (21, 0) if body.len() == 2 => {
                let level = if body[0] == 2 { "fatal" } else { "warning" };
                let _ = write!(out, "{level} alert {}", alert_label(body[1]));
            }
            (21, _) => {
                let _ = write!(out, "encrypted alert ({len} B)");
            }
            (22, 0) if body.len() >= 12 => {
                let total = u32::from_be_bytes([0, body[1], body[2], body[3]]);
                let seq = u16::from_be_bytes([body[4], body[5]]);
                let off = u32::from_be_bytes([0, body[6], body[7], body[8]]);
                let frag = u32::from_be_bytes([0, body[9], body[10], body[11]]);
                let _ = write!(out, "{} (seq {seq}, ", handshake_name(body[0]));
                if off == 0 && frag == total {
                    let _ = write!(out, "{total} B)");
                } else {
                    let _ = write!(out, "fragment {off}+{frag} of {total} B)");
                }
            }
            (22, _) => {
                let _ = write!(out, "encrypted handshake message ({len} B, Finished)");
            }
            (23, _) => {
                let _ = write!(out, "application data ({len} B)");
            }
            (t, _) => {
                let _ = write!(out, "record of type {t} ({len} B)");
            }
        }
        rest = &rest[HEADER_LEN + len..];
    }
    out
}

/// The plaintext alert in `datagram`, if it holds one: its description.
pub fn plaintext_alert(datagram: &[u8]) -> Option<u8> {
    let mut rest = datagram;
    while let Some(h) = rest.get(..HEADER_LEN) {
        let len = usize::from(u16::from_be_bytes([h[11], h[12]]));
        let body = rest.get(HEADER_LEN..HEADER_LEN + len)?;
        if h[0] == 21 && h[3..5] == [0, 0] && body.len() == 2 {
            return Some(body[1]);
        }
        rest = &rest[HEADER_LEN + len..];
    }
    None
}

/// Whether `datagram` holds a plaintext ClientHello (first fragment).
pub fn has_client_hello(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while let Some(h) = rest.get(..HEADER_LEN) {
        let len = usize::from(u16::from_be_bytes([h[11], h[12]]));
        let Some(body) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            return false;
        };
        if h[0] == 22 && h[3..5] == [0, 0] && body.first() == Some(&1) {
            return true;
        }
        rest = &rest[HEADER_LEN + len..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_in_words() {
        // A fatal handshake_failure alert, then a ClientHello fragment.
        let mut d = vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 40];
        d.extend_from_slice(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 2, 0, 14]);
        d.extend_from_slice(&[1, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 2, 9, 9]);
        assert_eq!(
            describe_datagram(&d),
            "fatal alert handshake_failure, ClientHello (seq 0, fragment 0+2 of 100 B)"
        );
        assert_eq!(plaintext_alert(&d), Some(40));
        assert!(has_client_hello(&d));
        assert!(!has_client_hello(&d[..15]));
        assert_eq!(describe_datagram(b"hello"), "5 stray bytes");
        assert_eq!(alert_label(200), "alert 200");
    }
}
