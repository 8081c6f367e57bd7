#!/usr/bin/env bash
# The Python (PyGObject) tests: builds the library and the echo server
# (examples/dtls-echo-server.rs), generates the typelib into target/gir
# (target/ is $CARGO_TARGET_DIR when that is set), then runs tests/python
# with pytest under Debian's /usr/bin/python3 (the one with `gi`) in this
# environment:
#   LD_LIBRARY_PATH  target/debug (holds the library the typelib names)
#   GI_TYPELIB_PATH  target/gir
#   GIO_MODULE_DIR   a temporary directory with a symlink to the library
#   GIO_USE_TLS      dtls-openssl
#   PYTHONPATH       python/ (the DtlsOpenssl overrides, python/gi/overrides)
# Extra arguments go to pytest (e.g. -k accept, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

bash tools/install-deps.sh
cargo build --lib --example dtls-echo-server

# cargo's target directory (target/ unless CARGO_TARGET_DIR says otherwise).
target=$(realpath -m "${CARGO_TARGET_DIR:-$top/target}")
libdir=$target/debug
gir=$target/gir
bash tools/gir.sh "$libdir" "$gir"

moddir=$(mktemp -d "${TMPDIR:-/tmp}/dtls-openssl-modules.XXXXXX")
trap 'rm -rf "$moddir"' EXIT
# A symlink, not a copy: the module and the library PyGObject loads must be
# one file (one inode), or the second mapping aborts.
ln -s "$libdir/libgiodtlsopenssl.so" "$moddir/"

export DTLS_OPENSSL_LIBDIR=$libdir
export DTLS_ECHO_SERVER=$libdir/examples/dtls-echo-server
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export GI_TYPELIB_PATH=$gir${GI_TYPELIB_PATH:+:$GI_TYPELIB_PATH}
export GIO_MODULE_DIR=$moddir
export GIO_USE_TLS=dtls-openssl
export PYTHONPATH=$top/python${PYTHONPATH:+:$PYTHONPATH}
unset GIO_EXTRA_MODULES

status=0
/usr/bin/python3 -m pytest -v -p no:cacheprovider tests/python "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test-python: pytest collected no tests" >&2
fi
exit "$status"
