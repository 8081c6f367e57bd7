//! Shared set-up for tests that use the library the way applications do:
//! through GIO, with the module loaded from a temporary module directory.
//!
//! `init()` (idempotent, call it first in every test) builds that directory
//! (our module, plus glib-networking's GnuTLS module for comparisons), sets
//! `GIO_MODULE_DIR` and `GIO_USE_TLS=dtls-openssl` before GIO reads them,
//! makes criticals fatal, and generates the test PKI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// glib-networking's GnuTLS module on Debian.
pub const GNUTLS_MODULE: &str = "/usr/lib/x86_64-linux-gnu/gio/modules/libgiognutls.so";

pub struct Env {
    /// Directory of the generated test PKI.
    pub pki: PathBuf,
    /// Module directory holding our library (a symlink).
    pub modules: PathBuf,
    /// The built library itself.
    pub library: PathBuf,
}

/// Where `cargo test` builds the library: next to the test binary
/// (target/<profile>/deps; the copy one level up is only refreshed by
/// `cargo build`).
pub fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

pub fn init() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let library = deps_dir().join("libgiodtlsopenssl.so");
        assert!(library.exists(), "{} not built", library.display());
        remove_stale_dirs();
        let root = std::env::temp_dir().join(format!("dtls-openssl-tests-{}", std::process::id()));
        let modules = root.join("modules");
        let pki = root.join("pki");
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::create_dir_all(&pki).unwrap();
        link(&library, &modules.join("libgiodtlsopenssl.so"));
        if Path::new(GNUTLS_MODULE).exists() {
            link(Path::new(GNUTLS_MODULE), &modules.join("libgiognutls.so"));
        }
        make_pki(&pki);
        // SAFETY of set_var: runs once, before any test thread touches GIO
        // (every test calls init() first) — GIO reads these on first use.
        std::env::set_var("GIO_MODULE_DIR", &modules);
        std::env::set_var("GIO_USE_TLS", "dtls-openssl");
        std::env::remove_var("GIO_EXTRA_MODULES");
        glib::log_set_always_fatal(
            glib::LogLevels::LEVEL_CRITICAL | glib::LogLevels::LEVEL_WARNING,
        );
        Env {
            pki,
            modules,
            library,
        }
    })
}

/// Set in the child process a test runs alone in (see [`alone`]).
const ALONE_ENV: &str = "DTLS_OPENSSL_TEST_ALONE";

/// This process's resident set size, in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// File descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Open file descriptors that are not sockets (eventfds, timerfds, pipes,
/// epoll instances, files): what a library could add per connection
/// beside its socket. Unlike [`open_fds`], not disturbed by an in-process
/// peer's per-connection socket clones, which come and go on its thread.
pub fn open_non_socket_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| !target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// What is measured for the whole process (memory, file descriptors)
/// cannot be shared with the other tests of the binary (they run on
/// threads beside it): in the parent this runs the test `name` (its full
/// path, e.g. `listener::some_test`) alone in a child process, bounded by
/// `limit`, prints the child's lines that contain `scale:` or `idle:` and
/// returns false; in that child it returns true and the test does its
/// work.
pub fn alone(name: &str, limit: std::time::Duration) -> bool {
    if std::env::var_os(ALONE_ENV).is_some() {
        return true;
    }
    let mut cmd = child_test_command(&[name]);
    cmd.env(ALONE_ENV, "1");
    let output = run_child_tests(cmd, &[name], limit);
    for line in output
        .lines()
        .filter(|l| l.contains("scale:") || l.contains("idle:"))
    {
        println!("{line}");
    }
    false
}

/// A command that runs the tests `names` of this test binary, one thread,
/// output shown, with this process's GIO module set-up; the caller adds
/// its own environment and passes it to [`run_child_tests`].
pub fn child_test_command(names: &[&str]) -> Command {
    let env_vars = init();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--exact")
        .args(names)
        .args(["--nocapture", "--test-threads=1"])
        .env("GIO_MODULE_DIR", &env_vars.modules)
        .env("GIO_USE_TLS", "dtls-openssl")
        .env_remove("GIO_EXTRA_MODULES");
    cmd
}

/// Runs `cmd` (from [`child_test_command`] for `names`), bounded by
/// `limit`; panics unless every one of `names` ran and passed. Returns the
/// child's output (stdout and stderr).
pub fn run_child_tests(cmd: Command, names: &[&str], limit: std::time::Duration) -> String {
    let mut child = peers::PeerProcess::spawn("child test", cmd, limit, None).unwrap();
    let status = child
        .wait_exit(limit)
        .unwrap_or_else(|e| panic!("child tests {names:?}: {e}\n{}", child.output()));
    let output = child.output();
    assert!(status.success(), "child tests {names:?} failed:\n{output}");
    // `--exact` with a wrong name runs nothing and succeeds.
    let passed = format!("test result: ok. {} passed", names.len());
    assert!(
        output.contains(&passed),
        "child tests {names:?} did not all run:\n{output}"
    );
    output
}

/// Removes the directories of earlier test processes that have exited
/// (a process cannot clean up after itself: statics are never dropped).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("dtls-openssl-tests-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn link(target: &Path, at: &Path) {
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// Runs tests/files/make-pki.sh into `dir`.
pub fn make_pki(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/files/make-pki.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .output()
        .expect("run make-pki.sh");
    assert!(
        out.status.success(),
        "make-pki.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Path of a PKI file, as a string for GIO calls.
pub fn pki(name: &str) -> String {
    init().pki.join(name).to_string_lossy().into_owned()
}

/// The default backend (ours, given `init()`).
pub fn backend() -> gio::TlsBackend {
    init();
    gio::TlsBackend::default()
}

/// Loads a certificate (chain) file through GIO.
pub fn cert(name: &str) -> gio::TlsCertificate {
    gio::TlsCertificate::from_file(pki(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// The DER bytes of a GTlsCertificate.
pub fn der(cert: &gio::TlsCertificate) -> Vec<u8> {
    use glib::prelude::*;
    let d: glib::ByteArray = cert.property("certificate");
    d.to_vec()
}

/// Builds a certificate with an explicit issuer link, the way GIO does.
pub fn cert_with_issuer(name: &str, issuer: Option<&gio::TlsCertificate>) -> gio::TlsCertificate {
    let pem = std::fs::read_to_string(pki(name)).unwrap();
    let first = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = pem[first..].find("-----END CERTIFICATE-----").unwrap() + first + 25;
    new_cert(&[
        ("certificate-pem", pem[first..end].into()),
        ("issuer", issuer.cloned().into()),
    ])
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn host(name: &str) -> gio::SocketConnectable {
    use glib::prelude::*;
    gio::NetworkAddress::new(name, 0).upcast()
}

pub fn ip(addr: &str) -> gio::SocketConnectable {
    use glib::prelude::*;
    gio::InetSocketAddress::from_string(addr, 0)
        .unwrap()
        .upcast()
}

/// `g_initable_new (backend certificate type, …)` with the given properties.
pub fn new_cert(props: &[(&str, glib::Value)]) -> Result<gio::TlsCertificate, glib::Error> {
    use gio::prelude::*;
    let mut b = gio::Initable::builder_with_type(backend().certificate_type());
    for (name, value) in props {
        b = b.property(name, value.clone());
    }
    b.build(gio::Cancellable::NONE)
        .map(|o| o.downcast().unwrap())
}
pub mod cprog;
pub mod dtls;
pub mod echo_peer;
pub mod gio_peer;
pub mod peers;
pub mod relay;
pub mod strict_socket;

/// Runs the tests `names` of this test binary alone in a child process
/// (bounded: 120 s) with `env` added to this process's GIO module set-up;
/// panics unless all of them ran and passed. Returns the child's output.
pub fn run_tests_in_child(names: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = child_test_command(names);
    cmd.envs(env.iter().copied());
    run_child_tests(cmd, names, std::time::Duration::from_secs(120))
}
