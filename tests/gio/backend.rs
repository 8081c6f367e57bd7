//! The backend as GIO sees it.

use gio::prelude::*;

use crate::common::{self, backend};

#[test]
fn gio_picks_our_backend() {
    let b = backend();
    assert_eq!(b.type_().name(), "DtlsOpensslBackend");
    assert!(b.supports_dtls());
    // Stream TLS is not implemented, and we say so.
    assert!(!b.supports_tls());
    assert_eq!(b.certificate_type().name(), "DtlsOpensslCertificate");
    assert_eq!(b.file_database_type().name(), "DtlsOpensslFileDatabase");
}

#[test]
fn default_database_is_one_shared_instance() {
    let b = backend();
    let d1 = b.default_database();
    let d2 = b.default_database();
    assert_eq!(d1, d2);
    assert_eq!(d1.type_().name(), "DtlsOpensslDatabase");
}

#[test]
fn stream_tls_fails_with_not_supported() {
    let b = backend();
    let input = gio::MemoryInputStream::new();
    let output = gio::MemoryOutputStream::new_resizable();
    let stream = gio::SimpleIOStream::new(&input, &output);
    let err = gio::TlsClientConnection::new(&stream, None::<&gio::SocketConnectable>).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::NotSupported), "{err}");
    assert!(err.message().contains("dtls-openssl"), "{err}");
    let cert = common::cert("server-key.pem");
    let err = gio::TlsServerConnection::new(&stream, Some(&cert)).unwrap_err();
    assert!(err.matches(gio::IOErrorEnum::NotSupported), "{err}");
    let _ = b;
}

/// `gio-querymodules` calls our `g_io_module_query`.
#[test]
fn module_query_names_the_tls_extension_point() {
    let env = common::init();
    let dir = env.modules.parent().unwrap().join("query");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("libgiodtlsopenssl.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&env.library, &link).unwrap();
    let status = std::process::Command::new(querymodules())
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let cache = std::fs::read_to_string(dir.join("giomodule.cache")).unwrap();
    assert_eq!(cache.trim(), "libgiodtlsopenssl.so: gio-tls-backend");
}

fn querymodules() -> String {
    let out = std::process::Command::new("pkg-config")
        .args(["--variable=gio_querymodules", "gio-2.0"])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
    if path.is_empty() {
        "gio-querymodules".into()
    } else {
        path
    }
}

/// Installed next to glib-networking, we do not take over: without
/// GIO_USE_TLS the GnuTLS backend stays the default. Checked in a child
/// process, since GIO picks its backend once per process.
#[test]
fn installing_does_not_replace_the_default_backend() {
    let env = common::init();
    if !std::path::Path::new(common::GNUTLS_MODULE).exists() {
        panic!(
            "glib-networking is not installed: {}",
            common::GNUTLS_MODULE
        );
    }
    let script =
        "from gi.repository import Gio; print(Gio.TlsBackend.get_default().__gtype__.name)";
    let run = |use_tls: Option<&str>| {
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.args(["-c", script])
            .env("GIO_MODULE_DIR", &env.modules)
            .env_remove("GIO_USE_TLS");
        if let Some(v) = use_tls {
            cmd.env("GIO_USE_TLS", v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(run(None), "GTlsBackendGnutls");
    assert_eq!(run(Some("dtls-openssl")), "DtlsOpensslBackend");
}
