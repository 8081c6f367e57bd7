#!/usr/bin/env bash
# Generates DtlsOpenssl-1.0.gir (g-ir-scanner, from include/dtls-openssl.h and
# the built library) and DtlsOpenssl-1.0.typelib (g-ir-compiler).
#   tools/gir.sh LIBDIR OUTDIR
# LIBDIR holds libgiodtlsopenssl.so (e.g. target/release).
# The scanner runs a program linked to the library: GIO must load no module
# (a module directory holding a copy of the library would load our types
# twice), whatever the caller's GIO_* variables say.
set -euo pipefail
unset GIO_USE_TLS GIO_EXTRA_MODULES
export GIO_MODULE_DIR=/nonexistent/dtls-openssl-gir-no-modules
top=$(cd "$(dirname "$0")/.." && pwd)
libdir=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
cd "$out"
g-ir-scanner \
    --quiet --warn-all --warn-error \
    --namespace=DtlsOpenssl --nsversion=1.0 \
    --identifier-prefix=DtlsOpenssl --symbol-prefix=dtls_openssl \
    --include=Gio-2.0 --pkg=gio-2.0 --pkg-export=dtls-openssl \
    --c-include=dtls-openssl.h \
    --library=giodtlsopenssl --library-path="$libdir" \
    -I"$top/include" \
    --output="$out/DtlsOpenssl-1.0.gir" \
    "$top/include/dtls-openssl.h"
g-ir-compiler --includedir="$out" --output="$out/DtlsOpenssl-1.0.typelib" "$out/DtlsOpenssl-1.0.gir"
