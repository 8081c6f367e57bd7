"""pytest configuration for the Python (PyGObject) tests of gio-dtls-openssl.

Run through ``tools/test-python.sh``, which builds the library and the echo
server, generates the typelib and sets the environment:

    LD_LIBRARY_PATH   the directory of libgiodtlsopenssl.so
    GI_TYPELIB_PATH   the directory of DtlsOpenssl-1.0.typelib
    GIO_MODULE_DIR    a directory holding only a symlink to the library
    GIO_USE_TLS       dtls-openssl

Run directly (``/usr/bin/python3 -m pytest tests/python`` after
``cargo build --lib --example dtls-echo-server``), this file does the same
for its own process before GObject is imported: library from
``$DTLS_OPENSSL_LIBDIR`` (default ``target/debug``), typelib generated with
``tools/gir.sh`` into a temporary directory unless ``GI_TYPELIB_PATH``
already has one, a temporary module directory unless ``GIO_MODULE_DIR`` is
set, ``GIO_USE_TLS=dtls-openssl`` unless set, and ``python/`` (the
PyGObject overrides, ``python/gi/overrides/DtlsOpenssl.py``) put first on
``sys.path`` and ``PYTHONPATH`` (for child processes) unless already there.

Tests that need another environment (another backend selection, no module
directory) run a child Python with the ``child_python`` fixture.
"""

import ctypes
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBNAME = "libgiodtlsopenssl.so"
TYPELIB = "DtlsOpenssl-1.0.typelib"

# How long a peer may take to print its readiness line.
READY_TIMEOUT = 10.0


def _find_typelib_dir():
    for d in os.environ.get("GI_TYPELIB_PATH", "").split(os.pathsep):
        if d and (Path(d) / TYPELIB).is_file():
            return Path(d).resolve()
    return None


def _prepare_environment():
    """Everything GObject reads at start-up or on first use; runs before gi is imported."""
    if "gi" in sys.modules:
        raise RuntimeError("conftest must configure the environment before gi is imported")
    libdir = Path(os.environ.get("DTLS_OPENSSL_LIBDIR", REPO / "target" / "debug")).resolve()
    lib = libdir / LIBNAME
    if not lib.is_file():
        raise pytest.UsageError(
            f"{lib} not found: build it (cargo build --lib) or set DTLS_OPENSSL_LIBDIR; "
            "tools/test-python.sh does both"
        )
    tmp = Path(tempfile.mkdtemp(prefix="dtls-openssl-pytest."))
    typelib_dir = _find_typelib_dir()
    if typelib_dir is None:
        typelib_dir = tmp / "gir"
        r = subprocess.run(
            ["bash", str(REPO / "tools" / "gir.sh"), str(libdir), str(typelib_dir)],
            capture_output=True, text=True, timeout=300,
        )
        if r.returncode != 0:
            raise pytest.UsageError(f"tools/gir.sh failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        os.environ["GI_TYPELIB_PATH"] = os.pathsep.join(
            p for p in [str(typelib_dir), os.environ.get("GI_TYPELIB_PATH", "")] if p
        )
    if str(libdir) not in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        # The dynamic loader read LD_LIBRARY_PATH at start-up: map the library
        # now; the typelib's dlopen("libgiodtlsopenssl.so") then finds it by
        # its SONAME. Children get LD_LIBRARY_PATH (child_env).
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in [str(libdir), os.environ.get("LD_LIBRARY_PATH", "")] if p
        )
    if not os.environ.get("GIO_MODULE_DIR"):
        # A symlink, never a copy: one inode, so the module and the library
        # the typelib loads are one mapping.
        moddir = tmp / "gio-modules"
        moddir.mkdir()
        (moddir / LIBNAME).symlink_to(lib)
        os.environ["GIO_MODULE_DIR"] = str(moddir)
    os.environ.setdefault("GIO_USE_TLS", "dtls-openssl")
    # PyGObject extends gi.overrides' path over sys.path when gi is imported.
    pydir = str(REPO / "python")
    if pydir not in sys.path:
        sys.path.insert(0, pydir)
    if pydir not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in [pydir, os.environ.get("PYTHONPATH", "")] if p)
    echo_server = Path(os.environ.get("DTLS_ECHO_SERVER", libdir / "examples" / "dtls-echo-server"))
    return {
        "libdir": libdir,
        "typelib_dir": typelib_dir,
        "tmp": tmp,
        "echo_server": echo_server,
    }


SETUP = _prepare_environment()


def pytest_unconfigure(config):
    shutil.rmtree(SETUP["tmp"], ignore_errors=True)


def pytest_report_header(config):
    return [
        f"dtls-openssl library: {SETUP['libdir'] / LIBNAME}",
        f"typelib: {SETUP['typelib_dir'] / TYPELIB}",
        f"GIO_MODULE_DIR={os.environ.get('GIO_MODULE_DIR')} GIO_USE_TLS={os.environ.get('GIO_USE_TLS')}",
        f"PYTHONPATH={os.environ.get('PYTHONPATH')}",
    ]


# Only now: gi reads GI_TYPELIB_PATH and GIO reads GIO_* on first use.
import dtls_helpers  # noqa: E402  (imports gi)


@pytest.fixture(scope="session")
def libdir():
    return SETUP["libdir"]


@pytest.fixture(scope="session")
def typelib_dir():
    return SETUP["typelib_dir"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A fresh test PKI (tests/files/make-pki.sh; see tests/files/README.md)."""
    d = tmp_path_factory.mktemp("pki")
    r = subprocess.run(["bash", str(REPO / "tests" / "files" / "make-pki.sh"), str(d)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"make-pki.sh failed:\n{r.stdout}{r.stderr}"
    return d


# ---------------------------------------------------------------------------
# Peers: child processes with a reader thread collecting their output.

class PeerProcess:
    """A child process whose stdout (stderr merged) is collected line by line."""

    def __init__(self, name, argv, stdin=False):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self.lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_line(self, pred, timeout, start=0):
        """First line (from index `start`) satisfying pred, within timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"{self.name}: no matching line within {timeout}s "
                        f"(exit status {self.proc.poll()}); output:\n{self.output()}"
                    )
                self._cond.wait(left)

    def output(self):
        return "\n".join(self.lines[-60:])

    def write(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._reader.join(timeout=3)


class EchoServer(PeerProcess):
    """examples/dtls-echo-server on 127.0.0.1."""

    def __init__(self, binary, pki, args):
        super().__init__("dtls-echo-server", [binary, "--pki", pki, *args])
        try:
            line = self.wait_line(lambda l: l.startswith("listening on "), READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.port = int(line.rsplit(":", 1)[1])

    def wait_handshake(self, n=1, timeout=5.0):
        """The n-th `handshake ...` report line (ok or failed)."""
        seen = []

        def pred(line):
            if line.startswith("handshake "):
                seen.append(line)
            return len(seen) >= n

        self.wait_line(pred, timeout)
        return seen[-1]


class OpensslServer(PeerProcess):
    """`openssl s_server -dtls1_2` on 127.0.0.1, ephemeral port; stdin kept
    open (EOF makes it quit); each stdin line goes to the client as a record."""

    def __init__(self, pki, args):
        super().__init__("openssl-s_server", [
            "openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0",
            "-cert", pki / "server.pem", "-key", pki / "server.key", *args,
        ], stdin=True)
        try:
            line = self.wait_line(lambda l: l.startswith("ACCEPT "), READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.port = int(line.rsplit(":", 1)[1])


def start_gnutls_server(pki, args):
    """`gnutls-serv --udp --echo` (echoes records of at most 254 bytes). It
    cannot report a kernel-chosen port: pick a free one, retry if taken."""
    last = None
    for _ in range(5):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = PeerProcess("gnutls-serv", [
            "gnutls-serv", "--udp", "--echo", "-p", port,
            "--x509certfile", pki / "server.pem", "--x509keyfile", pki / "server.key", *args,
        ])
        try:
            line = p.wait_line(lambda l: "listening on IPv4" in l or "bind() failed" in l, READY_TIMEOUT)
        except BaseException:
            p.stop()
            raise
        if line.endswith("done"):
            p.port = port
            return p
        last = line
        p.stop()
    raise AssertionError(f"gnutls-serv could not bind a port in 5 attempts: {last}")


@pytest.fixture
def _peers():
    started = []
    yield started
    for p in started:
        p.stop()


@pytest.fixture
def echo_server(pki, _peers):
    """Factory: echo_server(*args) starts examples/dtls-echo-server (see its
    --help) with --pki set; killed after the test."""
    binary = SETUP["echo_server"]
    if not binary.is_file():
        pytest.fail(f"{binary} not found: cargo build --example dtls-echo-server (or set DTLS_ECHO_SERVER)")

    def start(*args):
        p = EchoServer(binary, pki, [str(a) for a in args])
        _peers.append(p)
        return p

    return start


@pytest.fixture
def openssl_server(pki, _peers):
    """Factory: openssl_server(*extra_args) starts openssl s_server."""

    def start(*args):
        p = OpensslServer(pki, [str(a) for a in args])
        _peers.append(p)
        return p

    return start


@pytest.fixture
def gnutls_server(pki, _peers):
    """Factory: gnutls_server(*extra_args) starts gnutls-serv --udp --echo."""
    if shutil.which("gnutls-serv") is None:
        pytest.fail("gnutls-serv not installed (Debian package gnutls-bin)")

    def start(*args):
        p = start_gnutls_server(pki, [str(a) for a in args])
        _peers.append(p)
        return p

    return start


# ---------------------------------------------------------------------------
# Child Python processes with their own environment.

@pytest.fixture
def child_env(libdir, typelib_dir):
    """Factory: an environment for a child /usr/bin/python3 that can load the
    typelib and the library, with GIO_* variables set (value) or removed (None)."""

    def make(**gio_vars):
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in [str(libdir), os.environ.get("LD_LIBRARY_PATH", "")] if p)
        env["GI_TYPELIB_PATH"] = os.pathsep.join(
            p for p in [str(typelib_dir), os.environ.get("GI_TYPELIB_PATH", "")] if p)
        for k, v in gio_vars.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    return make


@pytest.fixture
def child_python():
    """Runs `code` in a child Python (this interpreter) with `env`; returns
    the CompletedProcess after asserting exit status 0."""

    def run(code, env, args=(), timeout=30):
        r = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"child failed ({r.returncode}):\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        return r

    return run
