#!/usr/bin/env bash
# The whole test suite:
#  1. cargo test: Rust unit tests, GIO integration tests (Rust and C
#     programs) against the module loaded from a temporary module directory
#     and real peers (openssl s_server, gnutls-serv, an OpenSSL echo server);
#  2. tools/test-python.sh: PyGObject tests through the typelib and GIO;
#  3. tools/test-meson.sh (when present): meson build, C API tests (also
#     under valgrind), GIR freshness, install to a temporary prefix.
# Before them: rustfmt and clippy (warnings are errors).
# Fails on the first failing suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build --all-targets
cargo test "$@"
bash tools/test-python.sh
if [ -f tools/test-meson.sh ]; then
    bash tools/test-meson.sh
fi
echo "test.sh: all suites passed"
