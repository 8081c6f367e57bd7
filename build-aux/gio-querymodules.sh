#!/bin/sh
# Install script: refreshes giomodule.cache in the GIO module directory so
# GIO knows, without loading it, that the module implements
# gio-tls-backend. Skipped (with a notice) for staged installs (DESTDIR):
# the packager's trigger runs gio-querymodules on the target system.
#   gio-querymodules.sh GIO_QUERYMODULES MODULE_DIR
set -eu
querymodules=$1 dir=$2

if [ -n "${DESTDIR:-}" ]; then
    echo "gio-dtls-openssl: DESTDIR is set; not running gio-querymodules. Run it on the target system:"
    echo "    $querymodules $dir"
    exit 0
fi
if [ -n "${MESON_INSTALL_DRY_RUN:-}" ]; then
    echo "gio-dtls-openssl: dry run; would run $querymodules $dir"
    exit 0
fi
if [ ! -w "$dir" ]; then
    echo "gio-dtls-openssl: $dir is not writable; not running gio-querymodules. Run as its owner:"
    echo "    $querymodules $dir"
    exit 0
fi
echo "gio-dtls-openssl: updating $dir/giomodule.cache"
exec "$querymodules" "$dir"
