/* Prints the name of GIO's default TLS backend and of its DTLS client type.
 * Only <gio/gio.h>: the backend must come from the GIO module directory.
 * Build: cc -o print-backend print-backend.c $(pkg-config --cflags --libs gio-2.0)
 */
#include <gio/gio.h>

int
main (void)
{
  GTlsBackend *backend = g_tls_backend_get_default ();
  g_print ("%s %s\n", G_OBJECT_TYPE_NAME (backend),
           g_type_name (g_tls_backend_get_dtls_client_connection_type (backend)));
  return 0;
}
