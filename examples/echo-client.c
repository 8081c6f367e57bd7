/* A DTLS echo client on the dtls-openssl C API: one GBytes per datagram.
 *
 *   echo-client CA_FILE HOST PORT [MESSAGE...]
 *
 * HOST is resolved and also checked against the server's certificate.
 * Build: cc -Wall -Werror -o echo-client echo-client.c $(pkg-config --cflags --libs dtls-openssl)
 */
#include <dtls-openssl.h>
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

  if (argc < 4)
    {
      g_printerr ("usage: %s CA_FILE HOST PORT [MESSAGE...]\n", argv[0]);
      return 2;
    }
  guint16 port = (guint16) atoi (argv[3]);

  GResolver *resolver = g_resolver_get_default ();
  GList *addrs = g_resolver_lookup_by_name (resolver, argv[2], NULL, &error);
  if (!addrs)
    die ("resolve", error);
  GInetAddress *inet = addrs->data;
  GSocketAddress *server = g_inet_socket_address_new (inet, port);
  GSocket *sock = g_socket_new (g_inet_address_get_family (inet), G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  if (!sock || !g_socket_connect (sock, server, NULL, &error))
    die ("connect", error);

  GSocketConnectable *identity = g_network_address_new (argv[2], port);
  DtlsOpensslClientConnection *client =
    dtls_openssl_client_connection_new (G_DATAGRAM_BASED (sock), identity, &error);
  if (!client)
    die ("DTLS client", error);
  GTlsDatabase *db = g_tls_file_database_new (argv[1], &error);
  if (!db)
    die ("CA file", error);
  g_dtls_connection_set_database (G_DTLS_CONNECTION (client), db);

  /* The first send performs the handshake. */
  DtlsOpensslConnection *conn = DTLS_OPENSSL_CONNECTION (client);
  for (int i = 4; i < argc; i++)
    {
      GBytes *out = g_bytes_new_static (argv[i], strlen (argv[i]));
      if (!dtls_openssl_connection_send_bytes (conn, out, -1, NULL, &error))
        die ("send", error);
      GBytes *in = dtls_openssl_connection_receive_bytes (conn, 2048, 5 * G_USEC_PER_SEC, NULL, &error);
      if (!in)
        die ("receive", error);
      gsize len;
      const char *data = g_bytes_get_data (in, &len);
      g_print ("echo: %.*s\n", (int) len, data);
      g_bytes_unref (in);
      g_bytes_unref (out);
    }

  if (!g_dtls_connection_close (G_DTLS_CONNECTION (client), NULL, &error))
    die ("close", error);

  g_object_unref (db);
  g_object_unref (client);
  g_object_unref (identity);
  g_object_unref (sock);
  g_object_unref (server);
  g_resolver_free_addresses (addrs);
  g_object_unref (resolver);
  return 0;
}
