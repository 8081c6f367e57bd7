//! Plain C programs that include only `<gio/gio.h>`, built with the system
//! compiler and pkg-config and run against our module (GIO_MODULE_DIR,
//! GIO_USE_TLS=dtls-openssl). Each is a GTest program; its output is shown
//! when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn build(name: &str) -> PathBuf {
    common::cprog::build(name)
}

fn run(exe: &Path) {
    run_with(exe, &[]);
}

fn run_with(exe: &Path, extra: &[(&str, String)]) {
    let env = common::init();
    let out = Command::new(exe)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .env("GIO_MODULE_DIR", &env.modules)
        .env("GIO_USE_TLS", "dtls-openssl")
        .env("DTLS_EXPECT_BACKEND", "DtlsOpensslBackend")
        .env("DTLS_TEST_PKI", &env.pki)
        .env("G_DEBUG", "fatal-criticals")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} failed:\n{text}", exe.display());
    assert!(text.contains("ok "), "no test ran:\n{text}");
}

#[test]
fn c_gio_backend_certificates_and_databases() {
    run(&build("test-gio-backend"));
}

/// The echo server serves the program's two connections in turn.
#[test]
fn c_dtls_client_against_an_openssl_echo_server() {
    use common::echo_peer::{EchoPeer, EchoPeerOpts};
    let exe = build("test-dtls-client");
    let peer = EchoPeer::start(EchoPeerOpts::new(&common::init().pki).max_connections(2));
    run_with(&exe, &[("DTLS_TEST_PORT", peer.addr().port().to_string())]);
}

/// Configuration by environment: a cipher list, and SSLKEYLOGFILE (the
/// secrets Wireshark needs, in NSS key log format).
#[test]
fn c_dtls_client_honours_cipher_list_and_keylog_file() {
    use common::echo_peer::{EchoPeer, EchoPeerOpts};
    let exe = build("test-dtls-client");
    let keylog = common::init().modules.parent().unwrap().join("keylog.txt");
    let _ = std::fs::remove_file(&keylog);
    let peer = EchoPeer::start(EchoPeerOpts::new(&common::init().pki).max_connections(2));
    run_with(
        &exe,
        &[
            ("DTLS_TEST_PORT", peer.addr().port().to_string()),
            (
                "DTLS_OPENSSL_CIPHER_LIST",
                "ECDHE-ECDSA-AES128-GCM-SHA256".into(),
            ),
            (
                "DTLS_EXPECT_CIPHER",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ),
            ("SSLKEYLOGFILE", keylog.to_string_lossy().into_owned()),
        ],
    );
    let log = std::fs::read_to_string(&keylog).expect("SSLKEYLOGFILE written");
    assert!(
        log.lines().any(|l| l.starts_with("CLIENT_RANDOM ")),
        "{log}"
    );
}
