/* A DTLS echo server using nothing but GIO: run it with
 * GIO_USE_TLS=dtls-openssl and GIO picks this backend.
 *
 *   gio-echo-server CERT_AND_KEY_PEM PORT
 *
 * It serves one client on 127.0.0.1:PORT (0: any free port, printed):
 * learns the client's address from its first datagram, connects the UDP
 * socket to it, and echoes every datagram until the client closes.
 *
 * Build: cc -o gio-echo-server gio-echo-server.c $(pkg-config --cflags --libs gio-2.0)
 */
#include <gio/gio.h>
#include <stdlib.h>

static void
die (const char *what, GError *error)
{
  g_printerr ("server: %s: %s\n", what, error->message);
  exit (1);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  if (argc < 3)
    {
      g_printerr ("usage: %s CERT_AND_KEY_PEM PORT\n", argv[0]);
      return 2;
    }
  GTlsCertificate *cert = g_tls_certificate_new_from_file (argv[1], &error);
  if (!cert)
    die ("certificate", error);

  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  GSocketAddress *here = g_inet_socket_address_new_from_string ("127.0.0.1", atoi (argv[2]));
  if (!sock || !g_socket_bind (sock, here, FALSE, &error))
    die ("bind", error);
  GSocketAddress *bound = g_socket_get_local_address (sock, &error);
  g_print ("server: listening on 127.0.0.1:%u\n",
           g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

  /* The first datagram (the ClientHello) says who the client is; peek it,
   * so the DTLS connection still reads it. */
  GSocketAddress *client = NULL;
  char peek[1];
  GInputVector iv = { peek, sizeof peek };
  if (g_socket_receive_message (sock, &client, &iv, 1, NULL, NULL,
                                (gint[]) { G_SOCKET_MSG_PEEK }, NULL, &error) < 0)
    die ("receive", error);
  if (!g_socket_connect (sock, client, NULL, &error))
    die ("connect", error);

  GDatagramBased *conn = g_dtls_server_connection_new (G_DATAGRAM_BASED (sock), cert, &error);
  if (!conn)
    die ("new", error);
  g_print ("server: %s\n", G_OBJECT_TYPE_NAME (conn));
  if (!g_dtls_connection_handshake (G_DTLS_CONNECTION (conn), NULL, &error))
    die ("handshake", error);
  g_print ("server: handshake done, %s\n",
           g_dtls_connection_get_ciphersuite_name (G_DTLS_CONNECTION (conn)));

  for (;;)
    {
      char buf[2048];
      GInputVector dv = { buf, sizeof buf };
      GInputMessage im = { NULL, &dv, 1, 0, 0, NULL, NULL };
      if (g_datagram_based_receive_messages (conn, &im, 1, 0, 10 * G_USEC_PER_SEC, NULL, &error) != 1)
        die ("receive", error);
      if (im.bytes_received == 0)
        break; /* close_notify */
      GOutputVector ov = { buf, im.bytes_received };
      GOutputMessage om = { NULL, &ov, 1, 0, NULL, 0 };
      if (g_datagram_based_send_messages (conn, &om, 1, 0, -1, NULL, &error) != 1)
        die ("send", error);
    }
  g_print ("server: the client closed the connection\n");

  g_object_unref (conn);
  g_object_unref (client);
  g_object_unref (bound);
  g_object_unref (here);
  g_object_unref (sock);
  g_object_unref (cert);
  return 0;
}
