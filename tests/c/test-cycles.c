/* N handshake + echo + close cycles through plain GIO, for leak checks.
 *
 *   test-cycles N
 *
 * Needs DTLS_TEST_PKI and DTLS_TEST_PORT (tests/c/run-with-peer.sh:
 * gnutls-serv --udp --echo). Every cycle makes everything anew: a UDP
 * GSocket connected to 127.0.0.1:DTLS_TEST_PORT, a GTlsFileDatabase on
 * $DTLS_TEST_PKI/ca.pem, a client connection (g_dtls_client_connection_new,
 * server identity server.example.com), then handshakes, sends one datagram,
 * checks its echo, closes (which sends close_notify, so gnutls-serv ends the
 * session and takes the next one) and unrefs everything.
 *
 * The backend is the one dtls_openssl_register_backend() registers from
 * this very library (meson runs the program with GIO_USE_TLS=dtls-openssl
 * and no GIO module directory). Any failure is a message on stderr and a
 * non-zero exit; success prints one line on stdout.
 */
#include <dtls-openssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generous: valgrind makes everything ~50x slower. */
#define TIMEOUT_S 30
#define TIMEOUT_US ((gint64) TIMEOUT_S * G_USEC_PER_SEC)

G_GNUC_NORETURN G_GNUC_PRINTF (2, 3) static void
fail (guint cycle, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  char *msg = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "test-cycles: cycle %u: %s\n", cycle, msg);
  g_free (msg);
  exit (1);
}

/* Fails with @what and the error's message if @error is set. */
static void
check (guint cycle, GError *error, const char *what)
{
  if (error)
    fail (cycle, "%s: %s (%s %d)", what, error->message,
          g_quark_to_string (error->domain), error->code);
}

static void
one_cycle (guint cycle, guint16 port, const char *ca_path)
{
  GError *error = NULL;

  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  check (cycle, error, "g_socket_new");
  /* Bounds the blocking handshake and close: a silent peer is an error,
   * not a hang. */
  g_socket_set_timeout (sock, TIMEOUT_S);
  GSocketAddress *addr = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  g_socket_connect (sock, addr, NULL, &error);
  check (cycle, error, "g_socket_connect");

  GTlsDatabase *db = g_tls_file_database_new (ca_path, &error);
  check (cycle, error, "g_tls_file_database_new");
  if (strcmp (G_OBJECT_TYPE_NAME (db), "DtlsOpensslFileDatabase") != 0)
    fail (cycle, "the file database is a %s, not ours", G_OBJECT_TYPE_NAME (db));

  GSocketConnectable *identity = g_network_address_new ("server.example.com", port);
  GDatagramBased *conn = g_dtls_client_connection_new (G_DATAGRAM_BASED (sock), identity, &error);
  check (cycle, error, "g_dtls_client_connection_new");
  if (!DTLS_OPENSSL_IS_CLIENT_CONNECTION (conn))
    fail (cycle, "the connection is a %s, not ours", G_OBJECT_TYPE_NAME (conn));
  GDtlsConnection *dtls = G_DTLS_CONNECTION (conn);
  g_dtls_connection_set_database (dtls, db);

  if (!g_dtls_connection_handshake (dtls, NULL, &error))
    {
      check (cycle, error, "handshake");
      fail (cycle, "handshake failed without an error");
    }
  GTlsCertificateFlags errors = g_dtls_connection_get_peer_certificate_errors (dtls);
  if (errors != 0)
    fail (cycle, "peer certificate errors 0x%x after a successful handshake", errors);

  /* One datagram, different in every cycle; gnutls-serv echoes up to 254
   * bytes. */
  char out[200];
  for (gsize i = 0; i < sizeof out; i++)
    out[i] = (char) ('a' + (i + cycle) % 26);
  int n = g_snprintf (out, sizeof out, "cycle %u:", cycle);
  out[n] = ' ';
  GOutputVector ov = { out, sizeof out };
  GOutputMessage om = { NULL, &ov, 1, 0, NULL, 0 };
  gint sent = g_datagram_based_send_messages (conn, &om, 1, 0, TIMEOUT_US, NULL, &error);
  check (cycle, error, "send");
  if (sent != 1 || om.bytes_sent != sizeof out)
    fail (cycle, "send: %d messages, %u bytes sent, expected 1 and %zu",
          sent, om.bytes_sent, sizeof out);

  char in[2048];
  GInputVector iv = { in, sizeof in };
  GInputMessage im = { NULL, &iv, 1, 0, 0, NULL, NULL };
  gint received = g_datagram_based_receive_messages (conn, &im, 1, 0, TIMEOUT_US, NULL, &error);
  check (cycle, error, "receive");
  if (received != 1)
    fail (cycle, "receive: %d messages, expected 1", received);
  if (im.bytes_received != sizeof out || memcmp (in, out, sizeof out) != 0)
    fail (cycle, "the echo differs: %zu bytes received, %zu sent",
          im.bytes_received, sizeof out);

  if (!g_dtls_connection_close (dtls, NULL, &error))
    {
      check (cycle, error, "close");
      fail (cycle, "close failed without an error");
    }

  g_object_unref (conn);
  g_object_unref (identity);
  g_object_unref (db);
  g_object_unref (addr);
  g_object_unref (sock);
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    {
      fprintf (stderr, "usage: %s N\n", argv[0]);
      return 2;
    }
  char *end;
  errno = 0;
  unsigned long count = strtoul (argv[1], &end, 10);
  if (errno || *end || end == argv[1] || count == 0 || count > G_MAXUINT)
    {
      fprintf (stderr, "test-cycles: N must be a positive integer, not '%s'\n", argv[1]);
      return 2;
    }

  const char *pki = g_getenv ("DTLS_TEST_PKI");
  const char *port_str = g_getenv ("DTLS_TEST_PORT");
  if (!pki || !port_str)
    {
      fprintf (stderr, "test-cycles: DTLS_TEST_PKI and DTLS_TEST_PORT are not set; "
               "run through tests/c/run-with-peer.sh\n");
      return 1;
    }
  guint64 port;
  if (!g_ascii_string_to_unsigned (port_str, 10, 1, G_MAXUINT16, &port, NULL))
    {
      fprintf (stderr, "test-cycles: bad DTLS_TEST_PORT '%s'\n", port_str);
      return 1;
    }

  /* GIO reads it when it first picks a TLS backend. */
  g_setenv ("GIO_USE_TLS", "dtls-openssl", FALSE);
  dtls_openssl_register_backend ();
  GTlsBackend *backend = g_tls_backend_get_default ();
  if (!DTLS_OPENSSL_IS_BACKEND (backend))
    {
      fprintf (stderr, "test-cycles: GIO's TLS backend is %s, not ours\n",
               G_OBJECT_TYPE_NAME (backend));
      return 1;
    }

  char *ca_path = g_build_filename (pki, "ca.pem", NULL);
  gint64 start = g_get_monotonic_time ();
  for (guint cycle = 1; cycle <= count; cycle++)
    one_cycle (cycle, (guint16) port, ca_path);
  g_free (ca_path);

  printf ("test-cycles: %lu cycles in %.1f s\n", count,
          (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);
  return 0;
}
