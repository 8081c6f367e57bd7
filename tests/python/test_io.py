"""Datagrams from Python: DtlsOpenssl.Connection.send_bytes/receive_bytes
(sync and async in a GLib main loop), their size limits, timeouts,
cancellation, close, end-of-stream, the MTU and keying material."""

import time

import pytest

from dtls_helpers import (SECOND_US, Gio, GLib, MainLoop, client, echo, io_error, run_async)


@pytest.fixture
def connected(pki, echo_server):
    """A handshaken client of a fresh echo server: (connection, server)."""
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    return conn, server


def test_send_receive_bytes(connected):
    conn, _ = connected
    for size in (1, 100, 1000, conn.get_max_payload()):
        data = bytes(i % 251 for i in range(size))
        got = echo(conn, data)
        assert got == data, f"{size}-byte echo"
    # One datagram is one message: three sends, three receives, in order.
    for word in (b"one", b"two", b"three"):
        assert conn.send_bytes(GLib.Bytes.new(word), -1, None)
    assert [conn.receive_bytes(64, 5 * SECOND_US, None).get_data() for _ in range(3)] == [b"one", b"two", b"three"]


def test_empty_send_sends_nothing(connected):
    """OpenSSL emits no empty records: an empty send succeeds and sends
    nothing (an empty receive result means close_notify, never data)."""
    conn, _ = connected
    assert conn.send_bytes(GLib.Bytes.new(b""), -1, None)
    io_error(Gio.IOErrorEnum.TIMED_OUT, conn.receive_bytes, 2048, 100_000, None)
    assert echo(conn, b"next") == b"next"


def test_implicit_handshake_on_first_send(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert echo(conn, b"no explicit handshake") == b"no explicit handshake"
    assert conn.props.protocol_version == Gio.TlsProtocolVersion.DTLS_1_2


def test_async_send_receive_in_main_loop(pki, echo_server):
    """handshake_async → send_bytes_async → receive_bytes_async, chained
    through callbacks, ten round trips in one main loop."""
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    loop = MainLoop()
    rounds = 10
    got, errors = [], []

    def fail(e):
        errors.append(e)
        loop.quit()

    def send_next():
        data = f"datagram {len(got)}".encode()
        conn.send_bytes_async(GLib.Bytes.new(data), GLib.PRIORITY_DEFAULT, None, sent)

    def handshaken(c, result):
        try:
            assert c.handshake_finish(result)
        except Exception as e:  # GLib.Error or a failed assert: reported below
            return fail(e)
        send_next()

    def sent(c, result):
        try:
            assert c.send_bytes_finish(result) is True
        except Exception as e:  # GLib.Error or a failed assert: reported below
            return fail(e)
        c.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, received)

    def received(c, result):
        try:
            got.append(c.receive_bytes_finish(result).get_data())
        except Exception as e:  # GLib.Error or a failed assert: reported below
            return fail(e)
        if len(got) == rounds:
            loop.quit()
        else:
            send_next()

    conn.handshake_async(GLib.PRIORITY_DEFAULT, None, handshaken)
    loop.run()
    assert errors == []
    assert got == [f"datagram {i}".encode() for i in range(rounds)]


def test_async_receive_before_handshake(pki, echo_server):
    """An async receive pending while an async send does the handshake."""
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    loop = MainLoop()
    results = {}

    def received(c, result):
        try:
            results["receive"] = c.receive_bytes_finish(result).get_data()
        except GLib.Error as e:
            results["receive"] = e
        loop.quit()

    def sent(c, result):
        try:
            results["send"] = c.send_bytes_finish(result)
        except GLib.Error as e:
            results["send"] = e

    conn.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, received)
    conn.send_bytes_async(GLib.Bytes.new(b"crossing"), GLib.PRIORITY_DEFAULT, None, sent)
    loop.run()
    assert results == {"send": True, "receive": b"crossing"}


def test_receive_async_cancelled(connected):
    conn, _ = connected
    cancellable = Gio.Cancellable()
    GLib.timeout_add(50, lambda: cancellable.cancel() or GLib.SOURCE_REMOVE)
    start = time.monotonic()
    io_error(Gio.IOErrorEnum.CANCELLED, run_async,
             lambda cb: conn.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, cancellable, cb),
             conn.receive_bytes_finish)
    assert time.monotonic() - start < 2
    # The connection is still usable.
    assert echo(conn, b"still there") == b"still there"


def test_send_larger_than_max_payload(connected):
    conn, server = connected
    max_payload = conn.get_max_payload()
    assert 1300 < max_payload < 1400, max_payload  # MTU 1400 minus record overhead
    err = io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, conn.send_bytes, GLib.Bytes.new(b"x" * (max_payload + 1)), -1, None)
    assert err.message
    io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, conn.send_bytes, GLib.Bytes.new(b"x" * 20000), -1, None)
    # Nothing was sent; what fits still goes through.
    data = b"y" * max_payload
    assert echo(conn, data) == data
    io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, run_async,
             lambda cb: conn.send_bytes_async(GLib.Bytes.new(b"z" * (max_payload + 1)), GLib.PRIORITY_DEFAULT, None, cb),
             conn.send_bytes_finish)


def test_receive_smaller_buffer_keeps_the_datagram(connected):
    conn, _ = connected
    data = bytes(range(100))
    assert conn.send_bytes(GLib.Bytes.new(data), -1, None)
    err = io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, conn.receive_bytes, 10, 5 * SECOND_US, None)
    assert "100" in err.message
    io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, conn.receive_bytes, 99, 5 * SECOND_US, None)
    assert conn.receive_bytes(100, 5 * SECOND_US, None).get_data() == data
    # Same through the async variant.
    assert conn.send_bytes(GLib.Bytes.new(data), -1, None)
    io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, run_async,
             lambda cb: conn.receive_bytes_async(50, GLib.PRIORITY_DEFAULT, None, cb), conn.receive_bytes_finish)
    assert run_async(lambda cb: conn.receive_bytes_async(2048, GLib.PRIORITY_DEFAULT, None, cb),
                     conn.receive_bytes_finish).get_data() == data


def test_receive_timeouts_from_silent_peer(connected):
    """The echo server sends nothing unless asked: a silent peer."""
    conn, _ = connected
    start = time.monotonic()
    io_error(Gio.IOErrorEnum.TIMED_OUT, conn.receive_bytes, 2048, 100_000, None)
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 1.0, elapsed
    start = time.monotonic()
    io_error(Gio.IOErrorEnum.WOULD_BLOCK, conn.receive_bytes, 2048, 0, None)
    assert time.monotonic() - start < 0.05
    # Neither error is sticky.
    assert echo(conn, b"after timeouts") == b"after timeouts"


def test_receive_timeout_against_openssl_s_server(pki, openssl_server):
    server = openssl_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    io_error(Gio.IOErrorEnum.TIMED_OUT, conn.receive_bytes, 2048, 100_000, None)
    io_error(Gio.IOErrorEnum.WOULD_BLOCK, conn.receive_bytes, 2048, 0, None)


def test_close_then_send(connected):
    conn, _ = connected
    assert echo(conn, b"before close") == b"before close"
    assert conn.close(None)
    io_error(Gio.IOErrorEnum.CLOSED, conn.send_bytes, GLib.Bytes.new(b"after close"), -1, None)
    io_error(Gio.IOErrorEnum.CLOSED, conn.receive_bytes, 2048, 100_000, None)
    assert conn.close(None)  # closing again is fine
    # The base socket stays open.
    assert not conn.props.base_socket.is_closed()


def test_close_async(connected):
    conn, _ = connected
    assert run_async(lambda cb: conn.close_async(GLib.PRIORITY_DEFAULT, None, cb), conn.close_finish)
    io_error(Gio.IOErrorEnum.CLOSED, conn.send_bytes, GLib.Bytes.new(b"x"), -1, None)


def test_peer_close_is_end_of_stream(pki, echo_server):
    server = echo_server("--close-after", "1")
    conn = client(server.port, ca=pki / "ca.pem")
    assert echo(conn, b"last one") == b"last one"
    assert conn.receive_bytes(2048, 5 * SECOND_US, None).get_size() == 0
    assert conn.receive_bytes(2048, 0, None).get_size() == 0, "and it stays so"


def test_mtu_property(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.props.mtu == 1400 == conn.get_mtu()
    conn.props.mtu = 600
    assert conn.props.mtu == 600
    conn.set_mtu(512)
    assert conn.get_mtu() == 512
    assert conn.handshake(None)  # the handshake's flights fit 512-byte datagrams
    small = conn.get_max_payload()
    assert 450 < small < 512, small
    io_error(Gio.IOErrorEnum.MESSAGE_TOO_LARGE, conn.send_bytes, GLib.Bytes.new(b"m" * (small + 1)), -1, None)
    assert echo(conn, b"m" * small) == b"m" * small
    conn.props.mtu = 1400
    assert conn.get_max_payload() > small
    assert echo(conn, b"n" * (small + 1)) == b"n" * (small + 1)


def test_max_payload_and_keying_material_need_a_handshake(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    io_error(Gio.IOErrorEnum.NOT_CONNECTED, conn.get_max_payload)
    io_error(Gio.IOErrorEnum.NOT_CONNECTED, conn.export_keying_material, "EXTRACTOR-dtls_srtp", 60)


def test_export_keying_material(pki, echo_server):
    server = echo_server("--max-connections", "2")
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    for n in (1, 32, 60, 1000):
        km = conn.export_keying_material("EXTRACTOR-dtls_srtp", n)
        assert km.get_size() == n
    a = conn.export_keying_material("EXPORTER-test", 32).get_data()
    assert conn.export_keying_material("EXPORTER-test", 32).get_data() == a, "deterministic"
    assert conn.export_keying_material("EXPORTER-other", 32).get_data() != a
    with_ctx = conn.export_keying_material("EXPORTER-test", 32, GLib.Bytes.new(b"context")).get_data()
    assert with_ctx != a and len(with_ctx) == 32
    assert conn.close(None)
    # Another session, other keys.
    other = client(server.port, ca=pki / "ca.pem")
    assert other.handshake(None)
    assert other.export_keying_material("EXPORTER-test", 32).get_data() != a
