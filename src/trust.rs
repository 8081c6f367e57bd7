//! Chain verification: a set of trust anchors, a peer chain, a purpose and an
//! identity in; `GTlsCertificateFlags` out.
//!
//! OpenSSL builds and checks the path; we keep going past its first error so
//! the caller sees every problem, as GnuTLS-based backends report them.

use std::ffi::c_int;
use std::net::IpAddr;

use gio::prelude::*;
use gio::TlsCertificateFlags as Flags;
use openssl::error::ErrorStack;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::{X509CheckFlags, X509VerifyFlags};
use openssl::x509::{X509PurposeId, X509Ref, X509StoreContext, X509};
use openssl_sys as ffi;

use crate::ossl;

/// `G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER`.
pub const PURPOSE_SERVER: &str = "1.3.6.1.5.5.7.3.1";
/// `G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT`.
pub const PURPOSE_CLIENT: &str = "1.3.6.1.5.5.7.3.2";

/// Minimum security level of signatures and keys in a chain (OpenSSL's
/// level 1: 80 bits, so MD5 and SHA-1 signatures and RSA keys under 1024 bits
/// are `INSECURE`).
const AUTH_LEVEL: c_int = 1;

/// Who the peer should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Host(String),
    Ip(IpAddr),
}

impl Identity {
    /// The host name or address a GSocketConnectable names, if any.
    pub fn from_connectable(c: &gio::SocketConnectable) -> Option<Identity> {
        let host = if let Some(a) = c.downcast_ref::<gio::NetworkAddress>() {
            a.hostname().to_string()
        } else if let Some(s) = c.downcast_ref::<gio::NetworkService>() {
            s.domain().to_string()
        } else if let Some(a) = c.downcast_ref::<gio::InetSocketAddress>() {
            return Some(Identity::Ip(a.address().to_string().parse().ok()?));
        } else {
            return None;
        };
        Some(Identity::parse(&host))
    }

    /// A host name, or an IP address when `s` is an address literal.
    pub fn parse(s: &str) -> Identity {
        let bare = s
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(s);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Identity::Ip(ip),
            Err(_) => Identity::Host(s.trim_end_matches('.').to_string()),
        }
    }
}

/// A set of trusted certificates ready for verification.
pub struct TrustStore {
    store: X509Store,
    anchors: Vec<X509>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

impl TrustStore {
    /// Trusts exactly `anchors`.
    pub fn from_anchors(anchors: Vec<X509>) -> Result<TrustStore, ErrorStack> {
        let mut builder = X509StoreBuilder::new()?;
        for cert in &anchors {
            // Duplicates in a bundle are harmless; OpenSSL 3 ignores them.
            builder.add_cert(cert.clone())?;
        }
        Ok(TrustStore {
            store: builder.build(),
            anchors,
        })
    }

    /// OpenSSL's default trust store: its CA file and hashed directory
    /// (Debian's ca-certificates), honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`.
    pub fn system() -> Result<TrustStore, ErrorStack> {
        let mut builder = X509StoreBuilder::new()?;
        builder.set_default_paths()?;
        let store = builder.build();
        let anchors = store.all_certificates().into_iter().collect();
        Ok(TrustStore { store, anchors })
    }

    /// The certificates loaded in memory (the system store's hashed directory
    /// is consulted during verification but not listed here).
    pub fn anchors(&self) -> &[X509] {
        &self.anchors
    }

    /// Verifies `leaf` for the peer GIO names with `identity`; an identity
    /// that names no host or address is `BAD_IDENTITY`.
    pub fn verify_connectable(
        &self,
        leaf: &X509Ref,
        untrusted: &[X509],
        purpose: &str,
        identity: Option<&gio::SocketConnectable>,
    ) -> Result<Flags, ErrorStack> {
        let parsed = identity.map(Identity::from_connectable);
        let mut flags = self.verify(
            leaf,
            untrusted,
            purpose,
            parsed.as_ref().and_then(|i| i.as_ref()),
        )?;
        if matches!(parsed, Some(None)) {
            flags |= Flags::BAD_IDENTITY;
        }
        Ok(flags)
    }

    /// Verifies `leaf` against the anchors, with `untrusted` as candidate
    /// intermediates in any order.
    pub fn verify(
        &self,
        leaf: &X509Ref,
        untrusted: &[X509],
        purpose: &str,
        identity: Option<&Identity>,
    ) -> Result<Flags, ErrorStack> {
        let mut chain = Stack::new()?;
        for cert in untrusted {
            chain.push(cert.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        let errors = ctx.init(&self.store, leaf, &chain, |ctx| {
            let param = ossl::verify_param(ctx);
            // An anchor need not be self-signed (a pinned intermediate or leaf).
            param.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
            param.set_auth_level(AUTH_LEVEL);
            match purpose {
                PURPOSE_SERVER => param.set_purpose(X509PurposeId::SSL_SERVER)?,
                PURPOSE_CLIENT => param.set_purpose(X509PurposeId::SSL_CLIENT)?,
                _ => {}
            }
            match identity {
                Some(Identity::Host(h)) => {
                    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                    param.set_host(h)?;
                }
                Some(Identity::Ip(ip)) => param.set_ip(*ip)?,
                None => {}
            }
            Ok(ossl::verify_collecting_errors(ctx))
        })?;
        Ok(errors
            .into_iter()
            .fold(Flags::empty(), |acc, e| acc | flag_for(e)))
    }
}

/// Maps an `X509_V_ERR_*` code to the GIO flag that describes it.
fn flag_for(err: c_int) -> Flags {
    match err {
        ffi::X509_V_OK => Flags::empty(),
        ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | ffi::X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | ffi::X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | ffi::X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | ffi::X509_V_ERR_CERT_UNTRUSTED
        | ffi::X509_V_ERR_CERT_REJECTED => Flags::UNKNOWN_CA,
        ffi::X509_V_ERR_CERT_NOT_YET_VALID => Flags::NOT_ACTIVATED,
        ffi::X509_V_ERR_CERT_HAS_EXPIRED => Flags::EXPIRED,
        ffi::X509_V_ERR_CERT_REVOKED => Flags::REVOKED,
        ffi::X509_V_ERR_HOSTNAME_MISMATCH | ffi::X509_V_ERR_IP_ADDRESS_MISMATCH => {
            Flags::BAD_IDENTITY
        }
        ffi::X509_V_ERR_CA_MD_TOO_WEAK
        | ffi::X509_V_ERR_EE_KEY_TOO_SMALL
        | ffi::X509_V_ERR_CA_KEY_TOO_SMALL => Flags::INSECURE,
        // CRL timing problems say nothing about the certificate itself.
        ffi::X509_V_ERR_CRL_NOT_YET_VALID | ffi::X509_V_ERR_CRL_HAS_EXPIRED => Flags::empty(),
        _ => Flags::GENERIC_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parsing() {
        assert_eq!(
            Identity::parse("example.com."),
            Identity::Host("example.com".into())
        );
        assert_eq!(
            Identity::parse("127.0.0.1"),
            Identity::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Identity::parse("[::1]"),
            Identity::Ip("::1".parse().unwrap())
        );
    }

    #[test]
    fn error_codes_map_to_flags() {
        assert_eq!(flag_for(ffi::X509_V_ERR_CERT_HAS_EXPIRED), Flags::EXPIRED);
        assert_eq!(flag_for(ffi::X509_V_ERR_CA_MD_TOO_WEAK), Flags::INSECURE);
        assert_eq!(
            flag_for(ffi::X509_V_ERR_INVALID_PURPOSE),
            Flags::GENERIC_ERROR
        );
        assert_eq!(
            flag_for(ffi::X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
            Flags::UNKNOWN_CA
        );
    }
}
