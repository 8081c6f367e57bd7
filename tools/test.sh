#!/usr/bin/env bash
# The whole test suite: Rust unit tests, GIO integration tests (Rust and C)
# against the module loaded from a temporary module directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cargo build --all-targets
cargo test "$@"
