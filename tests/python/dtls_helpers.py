"""Shared helpers of the Python tests (imported by conftest.py after it has
set up the environment, so importing gi here is safe)."""

import gi

gi.require_version("GLib", "2.0")
gi.require_version("Gio", "2.0")
gi.require_version("DtlsOpenssl", "1.0")
from gi.repository import DtlsOpenssl, Gio, GLib  # noqa: E402

import pytest  # noqa: E402

SERVER_NAME = "server.example.com"
SECOND_US = 1_000_000
# Bound of every blocking call or main loop in the tests.
TIMEOUT_S = 5.0


def udp_socket(port, host="127.0.0.1"):
    """A UDP GSocket connected to host:port."""
    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    sock.connect(Gio.InetSocketAddress.new_from_string(host, port), None)
    return sock


def client(port, ca=None, identity=SERVER_NAME, database=None):
    """DtlsOpenssl.ClientConnection to 127.0.0.1:port expecting `identity`;
    verified against the CA file `ca` (or `database`) when given."""
    conn = DtlsOpenssl.ClientConnection.new(
        udp_socket(port), Gio.NetworkAddress.new(identity, 0) if identity else None)
    if ca is not None:
        conn.set_database(Gio.TlsFileDatabase.new(str(ca)))
    elif database is not None:
        conn.set_database(database)
    return conn


def raises_gerror(domain, code, fn, *args):
    """Calls fn(*args), expects a GLib.Error matching (domain, code), returns it."""
    with pytest.raises(GLib.Error) as info:
        fn(*args)
    err = info.value
    assert err.matches(domain, code), (
        f"expected {GLib.quark_to_string(domain)} {code!r}, got {err.domain} {err.code}: {err.message}")
    return err


def io_error(code, fn, *args):
    return raises_gerror(Gio.io_error_quark(), code, fn, *args)


def tls_error(code, fn, *args):
    return raises_gerror(Gio.tls_error_quark(), code, fn, *args)


def echo(conn, data, timeout_us=TIMEOUT_S * SECOND_US):
    """Sends `data` as one datagram and returns the next one received."""
    assert conn.send_bytes(GLib.Bytes.new(data), int(timeout_us), None)
    return conn.receive_bytes(16384, int(timeout_us), None).get_data()


class MainLoop:
    """A GLib.MainLoop with a timeout source as guard: run() fails the test
    if quit() is not called within `timeout` seconds."""

    def __init__(self, timeout=TIMEOUT_S):
        self.loop = GLib.MainLoop()
        self.timeout = timeout
        self.timed_out = False

    def quit(self):
        self.loop.quit()

    def run(self):
        def guard():
            self.timed_out = True
            self.loop.quit()
            return GLib.SOURCE_REMOVE

        source = GLib.timeout_add(int(self.timeout * 1000), guard)
        self.loop.run()
        if not self.timed_out:
            GLib.source_remove(source)
        assert not self.timed_out, f"main loop not done within {self.timeout}s"


def run_async(begin, finish, timeout=TIMEOUT_S):
    """begin(callback) starts an async operation; runs a main loop until the
    callback, then returns finish(result) or raises what it raised.
    (Exceptions inside PyGObject callbacks are only printed, so the callback
    stores them.)"""
    loop = MainLoop(timeout)
    out = {}

    def callback(source, result, *user_data):
        try:
            out["value"] = finish(result)
        except Exception as e:  # re-raised below, in the test
            out["error"] = e
        loop.quit()

    begin(callback)
    loop.run()
    if "error" in out:
        raise out["error"]
    return out["value"]
