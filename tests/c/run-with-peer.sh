#!/usr/bin/env bash
# Runs COMMAND next to a DTLS echo peer (gnutls-serv --udp --echo on
# 127.0.0.1) and a fresh test PKI; exits with COMMAND's status.
#
#   tests/c/run-with-peer.sh COMMAND [ARG...]
#
# COMMAND gets DTLS_TEST_PKI (the directory made by tests/files/make-pki.sh;
# the server uses server.pem/server.key, signed by ca.pem) and
# DTLS_TEST_PORT. gnutls-serv serves one session at a time and echoes
# records of at most 254 bytes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dtls-peer.XXXXXX")
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

bash "$here/../files/make-pki.sh" "$work/pki" || exit 1

ready=""
for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    gnutls-serv --udp --echo -p "$port" --x509certfile "$work/pki/server.pem" \
        --x509keyfile "$work/pki/server.key" >"$work/server.log" 2>&1 &
    server=$!
    # Wait at most 10 s for "listening on IPv4 0.0.0.0 port N...done".
    for _ in $(seq 200); do
        if grep -q "listening on IPv4 0.0.0.0 port $port\.\.\.done" "$work/server.log"; then
            ready=1
            break
        fi
        kill -0 "$server" 2>/dev/null || break
        grep -q "listening on IPv4.*failed" "$work/server.log" && break
        sleep 0.05
    done
    [ -n "$ready" ] && break
    echo "run-with-peer: gnutls-serv not ready on port $port (attempt $attempt):" >&2
    cat "$work/server.log" >&2
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    server=""
done
[ -n "$ready" ] || { echo "run-with-peer: could not start gnutls-serv" >&2; exit 1; }

DTLS_TEST_PKI="$work/pki" DTLS_TEST_PORT="$port" "$@"
rc=$?
if ! kill -0 "$server" 2>/dev/null; then
    echo "run-with-peer: gnutls-serv died during the test:" >&2
    cat "$work/server.log" >&2
    [ $rc -ne 0 ] || rc=1
elif [ $rc -ne 0 ]; then
    echo "run-with-peer: command failed ($rc); gnutls-serv's log (last 40 lines):" >&2
    tail -n 40 "$work/server.log" >&2
fi
exit $rc
