/* The C API of include/dtls-openssl.h: types, backend registration,
 * argument checks, and a real exchange with a DTLS echo server.
 *
 * The /peer/ tests need DTLS_TEST_PKI and DTLS_TEST_PORT, which
 * tests/c/run-with-peer.sh sets (gnutls-serv --udp --echo); without them
 * they are skipped. Meson runs the program with GIO_USE_TLS=dtls-openssl and
 * GIO_MODULE_DIR pointing nowhere, so the backend GIO uses is the one
 * dtls_openssl_register_backend() registered, from this very library.
 */
#include <dtls-openssl.h>
#include <stdlib.h>
#include <string.h>

/* Datagrams through the peer: generous bounds, for valgrind's sake. */
#define TIMEOUT_US (20 * G_USEC_PER_SEC)

/* Registers our backend and checks GIO picked it. Every test that makes
 * certificates or databases through GIO calls it first. */
static void
ensure_backend (void)
{
  dtls_openssl_register_backend ();
  GTlsBackend *backend = g_tls_backend_get_default ();
  g_assert_true (G_TYPE_CHECK_INSTANCE_TYPE (backend, DTLS_OPENSSL_TYPE_BACKEND));
}

/* A UDP socket connected to 127.0.0.1:PORT. */
static GSocket *
udp_socket (guint16 port)
{
  GError *error = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  GSocketAddress *addr = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  g_assert_true (g_socket_connect (sock, addr, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (addr);
  return sock;
}

/* A client that never talks to anyone unless asked to (port 9, discard). */
static DtlsOpensslConnection *
idle_connection (void)
{
  GError *error = NULL;
  GSocket *sock = udp_socket (9);
  DtlsOpensslClientConnection *client =
    dtls_openssl_client_connection_new (G_DATAGRAM_BASED (sock), NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (client);
  g_object_unref (sock);
  return DTLS_OPENSSL_CONNECTION (client);
}

/* ------------------------------------------------------------------------ */
/* Types */

static void
test_types (void)
{
  struct { GType type; const char *name; } types[] = {
    { DTLS_OPENSSL_TYPE_BACKEND, "DtlsOpensslBackend" },
    { DTLS_OPENSSL_TYPE_CERTIFICATE, "DtlsOpensslCertificate" },
    { DTLS_OPENSSL_TYPE_CONNECTION, "DtlsOpensslConnection" },
    { DTLS_OPENSSL_TYPE_CLIENT_CONNECTION, "DtlsOpensslClientConnection" },
    { DTLS_OPENSSL_TYPE_SERVER_CONNECTION, "DtlsOpensslServerConnection" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    {
      g_assert_true (types[i].type != G_TYPE_INVALID);
      g_assert_cmpstr (g_type_name (types[i].type), ==, types[i].name);
      g_assert_true (g_type_from_name (types[i].name) == types[i].type);
    }

  GType client = DTLS_OPENSSL_TYPE_CLIENT_CONNECTION;
  g_assert_true (g_type_is_a (client, DTLS_OPENSSL_TYPE_CONNECTION));
  g_assert_true (g_type_is_a (client, G_TYPE_DTLS_CLIENT_CONNECTION));
  g_assert_true (g_type_is_a (client, G_TYPE_DTLS_CONNECTION));
  g_assert_true (g_type_is_a (client, G_TYPE_DATAGRAM_BASED));
  g_assert_true (g_type_is_a (client, G_TYPE_INITABLE));
  g_assert_true (g_type_parent (client) == DTLS_OPENSSL_TYPE_CONNECTION);
  GType server = DTLS_OPENSSL_TYPE_SERVER_CONNECTION;
  g_assert_true (g_type_parent (server) == DTLS_OPENSSL_TYPE_CONNECTION);
  g_assert_true (g_type_is_a (server, G_TYPE_DTLS_SERVER_CONNECTION));
  g_assert_true (g_type_is_a (server, G_TYPE_DATAGRAM_BASED));
  g_assert_true (g_type_is_a (server, G_TYPE_INITABLE));
  g_assert_true (g_type_is_a (DTLS_OPENSSL_TYPE_CONNECTION, G_TYPE_DTLS_CONNECTION));
  g_assert_true (g_type_is_a (DTLS_OPENSSL_TYPE_CONNECTION, G_TYPE_DATAGRAM_BASED));
  g_assert_true (g_type_is_a (DTLS_OPENSSL_TYPE_CERTIFICATE, G_TYPE_TLS_CERTIFICATE));
  g_assert_true (g_type_is_a (DTLS_OPENSSL_TYPE_BACKEND, G_TYPE_TLS_BACKEND));

  /* The header's structs must fit what the library registered. */
  GTypeQuery q;
  g_type_query (DTLS_OPENSSL_TYPE_CONNECTION, &q);
  g_assert_cmpuint (q.instance_size, >=, sizeof (DtlsOpensslConnection));
  g_assert_cmpuint (q.class_size, >=, sizeof (DtlsOpensslConnectionClass));
  g_type_query (DTLS_OPENSSL_TYPE_CLIENT_CONNECTION, &q);
  g_assert_cmpuint (q.instance_size, >=, sizeof (DtlsOpensslConnection));
  g_type_query (DTLS_OPENSSL_TYPE_CERTIFICATE, &q);
  g_assert_cmpuint (q.instance_size, >=, sizeof (GTlsCertificate));
}

static void
test_register_backend (void)
{
  g_assert_cmpstr (g_getenv ("GIO_USE_TLS"), ==, "dtls-openssl");
  dtls_openssl_register_backend ();
  dtls_openssl_register_backend (); /* harmless */

  GIOExtensionPoint *ep = g_io_extension_point_lookup (G_TLS_BACKEND_EXTENSION_POINT_NAME);
  g_assert_nonnull (ep);
  GIOExtension *ext = g_io_extension_point_get_extension_by_name (ep, "dtls-openssl");
  g_assert_nonnull (ext);
  g_assert_true (g_io_extension_get_type (ext) == DTLS_OPENSSL_TYPE_BACKEND);

  GTlsBackend *backend = g_tls_backend_get_default ();
  g_assert_cmpstr (G_OBJECT_TYPE_NAME (backend), ==, "DtlsOpensslBackend");
  g_assert_true (DTLS_OPENSSL_IS_BACKEND (backend));
  g_assert_true (g_tls_backend_supports_dtls (backend));
  g_assert_true (g_tls_backend_get_dtls_client_connection_type (backend) == DTLS_OPENSSL_TYPE_CLIENT_CONNECTION);
  g_assert_true (g_tls_backend_get_dtls_server_connection_type (backend) == DTLS_OPENSSL_TYPE_SERVER_CONNECTION);
  g_assert_true (g_tls_backend_get_certificate_type (backend) == DTLS_OPENSSL_TYPE_CERTIFICATE);
}

static void
test_client_new (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  g_assert_true (DTLS_OPENSSL_IS_CLIENT_CONNECTION (conn));
  g_assert_true (G_IS_DTLS_CLIENT_CONNECTION (conn));
  g_assert_true (G_IS_DATAGRAM_BASED (conn));

  GDatagramBased *base = NULL;
  g_object_get (conn, "base-socket", &base, NULL);
  g_assert_true (G_IS_SOCKET (base));
  g_object_unref (base);
  g_object_unref (conn);
}

/* ------------------------------------------------------------------------ */
/* Argument checks: each case runs in a subprocess, with criticals made
 * non-fatal there, and checks the safe return value; the parent checks
 * the CRITICAL names the failed check. */

typedef struct
{
  const char *path;
  void (*run) (void);
  const char *stderr_pattern;
} BadArgCase;

#define ASSERTION(expr) "*dtls-openssl-CRITICAL*assertion '" expr "' failed*"
#define NOT_CONN ASSERTION ("DTLS_OPENSSL_IS_CONNECTION (conn)")
#define ERROR_SET ASSERTION ("error == NULL || *error == NULL")

static GError *
preset_error (void)
{
  return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "already set");
}

/* The error passed with *error already set must come back untouched. */
static void
check_preset_untouched (GError *error)
{
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_cmpstr (error->message, ==, "already set");
  g_error_free (error);
}

static gpointer
wrong_type (void)
{
  /* A GDatagramBased, but not a DTLS connection. */
  return udp_socket (9);
}

static void
never_called (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_assert_not_reached ();
}

/* Lets any wrongly scheduled callback run. */
static void
iterate_a_bit (void)
{
  for (int i = 0; i < 5; i++)
    g_main_context_iteration (NULL, FALSE);
}

/* client_connection_new */

static void
bad_new_null_base (void)
{
  GError *error = NULL;
  g_assert_null (dtls_openssl_client_connection_new (NULL, NULL, &error));
  g_assert_no_error (error);
}

static void
bad_new_wrong_base (void)
{
  GError *error = NULL;
  GObject *obj = g_object_new (G_TYPE_OBJECT, NULL);
  g_assert_null (dtls_openssl_client_connection_new ((GDatagramBased *) obj, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (obj);
}

static void
bad_new_wrong_identity (void)
{
  GError *error = NULL;
  GSocket *sock = udp_socket (9);
  GObject *obj = g_object_new (G_TYPE_OBJECT, NULL);
  g_assert_null (dtls_openssl_client_connection_new (G_DATAGRAM_BASED (sock), (GSocketConnectable *) obj, &error));
  g_assert_no_error (error);
  g_object_unref (obj);
  g_object_unref (sock);
}

static void
bad_new_error_set (void)
{
  GError *error = preset_error ();
  GSocket *sock = udp_socket (9);
  g_assert_null (dtls_openssl_client_connection_new (G_DATAGRAM_BASED (sock), NULL, &error));
  check_preset_untouched (error);
  g_object_unref (sock);
}

/* send_bytes / receive_bytes */

static void
bad_send_null_conn (void)
{
  GBytes *b = g_bytes_new_static ("x", 1);
  GError *error = NULL;
  g_assert_false (dtls_openssl_connection_send_bytes (NULL, b, 0, NULL, &error));
  g_assert_no_error (error);
  g_bytes_unref (b);
}

static void
bad_send_wrong_conn (void)
{
  GBytes *b = g_bytes_new_static ("x", 1);
  GError *error = NULL;
  gpointer obj = wrong_type ();
  g_assert_false (dtls_openssl_connection_send_bytes (obj, b, 0, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (obj);
  g_bytes_unref (b);
}

static void
bad_send_null_bytes (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = NULL;
  g_assert_false (dtls_openssl_connection_send_bytes (conn, NULL, 0, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (conn);
}

static void
bad_send_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GBytes *b = g_bytes_new_static ("x", 1);
  GError *error = preset_error ();
  g_assert_false (dtls_openssl_connection_send_bytes (conn, b, 0, NULL, &error));
  check_preset_untouched (error);
  g_bytes_unref (b);
  g_object_unref (conn);
}

static void
bad_receive_null_conn (void)
{
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_receive_bytes (NULL, 100, 0, NULL, &error));
  g_assert_no_error (error);
}

static void
bad_receive_wrong_conn (void)
{
  GError *error = NULL;
  gpointer obj = wrong_type ();
  g_assert_null (dtls_openssl_connection_receive_bytes (obj, 100, 0, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (obj);
}

static void
bad_receive_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = preset_error ();
  g_assert_null (dtls_openssl_connection_receive_bytes (conn, 100, 0, NULL, &error));
  check_preset_untouched (error);
  g_object_unref (conn);
}

/* async variants */

static void
bad_send_async_null_conn (void)
{
  GBytes *b = g_bytes_new_static ("x", 1);
  dtls_openssl_connection_send_bytes_async (NULL, b, G_PRIORITY_DEFAULT, NULL, never_called, NULL);
  iterate_a_bit ();
  g_bytes_unref (b);
}

static void
bad_send_async_wrong_conn (void)
{
  GBytes *b = g_bytes_new_static ("x", 1);
  gpointer obj = wrong_type ();
  dtls_openssl_connection_send_bytes_async (obj, b, G_PRIORITY_DEFAULT, NULL, never_called, NULL);
  iterate_a_bit ();
  g_object_unref (obj);
  g_bytes_unref (b);
}

static void
bad_send_async_null_bytes (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  dtls_openssl_connection_send_bytes_async (conn, NULL, G_PRIORITY_DEFAULT, NULL, never_called, NULL);
  iterate_a_bit ();
  g_object_unref (conn);
}

static void
bad_receive_async_null_conn (void)
{
  dtls_openssl_connection_receive_bytes_async (NULL, 100, G_PRIORITY_DEFAULT, NULL, never_called, NULL);
  iterate_a_bit ();
}

static void
bad_receive_async_wrong_conn (void)
{
  gpointer obj = wrong_type ();
  dtls_openssl_connection_receive_bytes_async (obj, 100, G_PRIORITY_DEFAULT, NULL, never_called, NULL);
  iterate_a_bit ();
  g_object_unref (obj);
}

/* A GTask on @conn that no function of ours created. */
static GTask *
foreign_task (gpointer conn)
{
  GTask *task = g_task_new (conn, NULL, NULL, NULL);
  g_task_return_boolean (task, TRUE);
  return task;
}

static void
bad_send_finish_null_conn (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GTask *task = foreign_task (conn);
  GError *error = NULL;
  g_assert_false (dtls_openssl_connection_send_bytes_finish (NULL, G_ASYNC_RESULT (task), &error));
  g_assert_no_error (error);
  g_object_unref (task);
  g_object_unref (conn);
}

static void
bad_send_finish_wrong_conn (void)
{
  gpointer obj = wrong_type ();
  GTask *task = foreign_task (obj);
  GError *error = NULL;
  g_assert_false (dtls_openssl_connection_send_bytes_finish (obj, G_ASYNC_RESULT (task), &error));
  g_assert_no_error (error);
  g_object_unref (task);
  g_object_unref (obj);
}

static void
bad_send_finish_foreign_result (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GTask *task = foreign_task (conn);
  GError *error = NULL;
  g_assert_false (dtls_openssl_connection_send_bytes_finish (conn, G_ASYNC_RESULT (task), &error));
  g_assert_no_error (error);
  g_object_unref (task);
  g_object_unref (conn);
}

static void
bad_receive_finish_null_conn (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GTask *task = foreign_task (conn);
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_receive_bytes_finish (NULL, G_ASYNC_RESULT (task), &error));
  g_assert_no_error (error);
  g_object_unref (task);
  g_object_unref (conn);
}

static void
bad_receive_finish_wrong_conn (void)
{
  gpointer obj = wrong_type ();
  GTask *task = foreign_task (obj);
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_receive_bytes_finish (obj, G_ASYNC_RESULT (task), &error));
  g_assert_no_error (error);
  g_object_unref (task);
  g_object_unref (obj);
}

static void
bad_receive_finish_foreign_result (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GTask *task = foreign_task (conn);
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_receive_bytes_finish (conn, G_ASYNC_RESULT (task), &error));
  g_assert_no_error (error);
  g_object_unref (task);
  g_object_unref (conn);
}

/* A real result of ours: an operation cancelled before it starts fails
 * without touching the network. */
typedef struct
{
  GAsyncResult *result;
} ResultHolder;

static void
keep_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ResultHolder *holder = user_data;
  holder->result = g_object_ref (result);
}

static GAsyncResult *
cancelled_result (DtlsOpensslConnection *conn, gboolean send)
{
  ResultHolder holder = { NULL };
  GCancellable *cancel = g_cancellable_new ();
  g_cancellable_cancel (cancel);
  if (send)
    {
      GBytes *b = g_bytes_new_static ("x", 1);
      dtls_openssl_connection_send_bytes_async (conn, b, G_PRIORITY_DEFAULT, cancel, keep_result, &holder);
      g_bytes_unref (b);
    }
  else
    dtls_openssl_connection_receive_bytes_async (conn, 100, G_PRIORITY_DEFAULT, cancel, keep_result, &holder);
  gint64 deadline = g_get_monotonic_time () + TIMEOUT_US;
  while (!holder.result && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_nonnull (holder.result);
  g_object_unref (cancel);
  return holder.result;
}

static void
bad_send_finish_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GAsyncResult *result = cancelled_result (conn, TRUE);
  GError *error = preset_error ();
  g_assert_false (dtls_openssl_connection_send_bytes_finish (conn, result, &error));
  check_preset_untouched (error);
  g_object_unref (result);
  g_object_unref (conn);
}

static void
bad_receive_finish_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GAsyncResult *result = cancelled_result (conn, FALSE);
  GError *error = preset_error ();
  g_assert_null (dtls_openssl_connection_receive_bytes_finish (conn, result, &error));
  check_preset_untouched (error);
  g_object_unref (result);
  g_object_unref (conn);
}

/* MTU */

static void
bad_get_mtu_null_conn (void)
{
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (NULL), ==, 0);
}

static void
bad_get_mtu_wrong_conn (void)
{
  gpointer obj = wrong_type ();
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (obj), ==, 0);
  g_object_unref (obj);
}

static void
bad_set_mtu_null_conn (void)
{
  g_assert_false (dtls_openssl_connection_set_mtu (NULL, 1200, NULL));
}

static void
bad_set_mtu_wrong_conn (void)
{
  gpointer obj = wrong_type ();
  g_assert_false (dtls_openssl_connection_set_mtu (obj, 1200, NULL));
  g_object_unref (obj);
}

static void
bad_set_mtu_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = preset_error ();
  g_assert_false (dtls_openssl_connection_set_mtu (conn, 1200, &error));
  check_preset_untouched (error);
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 1400);
  g_object_unref (conn);
}

/* max payload, keying material */

static void
bad_max_payload_null_conn (void)
{
  GError *error = NULL;
  g_assert_cmpuint (dtls_openssl_connection_get_max_payload (NULL, &error), ==, 0);
  g_assert_no_error (error);
}

static void
bad_max_payload_wrong_conn (void)
{
  GError *error = NULL;
  gpointer obj = wrong_type ();
  g_assert_cmpuint (dtls_openssl_connection_get_max_payload (obj, &error), ==, 0);
  g_assert_no_error (error);
  g_object_unref (obj);
}

static void
bad_max_payload_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = preset_error ();
  g_assert_cmpuint (dtls_openssl_connection_get_max_payload (conn, &error), ==, 0);
  check_preset_untouched (error);
  g_object_unref (conn);
}

static void
bad_export_null_conn (void)
{
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_export_keying_material (NULL, "EXTRACTOR-dtls_srtp", 60, NULL, &error));
  g_assert_no_error (error);
}

static void
bad_export_wrong_conn (void)
{
  GError *error = NULL;
  gpointer obj = wrong_type ();
  g_assert_null (dtls_openssl_connection_export_keying_material (obj, "EXTRACTOR-dtls_srtp", 60, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (obj);
}

static void
bad_export_null_label (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_export_keying_material (conn, NULL, 60, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (conn);
}

static void
bad_export_zero_length (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = NULL;
  g_assert_null (dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 0, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (conn);
}

static void
bad_export_error_set (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = preset_error ();
  g_assert_null (dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 60, NULL, &error));
  check_preset_untouched (error);
  g_object_unref (conn);
}

/* server_connection_new */

static void
bad_server_new_null_base (void)
{
  GError *error = NULL;
  g_assert_null (dtls_openssl_server_connection_new (NULL, NULL, &error));
  g_assert_no_error (error);
}

static void
bad_server_new_wrong_certificate (void)
{
  GError *error = NULL;
  GSocket *sock = udp_socket (9);
  GObject *obj = g_object_new (G_TYPE_OBJECT, NULL);
  g_assert_null (dtls_openssl_server_connection_new (G_DATAGRAM_BASED (sock), (GTlsCertificate *) obj, &error));
  g_assert_no_error (error);
  g_object_unref (obj);
  g_object_unref (sock);
}

static void
bad_server_new_error_set (void)
{
  GSocket *sock = udp_socket (9);
  GError *error = preset_error ();
  g_assert_null (dtls_openssl_server_connection_new (G_DATAGRAM_BASED (sock), NULL, &error));
  check_preset_untouched (error);
  g_object_unref (sock);
}

static const BadArgCase bad_arg_cases[] = {
  { "server-new/null-base", bad_server_new_null_base, ASSERTION ("G_IS_DATAGRAM_BASED (base_socket)") },
  { "server-new/wrong-certificate", bad_server_new_wrong_certificate,
    ASSERTION ("certificate == NULL || G_IS_TLS_CERTIFICATE (certificate)") },
  { "server-new/error-set", bad_server_new_error_set, ERROR_SET },
  { "client-new/null-base", bad_new_null_base, ASSERTION ("G_IS_DATAGRAM_BASED (base_socket)") },
  { "client-new/wrong-base", bad_new_wrong_base, ASSERTION ("G_IS_DATAGRAM_BASED (base_socket)") },
  { "client-new/wrong-identity", bad_new_wrong_identity,
    ASSERTION ("server_identity == NULL || G_IS_SOCKET_CONNECTABLE (server_identity)") },
  { "client-new/error-set", bad_new_error_set, ERROR_SET },
  { "send-bytes/null-conn", bad_send_null_conn, NOT_CONN },
  { "send-bytes/wrong-conn", bad_send_wrong_conn, NOT_CONN },
  { "send-bytes/null-bytes", bad_send_null_bytes, ASSERTION ("bytes != NULL") },
  { "send-bytes/error-set", bad_send_error_set, ERROR_SET },
  { "receive-bytes/null-conn", bad_receive_null_conn, NOT_CONN },
  { "receive-bytes/wrong-conn", bad_receive_wrong_conn, NOT_CONN },
  { "receive-bytes/error-set", bad_receive_error_set, ERROR_SET },
  { "send-bytes-async/null-conn", bad_send_async_null_conn, NOT_CONN },
  { "send-bytes-async/wrong-conn", bad_send_async_wrong_conn, NOT_CONN },
  { "send-bytes-async/null-bytes", bad_send_async_null_bytes, ASSERTION ("bytes != NULL") },
  { "send-bytes-finish/null-conn", bad_send_finish_null_conn, NOT_CONN },
  { "send-bytes-finish/wrong-conn", bad_send_finish_wrong_conn, NOT_CONN },
  { "send-bytes-finish/foreign-result", bad_send_finish_foreign_result, ASSERTION ("g_task_is_valid (result, conn)") },
  { "send-bytes-finish/error-set", bad_send_finish_error_set, ERROR_SET },
  { "receive-bytes-async/null-conn", bad_receive_async_null_conn, NOT_CONN },
  { "receive-bytes-async/wrong-conn", bad_receive_async_wrong_conn, NOT_CONN },
  { "receive-bytes-finish/null-conn", bad_receive_finish_null_conn, NOT_CONN },
  { "receive-bytes-finish/wrong-conn", bad_receive_finish_wrong_conn, NOT_CONN },
  { "receive-bytes-finish/foreign-result", bad_receive_finish_foreign_result, ASSERTION ("g_task_is_valid (result, conn)") },
  { "receive-bytes-finish/error-set", bad_receive_finish_error_set, ERROR_SET },
  { "get-mtu/null-conn", bad_get_mtu_null_conn, NOT_CONN },
  { "get-mtu/wrong-conn", bad_get_mtu_wrong_conn, NOT_CONN },
  { "set-mtu/null-conn", bad_set_mtu_null_conn, NOT_CONN },
  { "set-mtu/wrong-conn", bad_set_mtu_wrong_conn, NOT_CONN },
  { "set-mtu/error-set", bad_set_mtu_error_set, ERROR_SET },
  { "get-max-payload/null-conn", bad_max_payload_null_conn, NOT_CONN },
  { "get-max-payload/wrong-conn", bad_max_payload_wrong_conn, NOT_CONN },
  { "get-max-payload/error-set", bad_max_payload_error_set, ERROR_SET },
  { "export-keying-material/null-conn", bad_export_null_conn, NOT_CONN },
  { "export-keying-material/wrong-conn", bad_export_wrong_conn, NOT_CONN },
  { "export-keying-material/null-label", bad_export_null_label, ASSERTION ("label != NULL") },
  { "export-keying-material/zero-length", bad_export_zero_length, ASSERTION ("length > 0") },
  { "export-keying-material/error-set", bad_export_error_set, ERROR_SET },
};

static void
test_bad_args (gconstpointer data)
{
  const BadArgCase *c = data;

  if (g_test_subprocess ())
    {
      /* Keep going after the CRITICAL to check the returned value. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      c->run ();
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr (c->stderr_pattern);
  /* Exactly one CRITICAL: the checked argument, nothing after it. */
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*CRITICAL*");
}

/* ------------------------------------------------------------------------ */
/* Before the handshake */

static void
test_not_connected (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  GError *error = NULL;

  g_assert_cmpuint (dtls_openssl_connection_get_max_payload (conn, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  g_assert_null (dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 60, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED);
  g_clear_error (&error);

  /* NULL error is fine too. */
  g_assert_cmpuint (dtls_openssl_connection_get_max_payload (conn, NULL), ==, 0);
  g_assert_null (dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 60, NULL, NULL));

  g_object_unref (conn);
}

static void
test_mtu (void)
{
  DtlsOpensslConnection *conn = idle_connection ();
  guint prop = 0;

  GError *error = NULL;

  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 1400);
  g_assert_true (dtls_openssl_connection_set_mtu (conn, 256, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 256);
  g_assert_true (dtls_openssl_connection_set_mtu (conn, 65507, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 65507);
  /* Out of range: a GError, nothing changes. */
  g_assert_false (dtls_openssl_connection_set_mtu (conn, 255, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (dtls_openssl_connection_set_mtu (conn, 65508, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (dtls_openssl_connection_set_mtu (conn, 0, NULL));
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 65507);
  /* No payload before the handshake. */
  g_object_get (conn, "max-payload", &prop, NULL);
  g_assert_cmpuint (prop, ==, 0);
  g_assert_true (dtls_openssl_connection_set_mtu (conn, 1200, NULL));
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 1200);
  g_object_get (conn, "mtu", &prop, NULL);
  g_assert_cmpuint (prop, ==, 1200);
  g_object_set (conn, "mtu", 1000, NULL);
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 1000);

  g_object_unref (conn);
}

/* ------------------------------------------------------------------------ */
/* Against the echo peer */

static const char *
peer_pki (void)
{
  return g_getenv ("DTLS_TEST_PKI");
}

static gboolean
have_peer (void)
{
  if (peer_pki () && g_getenv ("DTLS_TEST_PORT"))
    return TRUE;
  g_test_skip ("no peer: run through tests/c/run-with-peer.sh (DTLS_TEST_PKI, DTLS_TEST_PORT)");
  return FALSE;
}

/* A client for the peer, verified against ca.pem, not yet handshaken. */
static DtlsOpensslConnection *
peer_connection (void)
{
  GError *error = NULL;
  ensure_backend ();
  guint16 port = (guint16) atoi (g_getenv ("DTLS_TEST_PORT"));

  GSocket *sock = udp_socket (port);
  GSocketConnectable *identity = g_network_address_new ("server.example.com", port);
  DtlsOpensslClientConnection *client =
    dtls_openssl_client_connection_new (G_DATAGRAM_BASED (sock), identity, &error);
  g_assert_no_error (error);
  g_assert_nonnull (client);

  char *ca = g_build_filename (peer_pki (), "ca.pem", NULL);
  GTlsDatabase *db = g_tls_file_database_new (ca, &error);
  g_assert_no_error (error);
  /* GIO_USE_TLS=dtls-openssl: the file database is ours too. */
  g_assert_cmpstr (G_OBJECT_TYPE_NAME (db), ==, "DtlsOpensslFileDatabase");
  g_dtls_connection_set_database (G_DTLS_CONNECTION (client), db);

  g_free (ca);
  g_object_unref (db);
  g_object_unref (identity);
  g_object_unref (sock);
  return DTLS_OPENSSL_CONNECTION (client);
}

static void
close_connection (DtlsOpensslConnection *conn)
{
  GError *error = NULL;
  g_assert_true (g_dtls_connection_close (G_DTLS_CONNECTION (conn), NULL, &error));
  g_assert_no_error (error);
}

/* Sends @len bytes of a pattern and checks the peer echoes them. */
static void
echo (DtlsOpensslConnection *conn, gsize len)
{
  GError *error = NULL;
  guint8 *data = g_malloc (len);
  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) ('a' + i % 26);
  GBytes *out = g_bytes_new_take (data, len);

  g_assert_true (dtls_openssl_connection_send_bytes (conn, out, TIMEOUT_US, NULL, &error));
  g_assert_no_error (error);
  GBytes *in = dtls_openssl_connection_receive_bytes (conn, 2048, TIMEOUT_US, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (in);
  g_assert_true (g_bytes_equal (in, out));

  g_bytes_unref (in);
  g_bytes_unref (out);
}

static void
test_peer_sync (void)
{
  if (!have_peer ())
    return;
  GError *error = NULL;
  DtlsOpensslConnection *conn = peer_connection ();
  GDtlsConnection *dtls = G_DTLS_CONNECTION (conn);

  g_assert_true (g_dtls_connection_handshake (dtls, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_dtls_connection_get_protocol_version (dtls), ==, G_TLS_PROTOCOL_VERSION_DTLS_1_2);
  g_assert_cmpint (g_dtls_connection_get_peer_certificate_errors (dtls), ==, 0);
  GTlsCertificate *peer = g_dtls_connection_get_peer_certificate (dtls);
  g_assert_nonnull (peer);
  g_assert_true (DTLS_OPENSSL_IS_CERTIFICATE (peer));

  echo (conn, 5);
  echo (conn, 1);
  echo (conn, 254);

  /* Payload and MTU. */
  gsize payload = dtls_openssl_connection_get_max_payload (conn, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (payload, >, 0);
  g_assert_cmpuint (payload, <, dtls_openssl_connection_get_mtu (conn));

  /* Keying material (RFC 5705): deterministic for a label and context. */
  GBytes *km = dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 60, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (km);
  g_assert_cmpuint (g_bytes_get_size (km), ==, 60);
  GBytes *km2 = dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 60, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (km, km2));
  GBytes *ctx = g_bytes_new_static ("context", 7);
  GBytes *km3 = dtls_openssl_connection_export_keying_material (conn, "EXTRACTOR-dtls_srtp", 60, ctx, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (km3), ==, 60);
  g_assert_false (g_bytes_equal (km, km3));
  g_bytes_unref (ctx);
  g_bytes_unref (km3);
  g_bytes_unref (km2);
  g_bytes_unref (km);

  close_connection (conn);

  /* After close. */
  GBytes *b = g_bytes_new_static ("late", 4);
  g_assert_false (dtls_openssl_connection_send_bytes (conn, b, TIMEOUT_US, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  g_clear_error (&error);
  g_bytes_unref (b);

  g_object_unref (conn);
}

static void
test_peer_implicit_handshake (void)
{
  if (!have_peer ())
    return;
  DtlsOpensslConnection *conn = peer_connection ();
  /* The first send performs the handshake. */
  echo (conn, 11);
  g_assert_cmpint (g_dtls_connection_get_protocol_version (G_DTLS_CONNECTION (conn)), ==,
                   G_TLS_PROTOCOL_VERSION_DTLS_1_2);
  close_connection (conn);
  g_object_unref (conn);
}

static void
test_peer_too_large (void)
{
  if (!have_peer ())
    return;
  GError *error = NULL;
  DtlsOpensslConnection *conn = peer_connection ();

  char data[200];
  memset (data, 'z', sizeof data);
  GBytes *out = g_bytes_new (data, sizeof data);
  g_assert_true (dtls_openssl_connection_send_bytes (conn, out, TIMEOUT_US, NULL, &error));
  g_assert_no_error (error);

  /* Too small a buffer: an error, and the datagram stays queued. */
  GBytes *in = dtls_openssl_connection_receive_bytes (conn, 16, TIMEOUT_US, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  g_assert_null (in);
  g_clear_error (&error);
  in = dtls_openssl_connection_receive_bytes (conn, sizeof data - 1, 0, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  g_assert_null (in);
  g_clear_error (&error);

  in = dtls_openssl_connection_receive_bytes (conn, sizeof data, TIMEOUT_US, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (in, out));
  g_bytes_unref (in);

  /* Nothing else is queued. */
  in = dtls_openssl_connection_receive_bytes (conn, 2048, 0, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_assert_null (in);
  g_clear_error (&error);

  g_bytes_unref (out);
  close_connection (conn);
  g_object_unref (conn);
}

static void
test_peer_mtu (void)
{
  if (!have_peer ())
    return;
  GError *error = NULL;
  DtlsOpensslConnection *conn = peer_connection ();

  /* Set before the handshake: the handshake itself fits in 512 bytes. */
  g_assert_true (dtls_openssl_connection_set_mtu (conn, 512, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 512);
  echo (conn, 100);

  gsize payload = dtls_openssl_connection_get_max_payload (conn, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (payload, >, 0);
  g_assert_cmpuint (payload, <, 512);

  /* One byte over the payload: refused locally, nothing sent. */
  guint8 *big = g_malloc0 (payload + 1);
  GBytes *b = g_bytes_new_take (big, payload + 1);
  g_assert_false (dtls_openssl_connection_send_bytes (conn, b, TIMEOUT_US, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  g_clear_error (&error);
  g_bytes_unref (b);

  /* A larger MTU gives a larger payload. */
  g_assert_true (dtls_openssl_connection_set_mtu (conn, 1400, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (dtls_openssl_connection_get_mtu (conn), ==, 1400);
  gsize payload2 = dtls_openssl_connection_get_max_payload (conn, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (payload2, >, payload);
  echo (conn, 200);

  close_connection (conn);
  g_object_unref (conn);
}

typedef struct
{
  GMainLoop *loop;
  DtlsOpensslConnection *conn;
  GBytes *sent;
  GBytes *received;
  GError *error;
  int step;
} AsyncEcho;

static void received_cb (GObject *source, GAsyncResult *result, gpointer user_data);

static void
sent_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AsyncEcho *a = user_data;
  g_assert_true (source == G_OBJECT (a->conn));
  if (!dtls_openssl_connection_send_bytes_finish (a->conn, result, &a->error))
    {
      g_main_loop_quit (a->loop);
      return;
    }
  a->step = 1;
  dtls_openssl_connection_receive_bytes_async (a->conn, 2048, G_PRIORITY_DEFAULT, NULL, received_cb, a);
}

static void
received_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AsyncEcho *a = user_data;
  g_assert_true (source == G_OBJECT (a->conn));
  a->received = dtls_openssl_connection_receive_bytes_finish (a->conn, result, &a->error);
  a->step = 2;
  g_main_loop_quit (a->loop);
}

static gboolean
async_timeout (gpointer user_data)
{
  AsyncEcho *a = user_data;
  g_printerr ("async echo: timed out at step %d\n", a->step);
  g_main_loop_quit (a->loop);
  return G_SOURCE_REMOVE;
}

static void
test_peer_async (void)
{
  if (!have_peer ())
    return;
  AsyncEcho a = { 0 };
  a.loop = g_main_loop_new (NULL, FALSE);
  a.conn = peer_connection ();
  guint timeout = g_timeout_add_seconds (60, async_timeout, &a);

  /* Three round trips; the first send performs the handshake. */
  const char *messages[] = { "async one", "async two", "async three" };
  for (gsize i = 0; i < G_N_ELEMENTS (messages); i++)
    {
      a.sent = g_bytes_new_static (messages[i], strlen (messages[i]));
      a.step = 0;
      dtls_openssl_connection_send_bytes_async (a.conn, a.sent, G_PRIORITY_DEFAULT, NULL, sent_cb, &a);
      g_main_loop_run (a.loop);
      g_assert_no_error (a.error);
      g_assert_cmpint (a.step, ==, 2);
      g_assert_nonnull (a.received);
      g_assert_true (g_bytes_equal (a.received, a.sent));
      g_clear_pointer (&a.received, g_bytes_unref);
      g_clear_pointer (&a.sent, g_bytes_unref);
    }

  g_source_remove (timeout);
  close_connection (a.conn);
  g_object_unref (a.conn);
  g_main_loop_unref (a.loop);
}

/* ------------------------------------------------------------------------ */
/* Our client and our server in one process, through the header's API */

static GSocket *
bound_socket (void)
{
  GError *error = NULL;
  GSocket *sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  GSocketAddress *any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_assert_true (g_socket_bind (sock, any, FALSE, &error));
  g_assert_no_error (error);
  g_object_unref (any);
  return sock;
}

static void
connect_to (GSocket *sock, GSocket *peer)
{
  GError *error = NULL;
  GSocketAddress *addr = g_socket_get_local_address (peer, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (sock, addr, NULL, &error));
  g_assert_no_error (error);
  g_object_unref (addr);
}

typedef struct
{
  DtlsOpensslConnection *conn;
  GError *error;
} ServerRun;

/* The server echoes one datagram (its handshake is implicit). */
static gpointer
serve_one (gpointer data)
{
  ServerRun *run = data;
  GBytes *got = dtls_openssl_connection_receive_bytes (run->conn, 2048, 5 * G_USEC_PER_SEC, NULL, &run->error);
  if (got)
    {
      dtls_openssl_connection_send_bytes (run->conn, got, -1, NULL, &run->error);
      g_bytes_unref (got);
    }
  return NULL;
}

static void
test_server_link (void)
{
  const char *pki = g_getenv ("DTLS_TEST_PKI");
  if (!pki)
    {
      g_test_skip ("needs DTLS_TEST_PKI: run through tests/c/run-with-peer.sh");
      return;
    }
  GError *error = NULL;
  GSocket *a = bound_socket (), *b = bound_socket ();
  connect_to (a, b);
  connect_to (b, a);

  char *path = g_build_filename (pki, "server-key.pem", NULL);
  GTlsCertificate *cert = g_tls_certificate_new_from_file (path, &error);
  g_assert_no_error (error);
  g_free (path);
  DtlsOpensslServerConnection *server =
    dtls_openssl_server_connection_new (G_DATAGRAM_BASED (b), cert, &error);
  g_assert_no_error (error);
  g_assert_true (G_IS_DTLS_SERVER_CONNECTION (server));

  GSocketConnectable *id = g_network_address_new ("server.example.com", 0);
  DtlsOpensslClientConnection *client =
    dtls_openssl_client_connection_new (G_DATAGRAM_BASED (a), id, &error);
  g_assert_no_error (error);
  path = g_build_filename (pki, "ca.pem", NULL);
  GTlsDatabase *db = g_tls_file_database_new (path, &error);
  g_assert_no_error (error);
  g_free (path);
  g_dtls_connection_set_database (G_DTLS_CONNECTION (client), db);

  ServerRun run = { DTLS_OPENSSL_CONNECTION (server), NULL };
  GThread *thread = g_thread_new ("server", serve_one, &run);
  GBytes *hello = g_bytes_new_static ("hello, server", 13);
  g_assert_true (dtls_openssl_connection_send_bytes (DTLS_OPENSSL_CONNECTION (client), hello, -1, NULL, &error));
  g_assert_no_error (error);
  GBytes *echo = dtls_openssl_connection_receive_bytes (DTLS_OPENSSL_CONNECTION (client), 2048,
                                                        5 * G_USEC_PER_SEC, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (hello, echo));
  g_thread_join (thread);
  g_assert_no_error (run.error);

  /* Both ends export the same keying material. */
  GBytes *k1 = dtls_openssl_connection_export_keying_material (DTLS_OPENSSL_CONNECTION (client),
                                                               "EXTRACTOR-dtls_srtp", 60, NULL, &error);
  g_assert_no_error (error);
  GBytes *k2 = dtls_openssl_connection_export_keying_material (DTLS_OPENSSL_CONNECTION (server),
                                                               "EXTRACTOR-dtls_srtp", 60, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (k1, k2));

  g_bytes_unref (k1);
  g_bytes_unref (k2);
  g_bytes_unref (hello);
  g_bytes_unref (echo);
  g_object_unref (client);
  g_object_unref (server);
  g_object_unref (db);
  g_object_unref (id);
  g_object_unref (cert);
  g_object_unref (a);
  g_object_unref (b);
}

/* ------------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  /* GIO reads it when it first picks a TLS backend. */
  g_setenv ("GIO_USE_TLS", "dtls-openssl", FALSE);
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/types/hierarchy", test_types);
  g_test_add_func ("/backend/register", test_register_backend);
  g_test_add_func ("/client/new", test_client_new);
  for (gsize i = 0; i < G_N_ELEMENTS (bad_arg_cases); i++)
    {
      char *path = g_strconcat ("/bad-args/", bad_arg_cases[i].path, NULL);
      g_test_add_data_func (path, &bad_arg_cases[i], test_bad_args);
      g_free (path);
    }
  g_test_add_func ("/client/not-connected", test_not_connected);
  g_test_add_func ("/client/mtu", test_mtu);
  g_test_add_func ("/peer/sync", test_peer_sync);
  g_test_add_func ("/peer/implicit-handshake", test_peer_implicit_handshake);
  g_test_add_func ("/peer/message-too-large", test_peer_too_large);
  g_test_add_func ("/peer/mtu", test_peer_mtu);
  g_test_add_func ("/peer/async", test_peer_async);
  g_test_add_func ("/server/link", test_server_link);

  return g_test_run ();
}
