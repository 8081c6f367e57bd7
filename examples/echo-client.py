#!/usr/bin/python3
"""A DTLS echo client in Python on gio-dtls-openssl (PyGObject).

Usage: echo-client.py CA_FILE HOST PORT [MESSAGE...]

Sends each MESSAGE (default: "hello") as one datagram to the DTLS server
HOST:PORT, whose certificate must chain to CA_FILE and match HOST, and
prints what comes back.

PyGObject needs the typelib (generated from the built library by
tools/gir.sh) and the dynamic loader needs the library itself; with Debian's
python3 (which has the `gi` module):

    cargo build --lib --example dtls-echo-server
    tools/gir.sh target/debug target/gir
    bash tests/files/make-pki.sh /tmp/pki
    target/debug/examples/dtls-echo-server --pki /tmp/pki &   # prints its port
    GI_TYPELIB_PATH=target/gir LD_LIBRARY_PATH=target/debug \\
        /usr/bin/python3 examples/echo-client.py /tmp/pki/ca.pem localhost PORT hi there

(The test PKI's server certificate is valid for server.example.com,
localhost and 127.0.0.1.) DtlsOpenssl.ClientConnection does not depend on
which TLS backend GIO picked: no GIO_USE_TLS needed. It also works against
`gnutls-serv --udp --echo` or `openssl s_server -dtls1_2`.
"""

import sys

if len(sys.argv) < 4:
    sys.exit(__doc__.split("\n\n")[1])

import gi  # noqa: E402

gi.require_version("Gio", "2.0")
try:
    gi.require_version("DtlsOpenssl", "1.0")
except ValueError:
    sys.exit("echo-client: no DtlsOpenssl-1.0.typelib on GI_TYPELIB_PATH (see tools/gir.sh)")
from gi.repository import DtlsOpenssl, Gio, GLib  # noqa: E402


def main():
    ca_file, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    messages = sys.argv[4:] or ["hello"]

    addresses = Gio.Resolver.get_default().lookup_by_name(host, None)
    address = sorted(addresses, key=lambda a: a.get_family() != Gio.SocketFamily.IPV4)[0]  # IPv4 first

    # The core: a connected UDP socket, a DTLS client over it, a trust store.
    sock = Gio.Socket.new(address.get_family(), Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    sock.connect(Gio.InetSocketAddress.new(address, port), None)
    conn = DtlsOpenssl.ClientConnection.new(sock, Gio.NetworkAddress.new(host, port))
    conn.set_database(Gio.TlsFileDatabase.new(ca_file))
    for message in messages:
        conn.send_bytes(GLib.Bytes.new(message.encode()), -1, None)  # handshakes first
        reply = conn.receive_bytes(16384, 5 * 1000 * 1000, None)  # at most 5 s
        print(reply.get_data().decode(errors="replace"))

    print(f"# {conn.props.ciphersuite_name}, server {conn.props.peer_certificate.props.subject_name}",
          file=sys.stderr)
    conn.close(None)


if __name__ == "__main__":
    try:
        main()
    except GLib.Error as e:
        sys.exit(f"echo-client: {e.message}")
