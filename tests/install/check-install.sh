#!/usr/bin/env bash
# Installs this source tree into a temporary prefix with meson and checks the
# result the way users meet it: files, pkg-config, the GIO module (symlink +
# giomodule.cache), a C program built with `pkg-config dtls-openssl`, GIO
# picking the module, and PyGObject loading the typelib. Never touches the
# system.
#
#   tests/install/check-install.sh [--cargo-target-dir DIR] [--keep]
#
# --cargo-target-dir reuses an existing cargo target directory (e.g.
# build-meson/cargo-target) so cargo has nothing to rebuild; --keep leaves
# the prefix and build directory behind. Runs standalone or as the meson
# test `install`.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
cargo_target_dir=""
keep=""
while [ $# -gt 0 ]; do
    case $1 in
        --cargo-target-dir) cargo_target_dir=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "usage: $0 [--cargo-target-dir DIR] [--keep]" >&2; exit 2 ;;
    esac
done
command -v cargo >/dev/null || PATH="$HOME/.cargo/bin:$PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/dtls-install.XXXXXX")
prefix=$work/prefix
build=$work/build
cleanup() {
    if [ -n "$keep" ]; then
        echo "check-install: kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

failures=0
ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# Run a step quietly; show its output only when it fails.
step() { # step DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >"$work/step.log" 2>&1; then
        ok "$what"
    else
        fail "$what"
        cat "$work/step.log"
        exit 1
    fi
}

moddir=$prefix/lib/gio/modules
setup_args=(--prefix="$prefix" --libdir=lib -Dgio_module_dir="$moddir")
[ -z "$cargo_target_dir" ] || setup_args+=(-Dcargo_target_dir="$cargo_target_dir")

echo "check-install: prefix $prefix"
step "meson setup" meson setup "$build" "$src" "${setup_args[@]}"
step "meson compile" meson compile -C "$build"
step "meson install" meson install -C "$build"

# --- files -------------------------------------------------------------------
lib=$prefix/lib/libgiodtlsopenssl.so
check "library $lib" test -f "$lib" -a ! -L "$lib"
check "header" test -f "$prefix/include/dtls-openssl-1.0/dtls-openssl.h"
check "pkg-config file" test -f "$prefix/lib/pkgconfig/dtls-openssl.pc"
check "GIR" test -f "$prefix/share/gir-1.0/DtlsOpenssl-1.0.gir"
check "typelib" test -f "$prefix/lib/girepository-1.0/DtlsOpenssl-1.0.typelib"

module=$moddir/libgiodtlsopenssl.so
check "module entry is a symlink" test -L "$module"
check "module symlink resolves to the installed library" \
    test "$(readlink -f "$module")" = "$(readlink -f "$lib")"
check "module and library are the same inode" \
    test "$(stat -L -c %d:%i "$module")" = "$(stat -c %d:%i "$lib")"
echo "  $(cd "$moddir" && ls -l libgiodtlsopenssl.so | sed 's/.* libgio/libgio/')"
check "giomodule.cache lists gio-tls-backend" \
    grep -qx "libgiodtlsopenssl.so: gio-tls-backend" "$moddir/giomodule.cache"

# --- pkg-config and a C program ---------------------------------------------------
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs dtls-openssl)
echo "  pkg-config --cflags --libs dtls-openssl: $flags"
check "pkg-config version" test "$(pkg-config --modversion dtls-openssl)" = "0.1.0"
check "pkg-config Cflags point at the installed header" \
    test -f "$(pkg-config --variable=includedir dtls-openssl)/dtls-openssl-1.0/dtls-openssl.h"
# shellcheck disable=SC2086 # word splitting of pkg-config's flags is intended
step "examples/echo-client.c builds with -Wall -Werror" \
    cc -Wall -Werror -o "$work/echo-client" "$src/examples/echo-client.c" $flags
step "echo-client talks to gnutls-serv" \
    env LD_LIBRARY_PATH="$prefix/lib" "$src/tests/c/run-with-peer.sh" \
    sh -c '"$0" "$DTLS_TEST_PKI/ca.pem" localhost "$DTLS_TEST_PORT" hello installed-world' "$work/echo-client"
grep '^echo:' "$work/step.log" | sed 's/^/  /' || true
check "echo-client echoed both messages" \
    test "$(grep -c '^echo: \(hello\|installed-world\)$' "$work/step.log")" = 2

# --- GIO loads the module -----------------------------------------------------------
# shellcheck disable=SC2046
step "print-backend.c builds (gio-2.0 only)" \
    cc -Wall -Werror -o "$work/print-backend" "$src/tests/install/print-backend.c" $(pkg-config --cflags --libs gio-2.0)
backend=$(GIO_MODULE_DIR=$moddir GIO_USE_TLS=dtls-openssl "$work/print-backend" 2>&1) || true
echo "  GIO_USE_TLS=dtls-openssl: $backend"
check "GIO's default backend is ours" test "$backend" = "DtlsOpensslBackend DtlsOpensslClientConnection"

# --- PyGObject ---------------------------------------------------------------------------
py=$(GI_TYPELIB_PATH=$prefix/lib/girepository-1.0 LD_LIBRARY_PATH=$prefix/lib /usr/bin/python3 -c "
import gi
gi.require_version('DtlsOpenssl', '1.0')
from gi.repository import DtlsOpenssl
print(DtlsOpenssl.ClientConnection)
" 2>&1) || true
echo "  python3: $py"
check "PyGObject loads DtlsOpenssl-1.0" test "$py" = "<class 'gi.repository.DtlsOpenssl.ClientConnection'>"

# The overrides, in the prefix's site directory (the one meson's summary names).
sitedir=$(cd "$build" && meson introspect --installed . | /usr/bin/python3 -c '
import json, os, sys
for src, dst in json.load(sys.stdin).items():
    if dst.endswith("/gi/overrides/DtlsOpenssl.py"):
        print(os.path.dirname(os.path.dirname(os.path.dirname(dst))))')
echo "  site directory: $sitedir"
check "overrides installed under the prefix" \
    test -f "$sitedir/gi/overrides/DtlsOpenssl.py" -a "${sitedir#"$prefix"/}" != "$sitedir"
overrides_code='
import sys, gi
gi.require_version("DtlsOpenssl", "1.0")
from gi.repository import DtlsOpenssl
print(sys.modules["gi.overrides.DtlsOpenssl"].__file__)
print(all(callable(getattr(DtlsOpenssl.ClientConnection, m)) for m in
          ("send", "receive", "__enter__", "__iter__", "export_keying_material", "send_bytes")))
'
py=$(env -u PYTHONPATH GI_TYPELIB_PATH=$prefix/lib/girepository-1.0 LD_LIBRARY_PATH=$prefix/lib \
     PYTHONPATH=$sitedir /usr/bin/python3 -c "$overrides_code" 2>&1) || true
echo "  python3 with PYTHONPATH=$sitedir: $(echo "$py" | tr '\n' ' ')"
check "PyGObject loads the installed overrides" \
    test "$py" = "$sitedir/gi/overrides/DtlsOpenssl.py
True"

# --- tools/env.sh: one line sets up a shell for this prefix ------------------------------
envsh=$(env -u LD_LIBRARY_PATH -u GI_TYPELIB_PATH -u PYTHONPATH -u PKG_CONFIG_PATH -u GIO_EXTRA_MODULES \
    -u GIO_MODULE_DIR -u GIO_USE_TLS bash -c '
    source "$1/tools/env.sh" "$2" >/dev/null || exit 1
    /usr/bin/python3 -c "$3" || exit 1
    GIO_USE_TLS=dtls-openssl "$4" || exit 1
    pkg-config --variable=libdir dtls-openssl
' env.sh "$src" "$prefix" "$overrides_code" "$work/print-backend" 2>&1) || true
echo "  source tools/env.sh $prefix: $(echo "$envsh" | tr '\n' ' ')"
check "tools/env.sh: Python, GIO (GIO_EXTRA_MODULES) and pkg-config find the prefix" \
    test "$envsh" = "$sitedir/gi/overrides/DtlsOpenssl.py
True
DtlsOpensslBackend DtlsOpensslClientConnection
$prefix/lib"

# --- the GIR step ignores the caller's GIO settings --------------------------------------
# A module directory holding a *copy* of the library would load our types twice
# in the scanner's dump program.
mkdir -p "$work/copy-modules"
cp "$build/libgiodtlsopenssl.so" "$work/copy-modules/"
rm -f "$build/gir/DtlsOpenssl-1.0.gir"
step "GIR rebuilt with GIO_MODULE_DIR holding a copy and GIO_USE_TLS set" \
    env GIO_MODULE_DIR="$work/copy-modules" GIO_EXTRA_MODULES="$work/copy-modules" GIO_USE_TLS=dtls-openssl \
    meson compile -C "$build"
check "the rebuilt GIR is the committed one" cmp -s "$build/gir/DtlsOpenssl-1.0.gir" "$src/gir/DtlsOpenssl-1.0.gir"

# --- a staged install (DESTDIR) skips gio-querymodules ------------------------------------
step "DESTDIR install" env DESTDIR="$work/stage" meson install -C "$build" --no-rebuild
check "DESTDIR install skips gio-querymodules with a notice" \
    grep -q "Skipping custom install script because DESTDIR is set.*gio-querymodules" "$work/step.log"
check "DESTDIR install has the module symlink" test -L "$work/stage$module"
check "DESTDIR install writes no giomodule.cache" test ! -e "$work/stage$moddir/giomodule.cache"

if [ $failures -ne 0 ]; then
    echo "check-install: $failures check(s) failed"
    exit 1
fi
echo "check-install: all checks passed"
