"""The backend as GIO sees it from Python: selection through GIO_USE_TLS and
the module directory, DtlsOpenssl.register_backend() with the typelib alone,
and GIO's own constructors returning our types."""

import shutil
import textwrap

from dtls_helpers import SERVER_NAME, DtlsOpenssl, Gio, GLib, echo, udp_socket


def test_default_backend_is_ours():
    backend = Gio.TlsBackend.get_default()
    assert backend.__gtype__.name == "DtlsOpensslBackend"
    assert isinstance(backend, DtlsOpenssl.Backend)
    assert backend.supports_dtls()
    assert not backend.supports_tls()
    assert backend.get_dtls_client_connection_type().name == "DtlsOpensslClientConnection"


def test_gio_certificate_and_database_are_ours(pki):
    cert = Gio.TlsCertificate.new_from_files(str(pki / "server.pem"), str(pki / "server.key"))
    assert cert.__gtype__.name == "DtlsOpensslCertificate"
    assert isinstance(cert, DtlsOpenssl.Certificate)
    assert "CN=server.example.com" in cert.props.subject_name
    db = Gio.TlsFileDatabase.new(str(pki / "ca.pem"))
    assert db.__gtype__.name == "DtlsOpensslFileDatabase"
    assert db.props.anchors == str(pki / "ca.pem")


def test_gio_dtls_client_connection_new_returns_our_type(pki, echo_server):
    """Gio.DtlsClientConnection.new under GIO_USE_TLS=dtls-openssl: our type,
    usable through GIO's interfaces and through DtlsOpenssl's extras."""
    server = echo_server()
    conn = Gio.DtlsClientConnection.new(udp_socket(server.port), Gio.NetworkAddress.new(SERVER_NAME, 0))
    assert conn.__gtype__.name == "DtlsOpensslClientConnection"
    assert isinstance(conn, DtlsOpenssl.ClientConnection)
    assert isinstance(conn, Gio.DtlsConnection)
    assert isinstance(conn, Gio.DatagramBased)
    conn.set_database(Gio.TlsFileDatabase.new(str(pki / "ca.pem")))
    assert conn.props.server_identity.get_hostname() == SERVER_NAME
    assert conn.handshake(None)
    assert echo(conn, b"through GIO's constructor") == b"through GIO's constructor"
    assert server.wait_handshake().startswith("handshake ok version=DTLSv1.2")


# A child process: GIO_USE_TLS unset, glib-networking's modules as usual;
# only the typelib and LD_LIBRARY_PATH give access to the library.
REGISTER_CHILD = textwrap.dedent("""
    import sys
    import gi
    gi.require_version("Gio", "2.0")
    gi.require_version("DtlsOpenssl", "1.0")
    from gi.repository import DtlsOpenssl, Gio, GLib

    port, ca, expect_default = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # GIO registers its extension points on first use: none yet.
    point = Gio.IOExtensionPoint.lookup("gio-tls-backend")
    before = [e.get_name() for e in point.get_extensions()] if point else []
    assert "dtls-openssl" not in before, before
    DtlsOpenssl.register_backend()
    DtlsOpenssl.register_backend()  # harmless twice
    point = Gio.IOExtensionPoint.lookup("gio-tls-backend")
    after = [e.get_name() for e in point.get_extensions()]
    assert after.count("dtls-openssl") == 1, after
    ext = point.get_extension_by_name("dtls-openssl")
    assert ext.get_type().name == "DtlsOpensslBackend"
    assert ext.get_priority() < 0, ext.get_priority()

    default = Gio.TlsBackend.get_default().__gtype__.name
    assert default == expect_default, default

    # Our constructor works whichever backend GIO picked; the database here
    # is the default backend's.
    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
    sock.connect(Gio.InetSocketAddress.new_from_string("127.0.0.1", port), None)
    conn = DtlsOpenssl.ClientConnection.new(sock, Gio.NetworkAddress.new("server.example.com", 0))
    db = Gio.TlsFileDatabase.new(ca)
    conn.set_database(db)
    assert conn.handshake(None)
    assert conn.send_bytes(GLib.Bytes.new(b"hello"), -1, None)
    assert conn.receive_bytes(100, 5000000, None).get_data() == b"hello"
    gio_conn = Gio.DtlsClientConnection.new(sock, Gio.NetworkAddress.new("server.example.com", 0))
    print("database", db.__gtype__.name)
    print("gio-connection", gio_conn.__gtype__.name)
    print("peer-certificate", conn.props.peer_certificate.__gtype__.name)
""")


def test_register_backend_with_typelib_only(pki, echo_server, child_env, child_python):
    """GIO_USE_TLS unset, system module directory: GIO keeps its default
    (glib-networking's GnuTLS); register_backend() adds ours to the extension
    point once; DtlsOpenssl.ClientConnection works with GnuTLS's database."""
    server = echo_server()
    env = child_env(GIO_USE_TLS=None, GIO_MODULE_DIR=None, GIO_EXTRA_MODULES=None)
    r = child_python(REGISTER_CHILD, env, [server.port, pki / "ca.pem", "GTlsBackendGnutls"])
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["database"] == "GTlsFileDatabaseGnutls"
    assert out["gio-connection"] != "DtlsOpensslClientConnection"
    assert out["peer-certificate"] == "GTlsCertificateGnutls"
    assert "CRITICAL" not in r.stderr and "WARNING" not in r.stderr, r.stderr


def test_register_backend_then_gio_use_tls(pki, echo_server, child_env, child_python):
    """GIO_USE_TLS=dtls-openssl with no module of ours anywhere: registering
    before the first use of TLS is enough for GIO to select us."""
    server = echo_server()
    env = child_env(GIO_USE_TLS="dtls-openssl", GIO_MODULE_DIR=None, GIO_EXTRA_MODULES=None)
    r = child_python(REGISTER_CHILD, env, [server.port, pki / "ca.pem", "DtlsOpensslBackend"])
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["database"] == "DtlsOpensslFileDatabase"
    assert out["gio-connection"] == "DtlsOpensslClientConnection"
    assert out["peer-certificate"] == "DtlsOpensslCertificate"
    assert "CRITICAL" not in r.stderr and "WARNING" not in r.stderr, r.stderr


def test_module_dir_without_register(pki, echo_server, child_env, child_python, tmp_path, libdir):
    """The GIO module path alone (no typelib use before TLS): GIO loads the
    module from GIO_MODULE_DIR and Gio.DtlsClientConnection.new is ours."""
    server = echo_server()
    moddir = tmp_path / "modules"
    moddir.mkdir()
    (moddir / "libgiodtlsopenssl.so").symlink_to(libdir / "libgiodtlsopenssl.so")
    env = child_env(GIO_USE_TLS="dtls-openssl", GIO_MODULE_DIR=moddir)
    code = textwrap.dedent("""
        import sys
        import gi
        gi.require_version("Gio", "2.0")
        from gi.repository import Gio, GLib
        port = int(sys.argv[1])
        sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
        sock.connect(Gio.InetSocketAddress.new_from_string("127.0.0.1", port), None)
        conn = Gio.DtlsClientConnection.new(sock, Gio.NetworkAddress.new("server.example.com", 0))
        conn.set_database(Gio.TlsFileDatabase.new(sys.argv[2]))
        assert conn.handshake(None)
        print(conn.__gtype__.name, conn.get_protocol_version().value_nick)
    """)
    r = child_python(code, env, [server.port, pki / "ca.pem"])
    assert r.stdout.split() == ["DtlsOpensslClientConnection", "dtls-1-2"]
    assert server.wait_handshake().startswith("handshake ok")


def test_second_copy_of_the_library_is_reported_in_one_line(child_env, child_python, tmp_path, libdir):
    """A program that uses the library through the typelib while GIO loads a
    *copy* (another inode) from its module directory: the copy reports it
    once, naming both files and the fix, and stays unused; the first copy
    keeps working."""
    moddir = tmp_path / "modules"
    moddir.mkdir()
    copy = moddir / "libgiodtlsopenssl.so"
    shutil.copyfile(libdir / "libgiodtlsopenssl.so", copy)
    env = child_env(GIO_USE_TLS="dtls-openssl", GIO_MODULE_DIR=moddir)
    code = textwrap.dedent("""
        import gi
        gi.require_version("Gio", "2.0")
        gi.require_version("DtlsOpenssl", "1.0")
        from gi.repository import DtlsOpenssl, Gio
        DtlsOpenssl.register_backend()
        print(DtlsOpenssl.ClientConnection.__gtype__.name)
        print(Gio.TlsBackend.get_default().__gtype__.name)
    """)
    r = child_python(code, env)
    assert r.stdout.split() == ["DtlsOpensslClientConnection", "DtlsOpensslBackend"]
    lines = [l for l in r.stderr.splitlines() if "two copies of libgiodtlsopenssl" in l]
    assert len(lines) == 1, r.stderr
    assert str(copy.resolve()) in lines[0] and "symlink" in lines[0], lines[0]
    assert str((libdir / "libgiodtlsopenssl.so").resolve()) in lines[0], lines[0]
    assert "panicked" not in r.stderr and "CRITICAL" not in r.stderr, r.stderr
