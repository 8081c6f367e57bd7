"""The PyGObject overrides (python/gi/overrides/DtlsOpenssl.py): send takes
bytes-like objects, receive returns bytes, timeouts in seconds, context
managers, iteration until close_notify, keying material as bytes,
ValueError for out-of-range properties, and the same methods on a
connection made through GIO's own constructors. Against real peers: the
echo server, openssl s_server, and our own ServerConnection in-process."""

import sys
import threading
import time
from pathlib import Path

import pytest

from gi.repository import DtlsOpenssl, Gio, GLib

from dtls_helpers import SERVER_NAME, TIMEOUT_S, client, io_error
from test_server import link

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def connected(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    return conn


def serve_in_thread(fn):
    """Runs fn() in a thread; join() re-raises what it raised."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised in join()
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join():
        t.join(TIMEOUT_S * 2)
        assert not t.is_alive(), "server thread still running"
        if "error" in out:
            raise out["error"]
        return out.get("value")

    return join


def test_overrides_come_from_this_tree():
    module = sys.modules["gi.overrides.DtlsOpenssl"]
    assert Path(module.__file__).resolve() == REPO / "python" / "gi" / "overrides" / "DtlsOpenssl.py"
    assert DtlsOpenssl.Connection.__module__ == "gi.overrides.DtlsOpenssl"
    for cls in (DtlsOpenssl.ClientConnection, DtlsOpenssl.ServerConnection):
        assert issubclass(cls, DtlsOpenssl.Connection)
        for name in ("send", "receive", "__iter__", "__enter__", "__exit__", "export_keying_material",
                     "send_bytes", "receive_bytes", "send_bytes_async", "receive_bytes_finish"):
            assert callable(getattr(cls, name)), name


def test_send_bytes_like_receive_bytes(connected):
    conn = connected
    payloads = [b"plain bytes", bytearray(b"a bytearray"), memoryview(b"xx a memoryview slice xx")[3:-3],
                GLib.Bytes.new(b"GLib.Bytes too"), b"\x00\xff" * 300]
    for data in payloads:
        expected = data.get_data() if isinstance(data, GLib.Bytes) else bytes(data)
        assert conn.send(data, timeout=TIMEOUT_S) == len(expected)
        got = conn.receive(timeout=TIMEOUT_S)
        assert type(got) is bytes
        assert got == expected
    # A larger max_size and an integer timeout; what does not fit stays queued.
    conn.send(b"z" * 100)
    io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, conn.receive, 10, 5)
    assert conn.receive(100, 5) == b"z" * 100
    with pytest.raises(TypeError):
        conn.send("a str is not bytes")
    with pytest.raises(TypeError):
        conn.send(42)
    # The typelib's own methods are unchanged.
    assert conn.send_bytes(GLib.Bytes.new(b"old api"), -1, None)
    assert conn.receive_bytes(2048, 5_000_000, None).get_data() == b"old api"


def test_receive_timeouts_in_seconds(connected):
    conn = connected  # the echo server is silent unless asked
    start = time.monotonic()
    err = io_error(Gio.IOErrorEnum.TIMED_OUT, lambda: conn.receive(timeout=0.15))
    elapsed = time.monotonic() - start
    assert 0.14 <= elapsed < 1.0, elapsed
    assert err.message
    start = time.monotonic()
    io_error(Gio.IOErrorEnum.WOULD_BLOCK, lambda: conn.receive(timeout=0))
    assert time.monotonic() - start < 0.1
    for bad in (-1, -0.5, float("nan")):
        with pytest.raises(ValueError):
            conn.receive(timeout=bad)
    for bad in ("1", True, [1]):
        with pytest.raises(TypeError):
            conn.receive(timeout=bad)
    # A send with a timeout; the connection is still fine.
    assert conn.send(b"after", timeout=0.5) == 5
    assert conn.receive(timeout=TIMEOUT_S) == b"after"


def test_timeout_none_waits_for_a_late_answer(pki, openssl_server):
    """timeout=None blocks until the peer speaks: openssl s_server sends a
    line 0.4 s after the receive starts (None mapped to 0 would fail with
    WOULD_BLOCK at once, a short timeout with TIMED_OUT)."""
    server = openssl_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    server.wait_line(lambda l: l.startswith("CIPHER is "), TIMEOUT_S)
    timer = threading.Timer(0.4, server.write, ["late answer\n"])
    start = time.monotonic()
    timer.start()
    try:
        got = conn.receive(timeout=None)
    finally:
        timer.cancel()
    assert got == b"late answer\n"
    assert time.monotonic() - start >= 0.35


def test_context_manager_closes_and_peer_sees_it(pki):
    client_conn, server = link(pki)

    def serve():
        # Iteration: one datagram per step, echoed, until the client's close_notify.
        seen = []
        for datagram in server:
            seen.append(datagram)
            server.send(datagram, timeout=TIMEOUT_S)
        return seen

    join = serve_in_thread(serve)
    with client_conn as c:
        assert c is client_conn
        for word in (b"one", bytearray(b"two"), memoryview(b"three")):
            c.send(word, timeout=TIMEOUT_S)
            assert c.receive(timeout=TIMEOUT_S) == bytes(word)
    assert join() == [b"one", b"two", b"three"], "the server's loop ended at close_notify"
    io_error(Gio.IOErrorEnum.CLOSED, client_conn.send, b"after close")
    io_error(Gio.IOErrorEnum.CLOSED, lambda: client_conn.receive(timeout=0.1))
    assert server.receive(timeout=0) == b"", "end-of-stream stays"


def test_context_manager_closes_on_exception(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    with pytest.raises(RuntimeError, match="inside"):
        with conn:
            conn.send(b"x", timeout=TIMEOUT_S)
            assert conn.receive(timeout=TIMEOUT_S) == b"x"
            raise RuntimeError("inside the with block")
    io_error(Gio.IOErrorEnum.CLOSED, conn.send, b"y")


def test_iteration_until_close_notify_from_echo_server(pki, echo_server):
    """dtls-echo-server --close-after 3 echoes three datagrams, then sends
    close_notify: iterating gives exactly those three."""
    server = echo_server("--close-after", "3")
    conn = client(server.port, ca=pki / "ca.pem")
    sent = [b"first", b"second", b"third"]
    for d in sent:
        conn.send(d, timeout=TIMEOUT_S)
    assert list(conn) == sent
    assert list(conn) == [], "end-of-stream stays"
    assert conn.receive(timeout=0) == b""


def test_iteration_over_our_server(pki):
    """Our ServerConnection sends four datagrams and closes; the client
    iterates in this thread."""
    client_conn, server = link(pki)
    messages = [f"datagram {i}".encode() for i in range(4)]

    def serve():
        with server:
            assert server.receive(timeout=TIMEOUT_S) == b"go"
            for m in messages:
                server.send(m, timeout=TIMEOUT_S)

    join = serve_in_thread(serve)
    client_conn.send(b"go", timeout=TIMEOUT_S)
    got = [d for d in client_conn]
    join()
    assert got == messages
    assert all(type(d) is bytes for d in got)


def test_export_keying_material(pki):
    client_conn, server = link(pki)
    join = serve_in_thread(lambda: server.handshake(None))
    assert client_conn.handshake(None)
    assert join()
    km = client_conn.export_keying_material("EXTRACTOR-dtls_srtp", 60)
    assert isinstance(km, bytes) and len(km) == 60
    assert server.export_keying_material("EXTRACTOR-dtls_srtp", 60) == km, "both ends agree"
    assert client_conn.export_keying_material("EXTRACTOR-dtls_srtp", 60, None) == km
    with_ctx = client_conn.export_keying_material("EXPORTER-test", 32, b"context")
    assert len(with_ctx) == 32
    assert with_ctx != client_conn.export_keying_material("EXPORTER-test", 32)
    for ctx in (bytearray(b"context"), memoryview(b"context"), GLib.Bytes.new(b"context")):
        assert client_conn.export_keying_material("EXPORTER-test", 32, context=ctx) == with_ctx
    assert server.export_keying_material("EXPORTER-test", 32, b"context") == with_ctx
    # What the typelib's method returned (GLib.Bytes) still answers.
    assert km.get_data() == km and km.get_size() == 60
    with pytest.raises(TypeError):
        client_conn.export_keying_material("EXPORTER-test", 32, "str context")


def test_keying_material_needs_a_handshake(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    io_error(Gio.IOErrorEnum.NOT_CONNECTED, conn.export_keying_material, "EXTRACTOR-dtls_srtp", 60)


@pytest.mark.parametrize("name,bad,good", [
    ("mtu", 255, 256), ("mtu", 65508, 65507), ("retransmit_timeout", 0, 1),
    ("max_retransmit_timeout", 60001, 60000), ("handshake_timeout", -1, 0),
])
def test_out_of_range_property_raises_value_error(pki, name, bad, good):
    conn, server = link(pki)
    for obj in (conn, server):
        before = getattr(obj.props, name)
        with pytest.raises(ValueError, match=name.replace("_", "-")):
            setattr(obj.props, name, bad)
        assert getattr(obj.props, name) == before, "unchanged"
        with pytest.raises(ValueError):
            obj.set_property(name.replace("_", "-"), bad)
        assert obj.get_property(name) == before
        setattr(obj.props, name, good)
        assert getattr(obj.props, name) == good
        obj.set_property(name, before)
        assert getattr(obj.props, name) == before
    # Class-level props still describe the properties.
    assert DtlsOpenssl.ClientConnection.props.mtu.minimum == 256


def test_out_of_range_mtu_then_a_working_link(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    with pytest.raises(ValueError):
        conn.props.mtu = 100
    conn.props.mtu = 600
    with conn:
        conn.send(b"m" * 500, timeout=TIMEOUT_S)
        assert conn.receive(timeout=TIMEOUT_S) == b"m" * 500
        assert conn.props.max_payload < 600


def test_gio_constructors_give_the_same_methods(pki, echo_server):
    """GIO_USE_TLS=dtls-openssl (set by conftest): Gio.DtlsClientConnection.new
    and Gio.DtlsServerConnection.new make our objects, which carry the overrides."""
    assert type(Gio.TlsBackend.get_default()).__name__ == "Backend"
    server = echo_server()
    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    sock.connect(Gio.InetSocketAddress.new_from_string("127.0.0.1", server.port), None)
    conn = Gio.DtlsClientConnection.new(sock, Gio.NetworkAddress.new(SERVER_NAME, 0))
    assert isinstance(conn, DtlsOpenssl.ClientConnection)
    conn.set_database(Gio.TlsFileDatabase.new(str(pki / "ca.pem")))
    with conn:
        conn.send(memoryview(b"through GIO"), timeout=TIMEOUT_S)
        assert conn.receive(timeout=TIMEOUT_S) == b"through GIO"
        assert len(conn.export_keying_material("EXPORTER-test", 16)) == 16
        with pytest.raises(ValueError):
            conn.props.mtu = 1
    io_error(Gio.IOErrorEnum.CLOSED, conn.send, b"closed")
    # The server side too.
    a = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    srv = Gio.DtlsServerConnection.new(a, Gio.TlsCertificate.new_from_file(str(pki / "server-key.pem")))
    assert isinstance(srv, DtlsOpenssl.ServerConnection)
    assert callable(srv.receive) and callable(srv.__iter__)


CHILD = r"""
import sys
import gi
gi.require_version("Gio", "2.0")
from gi.repository import Gio
ca, port = sys.argv[1], int(sys.argv[2])

def connection():
    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    sock.connect(Gio.InetSocketAddress.new_from_string("127.0.0.1", port), None)
    conn = Gio.DtlsClientConnection.new(sock, Gio.NetworkAddress.new("localhost", 0))
    conn.set_database(Gio.TlsFileDatabase.new(ca))
    return conn

before = connection()
print("before import:", hasattr(before, "send"))
del before
gi.require_version("DtlsOpenssl", "1.0")
from gi.repository import DtlsOpenssl
with connection() as conn:
    print("after import:", type(conn).__name__, isinstance(conn, DtlsOpenssl.Connection))
    conn.send(b"from a GIO-made connection", timeout=5)
    print(conn.receive(timeout=5))
"""


def test_gio_made_connection_gains_methods_on_import(pki, echo_server, child_env, child_python):
    """A fresh interpreter that only uses Gio: its connections carry the
    overrides once DtlsOpenssl has been imported."""
    server = echo_server()
    r = child_python(CHILD, child_env(), args=[pki / "ca.pem", server.port])
    assert r.stdout.splitlines() == [
        "before import: False",
        "after import: ClientConnection True",
        "b'from a GIO-made connection'",
    ], r.stderr
