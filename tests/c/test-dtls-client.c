/* The DTLS client from a plain C program: only <gio/gio.h>, the backend
 * selected with GIO_USE_TLS=dtls-openssl. The harness (tests/c_programs.rs)
 * starts an echo server and passes DTLS_TEST_PORT and DTLS_TEST_PKI.
 *
 * Build: cc -o test-dtls-client tests/c/test-dtls-client.c $(pkg-config --cflags --libs gio-2.0)
 */
#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

static GDatagramBased *
connect_client (const char *identity)
{
  GError *error = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  int port = atoi (g_getenv ("DTLS_TEST_PORT"));
  GSocketAddress *addr = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  g_assert_true (g_socket_connect (sock, addr, NULL, &error));
  g_assert_no_error (error);

  GSocketConnectable *id = g_network_address_new (identity, port);
  GDatagramBased *conn = g_dtls_client_connection_new (G_DATAGRAM_BASED (sock), id, &error);
  g_assert_no_error (error);
  g_assert_nonnull (conn);
  g_assert_cmpstr (G_OBJECT_TYPE_NAME (conn), ==, "DtlsOpensslClientConnection");

  gchar *ca = g_build_filename (g_getenv ("DTLS_TEST_PKI"), "ca.pem", NULL);
  GTlsDatabase *db = g_tls_file_database_new (ca, &error);
  g_assert_no_error (error);
  g_dtls_connection_set_database (G_DTLS_CONNECTION (conn), db);

  g_free (ca);
  g_object_unref (db);
  g_object_unref (id);
  g_object_unref (addr);
  g_object_unref (sock);
  return conn;
}

static void
test_handshake_and_echo (void)
{
  GError *error = NULL;
  GDatagramBased *conn = connect_client ("server.example.com");
  GDtlsConnection *dtls = G_DTLS_CONNECTION (conn);

  g_assert_true (g_dtls_connection_handshake (dtls, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_dtls_connection_get_protocol_version (dtls), ==, G_TLS_PROTOCOL_VERSION_DTLS_1_2);
  g_assert_true (g_str_has_prefix (g_dtls_connection_get_ciphersuite_name (dtls), "TLS_"));
  if (g_getenv ("DTLS_EXPECT_CIPHER"))
    g_assert_cmpstr (g_dtls_connection_get_ciphersuite_name (dtls), ==, g_getenv ("DTLS_EXPECT_CIPHER"));
  GTlsCertificate *peer = g_dtls_connection_get_peer_certificate (dtls);
  g_assert_nonnull (peer);
  gchar *subject = g_tls_certificate_get_subject_name (peer);
  g_assert_true (g_str_has_suffix (subject, "CN=server.example.com"));
  g_free (subject);
  g_assert_cmpint (g_dtls_connection_get_peer_certificate_errors (dtls), ==, 0);

  /* Two messages in one call, each with two vectors. */
  GOutputVector ov[4] = { { "hel", 3 }, { "lo", 2 }, { "wor", 3 }, { "ld!", 3 } };
  GOutputMessage om[2] = { { NULL, &ov[0], 2, 0, NULL, 0 }, { NULL, &ov[2], 2, 0, NULL, 0 } };
  g_assert_cmpint (g_datagram_based_send_messages (conn, om, 2, 0, -1, NULL, &error), ==, 2);
  g_assert_no_error (error);
  g_assert_cmpuint (om[0].bytes_sent, ==, 5);
  g_assert_cmpuint (om[1].bytes_sent, ==, 6);

  const char *expected[2] = { "hello", "world!" };
  for (int i = 0; i < 2; i++)
    {
      char buf[64];
      GInputVector iv = { buf, sizeof buf };
      GInputMessage im = { NULL, &iv, 1, 0, 0, NULL, NULL };
      g_assert_cmpint (g_datagram_based_receive_messages (conn, &im, 1, 0, 5 * G_USEC_PER_SEC, NULL, &error), ==, 1);
      g_assert_no_error (error);
      g_assert_cmpmem (buf, im.bytes_received, expected[i], strlen (expected[i]));
    }

  /* Nothing more: timeout 0 would block. */
  char buf[64];
  GInputVector iv = { buf, sizeof buf };
  GInputMessage im = { NULL, &iv, 1, 0, 0, NULL, NULL };
  g_assert_cmpint (g_datagram_based_receive_messages (conn, &im, 1, 0, 0, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_clear_error (&error);

  g_assert_true (g_dtls_connection_close (dtls, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_datagram_based_send_messages (conn, om, 1, 0, -1, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  g_clear_error (&error);
  g_object_unref (conn);
}

static void
test_wrong_identity_is_rejected (void)
{
  GError *error = NULL;
  GDatagramBased *conn = connect_client ("wrong.example.com");
  g_assert_false (g_dtls_connection_handshake (G_DTLS_CONNECTION (conn), NULL, &error));
  g_assert_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
  g_test_message ("%s", error->message);
  g_clear_error (&error);
  g_assert_cmpint (g_dtls_connection_get_peer_certificate_errors (G_DTLS_CONNECTION (conn)), ==,
                   G_TLS_CERTIFICATE_BAD_IDENTITY);
  g_object_unref (conn);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/dtls-client/handshake-and-echo", test_handshake_and_echo);
  g_test_add_func ("/dtls-client/wrong-identity", test_wrong_identity_is_rejected);
  return g_test_run ();
}
