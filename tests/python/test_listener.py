"""DtlsOpenssl.Server from Python: a listener on one UDP socket serving our
client, everything asynchronous on one main loop."""

from gi.repository import DtlsOpenssl, Gio, GLib

from dtls_helpers import SERVER_NAME, MainLoop


def bound_socket():
    s = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    s.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0), False)
    return s


def test_listener_serves_our_client(pki):
    socket = bound_socket()
    cert = Gio.TlsCertificate.new_from_file(str(pki / "server-key.pem"))
    server = DtlsOpenssl.Server.new(socket, cert)
    server.props.max_peers = 8
    server.props.idle_timeout = 30
    server.start()
    assert server.props.active

    csock = bound_socket()
    csock.connect(socket.get_local_address(), None)
    client = DtlsOpenssl.ClientConnection.new(csock, Gio.NetworkAddress.new(SERVER_NAME, 0))
    client.set_database(Gio.TlsFileDatabase.new(str(pki / "ca.pem")))

    loop = MainLoop()
    out = {"errors": []}

    def step(what, fn):
        try:
            fn()
        except Exception as e:  # reported by the test below
            out["errors"].append(f"{what}: {e}")
            loop.quit()

    def client_handshake_done(c, res):
        step("client handshake", lambda: c.handshake_finish(res))
        step("client send", lambda: c.send_bytes(GLib.Bytes.new(b"hello listener"), -1, None))
        c.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, client_received)

    def client_received(c, res):
        def got():
            out["echo"] = c.receive_bytes_finish(res).get_data()
            loop.quit()

        step("client receive", got)

    def accepted(s, res):
        def take():
            conn = s.accept_finish(res)
            out["conn"] = conn
            conn.handshake_async(GLib.PRIORITY_DEFAULT, None, server_handshake_done)

        step("accept", take)

    def server_handshake_done(conn, res):
        step("server handshake", lambda: conn.handshake_finish(res))
        conn.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, server_received)

    def server_received(conn, res):
        def echo():
            data = conn.receive_bytes_finish(res)
            conn.send_bytes(data, -1, None)

        step("server echo", echo)

    server.accept_async(None, accepted)
    client.handshake_async(GLib.PRIORITY_DEFAULT, None, client_handshake_done)
    loop.run()
    assert out["errors"] == []
    assert out["echo"] == b"hello listener"
    assert isinstance(out["conn"], DtlsOpenssl.ServerConnection)
    assert out["conn"].get_protocol_version() == Gio.TlsProtocolVersion.DTLS_1_2
    assert server.get_peer_count() == 1

    assert server.close(None)
    assert server.get_peer_count() == 0
    assert not server.props.active
