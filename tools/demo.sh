#!/usr/bin/env bash
# Builds the library and runs the demo through GIO with GIO_USE_TLS=dtls-openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cargo build --release --lib --example demo
modules=$(mktemp -d)
pki=$(mktemp -d)
trap 'rm -rf "$modules" "$pki"' EXIT
ln -s "$PWD/target/release/libgiodtlsopenssl.so" "$modules/"
bash tests/files/make-pki.sh "$pki"
GIO_MODULE_DIR="$modules" GIO_USE_TLS=dtls-openssl ./target/release/examples/demo "$pki"
