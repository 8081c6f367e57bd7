#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, if any are missing.
# Runs as root (or through sudo when available).
set -euo pipefail

PACKAGES=(
    pkg-config libglib2.0-dev libssl-dev openssl
    gobject-introspection libgirepository1.0-dev meson ninja-build
    python3-gi python3-pytest gnutls-bin glib-networking valgrind ca-certificates gi-docgen
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
