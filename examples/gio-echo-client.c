/* A DTLS echo client using nothing but GIO: run it with
 * GIO_USE_TLS=dtls-openssl and GIO picks this backend.
 *
 *   gio-echo-client CA_FILE PORT [MESSAGE...]
 *
 * Build: cc -o gio-echo-client gio-echo-client.c $(pkg-config --cflags --libs gio-2.0)
 */
#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

static void
die (const char *what, GError *error)
{
  g_printerr ("%s: %s\n", what, error->message);
  exit (1);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  if (argc < 3)
    {
      g_printerr ("usage: %s CA_FILE PORT [MESSAGE...]\n", argv[0]);
      return 2;
    }
  guint16 port = atoi (argv[2]);

  GTlsBackend *backend = g_tls_backend_get_default ();
  g_print ("TLS backend:   %s (supports DTLS: %s)\n", G_OBJECT_TYPE_NAME (backend),
           g_tls_backend_supports_dtls (backend) ? "yes" : "no");

  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  GSocketAddress *server = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  if (!sock || !g_socket_connect (sock, server, NULL, &error))
    die ("connect", error);

  GSocketConnectable *identity = g_network_address_new ("server.example.com", port);
  GDatagramBased *conn = g_dtls_client_connection_new (G_DATAGRAM_BASED (sock), identity, &error);
  if (!conn)
    die ("DTLS client", error);
  GTlsDatabase *db = g_tls_file_database_new (argv[1], &error);
  if (!db)
    die ("CA file", error);
  g_dtls_connection_set_database (G_DTLS_CONNECTION (conn), db);

  gint64 start = g_get_monotonic_time ();
  if (!g_dtls_connection_handshake (G_DTLS_CONNECTION (conn), NULL, &error))
    die ("handshake", error);
  g_print ("handshake:     %.1f ms with 127.0.0.1:%u (server.example.com)\n",
           (g_get_monotonic_time () - start) / 1000.0, port);
  g_print ("connection:    %s\n", G_OBJECT_TYPE_NAME (conn));
  g_print ("protocol:      %s\n",
           g_dtls_connection_get_protocol_version (G_DTLS_CONNECTION (conn)) == G_TLS_PROTOCOL_VERSION_DTLS_1_2
             ? "DTLS 1.2" : "other");
  g_print ("cipher suite:  %s\n", g_dtls_connection_get_ciphersuite_name (G_DTLS_CONNECTION (conn)));
  GTlsCertificate *peer = g_dtls_connection_get_peer_certificate (G_DTLS_CONNECTION (conn));
  gchar *subject = g_tls_certificate_get_subject_name (peer);
  gchar *issuer = g_tls_certificate_get_issuer_name (peer);
  g_print ("peer subject:  %s\npeer issuer:   %s\n", subject, issuer);

  const char *defaults[] = { "hello, DTLS", "datagrams keep their boundaries", "bye" };
  int n = argc > 3 ? argc - 3 : 3;
  for (int i = 0; i < n; i++)
    {
      const char *text = argc > 3 ? argv[3 + i] : defaults[i];
      GOutputVector ov = { text, strlen (text) };
      GOutputMessage om = { NULL, &ov, 1, 0, NULL, 0 };
      start = g_get_monotonic_time ();
      if (g_datagram_based_send_messages (conn, &om, 1, 0, -1, NULL, &error) != 1)
        die ("send", error);
      char buf[2048];
      GInputVector iv = { buf, sizeof buf };
      GInputMessage im = { NULL, &iv, 1, 0, 0, NULL, NULL };
      if (g_datagram_based_receive_messages (conn, &im, 1, 0, 5 * G_USEC_PER_SEC, NULL, &error) != 1)
        die ("receive", error);
      g_print ("echo:          \"%.*s\" in %" G_GINT64_FORMAT " us\n", (int) im.bytes_received, buf,
               g_get_monotonic_time () - start);
    }

  if (!g_dtls_connection_close (G_DTLS_CONNECTION (conn), NULL, &error))
    die ("close", error);
  g_print ("closed:        close_notify sent\n");

  g_free (subject);
  g_free (issuer);
  g_object_unref (db);
  g_object_unref (conn);
  g_object_unref (identity);
  g_object_unref (server);
  g_object_unref (sock);
  return 0;
}
