#!/usr/bin/env bash
# The meson side of the project in one command: configure build-meson/ if
# needed, build (cargo builds the library; gi-docgen the API reference,
# with warnings fatal), run the meson tests (GIR up to
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
    meson setup "$build" -Ddocs=enabled
else
    # An older build directory may predate an option: reconfigure.
    meson setup --reconfigure "$build" -Ddocs=enabled >/dev/null
fi
meson compile -C "$build"
# The `install` suite is the check below, run once, with its output shown.
meson test -C "$build" --print-errorlogs --no-suite install
bash tests/install/check-install.sh --cargo-target-dir "$PWD/$build/cargo-target"
echo "test-meson: all passed in $(( $(date +%s) - start )) s"
