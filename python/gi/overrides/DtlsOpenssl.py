"""PyGObject overrides for DtlsOpenssl (gio-dtls-openssl).

Loaded by PyGObject with `from gi.repository import DtlsOpenssl` when this
file lies in a `gi/overrides` directory on sys.path (meson installs it into
PyGObject's overrides directory of the prefix). On every DtlsOpenssl
connection — also one made by GIO's own `Gio.DtlsClientConnection.new` /
`Gio.DtlsServerConnection.new` on this backend, once DtlsOpenssl is
imported — it adds:

    conn.send(data, timeout=None)             bytes, bytearray, memoryview…
    conn.receive(max_size=16384, timeout=None) -> bytes (b'' = close_notify)
    with conn: ...                            closes on exit
    for datagram in conn: ...                 until the peer's close_notify
    conn.export_keying_material(label, length, context=None) -> bytes

Timeouts are seconds (int or float), None waiting forever. Setting a
property (`conn.props.mtu = 10`, `conn.set_property(...)`) outside its
range raises ValueError instead of GLib's warning. The typelib's own
methods (send_bytes, receive_bytes, their _async variants…) are unchanged.
"""

import math

from gi.repository import GLib

from .._gi import Repository

from ..module import get_introspection_module
from ..overrides import override

DtlsOpenssl = get_introspection_module("DtlsOpenssl")


def _forget_stale_wrappers():
    """A connection PyGObject met before DtlsOpenssl was imported (made by
    GIO's own constructors on this backend) left classes of its own, without
    the typelib's methods, registered for our GTypes; PyGObject would keep
    using them for the typelib's classes too. Drop them."""
    repository = Repository.get_default()
    for name in ("Connection", "ClientConnection", "ServerConnection"):
        gtype = repository.find_by_name("DtlsOpenssl", name).get_g_type()
        if gtype.pytype is not None and "__info__" not in gtype.pytype.__dict__:
            gtype.pytype = None


_forget_stale_wrappers()

__all__ = []

# The typelib's receive_bytes never returns more than one record's payload.
MAX_DATAGRAM = 16384


def _timeout_us(timeout):
    """Seconds (int/float, None = forever) to the microseconds GIO takes (-1 = forever)."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")
    if math.isinf(timeout):
        return -1
    return int(round(timeout * 1_000_000))


def _to_gbytes(data, what="data"):
    if isinstance(data, GLib.Bytes):
        return data
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes-like, not str (encode it)")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"{what} must be bytes-like (bytes, bytearray, memoryview), "
                        f"not {type(data).__name__}") from None
    return GLib.Bytes.new(view.tobytes())


class KeyingMaterial(bytes):
    """bytes, which also answers GLib.Bytes' get_data() and get_size() (what
    export_keying_material returned before these overrides)."""

    def get_data(self):
        return bytes(self)

    def get_size(self):
        return len(self)


def _check_value(obj, name, value):
    """ValueError for a value outside the property's declared range (GLib
    would only warn and ignore it)."""
    pspec = obj.find_property(name.replace("_", "-")) if isinstance(name, str) else None
    if pspec is None:
        return
    lo = getattr(pspec, "minimum", None)
    hi = getattr(pspec, "maximum", None)
    if lo is None or hi is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not lo <= value <= hi:
        raise ValueError(f"{pspec.name}: {value!r} is outside {lo}..{hi}")


class _Props:
    """conn.props with range checks on assignment."""

    __slots__ = ("_obj", "_props")

    def __init__(self, obj, props):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_props", props)

    def __getattr__(self, name):
        return getattr(self._props, name)

    def __setattr__(self, name, value):
        _check_value(self._obj, name, value)
        setattr(self._props, name, value)

    def __dir__(self):
        return dir(self._props)


class _PropsDescriptor:
    def __init__(self, inner):
        self._inner = inner

    def __get__(self, obj, objtype=None):
        props = self._inner.__get__(obj, objtype)
        return props if obj is None else _Props(obj, props)


class Connection(DtlsOpenssl.Connection):

    props = _PropsDescriptor(next(k.__dict__["props"] for k in DtlsOpenssl.Connection.__mro__
                                  if "props" in k.__dict__))

    def set_property(self, name, value):
        _check_value(self, name, value)
        super().set_property(name, value)

    def send(self, data, timeout=None, cancellable=None):
        """Sends `data` (bytes-like or GLib.Bytes) as one datagram, handshaking
        first if needed; returns its length. Raises GLib.Error."""
        gbytes = _to_gbytes(data)
        self.send_bytes(gbytes, _timeout_us(timeout), cancellable)
        return gbytes.get_size()

    def receive(self, max_size=MAX_DATAGRAM, timeout=None, cancellable=None):
        """The next datagram as bytes, handshaking first if needed; b'' once the
        peer has closed (close_notify). Raises GLib.Error (TIMED_OUT…)."""
        data = self.receive_bytes(max_size, _timeout_us(timeout), cancellable).get_data()
        return bytes(data) if data is not None else b""

    def __iter__(self):
        """One datagram (bytes) per step, until the peer's close_notify."""
        while True:
            data = self.receive()
            if not data:
                return
            yield data

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close(None)
        except GLib.Error:
            if exc_type is None:
                raise
        return False

    def export_keying_material(self, label, length, context=None):
        """RFC 5705 keying material (bytes); context bytes-like or None."""
        ctx = None if context is None else _to_gbytes(context, "context")
        km = super().export_keying_material(label, length, ctx)
        return KeyingMaterial(km.get_data() or b"")


Connection = override(Connection)
__all__.append("Connection")


# The subclass wrappers, now, on top of the override: GIO's constructors
# then return them.
DtlsOpenssl.ClientConnection
DtlsOpenssl.ServerConnection
