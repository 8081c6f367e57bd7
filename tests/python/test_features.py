"""Issue 10 from Python: DTLS-SRTP, protocol bounds, max-payload and PSK,
against openssl s_server and between our client and our server."""

import threading

from gi.repository import DtlsOpenssl, Gio, GLib

from dtls_helpers import SECOND_US, SERVER_NAME, TIMEOUT_S, client, io_error, tls_error

KEY_HEX = "00112233445566778899aabbccddeeff"
KEY = GLib.Bytes.new(bytes.fromhex(KEY_HEX))


def socket_pair():
    def bound():
        s = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM, Gio.SocketProtocol.UDP)
        s.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0), False)
        return s

    a, b = bound(), bound()
    a.connect(b.get_local_address(), None)
    b.connect(a.get_local_address(), None)
    return a, b


def link(pki, certificate=True):
    a, b = socket_pair()
    c = DtlsOpenssl.ClientConnection.new(a, Gio.NetworkAddress.new(SERVER_NAME, 0))
    c.set_database(Gio.TlsFileDatabase.new(str(pki / "ca.pem")))
    cert = Gio.TlsCertificate.new_from_file(str(pki / "server-key.pem")) if certificate else None
    s = DtlsOpenssl.ServerConnection.new(b, cert)
    for conn in (c, s):
        conn.props.handshake_timeout = int(TIMEOUT_S * 1000)
    return c, s


def handshake_both(c, s):
    """Both handshakes, the server's on a thread; the errors (None: success)."""
    errors = {}

    def run(name, conn):
        try:
            conn.handshake(None)
            errors[name] = None
        except GLib.Error as e:
            errors[name] = e

    t = threading.Thread(target=run, args=("server", s))
    t.start()
    run("client", c)
    t.join(TIMEOUT_S * 2)
    assert not t.is_alive()
    return errors["client"], errors["server"]


def test_srtp_with_openssl_s_server(pki, openssl_server):
    server = openssl_server("-use_srtp", "SRTP_AES128_CM_SHA1_80",
                            "-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60")
    conn = client(server.port, ca=pki / "ca.pem")
    assert conn.props.srtp_profile is None
    conn.props.srtp_profiles = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
    assert conn.handshake(None)
    assert conn.props.srtp_profile == "SRTP_AES128_CM_SHA1_80"
    ours = conn.export_keying_material("EXTRACTOR-dtls_srtp", 60).get_data()
    line = server.wait_line(lambda l: l.strip().startswith("Keying material: "), TIMEOUT_S)
    assert ours == bytes.fromhex(line.split(": ", 1)[1].strip())


def test_srtp_between_our_ends(pki):
    c, s = link(pki)
    c.props.srtp_profiles = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
    s.props.srtp_profiles = "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM"
    assert handshake_both(c, s) == (None, None)
    # The server's preference order decides.
    assert c.props.srtp_profile == s.props.srtp_profile == "SRTP_AES128_CM_SHA1_80"
    assert c.export_keying_material("EXTRACTOR-dtls_srtp", 60).get_data() == \
        s.export_keying_material("EXTRACTOR-dtls_srtp", 60).get_data()

    c, s = link(pki)
    c.props.srtp_profiles = "SRTP_AES128_CM_SHA1_32"
    s.props.srtp_profiles = "SRTP_AES128_CM_SHA1_80"
    assert handshake_both(c, s) == (None, None)
    assert c.props.srtp_profile is None and s.props.srtp_profile is None


def test_protocol_bounds(pki, openssl_server):
    assert Gio.TlsProtocolVersion.UNKNOWN == DtlsOpenssl.ClientConnection.new(
        socket_pair()[0], None).props.min_protocol_version
    server = openssl_server("-min_protocol", "DTLSv1.2")
    conn = client(server.port, ca=pki / "ca.pem")
    conn.props.min_protocol_version = Gio.TlsProtocolVersion.DTLS_1_0
    conn.props.max_protocol_version = Gio.TlsProtocolVersion.DTLS_1_0
    err = tls_error(Gio.TlsError.HANDSHAKE, conn.handshake, None)
    assert "protocol version" in err.message

    c, s = link(pki)
    c.props.min_protocol_version = Gio.TlsProtocolVersion.DTLS_1_0
    s.props.min_protocol_version = Gio.TlsProtocolVersion.DTLS_1_0
    s.props.max_protocol_version = Gio.TlsProtocolVersion.DTLS_1_0
    assert handshake_both(c, s) == (None, None)
    assert c.props.protocol_version == Gio.TlsProtocolVersion.DTLS_1_0


def test_max_payload_and_set_mtu(pki):
    c, s = link(pki)
    assert c.props.max_payload == 0
    assert handshake_both(c, s) == (None, None)
    assert 1300 < c.props.max_payload < 1400
    assert c.set_mtu(500)
    assert 400 < c.props.max_payload < 500
    io_error(Gio.IOErrorEnum.INVALID_ARGUMENT, c.set_mtu, 100)
    assert c.get_mtu() == 500


def serve_psk(server, keys):
    server.props.psk_identity_hint = "hint"
    server.connect("psk-lookup", lambda conn, identity: keys.get(identity))


def test_psk_between_our_ends(pki):
    c, s = link(pki, certificate=False)
    serve_psk(s, {"alice": KEY})
    c.set_database(None)
    c.props.psk_identity = "alice"
    c.props.psk_key = KEY
    assert handshake_both(c, s) == (None, None)
    assert "PSK" in c.props.ciphersuite_name
    assert c.props.peer_certificate is None
    assert c.send_bytes(GLib.Bytes.new(b"psk"), -1, None)
    assert s.receive_bytes(2048, int(TIMEOUT_S * SECOND_US), None).get_data() == b"psk"


def test_psk_unknown_identity(pki):
    c, s = link(pki, certificate=False)
    serve_psk(s, {"alice": KEY})
    c.props.psk_identity = "bob"
    c.props.psk_key = KEY
    ce, se = handshake_both(c, s)
    assert se.matches(Gio.tls_error_quark(), Gio.TlsError.HANDSHAKE)
    assert "unknown PSK identity" in se.message
    assert ce.matches(Gio.tls_error_quark(), Gio.TlsError.HANDSHAKE)
    assert "does not know this PSK identity" in ce.message


def test_psk_with_openssl_s_server(pki, openssl_server):
    server = openssl_server("-nocert", "-psk", KEY_HEX, "-psk_identity", "alice")
    conn = client(server.port, ca=None)
    conn.set_database(None)
    conn.props.psk_identity = "alice"
    conn.props.psk_key = KEY
    assert conn.handshake(None)
    assert "PSK" in conn.props.ciphersuite_name
    assert conn.send_bytes(GLib.Bytes.new(b"hello psk\n"), -1, None)
    server.wait_line(lambda l: "hello psk" in l, TIMEOUT_S)
