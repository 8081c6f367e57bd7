#!/usr/bin/env bash
# The meson side of the project in one command: configure build-meson/ if
# needed, build (cargo builds the library), run the meson tests (GIR up to
# date, C API tests, the same under valgrind), then install into a temporary
# prefix and check the result (tests/install/check-install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

build=build-meson
start=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
    rm -rf "$build"
    meson setup "$build"
fi
meson compile -C "$build"
# The `install` suite is the check below, run once, with its output shown.
meson test -C "$build" --print-errorlogs --no-suite install
bash tests/install/check-install.sh --cargo-target-dir "$PWD/$build/cargo-target"
echo "test-meson: all passed in $(( $(date +%s) - start )) s"
