#!/usr/bin/env bash
# Builds the library and shows DTLS through plain GIO with
# GIO_USE_TLS=dtls-openssl:
#  1. examples/gio-echo-client.c against a local gnutls-serv --udp --echo;
#  2. both ends of a link on this backend: examples/gio-echo-server.c and
#     examples/gio-echo-client.c.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cargo build --release --lib
work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/modules" "$work/pki"
ln -s "$PWD/target/release/libgiodtlsopenssl.so" "$work/modules/"
bash tests/files/make-pki.sh "$work/pki" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
gnutls-serv --udp --echo -p "$port" --x509certfile "$work/pki/server.pem" \
    --x509keyfile "$work/pki/server.key" >"$work/server.log" 2>&1 &
server=$!
# Wait (at most 10 s) for the server to report it is listening.
for _ in $(seq 200); do
    grep -q "listening on IPv4.*done" "$work/server.log" && break
    sleep 0.05
done
grep -q "listening on IPv4.*done" "$work/server.log" || { cat "$work/server.log"; exit 1; }
for prog in gio-echo-client gio-echo-server; do
    cc -o "$work/$prog" "examples/$prog.c" $(pkg-config --cflags --libs gio-2.0)
done
export GIO_MODULE_DIR="$work/modules" GIO_USE_TLS=dtls-openssl
echo "== 1. our client, gnutls-serv"
"$work/gio-echo-client" "$work/pki/ca.pem" "$port"
kill "$server"; wait "$server" 2>/dev/null || true

echo
echo "== 2. our client, our server"
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$work/gio-echo-server" "$work/pki/server-key.pem" "$port" >"$work/ours.log" 2>&1 &
server=$!
for _ in $(seq 200); do
    grep -q "listening" "$work/ours.log" && break
    sleep 0.05
done
"$work/gio-echo-client" "$work/pki/ca.pem" "$port"
wait "$server"
server=""
cat "$work/ours.log"
