"""Handshakes from Python against real peers: sync and async, the
connection's properties, certificate verification decided by Python
(accept-certificate, a Gio.TlsDatabase subclass), client certificates from a
Python Gio.TlsInteraction, ALPN, and interoperability with the openssl and
GnuTLS command-line servers."""

import threading

import pytest

from dtls_helpers import (SERVER_NAME, DtlsOpenssl, Gio, GLib, MainLoop, client, echo,
                          run_async, tls_error)

PURPOSE_SERVER = "1.3.6.1.5.5.7.3.1"


def test_handshake_and_properties(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.props.mtu == 1400
    assert conn.props.peer_certificate is None
    assert conn.props.protocol_version == Gio.TlsProtocolVersion.UNKNOWN
    assert conn.handshake(None) is True
    assert conn.props.protocol_version == Gio.TlsProtocolVersion.DTLS_1_2
    assert conn.get_protocol_version() == Gio.TlsProtocolVersion.DTLS_1_2
    # IANA name: the server saw ECDHE-ECDSA-AES256-GCM-SHA384 (OpenSSL's name).
    suite = conn.props.ciphersuite_name
    assert suite.startswith("TLS_"), suite
    assert suite == conn.get_ciphersuite_name()
    line = server.wait_handshake()
    assert line.startswith("handshake ok version=DTLSv1.2 cipher=ECDHE-ECDSA-"), line
    peer = conn.props.peer_certificate
    assert peer is not None and peer.__gtype__.name == "DtlsOpensslCertificate"
    assert "CN=server.example.com" in peer.props.subject_name
    assert "O=gio-dtls-openssl tests" in peer.props.subject_name
    assert "CN=Test Root CA" in peer.props.issuer_name
    assert peer.is_same(Gio.TlsCertificate.new_from_file(str(pki / "server.pem")))
    assert conn.props.peer_certificate_errors == 0
    assert conn.get_peer_certificate_errors() == 0
    assert conn.props.negotiated_protocol is None
    assert conn.props.server_identity.get_hostname() == SERVER_NAME


def test_handshake_async_in_main_loop(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem")
    loop = MainLoop()
    events = []

    def done(source, result):
        try:
            events.append(("ok", source.handshake_finish(result)))
        except GLib.Error as e:
            events.append(("error", e))
        loop.quit()

    conn.handshake_async(GLib.PRIORITY_DEFAULT, None, done)
    events.append("started")  # the call returned before the handshake completed
    loop.run()
    assert events == ["started", ("ok", True)]
    assert conn.props.protocol_version == Gio.TlsProtocolVersion.DTLS_1_2
    assert echo(conn, b"after async handshake") == b"after async handshake"


def test_handshake_async_reports_bad_certificate(pki, echo_server):
    server = echo_server("--cert", "server-other-ca")
    conn = client(server.port, ca=pki / "ca.pem")
    tls_error(Gio.TlsError.BAD_CERTIFICATE,
              run_async, lambda cb: conn.handshake_async(GLib.PRIORITY_DEFAULT, None, cb), conn.handshake_finish)
    assert conn.props.peer_certificate_errors == Gio.TlsCertificateFlags.UNKNOWN_CA


def test_accept_certificate_rejects(pki, echo_server):
    server = echo_server("--cert", "server-other-ca")
    conn = client(server.port, ca=pki / "ca.pem")
    calls = []

    def on_accept(c, cert, errors):
        calls.append((c, cert.props.subject_name, cert.props.issuer_name, errors))
        return False

    conn.connect("accept-certificate", on_accept)
    err = tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.handshake, None)
    assert len(calls) == 1, calls
    c, subject, issuer, errors = calls[0]
    assert c is conn
    assert "CN=server.example.com" in subject
    assert "CN=Other Test Root CA" in issuer
    assert errors == Gio.TlsCertificateFlags.UNKNOWN_CA  # exactly: nothing else is wrong
    assert conn.props.peer_certificate_errors == Gio.TlsCertificateFlags.UNKNOWN_CA
    # Sticky: later operations fail the same way without asking again.
    err2 = tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.send_bytes, GLib.Bytes.new(b"x"), -1, None)
    assert err2.message == err.message
    assert len(calls) == 1


def test_untrusted_without_handler_fails(pki, echo_server):
    server = echo_server("--cert", "server-other-ca")
    conn = client(server.port, ca=pki / "ca.pem")
    tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.handshake, None)


def test_accept_certificate_accepts(pki, echo_server):
    server = echo_server("--cert", "server-other-ca")
    conn = client(server.port, ca=pki / "ca.pem")
    calls = []

    def on_accept(c, cert, errors):
        calls.append(errors)
        return True

    conn.connect("accept-certificate", on_accept)
    assert conn.handshake(None)
    assert calls == [Gio.TlsCertificateFlags.UNKNOWN_CA]
    assert conn.props.peer_certificate_errors == Gio.TlsCertificateFlags.UNKNOWN_CA
    assert echo(conn, b"accepted anyway") == b"accepted anyway"


def test_bad_identity(pki, echo_server):
    server = echo_server()
    conn = client(server.port, ca=pki / "ca.pem", identity="other.example.com")
    seen = []
    conn.connect("accept-certificate", lambda c, cert, errors: seen.append(errors) or False)
    tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.handshake, None)
    assert seen == [Gio.TlsCertificateFlags.BAD_IDENTITY]


def test_pinning_without_database(pki, echo_server):
    """database = None: nothing is trusted, accept-certificate pins the DER."""
    server = echo_server("--cert", "self-signed")
    pinned = Gio.TlsCertificate.new_from_file(str(pki / "self-signed.pem")).props.certificate
    conn = client(server.port)
    conn.set_database(None)
    assert conn.get_database() is None
    seen = []

    def on_accept(c, cert, errors):
        seen.append(errors)
        return cert.props.certificate == pinned

    conn.connect("accept-certificate", on_accept)
    assert conn.handshake(None)
    assert len(seen) == 1 and seen[0] & Gio.TlsCertificateFlags.UNKNOWN_CA
    assert echo(conn, b"pinned") == b"pinned"


class ClientCertInteraction(Gio.TlsInteraction):
    """Answers the server's certificate request with `cert` (or not)."""

    def __init__(self, cert, result=Gio.TlsInteractionResult.HANDLED):
        super().__init__()
        self.cert = cert
        self.result = result
        self.calls = []

    def do_request_certificate(self, connection, flags, cancellable):
        self.calls.append((connection, flags))
        if self.cert is not None:
            connection.set_certificate(self.cert)
        return self.result


def test_interaction_provides_client_certificate(pki, echo_server):
    server = echo_server("--require-client-cert")
    conn = client(server.port, ca=pki / "ca.pem")
    cert = Gio.TlsCertificate.new_from_files(str(pki / "client.pem"), str(pki / "client.key"))
    interaction = ClientCertInteraction(cert)
    conn.set_interaction(interaction)
    assert conn.get_interaction() is interaction
    assert conn.handshake(None)
    assert len(interaction.calls) == 1
    called_conn, flags = interaction.calls[0]
    assert called_conn is conn
    assert flags == Gio.TlsCertificateRequestFlags.NONE
    assert conn.get_certificate() is cert
    line = server.wait_handshake()
    assert line.startswith("handshake ok") and line.endswith("client_cert_cn=client.example.com"), line
    assert echo(conn, b"with a client certificate") == b"with a client certificate"


def test_interaction_via_certificate_property(pki, echo_server):
    server = echo_server("--require-client-cert")
    conn = client(server.port, ca=pki / "ca.pem")
    cert = Gio.TlsCertificate.new_from_files(str(pki / "client.pem"), str(pki / "client.key"))

    class SetProperty(Gio.TlsInteraction):
        calls = 0

        def do_request_certificate(self, connection, flags, cancellable):
            SetProperty.calls += 1
            connection.props.certificate = cert
            return Gio.TlsInteractionResult.HANDLED

    interaction = SetProperty()  # PyGObject: keep a Python reference
    conn.props.interaction = interaction
    assert conn.handshake(None)
    assert SetProperty.calls == 1
    assert server.wait_handshake().endswith("client_cert_cn=client.example.com")


def test_interaction_unhandled_fails_against_required_cert(pki, echo_server):
    server = echo_server("--require-client-cert")
    conn = client(server.port, ca=pki / "ca.pem")
    interaction = ClientCertInteraction(None, Gio.TlsInteractionResult.UNHANDLED)
    conn.set_interaction(interaction)
    with pytest.raises(GLib.Error) as info:
        conn.handshake(None)
    assert info.value.domain == GLib.quark_to_string(Gio.tls_error_quark()), info.value
    assert len(interaction.calls) == 1
    assert "peer did not return a certificate" in server.wait_handshake()


def test_preset_certificate_skips_interaction(pki, echo_server):
    server = echo_server("--require-client-cert")
    conn = client(server.port, ca=pki / "ca.pem")
    conn.set_certificate(Gio.TlsCertificate.new_from_files(str(pki / "client.pem"), str(pki / "client.key")))
    interaction = ClientCertInteraction(None)
    conn.set_interaction(interaction)
    assert conn.handshake(None)
    assert interaction.calls == []
    assert server.wait_handshake().endswith("client_cert_cn=client.example.com")


class PythonDatabase(Gio.TlsDatabase):
    """A certificate database whose verdict is `result`; records its calls."""

    def __init__(self, result):
        super().__init__()
        self.result = result
        self.calls = []

    def do_verify_chain(self, chain, purpose, identity, interaction, flags, cancellable):
        self.calls.append({
            "thread": threading.get_ident(),
            "subject": chain.props.subject_name,
            "purpose": purpose,
            "identity": identity.get_hostname() if isinstance(identity, Gio.NetworkAddress) else identity,
            "flags": flags,
        })
        return self.result


def test_python_database_accepts_self_signed(echo_server):
    server = echo_server("--cert", "self-signed")
    db = PythonDatabase(0)
    conn = client(server.port, database=db)
    assert conn.get_database() is db
    assert conn.handshake(None)
    assert len(db.calls) == 1, db.calls
    call = db.calls[0]
    assert call["purpose"] == PURPOSE_SERVER == Gio.TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER
    assert call["identity"] == SERVER_NAME
    assert "CN=server.example.com" in call["subject"]
    assert call["flags"] == Gio.TlsDatabaseVerifyFlags.NONE
    assert conn.props.peer_certificate_errors == 0
    assert echo(conn, b"trusted by Python") == b"trusted by Python"


def test_python_database_runs_off_the_main_context_in_handshake_async(echo_server):
    """In handshake_async a database that is not ours (it may block: here, one
    written in Python) is asked through verify_chain_async, so the caller's
    main context is never blocked by it: it runs in another thread, and the
    callback comes back in the caller's context."""
    server = echo_server("--cert", "self-signed")
    db = PythonDatabase(0)
    conn = client(server.port, database=db)
    loop = MainLoop()
    results = []

    def done(source, result):
        results.append((threading.get_ident(), source.handshake_finish(result)))
        loop.quit()

    conn.handshake_async(GLib.PRIORITY_DEFAULT, None, done)
    loop.run()
    assert results == [(threading.get_ident(), True)]
    assert len(db.calls) == 1
    assert db.calls[0]["thread"] != threading.get_ident()
    assert echo(conn, b"verified off-thread") == b"verified off-thread"


def test_python_database_rejects(pki, echo_server):
    """Even a certificate the CA file would trust fails when the database says so."""
    server = echo_server()
    db = PythonDatabase(Gio.TlsCertificateFlags.UNKNOWN_CA)
    conn = client(server.port, database=db)
    seen = []
    conn.connect("accept-certificate", lambda c, cert, errors: seen.append(errors) or False)
    tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.handshake, None)
    assert len(db.calls) == 1
    assert db.calls[0]["purpose"] == PURPOSE_SERVER
    assert db.calls[0]["identity"] == SERVER_NAME
    assert seen == [Gio.TlsCertificateFlags.UNKNOWN_CA]
    assert conn.props.peer_certificate_errors == Gio.TlsCertificateFlags.UNKNOWN_CA


def test_python_database_raising_gerror_fails(echo_server):
    """A GLib.Error raised in do_verify_chain is a verification failure
    (GENERIC_ERROR), not an accepted certificate."""
    server = echo_server("--cert", "self-signed")

    class Failing(Gio.TlsDatabase):
        def do_verify_chain(self, chain, purpose, identity, interaction, flags, cancellable):
            raise GLib.Error.new_literal(Gio.io_error_quark(), "python says no", Gio.IOErrorEnum.PERMISSION_DENIED)

    db = Failing()
    conn = client(server.port, database=db)
    err = tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.handshake, None)
    assert conn.props.peer_certificate_errors == Gio.TlsCertificateFlags.GENERIC_ERROR
    assert "python says no" in err.message


def test_accept_certificate_handler_exception_rejects(pki, echo_server):
    """A Python exception in the handler is printed by PyGObject and counts
    as FALSE: the handshake fails closed."""
    server = echo_server("--cert", "server-other-ca")
    conn = client(server.port, ca=pki / "ca.pem")

    def on_accept(c, cert, errors):
        raise RuntimeError("handler failure (expected by the test)")

    conn.connect("accept-certificate", on_accept)
    tls_error(Gio.TlsError.BAD_CERTIFICATE, conn.handshake, None)


def test_python_database_errors_masked_by_validation_flags(echo_server):
    """Errors outside validation-flags do not fail the handshake."""
    server = echo_server("--cert", "self-signed")
    db = PythonDatabase(Gio.TlsCertificateFlags.UNKNOWN_CA)
    conn = client(server.port, database=db)
    conn.props.validation_flags = Gio.TlsCertificateFlags(
        Gio.TlsCertificateFlags.VALIDATE_ALL & ~Gio.TlsCertificateFlags.UNKNOWN_CA)
    assert conn.handshake(None)
    assert conn.props.peer_certificate_errors == Gio.TlsCertificateFlags.UNKNOWN_CA


def test_alpn(pki, echo_server):
    server = echo_server("--alpn", "proto-b,proto-a")
    conn = client(server.port, ca=pki / "ca.pem")
    conn.set_advertised_protocols(["proto-a", "proto-b"])
    assert conn.props.advertised_protocols == ["proto-a", "proto-b"]
    assert conn.handshake(None)
    assert conn.get_negotiated_protocol() == "proto-b"
    assert conn.props.negotiated_protocol == "proto-b"
    assert " alpn=proto-b " in server.wait_handshake()


def test_openssl_s_server(pki, openssl_server):
    server = openssl_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    server.wait_line(lambda l: l.startswith("CIPHER is "), 5)
    server.write("from s_server\n")
    assert conn.receive_bytes(2048, 5_000_000, None).get_data() == b"from s_server\n"
    assert conn.send_bytes(GLib.Bytes.new(b"from python\n"), -1, None)
    server.wait_line(lambda l: l == "from python", 5)


def test_gnutls_serv(pki, gnutls_server):
    server = gnutls_server()
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.handshake(None)
    assert conn.props.protocol_version == Gio.TlsProtocolVersion.DTLS_1_2
    for size in (1, 100, 254):
        data = bytes(range(size))
        assert echo(conn, data) == data
