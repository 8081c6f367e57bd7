/* gio-peer: a DTLS client or server over a UDP GSocket on 127.0.0.1,
 * written against plain GIO only (<gio/gio.h>, no header of ours), so that
 * the backend is whatever GIO_USE_TLS / GIO_MODULE_DIR select: with
 * GIO_USE_TLS=gnutls it is glib-networking's GnuTLS backend, a reference
 * peer for our backend in another process. Driven by
 * tests/common/gio_peer.rs.
 *
 *   gio-peer --server PORT|0 --cert PEM --key KEY
 *            [--request-client-cert | --require-client-cert] [--ca CA]
 *            [--insecure]
 *            [--alpn a,b] [--echo N] [--timeout SEC]
 *   gio-peer --client PORT --ca CA|--insecure --identity NAME
 *            [--cert PEM --key KEY] [--alpn a,b] [--echo N] [--timeout SEC]
 *
 * Server: binds 127.0.0.1:PORT (0: any), prints "LISTENING <port>", peeks
 * at the first datagram to learn the client's address, connects the socket
 * to it, then g_dtls_server_connection_new() on that socket; echoes N
 * datagrams and closes (close_notify). Client: connects, handshakes, sends
 * N datagrams "gio-peer <i>" and checks each echo, closes.
 *
 * Every line on stdout is flushed at once; the harness waits on them. After
 * a handshake, PEER-CERT-ERRORS is the last line of the report; after a
 * failed one it comes before the ERROR line:
 *   LISTENING <port>
 *   CLIENT <address>                      (server: first datagram's source)
 *   CONNECTION <GType name>               (which backend's connection)
 *   ACCEPT-CERTIFICATE errors=0x<flags> accepted|rejected
 *   HANDSHAKE OK protocol=<DTLS1.2|DTLS1.0|other> ciphersuite=<s|-> alpn=<s|->
 *   PEER-CERT subject=<subject>  |  PEER-CERT none
 *   PEER-CERT-ERRORS 0x<flags>
 *   ECHO <i> <bytes>                      (each datagram echoed / checked)
 *   CLOSED
 *   ERROR <what> domain=<quark> code=<n> message=<text>
 *   DONE                                  (then exit 0)
 * Exit status: 0 success, 1 failure (an ERROR line says why), 2 usage,
 * 3 the --timeout watchdog fired.
 *
 * Build: cc -o gio-peer tests/c/gio-peer.c $(pkg-config --cflags --libs gio-2.0)
 */
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gboolean opt_server_mode;
static gint opt_port = -1;
static gchar *opt_cert, *opt_key, *opt_ca, *opt_identity, *opt_alpn;
static gboolean opt_request_cc, opt_require_cc, opt_insecure;
static gint opt_echo;
static gint opt_timeout = 20;

static void
say (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
  fflush (stdout);
}

static int
fail (const char *what, const GError *error)
{
  if (error)
    say ("ERROR %s domain=%s code=%d message=%s", what,
         g_quark_to_string (error->domain), error->code, error->message);
  else
    say ("ERROR %s", what);
  return 1;
}

static gpointer
watchdog (gpointer data)
{
  g_usleep ((gulong) opt_timeout * G_USEC_PER_SEC);
  say ("ERROR watchdog: not finished within %d s", opt_timeout);
  _exit (3);
  return NULL;
}

/* glib-networking's servers accept a client certificate only through this
 * signal, even one without errors (its GTlsConnectionBase applies
 * validation flags to clients only); clients get here when the
 * certificate has errors. Accepts what has no errors, or anything with
 * --insecure. */
static gboolean
on_accept_certificate (GDtlsConnection *conn, GTlsCertificate *cert,
                       GTlsCertificateFlags errors, gpointer data)
{
  gboolean accept = errors == 0 || opt_insecure;
  say ("ACCEPT-CERTIFICATE errors=0x%x %s", (unsigned) errors, accept ? "accepted" : "rejected");
  return accept;
}

static void
report_handshake (GDtlsConnection *conn)
{
  const gchar *suite = g_dtls_connection_get_ciphersuite_name (conn);
  const gchar *alpn = g_dtls_connection_get_negotiated_protocol (conn);
  GTlsProtocolVersion v = g_dtls_connection_get_protocol_version (conn);
  say ("HANDSHAKE OK protocol=%s ciphersuite=%s alpn=%s",
       v == G_TLS_PROTOCOL_VERSION_DTLS_1_2 ? "DTLS1.2"
       : v == G_TLS_PROTOCOL_VERSION_DTLS_1_0 ? "DTLS1.0" : "other",
       suite ? suite : "-", alpn ? alpn : "-");
  GTlsCertificate *peer = g_dtls_connection_get_peer_certificate (conn);
  if (peer)
    {
      gchar *subject = g_tls_certificate_get_subject_name (peer);
      say ("PEER-CERT subject=%s", subject ? subject : "?");
      g_free (subject);
    }
  else
    say ("PEER-CERT none");
  say ("PEER-CERT-ERRORS 0x%x", (unsigned) g_dtls_connection_get_peer_certificate_errors (conn));
}

/* Receives one datagram (timeout in seconds); returns its length or -1. */
static gssize
receive_one (GDatagramBased *conn, gchar *buf, gsize size, GError **error)
{
  GInputVector iv = { buf, size };
  GInputMessage im = { NULL, &iv, 1, 0, 0, NULL, NULL };
  gint n = g_datagram_based_receive_messages (conn, &im, 1, 0,
                                              (gint64) opt_timeout * G_USEC_PER_SEC,
                                              NULL, error);
  if (n != 1)
    return -1;
  return (gssize) im.bytes_received;
}

static gboolean
send_one (GDatagramBased *conn, const gchar *data, gsize len, GError **error)
{
  GOutputVector ov = { data, len };
  GOutputMessage om = { NULL, &ov, 1, 0, NULL, 0 };
  gint n = g_datagram_based_send_messages (conn, &om, 1, 0,
                                           (gint64) opt_timeout * G_USEC_PER_SEC,
                                           NULL, error);
  return n == 1;
}

static void
set_alpn (GDtlsConnection *conn)
{
  if (!opt_alpn)
    return;
  gchar **protocols = g_strsplit (opt_alpn, ",", -1);
  g_dtls_connection_set_advertised_protocols (conn, (const gchar * const *) protocols);
  g_strfreev (protocols);
}

static gboolean
set_database (GDtlsConnection *conn, GError **error)
{
  if (!opt_ca)
    return TRUE;
  GTlsDatabase *db = g_tls_file_database_new (opt_ca, error);
  if (!db)
    return FALSE;
  g_dtls_connection_set_database (conn, db);
  g_object_unref (db);
  return TRUE;
}

static int
close_connection (GDtlsConnection *conn)
{
  GError *error = NULL;
  if (!g_dtls_connection_close (conn, NULL, &error))
    return fail ("close", error);
  say ("CLOSED");
  return 0;
}

static int
run_server (void)
{
  GError *error = NULL;
  GTlsCertificate *cert = g_tls_certificate_new_from_files (opt_cert, opt_key, &error);
  if (!cert)
    return fail ("certificate", error);

  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  if (!sock)
    return fail ("socket", error);
  GSocketAddress *local = g_inet_socket_address_new_from_string ("127.0.0.1", opt_port);
  if (!g_socket_bind (sock, local, FALSE, &error))
    return fail ("bind", error);
  g_object_unref (local);
  local = g_socket_get_local_address (sock, &error);
  if (!local)
    return fail ("local address", error);
  say ("LISTENING %u", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local)));
  g_object_unref (local);

  /* Learn the client's address from its first datagram, left queued. */
  if (!g_socket_condition_timed_wait (sock, G_IO_IN, (gint64) opt_timeout * G_USEC_PER_SEC,
                                      NULL, &error))
    return fail ("waiting for the first datagram", error);
  GSocketAddress *from = NULL;
  gchar byte;
  GInputVector iv = { &byte, 1 };
  gint flags = G_SOCKET_MSG_PEEK;
  if (g_socket_receive_message (sock, &from, &iv, 1, NULL, NULL, &flags, NULL, &error) < 0)
    return fail ("peek", error);
  gchar *from_str = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (from));
  say ("CLIENT %s", from_str);
  g_free (from_str);
  if (!g_socket_connect (sock, from, NULL, &error))
    return fail ("connect", error);
  g_object_unref (from);

  GDatagramBased *conn = g_dtls_server_connection_new (G_DATAGRAM_BASED (sock), cert, &error);
  if (!conn)
    return fail ("g_dtls_server_connection_new", error);
  GDtlsConnection *dtls = G_DTLS_CONNECTION (conn);
  say ("CONNECTION %s", G_OBJECT_TYPE_NAME (conn));
  if (opt_require_cc || opt_request_cc)
    g_object_set (conn, "authentication-mode",
                  opt_require_cc ? G_TLS_AUTHENTICATION_REQUIRED : G_TLS_AUTHENTICATION_REQUESTED,
                  NULL);
  if (!set_database (dtls, &error))
    return fail ("database", error);
  g_signal_connect (conn, "accept-certificate", G_CALLBACK (on_accept_certificate), NULL);
  set_alpn (dtls);

  if (!g_dtls_connection_handshake (dtls, NULL, &error))
    {
      say ("PEER-CERT-ERRORS 0x%x",
           (unsigned) g_dtls_connection_get_peer_certificate_errors (dtls));
      return fail ("handshake", error);
    }
  report_handshake (dtls);

  gchar buf[65536];
  for (int i = 1; i <= opt_echo; i++)
    {
      gssize n = receive_one (conn, buf, sizeof buf, &error);
      if (n < 0)
        return fail ("receive", error);
      if (n == 0)
        return fail ("receive: the client closed the connection", NULL);
      if (!send_one (conn, buf, (gsize) n, &error))
        return fail ("send", error);
      say ("ECHO %d %" G_GSSIZE_FORMAT, i, n);
    }
  int ret = close_connection (dtls);
  g_object_unref (conn);
  g_object_unref (sock);
  g_object_unref (cert);
  return ret;
}

static int
run_client (void)
{
  GError *error = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  if (!sock)
    return fail ("socket", error);
  GSocketAddress *addr = g_inet_socket_address_new_from_string ("127.0.0.1", opt_port);
  if (!g_socket_connect (sock, addr, NULL, &error))
    return fail ("connect", error);
  g_object_unref (addr);

  GSocketConnectable *id = g_network_address_new (opt_identity, opt_port);
  GDatagramBased *conn = g_dtls_client_connection_new (G_DATAGRAM_BASED (sock), id, &error);
  g_object_unref (id);
  if (!conn)
    return fail ("g_dtls_client_connection_new", error);
  GDtlsConnection *dtls = G_DTLS_CONNECTION (conn);
  say ("CONNECTION %s", G_OBJECT_TYPE_NAME (conn));
  if (!set_database (dtls, &error))
    return fail ("database", error);
  g_signal_connect (conn, "accept-certificate", G_CALLBACK (on_accept_certificate), NULL);
  if (opt_cert)
    {
      GTlsCertificate *cert = g_tls_certificate_new_from_files (opt_cert, opt_key, &error);
      if (!cert)
        return fail ("certificate", error);
      g_dtls_connection_set_certificate (dtls, cert);
      g_object_unref (cert);
    }
  set_alpn (dtls);

  if (!g_dtls_connection_handshake (dtls, NULL, &error))
    {
      say ("PEER-CERT-ERRORS 0x%x",
           (unsigned) g_dtls_connection_get_peer_certificate_errors (dtls));
      return fail ("handshake", error);
    }
  report_handshake (dtls);

  gchar buf[65536];
  for (int i = 1; i <= opt_echo; i++)
    {
      gchar *msg = g_strdup_printf ("gio-peer %d", i);
      gsize len = strlen (msg);
      if (!send_one (conn, msg, len, &error))
        return fail ("send", error);
      gssize n = receive_one (conn, buf, sizeof buf, &error);
      if (n < 0)
        return fail ("receive", error);
      /* Echo servers that work on lines (gnutls-serv, s_server) may add
       * nothing, or a newline: accept the message with one trailing '\n'. */
      if (!((gsize) n == len || ((gsize) n == len + 1 && buf[len] == '\n'))
          || memcmp (buf, msg, len) != 0)
        {
          say ("ERROR echo %d: sent \"%s\", received %" G_GSSIZE_FORMAT " bytes \"%.*s\"",
               i, msg, n, (int) MIN (n, 200), buf);
          return 1;
        }
      say ("ECHO %d %" G_GSSIZE_FORMAT, i, n);
      g_free (msg);
    }
  int ret = close_connection (dtls);
  g_object_unref (conn);
  g_object_unref (sock);
  return ret;
}

int
main (int argc, char **argv)
{
  gint server_port = -1, client_port = -1;
  GOptionEntry entries[] = {
    { "server", 0, 0, G_OPTION_ARG_INT, &server_port, "Serve on 127.0.0.1:PORT (0: any)", "PORT" },
    { "client", 0, 0, G_OPTION_ARG_INT, &client_port, "Connect to 127.0.0.1:PORT", "PORT" },
    { "cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_cert, "Own certificate (PEM)", "FILE" },
    { "key", 0, 0, G_OPTION_ARG_FILENAME, &opt_key, "Own private key (PEM)", "FILE" },
    { "ca", 0, 0, G_OPTION_ARG_FILENAME, &opt_ca, "Trust anchors (database)", "FILE" },
    { "identity", 0, 0, G_OPTION_ARG_STRING, &opt_identity, "Server identity (client)", "NAME" },
    { "insecure", 0, 0, G_OPTION_ARG_NONE, &opt_insecure, "Accept any server certificate", NULL },
    { "request-client-cert", 0, 0, G_OPTION_ARG_NONE, &opt_request_cc, "Ask for one", NULL },
    { "require-client-cert", 0, 0, G_OPTION_ARG_NONE, &opt_require_cc, "Require one", NULL },
    { "alpn", 0, 0, G_OPTION_ARG_STRING, &opt_alpn, "Advertised protocols", "a,b" },
    { "echo", 0, 0, G_OPTION_ARG_INT, &opt_echo, "Datagrams to echo / send", "N" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout, "Give up after SEC seconds", "SEC" },
    { NULL }
  };
  GError *error = NULL;
  GOptionContext *ctx = g_option_context_new ("- DTLS peer over plain GIO");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fail ("usage", error);
      return 2;
    }
  g_option_context_free (ctx);
  if ((server_port >= 0) == (client_port >= 0) || opt_echo < 0 || opt_timeout <= 0)
    {
      say ("ERROR usage: exactly one of --server PORT / --client PORT");
      return 2;
    }
  opt_server_mode = server_port >= 0;
  opt_port = opt_server_mode ? server_port : client_port;
  if (opt_server_mode && (!opt_cert || !opt_key))
    {
      say ("ERROR usage: --server needs --cert and --key");
      return 2;
    }
  if (!opt_server_mode && (!opt_identity || (!opt_ca && !opt_insecure) || (opt_cert && !opt_key)))
    {
      say ("ERROR usage: --client needs --identity, --ca or --insecure, and --key with --cert");
      return 2;
    }

  g_thread_unref (g_thread_new ("watchdog", watchdog, NULL));
  say ("BACKEND %s", G_OBJECT_TYPE_NAME (g_tls_backend_get_default ()));
  int ret = opt_server_mode ? run_server () : run_client ();
  if (ret == 0)
    say ("DONE");
  return ret;
}
