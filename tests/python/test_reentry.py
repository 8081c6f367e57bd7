"""Python code the handshake runs (a Gio.TlsDatabase, a Gio.TlsInteraction,
an accept-certificate handler) calling back into the connection: a blocking
call on the same connection fails at once with G_IO_ERROR_PENDING (it
could only wait for the handshake that is waiting for it); another,
established connection works as usual."""

import time

from dtls_helpers import SECOND_US, Gio, GLib, client, echo

# Long enough that waiting it out (the old behaviour) fails the test.
REENTRANT_TIMEOUT_US = 5 * SECOND_US


def reentrant_calls(conn):
    """Sends and receives on `conn` (blocking, bounded: before the fix they
    waited out the timeout); returns the errors raised and how long the
    calls took. (handshake() has no timeout: the Rust tests cover it.)"""
    errors = []
    started = time.monotonic()
    for call in (lambda: conn.send_bytes(GLib.Bytes.new(b"inner"), REENTRANT_TIMEOUT_US, None),
                 lambda: conn.receive_bytes(64, REENTRANT_TIMEOUT_US, None)):
        try:
            call()
            errors.append(None)
        except GLib.Error as e:
            errors.append(e)
    return errors, time.monotonic() - started


def assert_pending(errors, took, handler):
    assert took < 2.0, f"re-entrant calls took {took:.2f} s"
    assert len(errors) == 2
    for e in errors:
        assert e is not None, "a re-entrant call succeeded"
        assert e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.PENDING), e
        assert f"own {handler} handler" in e.message, e.message


class ReentrantDatabase(Gio.TlsDatabase):
    """Trusts everything, after calling into `conn` (and `other`)."""

    def __init__(self):
        super().__init__()
        self.conn = None
        self.other = None
        self.seen = None

    def do_verify_chain(self, chain, purpose, identity, interaction, flags, cancellable):
        self.seen = reentrant_calls(self.conn)
        if self.other is not None:
            self.seen += (echo(self.other, b"from the database"),)
        return 0


def test_python_database_calling_its_connection(pki, echo_server):
    first = echo_server()
    other = client(first.port, ca=pki / "ca.pem")
    assert other.handshake(None)
    server = echo_server("--cert", "self-signed")
    db = ReentrantDatabase()
    conn = client(server.port, database=db)
    db.conn, db.other = conn, other
    # The implicit handshake of a send runs the database.
    assert conn.send_bytes(GLib.Bytes.new(b"outer"), -1, None)
    errors, took, echoed = db.seen
    assert_pending(errors, took, "GTlsDatabase verify_chain")
    assert echoed == b"from the database"
    assert conn.receive_bytes(64, REENTRANT_TIMEOUT_US, None).get_data() == b"outer"


def test_python_interaction_calling_its_connection(pki, echo_server):
    server = echo_server("--require-client-cert")
    conn = client(server.port, ca=pki / "ca.pem")
    cert = Gio.TlsCertificate.new_from_files(str(pki / "client.pem"), str(pki / "client.key"))

    class Interaction(Gio.TlsInteraction):
        seen = None

        def do_request_certificate(self, connection, flags, cancellable):
            Interaction.seen = reentrant_calls(connection)
            connection.set_certificate(cert)
            return Gio.TlsInteractionResult.HANDLED

    interaction = Interaction()  # PyGObject: keep a Python reference
    conn.set_interaction(interaction)
    assert conn.handshake(None)
    assert_pending(*Interaction.seen, "GTlsInteraction request_certificate")
    assert echo(conn, b"after the interaction") == b"after the interaction"


def test_accept_certificate_calling_its_connection(pki, echo_server):
    server = echo_server("--cert", "server-other-ca")
    conn = client(server.port, ca=pki / "ca.pem")
    seen = []

    def on_accept(c, cert, errors):
        seen.append(reentrant_calls(c))
        return errors == Gio.TlsCertificateFlags.UNKNOWN_CA

    conn.connect("accept-certificate", on_accept)
    assert conn.handshake(None)
    assert len(seen) == 1
    assert_pending(*seen[0], "accept-certificate")
    assert echo(conn, b"accepted") == b"accepted"
