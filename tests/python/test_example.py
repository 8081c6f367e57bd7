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
