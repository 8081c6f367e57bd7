"""examples/echo-client.py works as documented: only GI_TYPELIB_PATH and
LD_LIBRARY_PATH set (GIO's default backend otherwise)."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "echo-client.py"


def run_example(env, *args):
    return subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=30)


def test_echo_client_example(pki, echo_server, child_env):
    server = echo_server()
    env = child_env(GIO_USE_TLS=None, GIO_MODULE_DIR=None)
    r = run_example(env, pki / "ca.pem", "localhost", server.port, "hi", "there")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hi", "there"]
    assert r.stderr.startswith("# TLS_"), r.stderr
    assert server.wait_handshake().startswith("handshake ok")


def test_echo_client_example_against_gnutls_serv(pki, gnutls_server, child_env):
    server = gnutls_server()
    # An IP address as identity: checked against the certificate's IP SAN.
    r = run_example(child_env(), pki / "ca.pem", "127.0.0.1", server.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello"]


def test_echo_client_example_rejects_unknown_ca(pki, echo_server, child_env):
    server = echo_server()
    r = run_example(child_env(), pki / "other-ca.pem", "127.0.0.1", server.port)
    assert r.returncode == 1
    assert r.stderr.strip() == "echo-client: Unacceptable TLS certificate (unknown CA)", r.stderr


README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_snippet(pki, echo_server, child_env):
    """The README's Python example runs as printed (with the real port and
    CA path), in a fresh interpreter with GIO's default backend."""
    text = README.read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(snippet.strip().splitlines()) <= 10, "the README promises under ten lines"
    server = echo_server()
    code = snippet.replace("4433", str(server.port)).replace("/path/to/ca.pem", str(pki / "ca.pem"))
    r = subprocess.run([sys.executable, "-c", code], env=child_env(GIO_USE_TLS=None, GIO_MODULE_DIR=None),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "b'hello'"


# The README's other Python blocks are fragments: each runs in a fresh
# interpreter after a prelude that gives it what it names (`sock`, `conn`,
# `client`, `keys`) over two connected UDP sockets, our own server or client
# on the other end, and a postlude that checks the outcome.
FRAGMENT_PRELUDE = r"""
import sys, threading
import gi
gi.require_version("DtlsOpenssl", "1.0")
from gi.repository import DtlsOpenssl, Gio, GLib
CA, SERVER_PEM = sys.argv[1], sys.argv[2]

def _bound():
    s = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    s.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0), False)
    return s

_a, sock = _bound(), _bound()
_a.connect(sock.get_local_address(), None)
sock.connect(_a.get_local_address(), None)
client = conn = DtlsOpenssl.ClientConnection.new(_a, Gio.NetworkAddress.new("server.example.com", 0))
conn.set_database(Gio.TlsFileDatabase.new(CA))
keys = {"alice": GLib.Bytes.new(bytes.fromhex("00112233445566778899aabbccddeeff"))}
_out = {}

def _thread(fn):
    def run():
        try:
            _out["value"] = fn()
        except Exception as e:
            _out["error"] = repr(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
"""

# A server of ours on `sock` for the client-side fragments.
CLIENT_SIDE = FRAGMENT_PRELUDE + r"""
_server = DtlsOpenssl.ServerConnection.new(sock, Gio.TlsCertificate.new_from_file(SERVER_PEM))
_server.props.srtp_profiles = "SRTP_AES128_CM_SHA1_80"
_t = _thread(lambda: _server.handshake(None))
"""

FRAGMENTS = {
    # first line of the block: (prelude, postlude, expected last line of stdout)
    "cert = Gio.TlsCertificate.new_from_file('/path/to/server-and-key.pem')": (
        FRAGMENT_PRELUDE + r"""
def _client():
    with client:
        client.send(b"one", timeout=5)
        r = [client.receive(timeout=5)]
        client.send(b"two", timeout=5)
        return r + [client.receive(timeout=5)]
_t = _thread(_client)
""", r"""
_t.join(5)
print(_out)
""", "{'value': [b'one', b'two']}"),
    'conn.props.srtp_profiles = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"': (
        CLIENT_SIDE, r"""
_t.join(5)
print(len(keys), keys == _server.export_keying_material("EXTRACTOR-dtls_srtp", 60))
""", "60 True"),
    "conn.props.min_protocol_version = Gio.TlsProtocolVersion.DTLS_1_0": (
        CLIENT_SIDE, "\n_t.join(5)\nprint(_out)\n", "{'value': True}"),
    "conn.set_mtu(1200)            # raises GLib.Error (INVALID_ARGUMENT) out of range": (
        CLIENT_SIDE, r"""
try:
    conn.props.mtu = 100
except ValueError:
    print(conn.props.mtu, "ValueError")
""", "1200 ValueError"),
    'server = DtlsOpenssl.ServerConnection.new(sock, None)        # no certificate needed': (
        FRAGMENT_PRELUDE, r"""
_t = _thread(lambda: server.handshake(None))
print(client.handshake(None), client.props.ciphersuite_name.find("PSK") >= 0)
_t.join(5)
print(_out)
""", "{'value': True}"),
    # The listener: bound to an ephemeral port instead of 5684, and the main
    # loop runs until one of our clients has completed its handshake.
    "from gi.repository import DtlsOpenssl, Gio, GLib": (
        FRAGMENT_PRELUDE + r"""
def _run_until_a_client_is_done(listening):
    port = listening.get_local_address().get_port()
    def handshake():
        s = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
        s.connect(Gio.InetSocketAddress.new_from_string("127.0.0.1", port), None)
        c = DtlsOpenssl.ClientConnection.new(s, Gio.NetworkAddress.new("server.example.com", 0))
        c.set_database(Gio.TlsFileDatabase.new(CA))
        c.props.handshake_timeout = 5000
        return c.handshake(None)
    t = _thread(handshake)
    ctx = GLib.MainContext.default()
    import time
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        ctx.iteration(False)
        t.join(0.001)
""", "\nprint(_out, server.props.peer_count)\n", "{'value': True} 1"),
}

LISTENER_SUBSTITUTIONS = [
    ('("0.0.0.0", 5684)', '("127.0.0.1", 0)'),
    ('"server-key.pem"', "SERVER_PEM"),
    ("GLib.MainLoop().run()", "_run_until_a_client_is_done(socket)"),
]


def readme_blocks(lang):
    parts = README.read_text().split(f"```{lang}\n")[1:]
    return [p.split("```", 1)[0] for p in parts]


def test_readme_python_fragments(pki, child_env):
    blocks = readme_blocks("python")[1:]
    firsts = [b.splitlines()[0] for b in blocks]
    assert sorted(firsts) == sorted(FRAGMENTS), "every README Python block has a prelude here"
    for block in blocks:
        prelude, postlude, expected = FRAGMENTS[block.splitlines()[0]]
        block = block.replace("/path/to/server-and-key.pem", str(pki / "server-key.pem"))
        for old, new in LISTENER_SUBSTITUTIONS:
            block = block.replace(old, new)
        code = prelude + block + postlude
        r = subprocess.run([sys.executable, "-c", code, str(pki / "ca.pem"), str(pki / "server-key.pem")],
                           env=child_env(), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{block}\n{r.stderr}"
        assert r.stdout.strip().splitlines()[-1] == expected, f"{block}\n{r.stdout}\n{r.stderr}"
