//! Builds the plain C programs of tests/c (only `<gio/gio.h>`, system
//! compiler and pkg-config) once per test process, into the process's
//! temporary directory next to the module directory of `init()`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/c/<name>.c` once per process (tests run in parallel and
/// may share a program) and returns the executable's path. Panics with the
/// compiler's output on failure.
pub fn build(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, exe)) = built.iter().find(|(n, _)| n == name) {
        return exe.clone();
    }
    let exe = compile(name);
    built.push((name.to_string(), exe.clone()));
    exe
}

fn compile(name: &str) -> PathBuf {
    let env = super::init();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let exe = env.modules.parent().unwrap().join(name);
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "gio-2.0"])
        .output()
        .unwrap();
    assert!(
        flags.status.success(),
        "pkg-config gio-2.0 failed: is libglib2.0-dev installed?"
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let out = Command::new("cc")
        .args(["-Wall", "-Werror", "-g", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(flags.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc {name}.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}
