//! Chain verification: a set of trust anchors, a peer chain, a purpose and an
//! identity in; `GTlsCertificateFlags` out.
//!
//! OpenSSL builds and checks the path; we keep going past its first error so
//! the caller sees every problem, as GnuTLS-based backends report them.

mod identity;
mod verdicts;

use std::ffi::c_int;

use gio::TlsCertificateFlags as Flags;
use openssl::error::ErrorStack;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509PurposeId, X509Ref, X509StoreContext, X509};
use openssl_sys as ffi;

pub use self::identity::Identity;
use self::verdicts::{Verdicts, Window};
use crate::ossl;

/// `G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER`.
pub const PURPOSE_SERVER: &str = "1.3.6.1.5.5.7.3.1";
/// `G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT`.
pub const PURPOSE_CLIENT: &str = "1.3.6.1.5.5.7.3.2";

/// Minimum security level of signatures and keys in a chain: OpenSSL's
/// level 2, 112 bits (Debian's own default), so MD5 and SHA-1 signatures
/// (except a trust anchor's self-signature), RSA and DSA keys under 2048 bits
/// and EC keys under 224 bits are `INSECURE`.
const DEFAULT_AUTH_LEVEL: c_int = 2;

/// Environment variable that sets another OpenSSL security level (0–5) for
/// legacy deployments, e.g. `1` (80 bits: RSA-1024 accepted again).
pub const AUTH_LEVEL_ENV: &str = "DTLS_OPENSSL_SECURITY_LEVEL";

/// The security level `value` (of [`AUTH_LEVEL_ENV`]) asks for; the default
/// when unset or not a level.
fn auth_level_from(value: Option<&str>) -> c_int {
    match value.map(str::trim).and_then(|v| v.parse::<c_int>().ok()) {
        Some(level @ 0..=5) => level,
        Some(_) | None => DEFAULT_AUTH_LEVEL,
    }
}

/// The security level in force, read once per process.
fn auth_level() -> c_int {
    static LEVEL: std::sync::OnceLock<c_int> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let value = std::env::var(AUTH_LEVEL_ENV).ok();
        let level = auth_level_from(value.as_deref());
        if value.is_some() {
            crate::debug!("{AUTH_LEVEL_ENV}: security level {level}");
        }
        level
    })
}

/// A set of trusted certificates ready for verification.
pub struct TrustStore {
    store: X509Store,
    anchors: Vec<X509>,
    crls: usize,
    /// When every CRL of the store is valid (notBefore/notAfter alike).
    crl_window: Window,
    auth_level: c_int,
    verdicts: Verdicts,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors.len())
            .field("crls", &self.crls)
            .field("auth_level", &self.auth_level)
            .finish()
    }
}

impl TrustStore {
    /// Trusts exactly `anchors`.
    pub fn from_anchors(anchors: Vec<X509>) -> Result<TrustStore, ErrorStack> {
        TrustStore::with_crls(anchors, Vec::new())
    }

    /// Trusts exactly `anchors`, with `crls` as revocation information.
    pub fn with_crls(anchors: Vec<X509>, crls: Vec<X509Crl>) -> Result<TrustStore, ErrorStack> {
        let mut builder = X509StoreBuilder::new()?;
        for cert in &anchors {
            // Duplicates in a bundle are harmless; OpenSSL 3 ignores them.
            builder.add_cert(cert.clone())?;
        }
        let mut crl_window = Window::ALWAYS;
        for crl in &crls {
            ossl::store_add_crl(&mut builder, crl)?;
            let from = crate::certificate::unix_time(crl.last_update()).unwrap_or(i64::MAX);
            let until = crl
                .next_update()
                .map_or(Some(i64::MAX), crate::certificate::unix_time)
                .unwrap_or(i64::MIN);
            crl_window = crl_window.narrow(from, until);
        }
        Ok(TrustStore {
            store: builder.build(),
            anchors,
            crls: crls.len(),
            crl_window,
            auth_level: auth_level(),
            verdicts: Verdicts::default(),
        })
    }

    /// The same store judging signatures and keys at OpenSSL security
    /// level `level` instead of the process-wide one.
    pub fn set_auth_level(&mut self, level: c_int) {
        self.auth_level = level;
    }

    /// OpenSSL's default trust store: its CA file and hashed directory
    /// (Debian's ca-certificates), honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`.
    pub fn system() -> Result<TrustStore, ErrorStack> {
        let mut builder = X509StoreBuilder::new()?;
        builder.set_default_paths()?;
        let store = builder.build();
        let anchors = store.all_certificates().into_iter().collect();
        Ok(TrustStore {
            store,
            anchors,
            crls: 0,
            crl_window: Window::ALWAYS,
            auth_level: auth_level(),
            verdicts: Verdicts::default(),
        })
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
        match identity.map(Identity::from_connectable) {
            None => self.verify(leaf, untrusted, purpose, None),
            Some(Some(id)) => self.verify(leaf, untrusted, purpose, Some(&id)),
            // A connectable naming no valid host or address matches nothing.
            Some(None) => Ok(self.verify(leaf, untrusted, purpose, None)? | Flags::BAD_IDENTITY),
        }
    }

    /// Verifies `leaf` against the anchors, with `untrusted` as candidate
    /// intermediates in any order, and (if given) for `identity`. The same
    /// question asked again answers from memory (see `verdicts.rs`).
    pub fn verify(
        &self,
        leaf: &X509Ref,
        untrusted: &[X509],
        purpose: &str,
        identity: Option<&Identity>,
    ) -> Result<Flags, ErrorStack> {
        let key = self.verdict_key(leaf, untrusted, purpose)?;
        let now = verdicts::now();
        let mut flags = match self.verdicts.get(&key, now) {
            Some(flags) => flags,
            None => {
                let (flags, window) = self.verify_chain(leaf, untrusted, purpose)?;
                self.verdicts.put(
                    key,
                    flags,
                    window.narrow(self.crl_window.from, self.crl_window.until),
                    now,
                );
                flags
            }
        };
        if let Some(id) = identity {
            let matched = self.verdicts.identity(&key, id).unwrap_or_else(|| {
                let matched = id.matches(leaf);
                self.verdicts.note_identity(&key, id, matched);
                matched
            });
            if !matched {
                flags |= Flags::BAD_IDENTITY;
            }
        }
        Ok(flags)
    }

    /// What a verdict depends on besides the store and the time: the
    /// purpose, the security level and every certificate given, in order.
    fn verdict_key(
        &self,
        leaf: &X509Ref,
        untrusted: &[X509],
        purpose: &str,
    ) -> Result<verdicts::Key, ErrorStack> {
        let mut h = openssl::sha::Sha256::new();
        h.update(purpose.as_bytes());
        h.update(&[0]);
        h.update(&self.auth_level.to_be_bytes());
        for cert in std::iter::once(leaf).chain(untrusted.iter().map(|c| &**c)) {
            let der = cert.to_der()?;
            h.update(&(der.len() as u64).to_be_bytes());
            h.update(&der);
        }
        Ok(h.finish())
    }

    /// OpenSSL's verification of the chain: the flags, and the window in
    /// which every certificate of the chain it built is valid.
    fn verify_chain(
        &self,
        leaf: &X509Ref,
        untrusted: &[X509],
        purpose: &str,
    ) -> Result<(Flags, Window), ErrorStack> {
        let mut chain = Stack::new()?;
        for cert in untrusted {
            chain.push(cert.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        let (errors, window) = ctx.init(&self.store, leaf, &chain, |ctx| {
            let param = ossl::verify_param(ctx);
            // An anchor need not be self-signed (a pinned intermediate or
            // leaf). Every certificate of the chain is looked up in the
            // store's CRLs (those of a file database's anchors file, or of
            // the system's hashed directory); where there is none, that is
            // not an error (see `flag_for`).
            param.set_flags(
                X509VerifyFlags::PARTIAL_CHAIN
                    | X509VerifyFlags::CRL_CHECK
                    | X509VerifyFlags::CRL_CHECK_ALL,
            )?;
            param.set_auth_level(self.auth_level);
            match purpose {
                PURPOSE_SERVER => param.set_purpose(X509PurposeId::SSL_SERVER)?,
                PURPOSE_CLIENT => param.set_purpose(X509PurposeId::SSL_CLIENT)?,
                _ => {}
            }
            // No host or IP in the parameters: OpenSSL's X509_check_host
            // would read a leading dot as "any subdomain" and skip an empty
            // name. The identity is ours to check, below.
            let errors = ossl::verify_collecting_errors(ctx);
            let mut window = Window::ALWAYS;
            for cert in ctx.chain().into_iter().flatten() {
                let from = crate::certificate::unix_time(cert.not_before()).unwrap_or(i64::MAX);
                let until = crate::certificate::unix_time(cert.not_after()).unwrap_or(i64::MIN);
                window = window.narrow(from, until);
            }
            Ok((errors, window))
        })?;
        let flags = errors
            .iter()
            .filter(|(e, depth)| {
                // OpenSSL uses one CRL per certificate and, told to go on,
                // applies it even when it failed its own checks: a REVOKED
                // from such a CRL (e.g. forged) is no revocation.
                *e != ffi::X509_V_ERR_CERT_REVOKED
                    || !errors
                        .iter()
                        .any(|(other, d)| d == depth && untrusted_crl(*other))
            })
            .fold(Flags::empty(), |acc, (e, _)| acc | flag_for(*e));
        Ok((flags, window))
    }
}

/// Whether `err` says the CRL used for a certificate cannot be trusted.
fn untrusted_crl(err: c_int) -> bool {
    matches!(
        err,
        ffi::X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE
            | ffi::X509_V_ERR_CRL_SIGNATURE_FAILURE
            | ffi::X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER
            | ffi::X509_V_ERR_KEYUSAGE_NO_CRL_SIGN
            | ffi::X509_V_ERR_DIFFERENT_CRL_SCOPE
            | ffi::X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD
            | ffi::X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD
    )
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
        // No CRL for this certificate's issuer: nothing to check against.
        // A CRL that is there but expired, not yet valid, or badly signed is
        // reported (GENERIC_ERROR, as GnuTLS-based backends do).
        ffi::X509_V_ERR_UNABLE_TO_GET_CRL => Flags::empty(),
        _ => Flags::GENERIC_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA-signed leaf with an RSA key of `bits`, and the CA.
    fn rsa_leaf(bits: u32) -> (X509, X509) {
        use openssl::asn1::Asn1Time;
        use openssl::ec::{EcGroup, EcKey};
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::extension::BasicConstraints;
        use openssl::x509::X509Name;

        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ca_key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let leaf_key = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
        let make = |cn: &str, key: &PKey<openssl::pkey::Private>, issuer: Option<&X509>| {
            let mut name = X509Name::builder().unwrap();
            name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
            let name = name.build();
            let mut b = X509::builder().unwrap();
            b.set_version(2).unwrap();
            b.set_subject_name(&name).unwrap();
            b.set_issuer_name(issuer.map_or(&*name, |i| i.subject_name()))
                .unwrap();
            b.set_pubkey(key).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
                .unwrap();
            let mut bc = BasicConstraints::new();
            bc.critical();
            if issuer.is_none() {
                bc.ca();
            }
            b.append_extension(bc.build().unwrap()).unwrap();
            b.sign(&ca_key, MessageDigest::sha256()).unwrap();
            b.build()
        };
        let ca = make("level CA", &ca_key, None);
        let leaf = make("level leaf", &leaf_key, Some(&ca));
        (leaf, ca)
    }

    #[test]
    fn rsa_1024_is_insecure_unless_the_level_is_lowered() {
        let (leaf, ca) = rsa_leaf(1024);
        let mut store = TrustStore::from_anchors(vec![ca]).unwrap();
        assert_eq!(store.auth_level, DEFAULT_AUTH_LEVEL);
        assert_eq!(store.verify(&leaf, &[], "", None).unwrap(), Flags::INSECURE);
        store.set_auth_level(1);
        assert_eq!(store.verify(&leaf, &[], "", None).unwrap(), Flags::empty());
        let (leaf, ca) = rsa_leaf(2048);
        let store = TrustStore::from_anchors(vec![ca]).unwrap();
        assert_eq!(store.verify(&leaf, &[], "", None).unwrap(), Flags::empty());
    }

    #[test]
    fn a_remembered_identity_answer_is_the_same_answer() {
        let (leaf, ca) = rsa_leaf(2048);
        let store = TrustStore::from_anchors(vec![ca]).unwrap();
        let ip = Identity::parse("192.0.2.1").unwrap();
        for _ in 0..2 {
            assert_eq!(
                store.verify(&leaf, &[], "", Some(&ip)).unwrap(),
                Flags::BAD_IDENTITY
            );
            assert_eq!(store.verify(&leaf, &[], "", None).unwrap(), Flags::empty());
        }
    }

    #[test]
    fn security_level_setting() {
        assert_eq!(auth_level_from(None), 2);
        assert_eq!(auth_level_from(Some("1")), 1);
        assert_eq!(auth_level_from(Some(" 0 ")), 0);
        assert_eq!(auth_level_from(Some("5")), 5);
        assert_eq!(auth_level_from(Some("6")), 2);
        assert_eq!(auth_level_from(Some("-1")), 2);
        assert_eq!(auth_level_from(Some("low")), 2);
    }

    #[test]
    fn error_codes_map_to_flags() {
        assert_eq!(flag_for(ffi::X509_V_ERR_CERT_HAS_EXPIRED), Flags::EXPIRED);
        assert_eq!(flag_for(ffi::X509_V_ERR_CA_MD_TOO_WEAK), Flags::INSECURE);
        assert_eq!(flag_for(ffi::X509_V_ERR_CERT_REVOKED), Flags::REVOKED);
        assert_eq!(flag_for(ffi::X509_V_ERR_UNABLE_TO_GET_CRL), Flags::empty());
        assert_eq!(
            flag_for(ffi::X509_V_ERR_CRL_HAS_EXPIRED),
            Flags::GENERIC_ERROR
        );
        assert_eq!(
            flag_for(ffi::X509_V_ERR_CRL_NOT_YET_VALID),
            Flags::GENERIC_ERROR
        );
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
