/* Black-box tests of a GIO TLS backend through GIO's public API only.
 *
 * Build:
 *   cc -o test-gio-backend tests/c/test-gio-backend.c $(pkg-config --cflags --libs gio-2.0)
 *
 * Run:
 *   tests/files/make-pki.sh /tmp/pki
 *   DTLS_TEST_PKI=/tmp/pki DTLS_EXPECT_BACKEND=DtlsOpensslBackend \
 *     GIO_USE_TLS=dtls-openssl ./test-gio-backend
 *
 * Environment:
 *   DTLS_TEST_PKI        directory made by tests/files/make-pki.sh (required;
 *                        regenerate it before each run: some checks compare
 *                        validity dates against "now").
 *   DTLS_EXPECT_BACKEND  GType name the default backend must have. When set,
 *                        the gio-dtls-openssl semantics are asserted strictly:
 *                        DTLS supported, TLS connections refused with
 *                        G_IO_ERROR_NOT_SUPPORTED, and every check where
 *                        glib-networking's GnuTLS backend is known to behave
 *                        differently (those are only reported with
 *                        g_test_message when the variable is unset).
 *
 * The same binary is validated against glib-networking:
 *   GIO_USE_TLS=gnutls DTLS_TEST_PKI=/tmp/pki ./test-gio-backend
 */

#include <gio/gio.h>

static const gchar *pki_dir;
static const gchar *expect_backend; /* NULL: any backend, lenient mode */

#define STRICT (expect_backend != NULL)

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */

static gchar *
pki_path (const gchar *name)
{
  return g_build_filename (pki_dir, name, NULL);
}

static gchar *
read_pki_file (const gchar *name,
               gsize       *length)
{
  GError *error = NULL;
  gchar *path = pki_path (name);
  gchar *contents = NULL;

  g_file_get_contents (path, &contents, length, &error);
  g_assert_no_error (error);
  g_free (path);
  return contents;
}

static GTlsCertificate *
load_cert (const gchar *name)
{
  GError *error = NULL;
  gchar *path = pki_path (name);
  GTlsCertificate *cert;

  cert = g_tls_certificate_new_from_file (path, &error);
  g_assert_no_error (error);
  g_assert_true (G_IS_TLS_CERTIFICATE (cert));
  g_free (path);
  return cert;
}

/* A certificate built from the single PEM certificate in @name, with an
 * explicit issuer link (possibly NULL). Lets a test build chains that
 * g_tls_certificate_new_from_file() would not produce (unordered, duplicates,
 * cross-signed). */
static GTlsCertificate *
cert_with_issuer (const gchar     *name,
                  GTlsCertificate *issuer)
{
  GError *error = NULL;
  gchar *pem = read_pki_file (name, NULL);
  GObject *cert;

  cert = g_initable_new (g_tls_backend_get_certificate_type (g_tls_backend_get_default ()),
                         NULL, &error,
                         "certificate-pem", pem,
                         "issuer", issuer,
                         NULL);
  g_assert_no_error (error);
  g_assert_true (G_IS_TLS_CERTIFICATE (cert));
  g_free (pem);
  return G_TLS_CERTIFICATE (cert);
}

static GTlsDatabase *
load_database (const gchar *name)
{
  GError *error = NULL;
  gchar *path = pki_path (name);
  GTlsDatabase *db;

  db = g_tls_file_database_new (path, &error);
  g_assert_no_error (error);
  g_assert_true (G_IS_TLS_DATABASE (db));
  g_assert_true (G_IS_TLS_FILE_DATABASE (db));
  g_free (path);
  return db;
}

static guint
chain_length (GTlsCertificate *cert)
{
  guint n = 0;

  for (; cert != NULL; cert = g_tls_certificate_get_issuer (cert))
    {
      n++;
      g_assert_cmpuint (n, <, 16); /* a loop in the issuer links */
    }
  return n;
}

static gchar *
flags_to_string (GTlsCertificateFlags flags)
{
  if (flags == 0)
    return g_strdup ("0");
  return g_flags_to_string (G_TYPE_TLS_CERTIFICATE_FLAGS, flags);
}

static void
report_flags (const gchar          *what,
              GTlsCertificateFlags  got)
{
  gchar *s = flags_to_string (got);
  g_test_message ("%s: %s (0x%x)", what, s, got);
  g_free (s);
}

/* Exact comparison, always asserted. */
static void
check_flags (const gchar          *what,
             GTlsCertificateFlags  got,
             GTlsCertificateFlags  want)
{
  report_flags (what, got);
  g_assert_cmphex (got, ==, want);
}

/* Exact comparison asserted only with DTLS_EXPECT_BACKEND; otherwise a
 * difference (a known GnuTLS one) is only reported. */
static void
check_flags_strict (const gchar          *what,
                    GTlsCertificateFlags  got,
                    GTlsCertificateFlags  want)
{
  report_flags (what, got);
  if (STRICT)
    g_assert_cmphex (got, ==, want);
  else if (got != want)
    {
      gchar *g = flags_to_string (got), *w = flags_to_string (want);
      g_test_message ("NOT ASSERTED (backend differs from the expected semantics): "
                      "%s: got %s, expected %s", what, g, w);
      g_free (g);
      g_free (w);
    }
}

static GTlsCertificateFlags
verify_cert (GTlsCertificate    *cert,
             GSocketConnectable *identity,
             GTlsCertificate    *trusted_ca)
{
  return g_tls_certificate_verify (cert, identity, trusted_ca);
}

static GTlsCertificateFlags
verify_chain (GTlsDatabase    *db,
              GTlsCertificate *chain,
              const gchar     *purpose,
              const gchar     *hostname)
{
  GError *error = NULL;
  GSocketConnectable *identity = NULL;
  GTlsCertificateFlags flags;

  if (hostname)
    identity = g_network_address_new (hostname, 0);
  flags = g_tls_database_verify_chain (db, chain, purpose, identity, NULL,
                                       G_TLS_DATABASE_VERIFY_NONE, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&identity);
  return flags;
}

static void
assert_error_and_report (const GError *error,
                         GQuark        domain,
                         gint          code,
                         const gchar  *what)
{
  g_assert_nonnull (error);
  g_test_message ("%s: error %s/%d: %s", what, g_quark_to_string (error->domain),
                  error->code, error->message);
  g_assert_error (error, domain, code);
}

/* Minimal DER walk: return the complete TLV of the subject Name of a DER
 * certificate (GIO offers no accessor for raw distinguished names).
 * Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
 * serialNumber, signature, issuer, validity, subject, ... }, ... } */
static gboolean
der_read_tlv (const guint8 **p,
              const guint8  *end,
              guint8        *tag,
              const guint8 **content,
              gsize         *content_len)
{
  const guint8 *q = *p;
  gsize len;

  if (end - q < 2)
    return FALSE;
  *tag = *q++;
  len = *q++;
  if (len & 0x80)
    {
      guint n = len & 0x7f;
      if (n == 0 || n > 4 || (gsize) (end - q) < n)
        return FALSE;
      len = 0;
      while (n--)
        len = (len << 8) | *q++;
    }
  if ((gsize) (end - q) < len)
    return FALSE;
  *content = q;
  *content_len = len;
  *p = q + len;
  return TRUE;
}

static GByteArray *
cert_subject_der (GTlsCertificate *cert)
{
  GByteArray *der = NULL, *subject;
  const guint8 *p, *end, *content, *start = NULL;
  gsize len;
  guint8 tag;
  int field;

  g_object_get (cert, "certificate", &der, NULL);
  g_assert_nonnull (der);

  p = der->data;
  end = der->data + der->len;
  g_assert_true (der_read_tlv (&p, end, &tag, &content, &len) && tag == 0x30); /* Certificate */
  p = content;
  end = content + len;
  g_assert_true (der_read_tlv (&p, end, &tag, &content, &len) && tag == 0x30); /* tbsCertificate */
  p = content;
  end = content + len;
  /* fields: [version], serial, signature, issuer, validity, subject */
  for (field = 0; field < 6; field++)
    {
      start = p;
      g_assert_true (der_read_tlv (&p, end, &tag, &content, &len));
      if (field == 0 && tag != 0xa0)
        field++; /* no explicit version: this was already the serial number */
    }
  g_assert_cmpuint (tag, ==, 0x30);

  subject = g_byte_array_new ();
  g_byte_array_append (subject, start, p - start);
  g_byte_array_unref (der);
  return subject;
}

static gboolean
bytes_equal_str (GBytes      *bytes,
                 const gchar *str)
{
  gsize len;
  const gchar *data = g_bytes_get_data (bytes, &len);

  return len == strlen (str) && memcmp (data, str, len) == 0;
}

static gboolean
dns_names_contain (GPtrArray   *names,
                   const gchar *name)
{
  guint i;

  for (i = 0; i < names->len; i++)
    if (bytes_equal_str (names->pdata[i], name))
      return TRUE;
  return FALSE;
}

static gboolean
ip_addresses_contain (GPtrArray   *addrs,
                      const gchar *addr_str)
{
  GInetAddress *want = g_inet_address_new_from_string (addr_str);
  gboolean found = FALSE;
  guint i;

  g_assert_nonnull (want);
  for (i = 0; i < addrs->len; i++)
    {
      g_assert_true (G_IS_INET_ADDRESS (addrs->pdata[i]));
      if (g_inet_address_equal (addrs->pdata[i], want))
        found = TRUE;
    }
  g_object_unref (want);
  return found;
}

static GIOStream *
memory_io_stream (void)
{
  GInputStream *in = g_memory_input_stream_new ();
  GOutputStream *out = g_memory_output_stream_new_resizable ();
  GIOStream *stream = g_simple_io_stream_new (in, out);

  g_object_unref (in);
  g_object_unref (out);
  return stream;
}

/* ------------------------------------------------------------------------ */
/* backend                                                                    */

static void
test_backend_default (void)
{
  GTlsBackend *backend = g_tls_backend_get_default ();

  g_assert_true (G_IS_TLS_BACKEND (backend));
  g_test_message ("default TLS backend: %s", G_OBJECT_TYPE_NAME (backend));
  g_test_message ("supports_tls=%d supports_dtls=%d",
                  g_tls_backend_supports_tls (backend),
                  g_tls_backend_supports_dtls (backend));

  if (STRICT)
    {
      g_assert_cmpstr (G_OBJECT_TYPE_NAME (backend), ==, expect_backend);
      g_assert_true (g_tls_backend_supports_dtls (backend));
      g_assert_cmpuint (g_tls_backend_get_dtls_client_connection_type (backend), !=, G_TYPE_INVALID);
      g_assert_cmpuint (g_tls_backend_get_dtls_server_connection_type (backend), !=, G_TYPE_INVALID);
    }

  /* dtls-openssl implements DTLS only and says so: stream TLS constructors
   * fail with G_IO_ERROR_NOT_SUPPORTED. A full TLS backend says TRUE. */
  if (STRICT)
    g_assert_false (g_tls_backend_supports_tls (backend));
  else
    g_assert_true (g_tls_backend_supports_tls (backend));

  g_assert_cmpuint (g_tls_backend_get_certificate_type (backend), !=, G_TYPE_INVALID);
  g_assert_true (g_type_is_a (g_tls_backend_get_certificate_type (backend), G_TYPE_TLS_CERTIFICATE));
  g_assert_cmpuint (g_tls_backend_get_file_database_type (backend), !=, G_TYPE_INVALID);
  g_assert_true (g_type_is_a (g_tls_backend_get_file_database_type (backend), G_TYPE_TLS_FILE_DATABASE));

  /* The default backend is a singleton. */
  g_assert_true (g_tls_backend_get_default () == backend);
}

static void
test_backend_tls_connections (void)
{
  GError *error = NULL;
  GIOStream *stream = memory_io_stream ();
  GSocketConnectable *identity = g_network_address_new ("server.example.com", 443);
  GIOStream *conn;

  conn = g_tls_client_connection_new (stream, identity, &error);
  if (conn)
    {
      g_assert_no_error (error);
      g_assert_true (G_IS_TLS_CLIENT_CONNECTION (conn));
      g_test_message ("g_tls_client_connection_new: %s", G_OBJECT_TYPE_NAME (conn));
    }
  else
    {
      g_assert_nonnull (error); /* never NULL without an error */
      g_test_message ("g_tls_client_connection_new: %s", error->message);
    }
  if (STRICT)
    {
      g_assert_null (conn);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
    }
  g_clear_error (&error);
  g_clear_object (&conn);

  conn = g_tls_server_connection_new (stream, NULL, &error);
  if (conn)
    {
      g_assert_no_error (error);
      g_assert_true (G_IS_TLS_SERVER_CONNECTION (conn));
      g_test_message ("g_tls_server_connection_new: %s", G_OBJECT_TYPE_NAME (conn));
    }
  else
    {
      g_assert_nonnull (error);
      g_test_message ("g_tls_server_connection_new: %s", error->message);
    }
  if (STRICT)
    {
      g_assert_null (conn);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
    }
  g_clear_error (&error);
  g_clear_object (&conn);

  g_object_unref (identity);
  g_object_unref (stream);
}

/* Only with DTLS_EXPECT_BACKEND: constructing a DTLS client on a UDP socket
 * works (no I/O happens here) and its basic properties read back. */
static void
test_backend_dtls_client_construct (void)
{
  GError *error = NULL;
  GSocket *sock;
  GSocketConnectable *identity;
  GDatagramBased *conn;
  GSocketConnectable *got_identity = NULL;
  GDatagramBased *base = NULL;

  if (!STRICT)
    {
      g_test_skip ("DTLS is only expected of the backend named by DTLS_EXPECT_BACKEND");
      return;
    }

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                       G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  identity = g_network_address_new ("server.example.com", 4433);

  conn = g_dtls_client_connection_new (G_DATAGRAM_BASED (sock), identity, &error);
  g_assert_no_error (error);
  g_assert_true (G_IS_DTLS_CLIENT_CONNECTION (conn));
  g_assert_true (G_IS_DTLS_CONNECTION (conn));

  g_object_get (conn, "server-identity", &got_identity, "base-socket", &base, NULL);
  g_assert_true (got_identity == identity);
  g_assert_true (base == G_DATAGRAM_BASED (sock));

  g_clear_object (&got_identity);
  g_clear_object (&base);
  g_object_unref (conn);
  g_object_unref (identity);
  g_object_unref (sock);
}

/* Only with DTLS_EXPECT_BACKEND: malformed message arrays passed to
 * g_datagram_based_receive_messages / send_messages on a DTLS connection.
 * Each is a CRITICAL naming the failed check (g_return_val_if_fail style, in
 * our log domain) and -1 with G_IO_ERROR_INVALID_ARGUMENT: never a crash, a
 * silent "success", or any I/O. Timeout 0, and the peer is a silent socket:
 * without the check, the call would start a handshake and answer
 * G_IO_ERROR_WOULD_BLOCK. Each case runs in a subprocess, which must not
 * crash and must log exactly one CRITICAL. */

typedef enum { RECEIVE, SEND } Direction;

typedef struct {
  const gchar *name;
  Direction direction;
  guint bad_message;      /* index of the malformed message (of 2) */
  gboolean null_vectors;  /* vectors NULL with num_vectors 3; else buffer NULL, size 10 */
  const gchar *stderr_pattern;
} BadMessageCase;

#define RECV_CRITICAL(expr) \
  "*dtls-openssl-CRITICAL*g_datagram_based_receive_messages: assertion '" expr "' failed*"
#define SEND_CRITICAL(expr) \
  "*dtls-openssl-CRITICAL*g_datagram_based_send_messages: assertion '" expr "' failed*"

static const BadMessageCase bad_message_cases[] = {
  { "receive/null-buffer", RECEIVE, 0, FALSE,
    RECV_CRITICAL ("messages[0].vectors[0].buffer != NULL || messages[0].vectors[0].size == 0") },
  { "receive/null-vectors", RECEIVE, 0, TRUE,
    RECV_CRITICAL ("messages[0].num_vectors == 0 || messages[0].vectors != NULL") },
  { "receive/second-message-null-buffer", RECEIVE, 1, FALSE,
    RECV_CRITICAL ("messages[1].vectors[0].buffer != NULL || messages[1].vectors[0].size == 0") },
  { "send/null-buffer", SEND, 0, FALSE,
    SEND_CRITICAL ("messages[0].vectors[0].buffer != NULL || messages[0].vectors[0].size == 0") },
  { "send/null-vectors", SEND, 0, TRUE,
    SEND_CRITICAL ("messages[0].num_vectors == 0 || messages[0].vectors != NULL") },
  { "send/second-message-null-vectors", SEND, 1, TRUE,
    SEND_CRITICAL ("messages[1].num_vectors == 0 || messages[1].vectors != NULL") },
};

/* A DTLS client on a UDP socket connected to *silent (bound, never read). */
static GDatagramBased *
client_to_silent_peer (GSocket **silent)
{
  GError *error = NULL;
  GInetAddress *loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  GSocketAddress *any = g_inet_socket_address_new (loopback, 0);
  GSocketAddress *peer_addr;
  GSocket *sock;
  GSocketConnectable *identity;
  GDatagramBased *conn;

  *silent = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                          G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_socket_bind (*silent, any, FALSE, &error);
  g_assert_no_error (error);
  peer_addr = g_socket_get_local_address (*silent, &error);
  g_assert_no_error (error);

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                       G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_socket_connect (sock, peer_addr, NULL, &error);
  g_assert_no_error (error);

  identity = g_network_address_new ("server.example.com", 4433);
  conn = g_dtls_client_connection_new (G_DATAGRAM_BASED (sock), identity, &error);
  g_assert_no_error (error);

  g_object_unref (identity);
  g_object_unref (sock);
  g_object_unref (peer_addr);
  g_object_unref (any);
  g_object_unref (loopback);
  return conn;
}

static void
run_bad_message_case (const BadMessageCase *c)
{
  GError *error = NULL;
  GSocket *silent;
  GDatagramBased *conn = client_to_silent_peer (&silent);
  guint8 buf[64];
  gssize queued;
  gint n;

  if (c->direction == RECEIVE)
    {
      GInputVector good = { buf, sizeof buf };
      GInputVector bad = { NULL, 10 };
      GInputMessage msgs[2] = { { 0 } };
      guint i;

      for (i = 0; i < 2; i++)
        {
          msgs[i].vectors = &good;
          msgs[i].num_vectors = 1;
        }
      msgs[c->bad_message].vectors = c->null_vectors ? NULL : &bad;
      msgs[c->bad_message].num_vectors = c->null_vectors ? 3 : 1;
      n = g_datagram_based_receive_messages (conn, msgs, 2, 0, 0, NULL, &error);
    }
  else
    {
      GOutputVector good = { "hello", 5 };
      GOutputVector bad = { NULL, 10 };
      GOutputMessage msgs[2] = { { 0 } };
      guint i;

      for (i = 0; i < 2; i++)
        {
          msgs[i].vectors = &good;
          msgs[i].num_vectors = 1;
        }
      msgs[c->bad_message].vectors = c->null_vectors ? NULL : &bad;
      msgs[c->bad_message].num_vectors = c->null_vectors ? 3 : 1;
      n = g_datagram_based_send_messages (conn, msgs, 2, 0, 0, NULL, &error);
      g_assert_cmpuint (msgs[0].bytes_sent, ==, 0);
    }
  g_assert_cmpint (n, ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* Nothing went out: not even a ClientHello. */
  queued = g_socket_receive_with_blocking (silent, (gchar *) buf, sizeof buf,
                                           FALSE, NULL, &error);
  g_assert_cmpint (queued, ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_clear_error (&error);

  g_object_unref (conn);
  g_object_unref (silent);
}

static void
test_dtls_bad_messages (gconstpointer data)
{
  const BadMessageCase *c = data;

  if (!STRICT)
    {
      g_test_skip ("only checked on the backend named by DTLS_EXPECT_BACKEND");
      return;
    }
  if (g_test_subprocess ())
    {
      /* Keep going after the CRITICAL to check what the call returned. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      run_bad_message_case (c);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr (c->stderr_pattern);
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*CRITICAL*");
}

/* The checks are not stricter than GIO: a NULL buffer of size 0 is a valid
 * (empty) vector. No CRITICAL (fatal here); the send starts the handshake,
 * which with timeout 0 would block. */
static void
test_dtls_empty_null_vector (void)
{
  GError *error = NULL;
  GSocket *silent;
  GDatagramBased *conn;
  GOutputVector empty = { NULL, 0 };
  GOutputMessage msg = { 0 };

  if (!STRICT)
    {
      g_test_skip ("only checked on the backend named by DTLS_EXPECT_BACKEND");
      return;
    }
  conn = client_to_silent_peer (&silent);
  msg.vectors = &empty;
  msg.num_vectors = 1;
  g_assert_cmpint (g_datagram_based_send_messages (conn, &msg, 1, 0, 0, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_clear_error (&error);
  g_object_unref (conn);
  g_object_unref (silent);
}

/* ------------------------------------------------------------------------ */
/* certificate properties                                                      */

static void
test_certificate_properties (void)
{
  GTlsCertificate *cert = load_cert ("server.pem");
  gchar *subject, *issuer;
  GDateTime *before, *after, *now;
  GPtrArray *dns, *ips;
  GTimeSpan span;
  guint i;

  subject = g_tls_certificate_get_subject_name (cert);
  issuer = g_tls_certificate_get_issuer_name (cert);
  g_test_message ("subject-name: %s", subject);
  g_test_message ("issuer-name: %s", issuer);
  g_assert_nonnull (subject);
  g_assert_nonnull (issuer);
  g_assert_nonnull (strstr (subject, "CN=server.example.com"));
  g_assert_nonnull (strstr (subject, "gio-dtls-openssl tests"));
  g_assert_nonnull (strstr (issuer, "Test Root CA"));
  g_assert_null (strstr (issuer, "server.example.com"));
  g_free (subject);
  g_free (issuer);

  before = g_tls_certificate_get_not_valid_before (cert);
  after = g_tls_certificate_get_not_valid_after (cert);
  g_assert_nonnull (before);
  g_assert_nonnull (after);
  now = g_date_time_new_now_utc ();
  {
    gchar *b = g_date_time_format_iso8601 (before), *a = g_date_time_format_iso8601 (after);
    g_test_message ("not-valid-before %s, not-valid-after %s", b, a);
    g_free (b);
    g_free (a);
  }
  g_assert_cmpint (g_date_time_compare (before, after), <, 0);
  /* make-pki.sh: notBefore = generation time, notAfter = +365 days. */
  span = g_date_time_difference (now, before);
  g_assert_cmpint (span, >, -5 * 60 * G_TIME_SPAN_SECOND);  /* not in the future */
  g_assert_cmpint (span, <, 7 * G_TIME_SPAN_DAY);           /* PKI made recently */
  span = g_date_time_difference (after, before);
  g_assert_cmpint (span, >=, 364 * G_TIME_SPAN_DAY);
  g_assert_cmpint (span, <=, 366 * G_TIME_SPAN_DAY);
  g_date_time_unref (before);
  g_date_time_unref (after);
  g_date_time_unref (now);

  dns = g_tls_certificate_get_dns_names (cert);
  g_assert_nonnull (dns);
  for (i = 0; i < dns->len; i++)
    {
      gsize len;
      const gchar *d = g_bytes_get_data (dns->pdata[i], &len);
      g_test_message ("dns-names[%u] = %.*s", i, (int) len, d);
    }
  g_assert_true (dns_names_contain (dns, "server.example.com"));
  g_assert_true (dns_names_contain (dns, "localhost"));
  g_assert_cmpuint (dns->len, ==, 2); /* IP SANs are not DNS names */
  g_ptr_array_unref (dns);

  ips = g_tls_certificate_get_ip_addresses (cert);
  g_assert_nonnull (ips);
  for (i = 0; i < ips->len; i++)
    {
      gchar *s = g_inet_address_to_string (ips->pdata[i]);
      g_test_message ("ip-addresses[%u] = %s", i, s);
      g_free (s);
    }
  g_assert_true (ip_addresses_contain (ips, "127.0.0.1"));
  g_assert_true (ip_addresses_contain (ips, "::1"));
  g_assert_cmpuint (ips->len, ==, 2);
  g_ptr_array_unref (ips);

  /* A single certificate from a single-certificate file has no issuer. */
  g_assert_null (g_tls_certificate_get_issuer (cert));

  g_object_unref (cert);
}

static void
test_certificate_der_pem (void)
{
  GError *error = NULL;
  GTlsCertificate *cert = load_cert ("server.pem");
  GTlsCertificate *again, *from_der;
  GByteArray *der = NULL;
  gchar *pem = NULL, *file_der;
  gsize file_der_len;

  g_object_get (cert, "certificate", &der, "certificate-pem", &pem, NULL);
  g_assert_nonnull (der);
  g_assert_nonnull (pem);

  file_der = read_pki_file ("server.der", &file_der_len);
  g_assert_cmpmem (der->data, der->len, file_der, file_der_len);

  g_assert_true (g_str_has_prefix (pem, "-----BEGIN CERTIFICATE-----"));
  g_assert_nonnull (strstr (pem, "-----END CERTIFICATE-----"));
  again = g_tls_certificate_new_from_pem (pem, -1, &error);
  g_assert_no_error (error);
  g_assert_true (g_tls_certificate_is_same (cert, again));

  /* Construct from the DER "certificate" property. */
  from_der = G_TLS_CERTIFICATE (g_initable_new (g_tls_backend_get_certificate_type (g_tls_backend_get_default ()),
                                                NULL, &error, "certificate", der, NULL));
  g_assert_no_error (error);
  g_assert_true (g_tls_certificate_is_same (cert, from_der));

  /* is_same is not trivially TRUE. */
  {
    GTlsCertificate *ca = load_cert ("ca.pem");
    g_assert_false (g_tls_certificate_is_same (cert, ca));
    g_object_unref (ca);
  }

  g_object_unref (from_der);
  g_object_unref (again);
  g_free (file_der);
  g_free (pem);
  g_byte_array_unref (der);
  g_object_unref (cert);
}

static void
assert_has_private_key (GTlsCertificate *cert,
                        gboolean         expected)
{
  GByteArray *key = NULL;
  gchar *key_pem = NULL;

  g_object_get (cert, "private-key", &key, "private-key-pem", &key_pem, NULL);
  if (expected)
    {
      g_assert_nonnull (key);
      g_assert_cmpuint (key->len, >, 0);
      g_assert_nonnull (key_pem);
      g_assert_nonnull (strstr (key_pem, "PRIVATE KEY-----"));
    }
  else
    {
      g_assert_null (key);
      g_assert_null (key_pem);
    }
  g_clear_pointer (&key, g_byte_array_unref);
  g_free (key_pem);
}

static void
test_certificate_private_key (void)
{
  GError *error = NULL;
  gchar *cert_path = pki_path ("server.pem");
  gchar *key_path = pki_path ("server.key");
  GTlsCertificate *with_key, *without_key, *combined, *reloaded;
  gchar *key_pem = NULL, *cert_pem = NULL;

  with_key = g_tls_certificate_new_from_files (cert_path, key_path, &error);
  g_assert_no_error (error);
  assert_has_private_key (with_key, TRUE);

  without_key = load_cert ("server.pem");
  assert_has_private_key (without_key, FALSE);
  g_assert_true (g_tls_certificate_is_same (with_key, without_key));

  combined = load_cert ("server-key.pem");
  assert_has_private_key (combined, TRUE);
  g_assert_true (g_tls_certificate_is_same (with_key, combined));

  /* The key read back is usable to build the certificate again. */
  g_object_get (with_key, "certificate-pem", &cert_pem, "private-key-pem", &key_pem, NULL);
  reloaded = G_TLS_CERTIFICATE (g_initable_new (g_tls_backend_get_certificate_type (g_tls_backend_get_default ()),
                                                NULL, &error,
                                                "certificate-pem", cert_pem,
                                                "private-key-pem", key_pem, NULL));
  g_assert_no_error (error);
  assert_has_private_key (reloaded, TRUE);

  g_object_unref (reloaded);
  g_free (cert_pem);
  g_free (key_pem);
  g_object_unref (combined);
  g_object_unref (without_key);
  g_object_unref (with_key);
  g_free (cert_path);
  g_free (key_path);
}

/* ------------------------------------------------------------------------ */
/* chains                                                                     */

static void
test_chain_from_file (void)
{
  GTlsCertificate *full = load_cert ("chain-full.pem");
  GTlsCertificate *two = load_cert ("chain-leaf-int.pem");
  GTlsCertificate *leaf = load_cert ("leaf-int.pem");
  GTlsCertificate *inter = load_cert ("intermediate.pem");
  GTlsCertificate *ca = load_cert ("ca.pem");
  GTlsCertificate *unordered;

  g_assert_cmpuint (chain_length (full), ==, 3);
  g_assert_true (g_tls_certificate_is_same (full, leaf));
  g_assert_true (g_tls_certificate_is_same (g_tls_certificate_get_issuer (full), inter));
  g_assert_true (g_tls_certificate_is_same (g_tls_certificate_get_issuer (g_tls_certificate_get_issuer (full)), ca));

  /* GIO links the file's certificates only if g_tls_certificate_verify (leaf,
   * NULL, last) has no UNKNOWN_CA: here "last" is the intermediate, a trusted
   * CA that is not self-signed (OpenSSL needs X509_V_FLAG_PARTIAL_CHAIN). */
  g_assert_cmpuint (chain_length (two), ==, 2);
  g_assert_true (g_tls_certificate_is_same (two, leaf));
  g_assert_true (g_tls_certificate_is_same (g_tls_certificate_get_issuer (two), inter));

  /* leaf, ca, intermediate in file order. GIO links them in file order
   * (leaf -> ca -> intermediate) and keeps that only if verify (leaf, NULL,
   * intermediate) reports no UNKNOWN_CA. leaf-int *is* signed by the trusted
   * intermediate, so a verifier that searches the chain may accept it (GIO
   * then keeps the odd linkage, length 3); GnuTLS's order-bound check
   * refuses it and GIO falls back to the leaf alone (length 1). Either way
   * the leaf comes first. */
  unordered = load_cert ("chain-unordered.pem");
  g_test_message ("chain-unordered.pem loads with chain length %u", chain_length (unordered));
  g_assert_true (g_tls_certificate_is_same (unordered, leaf));
  g_assert_true (chain_length (unordered) == 1 || chain_length (unordered) == 3);

  g_object_unref (unordered);
  g_object_unref (ca);
  g_object_unref (inter);
  g_object_unref (leaf);
  g_object_unref (two);
  g_object_unref (full);
}

static void
test_chain_list_from_file (void)
{
  GError *error = NULL;
  gchar *path = pki_path ("chain-full.pem");
  GList *list;
  GTlsCertificate *ca = load_cert ("ca.pem");

  list = g_tls_certificate_list_new_from_file (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_length (list), ==, 3);
  g_assert_true (g_tls_certificate_is_same (g_list_last (list)->data, ca));
  g_list_free_full (list, g_object_unref);
  g_free (path);

  path = pki_path ("server-key.pem");
  list = g_tls_certificate_list_new_from_file (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_length (list), ==, 1);
  g_list_free_full (list, g_object_unref);
  g_free (path);

  g_object_unref (ca);
}

/* ------------------------------------------------------------------------ */
/* PKCS #12                                                                   */

static void
test_pkcs12 (void)
{
  GError *error = NULL;
  gchar *p12 = pki_path ("server.p12");
  gchar *nopass = pki_path ("server-nopass.p12");
  GTlsCertificate *server = load_cert ("server.pem");
  GTlsCertificate *cert;

  cert = g_tls_certificate_new_from_file_with_password (p12, "secret", &error);
  g_assert_no_error (error);
  g_assert_true (g_tls_certificate_is_same (cert, server));
  assert_has_private_key (cert, TRUE);
  g_test_message ("server.p12: chain length %u", chain_length (cert));
  g_object_unref (cert);

  cert = g_tls_certificate_new_from_file_with_password (p12, "wrong", &error);
  g_assert_null (cert);
  assert_error_and_report (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE_PASSWORD,
                           "server.p12, wrong password");
  g_clear_error (&error);

  /* No password at all for an encrypted file. */
  cert = g_tls_certificate_new_from_file (p12, &error);
  g_assert_null (cert);
  assert_error_and_report (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE_PASSWORD,
                           "server.p12, no password");
  g_clear_error (&error);

  cert = g_tls_certificate_new_from_file (nopass, &error);
  g_assert_no_error (error);
  g_assert_true (g_tls_certificate_is_same (cert, server));
  assert_has_private_key (cert, TRUE);
  g_object_unref (cert);

  g_object_unref (server);
  g_free (p12);
  g_free (nopass);
}

/* ------------------------------------------------------------------------ */
/* g_tls_certificate_verify                                                   */

static void
test_verify_certificate (void)
{
  GTlsCertificate *ca = load_cert ("ca.pem");
  GTlsCertificate *server = load_cert ("server.pem");
  GSocketConnectable *good = g_network_address_new ("server.example.com", 0);
  GSocketConnectable *wrong = g_network_address_new ("wrong.example.com", 0);
  GSocketConnectable *localhost = g_network_address_new ("localhost", 443);
  GSocketConnectable *ip4 = G_SOCKET_CONNECTABLE (g_inet_socket_address_new_from_string ("127.0.0.1", 0));
  GSocketConnectable *ip6 = G_SOCKET_CONNECTABLE (g_inet_socket_address_new_from_string ("::1", 0));
  GSocketConnectable *bad_ip = G_SOCKET_CONNECTABLE (g_inet_socket_address_new_from_string ("10.1.2.3", 0));
  GTlsCertificate *c;

  check_flags ("server vs ca, no identity", verify_cert (server, NULL, ca), 0);
  check_flags ("server vs ca, server.example.com", verify_cert (server, good, ca), 0);
  check_flags ("server vs ca, localhost", verify_cert (server, localhost, ca), 0);
  check_flags ("server vs ca, wrong.example.com", verify_cert (server, wrong, ca),
               G_TLS_CERTIFICATE_BAD_IDENTITY);
  check_flags ("server vs ca, 127.0.0.1", verify_cert (server, ip4, ca), 0);
  check_flags ("server vs ca, ::1", verify_cert (server, ip6, ca), 0);
  check_flags ("server vs ca, 10.1.2.3", verify_cert (server, bad_ip, ca),
               G_TLS_CERTIFICATE_BAD_IDENTITY);

  c = load_cert ("server-other-ca.pem");
  check_flags ("server-other-ca vs ca", verify_cert (c, good, ca), G_TLS_CERTIFICATE_UNKNOWN_CA);
  g_object_unref (c);

  c = load_cert ("server-expired.pem");
  check_flags ("server-expired vs ca", verify_cert (c, good, ca), G_TLS_CERTIFICATE_EXPIRED);
  g_object_unref (c);

  c = load_cert ("server-future.pem");
  check_flags ("server-future vs ca", verify_cert (c, good, ca), G_TLS_CERTIFICATE_NOT_ACTIVATED);
  g_object_unref (c);

  c = load_cert ("server-weak.pem");
  /* OpenSSL: X509_V_ERR_CA_MD_TOO_WEAK from auth_level 1 on (the backend
   * must set a security level: X509_verify_cert's default checks nothing).
   * GnuTLS: GNUTLS_CERT_INSECURE_ALGORITHM (SHA-1 certificate signatures
   * are refused by default). */
  check_flags ("server-weak (ecdsa-with-SHA1) vs ca", verify_cert (c, good, ca),
               G_TLS_CERTIFICATE_INSECURE);
  g_object_unref (c);

  c = load_cert ("self-signed.pem");
  check_flags ("self-signed vs ca", verify_cert (c, good, ca), G_TLS_CERTIFICATE_UNKNOWN_CA);
  check_flags ("self-signed vs itself", verify_cert (c, good, c), 0);
  g_object_unref (c);

  /* trusted_ca NULL: "If trusted_ca is NULL, that bit [UNKNOWN_CA] will
   * never be set in the return value." Other problems are still reported. */
  check_flags ("server, trusted_ca NULL", verify_cert (server, good, NULL), 0);
  check_flags ("server, trusted_ca NULL, wrong identity", verify_cert (server, wrong, NULL),
               G_TLS_CERTIFICATE_BAD_IDENTITY);
  c = load_cert ("self-signed.pem");
  check_flags ("self-signed, trusted_ca NULL", verify_cert (c, good, NULL), 0);
  g_object_unref (c);
  c = load_cert ("server-other-ca.pem");
  check_flags ("server-other-ca, trusted_ca NULL", verify_cert (c, good, NULL), 0);
  g_object_unref (c);
  /* "All other GTlsCertificateFlags values will always be set or unset as
   * appropriate": validity is still checked without a trusted CA. (GnuTLS
   * skips every check but the identity when trusted_ca is NULL.) */
  c = load_cert ("server-expired.pem");
  check_flags_strict ("server-expired, trusted_ca NULL", verify_cert (c, good, NULL),
                      G_TLS_CERTIFICATE_EXPIRED);
  g_object_unref (c);
  c = load_cert ("server-future.pem");
  check_flags_strict ("server-future, trusted_ca NULL", verify_cert (c, good, NULL),
                      G_TLS_CERTIFICATE_NOT_ACTIVATED);
  g_object_unref (c);

  /* Chains through an intermediate. */
  c = load_cert ("chain-leaf-int.pem");
  check_flags ("chain-leaf-int vs ca", verify_cert (c, good, ca), 0);
  g_object_unref (c);
  c = load_cert ("chain-full.pem");
  check_flags ("chain-full vs ca", verify_cert (c, good, ca), 0);
  g_object_unref (c);
  c = load_cert ("leaf-int.pem");
  check_flags ("leaf-int without its intermediate vs ca", verify_cert (c, good, ca),
               G_TLS_CERTIFICATE_UNKNOWN_CA);
  {
    GTlsCertificate *inter = load_cert ("intermediate.pem");
    /* A trusted intermediate is enough: trust anchors need not be roots. */
    check_flags ("leaf-int vs intermediate", verify_cert (c, good, inter), 0);
    g_object_unref (inter);
  }
  g_object_unref (c);

  g_object_unref (bad_ip);
  g_object_unref (ip6);
  g_object_unref (ip4);
  g_object_unref (localhost);
  g_object_unref (wrong);
  g_object_unref (good);
  g_object_unref (server);
  g_object_unref (ca);
}

/* ------------------------------------------------------------------------ */
/* GTlsFileDatabase                                                           */

static void
test_database_anchors (void)
{
  GTlsDatabase *db = load_database ("ca.pem");
  gchar *anchors = NULL, *expected = pki_path ("ca.pem");

  g_object_get (db, "anchors", &anchors, NULL);
  g_assert_cmpstr (anchors, ==, expected);
  g_free (anchors);
  g_free (expected);
  g_object_unref (db);
}

static void
test_database_verify (void)
{
  const gchar *server_purpose = G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER;
  GTlsDatabase *db = load_database ("ca.pem");
  GTlsCertificate *c;

  c = load_cert ("server.pem");
  check_flags ("db: server", verify_chain (db, c, server_purpose, "server.example.com"), 0);
  check_flags ("db: server, no identity", verify_chain (db, c, server_purpose, NULL), 0);
  check_flags ("db: server, wrong identity",
               verify_chain (db, c, server_purpose, "wrong.example.com"),
               G_TLS_CERTIFICATE_BAD_IDENTITY);
  report_flags ("db: server.pem with purpose AUTHENTICATE_CLIENT (not asserted)",
                verify_chain (db, c, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT, NULL));
  g_object_unref (c);

  c = load_cert ("server-other-ca.pem");
  check_flags ("db: server-other-ca", verify_chain (db, c, server_purpose, "server.example.com"),
               G_TLS_CERTIFICATE_UNKNOWN_CA);
  g_object_unref (c);

  c = load_cert ("self-signed.pem");
  check_flags ("db: self-signed", verify_chain (db, c, server_purpose, "server.example.com"),
               G_TLS_CERTIFICATE_UNKNOWN_CA);
  g_object_unref (c);

  c = load_cert ("server-expired.pem");
  check_flags ("db: server-expired", verify_chain (db, c, server_purpose, "server.example.com"),
               G_TLS_CERTIFICATE_EXPIRED);
  g_object_unref (c);

  c = load_cert ("server-future.pem");
  check_flags ("db: server-future", verify_chain (db, c, server_purpose, "server.example.com"),
               G_TLS_CERTIFICATE_NOT_ACTIVATED);
  g_object_unref (c);

  c = load_cert ("server-weak.pem");
  check_flags ("db: server-weak", verify_chain (db, c, server_purpose, "server.example.com"),
               G_TLS_CERTIFICATE_INSECURE);
  g_object_unref (c);

  c = load_cert ("client.pem");
  check_flags ("db: client, purpose AUTHENTICATE_CLIENT",
               verify_chain (db, c, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_CLIENT, NULL), 0);
  report_flags ("db: client.pem with purpose AUTHENTICATE_SERVER (not asserted)",
                verify_chain (db, c, server_purpose, NULL));
  g_object_unref (c);

  g_object_unref (db);
}

static void
test_database_verify_chains (void)
{
  const gchar *purpose = G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER;
  const gchar *host = "server.example.com";
  GTlsDatabase *db = load_database ("ca.pem");
  GTlsCertificate *c, *ca, *inter, *inter2, *other, *cross;

  c = load_cert ("chain-full.pem");
  check_flags ("db: chain-full", verify_chain (db, c, purpose, host), 0);
  g_object_unref (c);

  c = load_cert ("chain-leaf-int.pem");
  check_flags ("db: chain-leaf-int", verify_chain (db, c, purpose, host), 0);
  check_flags ("db: chain-leaf-int, wrong identity",
               verify_chain (db, c, purpose, "wrong.example.com"),
               G_TLS_CERTIFICATE_BAD_IDENTITY);
  g_object_unref (c);

  c = load_cert ("leaf-int.pem");
  check_flags ("db: leaf-int without intermediate", verify_chain (db, c, purpose, host),
               G_TLS_CERTIFICATE_UNKNOWN_CA);
  g_object_unref (c);

  /* Unordered: leaf-int -> ca -> intermediate, as a peer could send it. */
  inter = cert_with_issuer ("intermediate.pem", NULL);
  ca = cert_with_issuer ("ca.pem", inter);
  c = cert_with_issuer ("leaf-int.pem", ca);
  g_assert_cmpuint (chain_length (c), ==, 3);
  check_flags ("db: unordered leaf-int, ca, intermediate", verify_chain (db, c, purpose, host), 0);
  g_object_unref (c);
  g_object_unref (ca);
  g_object_unref (inter);

  /* Duplicate: leaf-int -> intermediate -> intermediate -> ca. */
  ca = cert_with_issuer ("ca.pem", NULL);
  inter2 = cert_with_issuer ("intermediate.pem", ca);
  inter = cert_with_issuer ("intermediate.pem", inter2);
  c = cert_with_issuer ("leaf-int.pem", inter);
  g_assert_cmpuint (chain_length (c), ==, 4);
  check_flags ("db: duplicate intermediate", verify_chain (db, c, purpose, host), 0);
  g_object_unref (c);
  g_object_unref (inter);
  g_object_unref (inter2);
  g_object_unref (ca);

  /* Alternate path (cross-signing).
   *
   * intermediate.pem and intermediate-cross.pem share subject and key; the
   * first is signed by ca, the second by other-ca. The presented chain is
   * leaf-int -> intermediate-cross -> other-ca, i.e. it leads to a root the
   * database does not trust. */
  other = cert_with_issuer ("other-ca.pem", NULL);
  cross = cert_with_issuer ("intermediate-cross.pem", other);
  c = cert_with_issuer ("leaf-int.pem", cross);

  /* (a) Anchors ca.pem only: no trusted path exists (the ca-signed
   * intermediate is nowhere to be found), so this must be UNKNOWN_CA. Proves
   * that sharing the intermediate's subject and key with something trusted
   * is not enough, and that an untrusted self-signed root at the end of the
   * presented chain is not taken as an anchor. */
  check_flags ("db(ca): leaf-int -> intermediate-cross -> other-ca",
               verify_chain (db, c, purpose, host), G_TLS_CERTIFICATE_UNKNOWN_CA);

  /* (b) Anchors ca.pem + intermediate.pem: the database holds a trusted
   * certificate with the leaf's issuer name and key. A correct verifier
   * looks up trusted issuers at each step (OpenSSL: X509_V_FLAG_TRUSTED_FIRST,
   * the default) and finds leaf-int -> intermediate -> ca, instead of
   * following the presented chain to the untrusted other-ca and failing.
   * This is the "cross-signed intermediate with an expired/unknown old
   * root" situation of the web PKI. */
  {
    GTlsDatabase *db2 = load_database ("ca-and-intermediate.pem");
    check_flags ("db(ca+intermediate): leaf-int -> intermediate-cross -> other-ca",
                 verify_chain (db2, c, purpose, host), 0);
    g_object_unref (db2);
  }

  /* (c) Anchors other-ca.pem: the presented path itself is the trusted one. */
  {
    GTlsDatabase *db3 = load_database ("other-ca.pem");
    check_flags ("db(other-ca): leaf-int -> intermediate-cross -> other-ca",
                 verify_chain (db3, c, purpose, host), 0);
    g_object_unref (db3);
  }
  g_object_unref (c);
  g_object_unref (cross);
  g_object_unref (other);

  g_object_unref (db);
}

static void
test_database_lookup (void)
{
  GError *error = NULL;
  GTlsDatabase *db = load_database ("ca.pem");
  GTlsCertificate *server = load_cert ("server.pem");
  GTlsCertificate *ca = load_cert ("ca.pem");
  GTlsCertificate *found, *c;

  found = g_tls_database_lookup_certificate_issuer (db, server, NULL,
                                                    G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (found);
  g_assert_true (g_tls_certificate_is_same (found, ca));
  g_object_unref (found);

  c = load_cert ("server-other-ca.pem");
  found = g_tls_database_lookup_certificate_issuer (db, c, NULL,
                                                    G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);
  g_object_unref (c);

  g_object_unref (ca);
  g_object_unref (server);
  g_object_unref (db);
}

static gboolean
list_contains (GList           *list,
               GTlsCertificate *cert)
{
  for (; list; list = list->next)
    if (g_tls_certificate_is_same (list->data, cert))
      return TRUE;
  return FALSE;
}

static void
test_database_issued_by (void)
{
  GError *error = NULL;
  GTlsDatabase *db = load_database ("ca.pem");
  GTlsDatabase *db2 = load_database ("ca-and-intermediate.pem");
  GTlsCertificate *ca = load_cert ("ca.pem");
  GTlsCertificate *inter = load_cert ("intermediate.pem");
  GTlsCertificate *other = load_cert ("other-ca.pem");
  GByteArray *ca_dn = cert_subject_der (ca);
  GByteArray *other_dn = cert_subject_der (other);
  GList *list;

  /* issued_by returns certificates whose *issuer* is the given DN: with
   * anchors ca.pem that is ca itself (self-issued). */
  list = g_tls_database_lookup_certificates_issued_by (db, ca_dn, NULL,
                                                       G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_length (list), ==, 1);
  g_assert_true (list_contains (list, ca));
  g_list_free_full (list, g_object_unref);

  /* With anchors ca + intermediate: both are issued by ca. */
  list = g_tls_database_lookup_certificates_issued_by (db2, ca_dn, NULL,
                                                       G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_length (list), ==, 2);
  g_assert_true (list_contains (list, ca));
  g_assert_true (list_contains (list, inter));
  g_list_free_full (list, g_object_unref);

  /* Nothing issued by other-ca in either database. */
  list = g_tls_database_lookup_certificates_issued_by (db, other_dn, NULL,
                                                       G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (list);

  g_byte_array_unref (other_dn);
  g_byte_array_unref (ca_dn);
  g_object_unref (other);
  g_object_unref (inter);
  g_object_unref (ca);
  g_object_unref (db2);
  g_object_unref (db);
}

static void
test_database_handles (void)
{
  GError *error = NULL;
  GTlsDatabase *db = load_database ("ca.pem");
  GTlsCertificate *ca = load_cert ("ca.pem");
  GTlsCertificate *server = load_cert ("server.pem");
  GTlsCertificate *found;
  gchar *handle, *handle2;

  handle = g_tls_database_create_certificate_handle (db, ca);
  g_test_message ("handle for ca.pem: %s", handle);
  g_assert_nonnull (handle);
  g_assert_cmpstr (handle, !=, "");

  found = g_tls_database_lookup_certificate_for_handle (db, handle, NULL,
                                                        G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (found);
  g_assert_true (g_tls_certificate_is_same (found, ca));
  g_object_unref (found);

  /* Handles are stable for the same certificate. */
  handle2 = g_tls_database_create_certificate_handle (db, ca);
  g_assert_cmpstr (handle, ==, handle2);
  g_free (handle2);

  /* A certificate that is not in the database (not asserted: backends
   * may still hand out a handle). */
  handle2 = g_tls_database_create_certificate_handle (db, server);
  g_test_message ("handle for server.pem (not in the database): %s",
                  handle2 ? handle2 : "(null)");
  if (handle2)
    {
      found = g_tls_database_lookup_certificate_for_handle (db, handle2, NULL,
                                                            G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
      g_assert_no_error (error);
      g_assert_null (found);
    }
  g_free (handle2);

  found = g_tls_database_lookup_certificate_for_handle (db, "no-such-handle", NULL,
                                                        G_TLS_DATABASE_LOOKUP_NONE, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (found);

  g_free (handle);
  g_object_unref (server);
  g_object_unref (ca);
  g_object_unref (db);
}

static void
test_database_default (void)
{
  GTlsBackend *backend = g_tls_backend_get_default ();
  GTlsDatabase *db1 = g_tls_backend_get_default_database (backend);
  GTlsDatabase *db2 = g_tls_backend_get_default_database (backend);
  GTlsCertificate *server = load_cert ("server.pem");

  g_assert_true (G_IS_TLS_DATABASE (db1));
  g_test_message ("default database: %s", G_OBJECT_TYPE_NAME (db1));
  g_assert_true (db1 == db2);

  check_flags ("default db: server.pem",
               verify_chain (db1, server, G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER,
                             "server.example.com"),
               G_TLS_CERTIFICATE_UNKNOWN_CA);

  g_object_unref (server);
  g_object_unref (db2);
  g_object_unref (db1);
}

/* ------------------------------------------------------------------------ */
/* bad input                                                                  */

static void
expect_load_error (const gchar *name,
                   GQuark       domain,
                   gint         code)
{
  GError *error = NULL;
  gchar *path = pki_path (name);
  GTlsCertificate *cert;

  cert = g_tls_certificate_new_from_file (path, &error);
  g_assert_null (cert);
  assert_error_and_report (error, domain, code, name);
  g_clear_error (&error);
  g_free (path);
}

static void
test_bad_garbage_pem (void)
{
  expect_load_error ("garbage.pem", G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
}

static void
test_bad_truncated_pem (void)
{
  /* No END line: GIO's own PEM splitter rejects this. */
  expect_load_error ("truncated.pem", G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
  /* Proper PEM framing around truncated DER: the backend must reject it. */
  expect_load_error ("truncated-der.pem", G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
}

static void
test_bad_missing_file (void)
{
  expect_load_error ("does-not-exist.pem", G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

static void
test_bad_garbage_der (void)
{
  GError *error = NULL;
  gsize len;
  gchar *data = read_pki_file ("garbage.der", &len);
  GByteArray *der = g_byte_array_new ();
  GObject *cert;

  g_byte_array_append (der, (const guint8 *) data, len);
  cert = g_initable_new (g_tls_backend_get_certificate_type (g_tls_backend_get_default ()),
                         NULL, &error, "certificate", der, NULL);
  g_assert_null (cert);
  assert_error_and_report (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                           "garbage.der as \"certificate\"");
  g_clear_error (&error);

  /* Neither certificate nor certificate-pem given. */
  cert = g_initable_new (g_tls_backend_get_certificate_type (g_tls_backend_get_default ()),
                         NULL, &error, NULL);
  g_assert_null (cert);
  g_assert_nonnull (error);
  g_test_message ("certificate with no data: %s/%d: %s",
                  g_quark_to_string (error->domain), error->code, error->message);
  g_clear_error (&error);

  g_byte_array_unref (der);
  g_free (data);
}

static void
test_bad_mismatch_key (void)
{
  GError *error = NULL;
  gchar *path = pki_path ("mismatch-key.pem");
  GTlsCertificate *cert;

  cert = g_tls_certificate_new_from_file (path, &error);
  if (cert == NULL)
    assert_error_and_report (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE, "mismatch-key.pem");
  else if (STRICT)
    g_test_fail_printf ("mismatch-key.pem was accepted: a certificate whose "
                        "private key does not match must be refused");
  else
    g_test_message ("NOT ASSERTED (backend differs from the expected semantics): "
                    "mismatch-key.pem was accepted although the key does not match");
  g_clear_error (&error);
  g_clear_object (&cert);
  g_free (path);
}

static void
test_bad_database_missing (void)
{
  GError *error = NULL;
  gchar *path = pki_path ("does-not-exist.pem");
  GTlsDatabase *db;

  db = g_tls_file_database_new (path, &error);
  g_assert_null (db);
  g_assert_nonnull (error);
  g_test_message ("g_tls_file_database_new (missing): %s/%d: %s",
                  g_quark_to_string (error->domain), error->code, error->message);
  g_clear_error (&error);
  g_free (path);
}

/* ------------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  pki_dir = g_getenv ("DTLS_TEST_PKI");
  expect_backend = g_getenv ("DTLS_EXPECT_BACKEND");
  if (expect_backend && !*expect_backend)
    expect_backend = NULL;
  if (pki_dir == NULL || !g_file_test (pki_dir, G_FILE_TEST_IS_DIR))
    {
      g_printerr ("DTLS_TEST_PKI must name a directory made by tests/files/make-pki.sh\n");
      return 1;
    }

  g_test_add_func ("/backend/default", test_backend_default);
  g_test_add_func ("/backend/tls-connections", test_backend_tls_connections);
  g_test_add_func ("/backend/dtls-client-construct", test_backend_dtls_client_construct);

  for (guint i = 0; i < G_N_ELEMENTS (bad_message_cases); i++)
    {
      gchar *path = g_strdup_printf ("/dtls/bad-messages/%s", bad_message_cases[i].name);
      g_test_add_data_func (path, &bad_message_cases[i], test_dtls_bad_messages);
      g_free (path);
    }
  g_test_add_func ("/dtls/empty-null-vector", test_dtls_empty_null_vector);

  g_test_add_func ("/certificate/properties", test_certificate_properties);
  g_test_add_func ("/certificate/der-pem", test_certificate_der_pem);
  g_test_add_func ("/certificate/private-key", test_certificate_private_key);
  g_test_add_func ("/certificate/chain-from-file", test_chain_from_file);
  g_test_add_func ("/certificate/list-from-file", test_chain_list_from_file);
  g_test_add_func ("/certificate/pkcs12", test_pkcs12);
  g_test_add_func ("/certificate/verify", test_verify_certificate);

  g_test_add_func ("/database/anchors", test_database_anchors);
  g_test_add_func ("/database/verify", test_database_verify);
  g_test_add_func ("/database/verify-chains", test_database_verify_chains);
  g_test_add_func ("/database/lookup-issuer", test_database_lookup);
  g_test_add_func ("/database/issued-by", test_database_issued_by);
  g_test_add_func ("/database/handles", test_database_handles);
  g_test_add_func ("/database/default", test_database_default);

  g_test_add_func ("/bad-input/garbage-pem", test_bad_garbage_pem);
  g_test_add_func ("/bad-input/truncated-pem", test_bad_truncated_pem);
  g_test_add_func ("/bad-input/missing-file", test_bad_missing_file);
  g_test_add_func ("/bad-input/garbage-der", test_bad_garbage_der);
  g_test_add_func ("/bad-input/mismatch-key", test_bad_mismatch_key);
  g_test_add_func ("/bad-input/database-missing-file", test_bad_database_missing);

  return g_test_run ();
}
