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


def test_listener_serves_two_clients_at_once(pki):
    """Two clients on their own sockets, both handshaking at once and each
    echoing several messages through one listener; every message comes back
    to the client that sent it. One main loop, everything asynchronous."""
    socket = bound_socket()
    cert = Gio.TlsCertificate.new_from_file(str(pki / "server-key.pem"))
    server = DtlsOpenssl.Server.new(socket, cert)
    server.start()

    loop = MainLoop()
    out = {"errors": [], "echoes": {0: [], 1: []}, "conns": [], "ended": 0}
    messages = {i: [f"client {i} message {n}".encode() for n in range(4)] for i in (0, 1)}

    def step(what, fn):
        try:
            fn()
        except Exception as e:  # reported by the test below
            out["errors"].append(f"{what}: {e}")
            loop.quit()

    # Server side: accept peers one after the other, echo each until EOF.
    def accepted(s, res):
        def take():
            conn = s.accept_finish(res)
            out["conns"].append(conn)
            conn.handshake_async(GLib.PRIORITY_DEFAULT, None, server_handshake_done)
            if len(out["conns"]) < 2:
                s.accept_async(None, accepted)

        step("accept", take)

    def server_handshake_done(conn, res):
        step("server handshake", lambda: conn.handshake_finish(res))
        conn.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, server_received)

    def server_received(conn, res):
        def echo():
            data = conn.receive_bytes_finish(res)
            if data.get_size() == 0:
                out["ended"] += 1
                if out["ended"] == 2:
                    loop.quit()
                return
            conn.send_bytes(data, -1, None)
            conn.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, server_received)

        step("server echo", echo)

    # Client side: handshake, then send message n, wait for its echo, next.
    def client(i):
        csock = bound_socket()
        csock.connect(socket.get_local_address(), None)
        c = DtlsOpenssl.ClientConnection.new(csock, Gio.NetworkAddress.new(SERVER_NAME, 0))
        c.set_database(Gio.TlsFileDatabase.new(str(pki / "ca.pem")))
        return c

    clients = [client(0), client(1)]

    def send_next(i):
        c = clients[i]
        n = len(out["echoes"][i])
        if n == len(messages[i]):
            # Both done: the server must hold both peers at this point.
            if all(len(out["echoes"][j]) == len(messages[j]) for j in (0, 1)):
                out["peers_at_end"] = server.get_peer_count()
                for cc in clients:
                    cc.close(None)  # close_notify: each echo loop sees EOF
            return
        c.send_bytes(GLib.Bytes.new(messages[i][n]), -1, None)
        c.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, client_received, i)

    def client_handshake_done(c, res, i):
        step(f"client {i} handshake", lambda: c.handshake_finish(res))
        step(f"client {i} send", lambda: send_next(i))

    def client_received(c, res, i):
        def got():
            out["echoes"][i].append(c.receive_bytes_finish(res).get_data())
            send_next(i)

        step(f"client {i} receive", got)

    server.accept_async(None, accepted)
    for i, c in enumerate(clients):
        c.handshake_async(GLib.PRIORITY_DEFAULT, None, client_handshake_done, i)
    loop.run()
    assert out["errors"] == []
    assert out["echoes"] == messages
    assert out["peers_at_end"] == 2
    assert out["ended"] == 2
    assert len(out["conns"]) == 2
    assert all(isinstance(c, DtlsOpenssl.ServerConnection) for c in out["conns"])

    assert server.close(None)
    assert server.get_peer_count() == 0
