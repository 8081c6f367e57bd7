/* dtls-openssl.h: the C API of gio-dtls-openssl, a GIO TLS backend whose
 * DTLS connections run on OpenSSL.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Most programs need none of this: with GIO_USE_TLS=dtls-openssl, GIO's own
 * API (g_dtls_client_connection_new() and friends) runs on this backend.
 * The header adds the types, a constructor that does not depend on which
 * backend GIO picked, and what GIO lacks: one GBytes per datagram (the only
 * way to move datagrams from Python), the MTU, and keying material.
 */
#ifndef DTLS_OPENSSL_H
#define DTLS_OPENSSL_H

#include <gio/gio.h>

G_BEGIN_DECLS

#ifndef DTLS_OPENSSL_API
#define DTLS_OPENSSL_API extern
#endif

/**
 * DtlsOpensslBackend:
 *
 * The GTlsBackend of this library, registered with GIO under the name
 * `dtls-openssl`. Its [iface@Gio.TlsBackend] reports DTLS support; stream
 * TLS constructors fail with %G_IO_ERROR_NOT_SUPPORTED.
 */
#define DTLS_OPENSSL_TYPE_BACKEND (dtls_openssl_backend_get_type ())
DTLS_OPENSSL_API
G_DECLARE_FINAL_TYPE (DtlsOpensslBackend, dtls_openssl_backend, DTLS_OPENSSL, BACKEND, GObject)

/**
 * DtlsOpensslCertificate:
 *
 * A [class@Gio.TlsCertificate] backed by an OpenSSL certificate and key.
 * Create it with GIO's constructors, e.g.
 * g_tls_certificate_new_from_file(), while this backend is the default, or
 * with g_initable_new() on %DTLS_OPENSSL_TYPE_CERTIFICATE.
 */
#define DTLS_OPENSSL_TYPE_CERTIFICATE (dtls_openssl_certificate_get_type ())
DTLS_OPENSSL_API
G_DECLARE_FINAL_TYPE (DtlsOpensslCertificate, dtls_openssl_certificate, DTLS_OPENSSL, CERTIFICATE, GTlsCertificate)

/**
 * DtlsOpensslConnection:
 *
 * The base of the DTLS connection types: a [iface@Gio.DtlsConnection] and
 * [iface@Gio.DatagramBased] over a base [iface@Gio.DatagramBased]. It cannot
 * be subclassed from C.
 *
 * Besides GIO's API it offers one [struct@GLib.Bytes] per datagram:
 * dtls_openssl_connection_send_bytes() and
 * dtls_openssl_connection_receive_bytes(), with async variants.
 */
#define DTLS_OPENSSL_TYPE_CONNECTION (dtls_openssl_connection_get_type ())
DTLS_OPENSSL_API
G_DECLARE_DERIVABLE_TYPE (DtlsOpensslConnection, dtls_openssl_connection, DTLS_OPENSSL, CONNECTION, GObject)

/**
 * DtlsOpensslConnectionClass:
 * @parent_class: the parent class
 *
 * The class of [class@DtlsOpenssl.Connection]. Its role's hooks are
 * private: the class cannot be subclassed from C.
 */
struct _DtlsOpensslConnectionClass
{
  GObjectClass parent_class;
  /*< private >*/
  gconstpointer hooks;
};

/**
 * DtlsOpensslConnection:max-payload:
 *
 * The largest application datagram that fits one record in one datagram of
 * [property@DtlsOpenssl.Connection:mtu] bytes with the negotiated cipher
 * suite; 0 before the handshake. It follows later MTU changes.
 */

/**
 * DtlsOpensslConnection:srtp-profiles:
 *
 * DTLS-SRTP (RFC 5764): the SRTP protection profiles the client offers, or
 * the server accepts, as OpenSSL names them separated by colons (the
 * server picks the first of its list that the client offers): `SRTP_AES128_CM_SHA1_80`, `SRTP_AES128_CM_SHA1_32`,
 * `SRTP_AEAD_AES_128_GCM`, `SRTP_AEAD_AES_256_GCM`. %NULL (the default)
 * for no DTLS-SRTP. An unknown name fails the handshake with
 * %G_IO_ERROR_INVALID_ARGUMENT. Without a profile in common the handshake
 * succeeds and [property@DtlsOpenssl.Connection:srtp-profile] stays %NULL.
 * The SRTP keys are dtls_openssl_connection_export_keying_material() with
 * the label "EXTRACTOR-dtls_srtp" and no context. Set before the handshake.
 */

/**
 * DtlsOpensslConnection:srtp-profile:
 *
 * The DTLS-SRTP profile the handshake selected, or %NULL (none offered,
 * none in common, or before the handshake).
 */

/**
 * DtlsOpensslConnection:min-protocol-version:
 *
 * The oldest protocol version this connection accepts:
 * %G_TLS_PROTOCOL_VERSION_DTLS_1_0 or %G_TLS_PROTOCOL_VERSION_DTLS_1_2;
 * %G_TLS_PROTOCOL_VERSION_UNKNOWN (the default) keeps
 * `DTLS_OPENSSL_MIN_PROTOCOL`, else DTLS 1.2. Allowing DTLS 1.0 also lowers
 * this connection's OpenSSL security level to 0, which OpenSSL 3.0 requires
 * for DTLS 1.0. Other values fail the handshake with
 * %G_IO_ERROR_INVALID_ARGUMENT, as does a minimum newer than the maximum.
 * [property@Gio.DtlsConnection:protocol-version] reports the version
 * negotiated. Set before the handshake.
 */

/**
 * DtlsOpensslConnection:max-protocol-version:
 *
 * The newest protocol version this connection accepts (see
 * [property@DtlsOpenssl.Connection:min-protocol-version]);
 * %G_TLS_PROTOCOL_VERSION_UNKNOWN (the default) keeps
 * `DTLS_OPENSSL_MAX_PROTOCOL`, else no bound. Set before the handshake.
 */

/**
 * DtlsOpensslConnection:retransmit-timeout:
 *
 * When a handshake flight is first retransmitted, in milliseconds (RFC
 * 6347's 1000 by default, or `DTLS_OPENSSL_RETRANSMIT_TIMEOUT_MS`); each
 * retransmission doubles the wait up to
 * [property@DtlsOpenssl.Connection:max-retransmit-timeout]. Set before the
 * handshake.
 */

/**
 * DtlsOpensslConnection:max-retransmit-timeout:
 *
 * The largest wait between two retransmissions of a flight, in
 * milliseconds (6000 by default, or
 * `DTLS_OPENSSL_MAX_RETRANSMIT_TIMEOUT_MS`). Set before the handshake.
 */

/**
 * DtlsOpensslConnection:session-resumption:
 *
 * Whether to resume earlier sessions (on by default): a client offers the
 * last session it verified with the same server name at the same address
 * (a process-wide cache of 256 servers); a server accepts session tickets
 * and its cache. The resumed peer is verified like a full handshake's.
 */

/**
 * DtlsOpensslConnection:session-resumed:
 *
 * Whether the handshake resumed an earlier session.
 */

/**
 * DtlsOpensslConnection:handshake-timeout:
 *
 * The handshake fails with %G_IO_ERROR_TIMED_OUT when it has not completed
 * this many milliseconds after it started (60000 by default, or
 * `DTLS_OPENSSL_HANDSHAKE_TIMEOUT_MS`); 0 for no limit. Set before the
 * handshake.
 */

/**
 * DtlsOpensslClientConnection:
 *
 * A DTLS client: [iface@Gio.DtlsClientConnection] on OpenSSL.
 */
#define DTLS_OPENSSL_TYPE_CLIENT_CONNECTION (dtls_openssl_client_connection_get_type ())
DTLS_OPENSSL_API
G_DECLARE_FINAL_TYPE (DtlsOpensslClientConnection, dtls_openssl_client_connection, DTLS_OPENSSL, CLIENT_CONNECTION, DtlsOpensslConnection)

/**
 * DtlsOpensslClientConnection:psk-identity:
 *
 * The identity of a pre-shared key (RFC 4279). With
 * [property@DtlsOpenssl.ClientConnection:psk-key] also set, the client
 * offers the PSK cipher suites of its cipher list (by default PSK and
 * ECDHE-PSK with AES-GCM, ChaCha20-Poly1305 and AES-CBC; CCM suites only
 * through `DTLS_OPENSSL_CIPHER_LIST`). A server that picks one sends no
 * certificate and none is verified: the key authenticates it. One without
 * the other fails the handshake with %G_IO_ERROR_INVALID_ARGUMENT. Set
 * before the handshake.
 */

/**
 * DtlsOpensslClientConnection:psk-key:
 *
 * The pre-shared key, 1 to 512 bytes; see
 * [property@DtlsOpenssl.ClientConnection:psk-identity]. It is never
 * logged. A key that differs from the server's cannot complete the
 * handshake: DTLS silently drops records it cannot authenticate, so the
 * handshake ends with its time limit
 * ([property@DtlsOpenssl.Connection:handshake-timeout]).
 */

/**
 * DtlsOpensslServerConnection:
 *
 * A DTLS server: [iface@Gio.DtlsServerConnection] on OpenSSL, for the one
 * peer its base socket carries (a UDP [class@Gio.Socket] connected to the
 * client, or any [iface@Gio.DatagramBased] of one peer's datagrams).
 */
#define DTLS_OPENSSL_TYPE_SERVER_CONNECTION (dtls_openssl_server_connection_get_type ())
DTLS_OPENSSL_API
G_DECLARE_FINAL_TYPE (DtlsOpensslServerConnection, dtls_openssl_server_connection, DTLS_OPENSSL, SERVER_CONNECTION, DtlsOpensslConnection)

/**
 * DtlsOpensslServerConnection:psk-identity-hint:
 *
 * A hint sent to a client that negotiates a PSK cipher suite, to help it
 * choose its identity (RFC 4279); %NULL (the default) for none.
 */

/**
 * DtlsOpensslServerConnection::psk-lookup:
 * @conn: the server connection
 * @identity: the PSK identity the client sent
 *
 * Emitted during the handshake when a client negotiates a PSK cipher
 * suite (RFC 4279): return the key of @identity, or %NULL when it is
 * unknown; then the handshake fails with an unknown_psk_identity alert
 * (%G_TLS_ERROR_HANDSHAKE on both ends, naming the cause). The first
 * handler that returns a key wins.
 *
 * Connecting a handler before the handshake turns PSK on: the server then
 * accepts PSK cipher suites and needs no certificate (without one, only
 * PSK suites can be chosen).
 *
 * The handler runs on the thread driving the handshake, inside it: it may
 * use other connections, but a blocking send, receive or handshake on
 * @conn fails with %G_IO_ERROR_PENDING, and it must not set properties of
 * @conn (that would wait for the handshake it is called from).
 *
 * Returns: (nullable) (transfer full): the key (1 to 512 bytes), or %NULL
 */

/**
 * DtlsOpensslServerConnection:cookie-exchange:
 *
 * Whether a ClientHello without a valid cookie is answered with a
 * HelloVerifyRequest (RFC 6347 section 4.2.1), so that a ClientHello from a
 * spoofed address costs one small datagram. On by default; turn it off
 * only where the transport already proves the peer's address (ICE).
 * Cookies are stateless: an HMAC under a rotating process secret over the
 * connection and, when the base socket is a connected
 * [class@Gio.Socket], the client's address.
 */

/**
 * dtls_openssl_register_backend:
 *
 * Registers the `dtls-openssl` backend on GIO's TLS extension point, for a
 * program that links this library directly instead of installing it as a
 * GIO module. Calling it more than once is harmless. Selecting the backend
 * is still GIO's business: set `GIO_USE_TLS=dtls-openssl` before the first
 * use of TLS, or create connections with
 * dtls_openssl_client_connection_new(), which works whichever backend GIO
 * picked.
 */
DTLS_OPENSSL_API
void dtls_openssl_register_backend (void);

/**
 * dtls_openssl_client_connection_new:
 * @base_socket: the datagram-based connection to wrap, typically a
 *   connected UDP [class@Gio.Socket]
 * @server_identity: (nullable): the expected identity of the server: its
 *   host name or address, checked against its certificate (and sent as SNI
 *   when it is a host name)
 * @error: return location for a #GError
 *
 * Creates a DTLS client over @base_socket, as g_dtls_client_connection_new()
 * does when this backend is GIO's default. The handshake happens on the
 * first send or receive, or with g_dtls_connection_handshake().
 *
 * The base socket is only used through g_datagram_based_create_source() and
 * non-blocking send/receive with flags 0; it is left open when the
 * connection is closed.
 *
 * Returns: (transfer full): the new connection, or %NULL on error
 */
DTLS_OPENSSL_API
DtlsOpensslClientConnection *dtls_openssl_client_connection_new (GDatagramBased      *base_socket,
                                                                 GSocketConnectable  *server_identity,
                                                                 GError             **error);

/**
 * dtls_openssl_server_connection_new:
 * @base_socket: the datagram-based connection to wrap, typically a UDP
 *   [class@Gio.Socket] connected to the client
 * @certificate: (nullable): the server's certificate, with its private key
 *   (a server without one fails its handshake)
 * @error: return location for a #GError
 *
 * Creates a DTLS server over @base_socket, as g_dtls_server_connection_new()
 * does when this backend is GIO's default. Set
 * [property@Gio.DtlsServerConnection:authentication-mode] to ask for a
 * client certificate; it is verified through the connection's database for
 * the client purpose, and [signal@Gio.DtlsConnection::accept-certificate]
 * decides on errors (alone when the database is %NULL: pinning).
 *
 * Returns: (transfer full): the new connection, or %NULL on error
 */
DTLS_OPENSSL_API
DtlsOpensslServerConnection *dtls_openssl_server_connection_new (GDatagramBased   *base_socket,
                                                                 GTlsCertificate  *certificate,
                                                                 GError          **error);

/**
 * dtls_openssl_connection_send_bytes:
 * @conn: a #DtlsOpensslConnection
 * @bytes: the datagram to send
 * @timeout_us: microseconds to wait at most: -1 blocks, 0 never blocks
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Sends @bytes as one datagram (one DTLS record), performing the handshake
 * first if needed. Empty @bytes send nothing (OpenSSL emits no empty
 * records) and succeed. A datagram larger than the MTU allows fails with
 * %G_IO_ERROR_MESSAGE_TOO_LARGE and nothing is sent. With @timeout_us 0 it
 * fails with %G_IO_ERROR_WOULD_BLOCK rather than wait; with a positive
 * timeout, with %G_IO_ERROR_TIMED_OUT.
 *
 * Returns: %TRUE if the datagram was sent
 */
DTLS_OPENSSL_API
gboolean dtls_openssl_connection_send_bytes (DtlsOpensslConnection  *conn,
                                             GBytes                 *bytes,
                                             gint64                  timeout_us,
                                             GCancellable           *cancellable,
                                             GError                **error);

/**
 * dtls_openssl_connection_receive_bytes:
 * @conn: a #DtlsOpensslConnection
 * @max_size: the largest datagram accepted, in bytes (at most 16384 are
 *   ever received)
 * @timeout_us: microseconds to wait at most: -1 blocks, 0 never blocks
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Receives one datagram, performing the handshake first if needed. An
 * empty result means the peer closed the connection (close_notify).
 *
 * A datagram larger than @max_size is never truncated: the call fails with
 * %G_IO_ERROR_MESSAGE_TOO_LARGE and the datagram stays queued, so a receive
 * with a larger @max_size returns it.
 *
 * Returns: (transfer full): the datagram, or %NULL on error
 */
DTLS_OPENSSL_API
GBytes *dtls_openssl_connection_receive_bytes (DtlsOpensslConnection  *conn,
                                               gsize                   max_size,
                                               gint64                  timeout_us,
                                               GCancellable           *cancellable,
                                               GError                **error);

/**
 * dtls_openssl_connection_send_bytes_async:
 * @conn: a #DtlsOpensslConnection
 * @bytes: the datagram to send
 * @io_priority: the I/O priority of the request
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the datagram is sent or the send failed
 * @user_data: data for @callback
 *
 * Sends @bytes as one datagram without blocking; @callback runs in the
 * thread-default main context of the caller. See
 * dtls_openssl_connection_send_bytes().
 */
DTLS_OPENSSL_API
void dtls_openssl_connection_send_bytes_async (DtlsOpensslConnection *conn,
                                               GBytes                *bytes,
                                               int                    io_priority,
                                               GCancellable          *cancellable,
                                               GAsyncReadyCallback    callback,
                                               gpointer               user_data);

/**
 * dtls_openssl_connection_send_bytes_finish:
 * @conn: a #DtlsOpensslConnection
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes dtls_openssl_connection_send_bytes_async().
 *
 * Returns: %TRUE if the datagram was sent
 */
DTLS_OPENSSL_API
gboolean dtls_openssl_connection_send_bytes_finish (DtlsOpensslConnection  *conn,
                                                    GAsyncResult           *result,
                                                    GError                **error);

/**
 * dtls_openssl_connection_receive_bytes_async:
 * @conn: a #DtlsOpensslConnection
 * @max_size: the largest datagram accepted, in bytes
 * @io_priority: the I/O priority of the request
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when a datagram arrived or the receive failed
 * @user_data: data for @callback
 *
 * Receives one datagram without blocking; @callback runs in the
 * thread-default main context of the caller. See
 * dtls_openssl_connection_receive_bytes().
 */
DTLS_OPENSSL_API
void dtls_openssl_connection_receive_bytes_async (DtlsOpensslConnection *conn,
                                                  gsize                  max_size,
                                                  int                    io_priority,
                                                  GCancellable          *cancellable,
                                                  GAsyncReadyCallback    callback,
                                                  gpointer               user_data);

/**
 * dtls_openssl_connection_receive_bytes_finish:
 * @conn: a #DtlsOpensslConnection
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes dtls_openssl_connection_receive_bytes_async().
 *
 * Returns: (transfer full): the datagram (empty when the peer closed the
 *   connection), or %NULL on error
 */
DTLS_OPENSSL_API
GBytes *dtls_openssl_connection_receive_bytes_finish (DtlsOpensslConnection  *conn,
                                                      GAsyncResult           *result,
                                                      GError                **error);

/**
 * dtls_openssl_connection_get_mtu:
 * @conn: a #DtlsOpensslConnection
 *
 * Gets the largest datagram the connection sends, in bytes (the `mtu`
 * property, 1400 by default).
 *
 * Returns: the MTU
 */
DTLS_OPENSSL_API
guint dtls_openssl_connection_get_mtu (DtlsOpensslConnection *conn);

/**
 * dtls_openssl_connection_set_mtu:
 * @conn: a #DtlsOpensslConnection
 * @mtu: the largest datagram to send, from 256 to 65507 bytes
 * @error: return location for a #GError
 *
 * Sets the largest datagram the connection sends, handshake included.
 * The payload one datagram can carry is a little smaller: see
 * dtls_openssl_connection_get_max_payload() and
 * [property@DtlsOpenssl.Connection:max-payload]. A value out of range fails
 * with %G_IO_ERROR_INVALID_ARGUMENT and changes nothing.
 *
 * Returns: %TRUE if the MTU was set
 */
DTLS_OPENSSL_API
gboolean dtls_openssl_connection_set_mtu (DtlsOpensslConnection  *conn,
                                          guint                   mtu,
                                          GError                **error);

/**
 * dtls_openssl_connection_get_max_payload:
 * @conn: a #DtlsOpensslConnection
 * @error: return location for a #GError
 *
 * Gets the largest datagram payload that fits the MTU with the negotiated
 * cipher suite. Fails with %G_IO_ERROR_NOT_CONNECTED before the handshake.
 *
 * Returns: the payload size in bytes, or 0 on error
 */
DTLS_OPENSSL_API
gsize dtls_openssl_connection_get_max_payload (DtlsOpensslConnection  *conn,
                                               GError                **error);

/**
 * dtls_openssl_connection_export_keying_material:
 * @conn: a #DtlsOpensslConnection
 * @label: the exporter label, e.g. "EXTRACTOR-dtls_srtp" for DTLS-SRTP
 * @length: how many bytes to export
 * @context: (nullable): the exporter context, or %NULL for none (DTLS-SRTP
 *   uses none)
 * @error: return location for a #GError
 *
 * Exports keying material from the established session (RFC 5705). Fails
 * with %G_IO_ERROR_NOT_CONNECTED before the handshake. For DTLS-SRTP (RFC
 * 5764 section 4.2) the label is "EXTRACTOR-dtls_srtp" and @length twice
 * the sum of the profile's key and salt lengths: 60 bytes for
 * `SRTP_AES128_CM_SHA1_80` (client key, server key, client salt, server
 * salt), 56 for `SRTP_AEAD_AES_128_GCM`, 88 for `SRTP_AEAD_AES_256_GCM`.
 * From Python: `conn.export_keying_material("EXTRACTOR-dtls_srtp", 60)`.
 *
 * Returns: (transfer full): @length bytes of keying material, or %NULL on error
 */
DTLS_OPENSSL_API
GBytes *dtls_openssl_connection_export_keying_material (DtlsOpensslConnection  *conn,
                                                        const char             *label,
                                                        gsize                   length,
                                                        GBytes                 *context,
                                                        GError                **error);

/**
 * DtlsOpensslServer:
 *
 * Serves many DTLS peers on one bound, unconnected UDP [class@Gio.Socket]
 * (CoAP, LwM2M, relays): it receives on the socket, sorts datagrams by
 * source address, runs the stateless cookie exchange (RFC 6347 section
 * 4.2.1) before it keeps anything for a new address, and hands each peer
 * that proved its address to the application as a
 * #DtlsOpensslServerConnection over a per-peer [iface@Gio.DatagramBased]
 * (sends go to that peer; receives see only its datagrams; sources wake
 * per peer). The connection comes before its handshake, which the
 * application runs as with any connection, like [class@Gio.SocketListener]
 * returns before TLS.
 *
 * Peers come through [signal@DtlsOpenssl.Server::incoming], else
 * dtls_openssl_server_accept() or dtls_openssl_server_accept_async(). The
 * receive loop runs on the thread-default [struct@GLib.MainContext] of the
 * caller of dtls_openssl_server_start(), which the application must run.
 *
 * A ClientHello with a new random from a peer's address is a new handshake
 * from the same client (RFC 6347 section 4.2.8): once its cookie is valid
 * the old connection is closed and replaced.
 */
#define DTLS_OPENSSL_TYPE_SERVER (dtls_openssl_server_get_type ())
DTLS_OPENSSL_API
G_DECLARE_FINAL_TYPE (DtlsOpensslServer, dtls_openssl_server, DTLS_OPENSSL, SERVER, GObject)

/**
 * DtlsOpensslServer:socket:
 *
 * The bound, unconnected UDP socket (construct-only). The listener puts it
 * in non-blocking mode; it is left open by dtls_openssl_server_close().
 */

/**
 * DtlsOpensslServer:certificate:
 *
 * The certificate, with its private key, every peer's connection presents.
 */

/**
 * DtlsOpensslServer:database:
 *
 * The database client certificates are verified with (%NULL: the
 * backend's default).
 */

/**
 * DtlsOpensslServer:interaction:
 *
 * The interaction of every peer's connection.
 */

/**
 * DtlsOpensslServer:authentication-mode:
 *
 * Whether peers are asked for a client certificate, as
 * [property@Gio.DtlsServerConnection:authentication-mode].
 */

/**
 * DtlsOpensslServer:advertised-protocols:
 *
 * ALPN protocols peers may choose from, in this server's preference order.
 */

/**
 * DtlsOpensslServer:max-peers:
 *
 * The most peers at once (handshaking or established); a verified
 * ClientHello beyond is ignored (the client retransmits, and gets in once
 * a peer has gone). Default 1024.
 */

/**
 * DtlsOpensslServer:max-half-open:
 *
 * The most peers whose handshake has not completed, accepted or not.
 * Default 64.
 */

/**
 * DtlsOpensslServer:idle-timeout:
 *
 * Seconds without a datagram from a peer after which it is dropped: its
 * connection's operations then fail with %G_IO_ERROR_CLOSED. 0: never.
 * Default 300.
 */

/**
 * DtlsOpensslServer:receive-queue-length:
 *
 * Datagrams kept per peer until its connection reads them; more are
 * dropped, as a full socket buffer would. Default 64.
 */

/**
 * DtlsOpensslServer:peer-count:
 *
 * The number of peers now (verified, handshaking or established).
 */

/**
 * DtlsOpensslServer:active:
 *
 * Whether dtls_openssl_server_start() has run and
 * dtls_openssl_server_close() has not.
 */

/**
 * DtlsOpensslServer::incoming:
 * @server: the listener
 * @connection: the new peer's connection, before its handshake
 *
 * Emitted for each peer that passed the cookie exchange, on the thread
 * that received its ClientHello. A handler that takes the connection
 * (keeps a reference and runs its handshake) returns %TRUE; when none
 * does, the connection goes to dtls_openssl_server_accept().
 *
 * Returns: %TRUE if the connection was handled
 */

/**
 * dtls_openssl_server_new:
 * @socket: a bound, unconnected UDP #GSocket
 * @certificate: (nullable): the certificate, with its private key, every
 *   peer's connection presents
 * @error: return location for a #GError
 *
 * Creates a listener on @socket. Set its other properties, then call
 * dtls_openssl_server_start().
 *
 * Returns: (transfer full): the new listener, or %NULL on error
 */
DTLS_OPENSSL_API
DtlsOpensslServer *dtls_openssl_server_new (GSocket          *socket,
                                            GTlsCertificate  *certificate,
                                            GError          **error);

/**
 * dtls_openssl_server_start:
 * @server: a #DtlsOpensslServer
 * @error: return location for a #GError
 *
 * Attaches the receive loop and the idle timer to the thread-default main
 * context, which the application must run. Calling it again does nothing;
 * after dtls_openssl_server_close() it fails with %G_IO_ERROR_CLOSED.
 *
 * Returns: %TRUE on success
 */
DTLS_OPENSSL_API
gboolean dtls_openssl_server_start (DtlsOpensslServer  *server,
                                    GError            **error);

/**
 * dtls_openssl_server_accept:
 * @server: a #DtlsOpensslServer
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Waits for the next peer that passed the cookie exchange, receiving from
 * the socket meanwhile. Its handshake has not run yet.
 *
 * Returns: (transfer full): the peer's connection, or %NULL on error
 *   (%G_IO_ERROR_CLOSED once the listener is closed)
 */
DTLS_OPENSSL_API
DtlsOpensslServerConnection *dtls_openssl_server_accept (DtlsOpensslServer  *server,
                                                         GCancellable       *cancellable,
                                                         GError            **error);

/**
 * dtls_openssl_server_accept_async:
 * @server: a #DtlsOpensslServer
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when a peer is there
 * @user_data: data for @callback
 *
 * Asynchronous dtls_openssl_server_accept(); the result comes in the
 * caller's thread-default main context.
 */
DTLS_OPENSSL_API
void dtls_openssl_server_accept_async (DtlsOpensslServer   *server,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);

/**
 * dtls_openssl_server_accept_finish:
 * @server: a #DtlsOpensslServer
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Finishes dtls_openssl_server_accept_async().
 *
 * Returns: (transfer full): the peer's connection, or %NULL on error
 */
DTLS_OPENSSL_API
DtlsOpensslServerConnection *dtls_openssl_server_accept_finish (DtlsOpensslServer  *server,
                                                                GAsyncResult       *result,
                                                                GError            **error);

/**
 * dtls_openssl_server_close:
 * @server: a #DtlsOpensslServer
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Stops receiving and closes every peer: close_notify to those whose
 * handshake completed, then their sockets, so their connections' further
 * operations fail with %G_IO_ERROR_CLOSED. Connections not yet accepted
 * are dropped and pending accepts fail with %G_IO_ERROR_CLOSED. The socket
 * stays open. Calling it again does nothing.
 *
 * Returns: %TRUE on success
 */
DTLS_OPENSSL_API
gboolean dtls_openssl_server_close (DtlsOpensslServer  *server,
                                    GCancellable       *cancellable,
                                    GError            **error);

/**
 * dtls_openssl_server_get_peer_count:
 * @server: a #DtlsOpensslServer
 *
 * Returns: the number of peers now
 */
DTLS_OPENSSL_API
guint dtls_openssl_server_get_peer_count (DtlsOpensslServer *server);

G_END_DECLS

#endif /* DTLS_OPENSSL_H */
