"""DtlsOpenssl.ServerConnection from Python: our client and our server in one
process, over two connected UDP sockets, through the bytes API."""

import threading

from gi.repository import DtlsOpenssl, Gio, GLib

from dtls_helpers import SECOND_US, SERVER_NAME, TIMEOUT_S, MainLoop, tls_error


def socket_pair():
    def bound():
        s = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
        s.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0), False)
        return s

    a, b = bound(), bound()
    a.connect(b.get_local_address(), None)
    b.connect(a.get_local_address(), None)
    return a, b


def link(pki):
    a, b = socket_pair()
    client = DtlsOpenssl.ClientConnection.new(a, Gio.NetworkAddress.new(SERVER_NAME, 0))
    client.set_database(Gio.TlsFileDatabase.new(str(pki / "ca.pem")))
    cert = Gio.TlsCertificate.new_from_file(str(pki / "server-key.pem"))
    server = DtlsOpenssl.ServerConnection.new(b, cert)
    return client, server


def test_server_echo_with_threads(pki):
    client, server = link(pki)
    assert isinstance(server, Gio.DtlsServerConnection)
    assert server.props.cookie_exchange
    got = []

    def serve():
        # The implicit handshake happens in the first receive.
        for _ in range(3):
            data = server.receive_bytes(2048, int(TIMEOUT_S * SECOND_US), None)
            got.append(data.get_data())
            server.send_bytes(data, -1, None)

    t = threading.Thread(target=serve)
    t.start()
    for i in range(3):
        msg = f"ping {i}".encode()
        assert client.send_bytes(GLib.Bytes.new(msg), -1, None)
        assert client.receive_bytes(2048, int(TIMEOUT_S * SECOND_US), None).get_data() == msg
    t.join(TIMEOUT_S)
    assert got == [b"ping 0", b"ping 1", b"ping 2"]
    assert server.get_protocol_version() == Gio.TlsProtocolVersion.DTLS_1_2
    assert server.get_peer_certificate() is None


def test_async_handshakes_and_pinning_in_one_main_loop(pki):
    """Both ends async on one main context; the server requires a client
    certificate and, with no database, pins it in accept-certificate."""
    client, server = link(pki)
    client_cert = Gio.TlsCertificate.new_from_files(str(pki / "client.pem"), str(pki / "client.key"))
    client.set_certificate(client_cert)
    server.props.authentication_mode = Gio.TlsAuthenticationMode.REQUIRED
    server.set_database(None)
    pinned = client_cert.props.certificate
    asked = []

    def accept(conn, peer, errors):
        asked.append(errors)
        return peer.props.certificate == pinned

    server.connect("accept-certificate", accept)
    loop = MainLoop()
    results = {}

    def done(name):
        def finish(conn, result):
            try:
                results[name] = conn.handshake_finish(result)
            except GLib.Error as e:
                results[name] = e
            if len(results) == 2:
                loop.quit()
        return finish

    client.handshake_async(GLib.PRIORITY_DEFAULT, None, done("client"))
    server.handshake_async(GLib.PRIORITY_DEFAULT, None, done("server"))
    loop.run()
    assert results == {"client": True, "server": True}
    assert asked == [Gio.TlsCertificateFlags.UNKNOWN_CA]
    assert server.get_peer_certificate().is_same(client_cert)


def test_server_without_certificate_fails_clearly(pki):
    a, b = socket_pair()
    server = DtlsOpenssl.ServerConnection.new(b, None)
    client = DtlsOpenssl.ClientConnection.new(a, Gio.NetworkAddress.new(SERVER_NAME, 0))
    client.props.handshake_timeout = 2000
    t = threading.Thread(target=lambda: tls_error(Gio.TlsError.BAD_CERTIFICATE, server.handshake, None))
    t.start()
    err = None
    try:
        client.handshake(None)
    except GLib.Error as e:
        err = e
    t.join(TIMEOUT_S)
    assert err is not None, "the client cannot succeed against a server without a certificate"
