//! `DtlsOpensslServer`: many DTLS peers on one UDP socket.
//!
//! The listener receives on one bound, unconnected GSocket and sorts the
//! datagrams by source address:
//!
//! - from an address with no peer, only a first-fragment ClientHello is
//!   looked at, by one *listening* engine (`Engine::listen`, OpenSSL's
//!   `DTLSv1_listen`) whose cookies bind the source address alone. Without
//!   a valid cookie the HelloVerifyRequest goes back with `send_to` and
//!   nothing is kept; so a flood of ClientHellos from spoofed addresses
//!   costs one small reply each and allocates no per-peer state. With a
//!   valid cookie (the sender proved it receives at that address), and
//!   within `max-peers` and `max-half-open`, the listening engine becomes
//!   that peer's: a `DtlsOpensslServerConnection` over a per-peer
//!   GDatagramBased (`DtlsOpensslPeerSocket`) is made with it, and handed
//!   to the application (`incoming` signal, else `accept`/`accept_async`)
//!   before its handshake, which the application runs as with any
//!   connection — like GSocketListener, whose accept returns before TLS.
//! - from a peer's address, the datagram goes to that peer's bounded queue
//!   (`receive-queue-length`; the excess is dropped, as a full socket
//!   buffer would) and wakes that peer's sources only;
//! - a ClientHello with a *new* random from a peer's address is a new
//!   handshake from the same client (RFC 6347 §4.2.8): it goes through the
//!   cookie exchange again, and once its cookie is valid the old peer is
//!   closed and replaced by a new connection.
//!
//! Peers silent for `idle-timeout` seconds, and peers whose connection the
//! application closed or dropped, are removed: their socket is closed, so
//! the connection's operations fail with `G_IO_ERROR_CLOSED`.
//!
//! The receive loop is a GSource on the socket attached, by
//! [`Server::start`], to the thread-default main context of the caller,
//! which the application must run (as with GSocketService). The blocking
//! [`Server::accept`] also receives while it waits.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gio::prelude::*;
use gio::subclass::prelude::*;
use glib::subclass::Signal;

use crate::connection::base::Connection;
use crate::connection::engine::{self, Engine, Listened, Role};
use crate::connection::peer_socket::{PeerShared, PeerSocket};
use crate::error;
use crate::server::ServerConnection;

/// Default of `max-peers`.
pub const DEFAULT_MAX_PEERS: u32 = 1024;
/// Default of `max-half-open`.
pub const DEFAULT_MAX_HALF_OPEN: u32 = 64;
/// Default of `idle-timeout`, in seconds.
pub const DEFAULT_IDLE_TIMEOUT: u32 = 300;
/// Default of `receive-queue-length`.
pub const DEFAULT_QUEUE_LENGTH: u32 = 64;
/// Datagrams taken from the socket per dispatch, so that a busy socket
/// does not starve the rest of the main context.
const MAX_PER_PUMP: usize = 64;

glib::wrapper! {
    /// Serves many DTLS peers on one UDP socket. See the module docs.
    pub struct Server(ObjectSubclass<imp::Server>);
}

// SAFETY: all state of the instance is behind Mutexes or set once; the
// GObjects it holds are thread-safe ones (GSocket, certificates,
// databases, our connections).
#[allow(unsafe_code)]
unsafe impl Send for Server {}
#[allow(unsafe_code)]
unsafe impl Sync for Server {}

/// Counters, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HelloVerifyRequests sent.
    pub hello_verify_requests: u64,
    /// Peers accepted (cookie verified).
    pub accepted: u64,
    /// Peers replaced by a new handshake from the same address.
    pub replaced: u64,
    /// Verified ClientHellos refused at `max-peers` or `max-half-open`.
    pub refused: u64,
    /// Peers removed for silence.
    pub idle_dropped: u64,
    /// Datagrams dropped: from unknown addresses and not a ClientHello,
    /// or a peer's queue was full.
    pub dropped_datagrams: u64,
}

/// A pending `accept_async`.
type AcceptCallback = Box<dyn FnOnce(Result<ServerConnection, glib::Error>) + Send>;

struct Peer {
    shared: Arc<PeerShared>,
    conn: glib::WeakRef<ServerConnection>,
    /// The random of the ClientHello this peer was accepted with.
    random: Vec<u8>,
}

impl Peer {
    fn established(&self) -> bool {
        self.conn
            .upgrade()
            .is_some_and(|c| c.upcast_ref::<Connection>().handshake_succeeded() == Some(true))
    }

    /// Whether the peer is gone: closed by us, or its connection closed or
    /// dropped by the application.
    fn finished(&self) -> bool {
        self.shared.is_closed()
            || self
                .conn
                .upgrade()
                .is_none_or(|c| c.upcast_ref::<Connection>().is_closed())
    }
}

struct Config {
    certificate: Option<gio::TlsCertificate>,
    database: Option<gio::TlsDatabase>,
    interaction: Option<gio::TlsInteraction>,
    authentication_mode: gio::TlsAuthenticationMode,
    advertised_protocols: Option<Vec<String>>,
    max_peers: u32,
    max_half_open: u32,
    idle_timeout: u32,
    queue_length: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            certificate: None,
            database: None,
            interaction: None,
            authentication_mode: gio::TlsAuthenticationMode::None,
            advertised_protocols: None,
            max_peers: DEFAULT_MAX_PEERS,
            max_half_open: DEFAULT_MAX_HALF_OPEN,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            queue_length: DEFAULT_QUEUE_LENGTH,
        }
    }
}

#[derive(Default)]
struct State {
    peers: HashMap<SocketAddr, Peer>,
    /// The engine that answers unknown addresses; made on first use and
    /// after each one handed to a peer.
    listening: Option<Engine>,
    accept_queue: VecDeque<ServerConnection>,
    pending: VecDeque<(u64, AcceptCallback)>,
    next_id: u64,
    /// Contexts of blocking `accept` calls, woken when a connection is
    /// queued.
    accept_contexts: Vec<glib::MainContext>,
    sources: Vec<glib::Source>,
    closed: bool,
    stats: Stats,
    buf: Vec<u8>,
}

impl Server {
    /// A listener on `socket` (a bound, unconnected UDP GSocket, which it
    /// puts in non-blocking mode) presenting `certificate` to every peer.
    pub fn new(
        socket: &gio::Socket,
        certificate: Option<&impl IsA<gio::TlsCertificate>>,
    ) -> Result<Server, glib::Error> {
        if socket.socket_type() != gio::SocketType::Datagram {
            return Err(error::io(
                gio::IOErrorEnum::InvalidArgument,
                "A DTLS listener needs a datagram socket",
            ));
        }
        socket.local_address().map_err(|_| {
            error::io(
                gio::IOErrorEnum::InvalidArgument,
                "A DTLS listener needs a bound socket",
            )
        })?;
        if socket.is_connected() {
            return Err(error::io(
                gio::IOErrorEnum::InvalidArgument,
                "A DTLS listener needs an unconnected socket (use g_dtls_server_connection_new for a connected one)",
            ));
        }
        // The listening engine's context: fail now on a bad configuration.
        crate::config::context(Role::Server)?;
        Ok(glib::Object::builder()
            .property("socket", socket)
            .property("certificate", certificate.map(|c| c.as_ref().clone()))
            .build())
    }

    fn socket(&self) -> &gio::Socket {
        self.imp().socket.get().expect("construct-only property")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.imp().state.lock().unwrap()
    }

    fn config(&self) -> std::sync::MutexGuard<'_, Config> {
        self.imp().config.lock().unwrap()
    }

    /// Peers now (verified, not yet removed), handshaking or established.
    pub fn peer_count(&self) -> u32 {
        self.state().peers.len() as u32
    }

    /// Connections waiting for `accept`.
    pub fn queued_count(&self) -> u32 {
        self.state().accept_queue.len() as u32
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.state().stats
    }

    /// Starts receiving: attaches the receive loop and the idle timer to
    /// the thread-default main context, which the application must run.
    /// Idempotent; `G_IO_ERROR_CLOSED` after [`Server::close`].
    pub fn start(&self) -> Result<(), glib::Error> {
        let mut st = self.state();
        if st.closed {
            return Err(closed_error());
        }
        if !st.sources.is_empty() {
            return Ok(());
        }
        let ctx = glib::MainContext::ref_thread_default();
        let weak = self.downgrade();
        let receive = SocketExtManual::create_source(
            self.socket(),
            glib::IOCondition::IN,
            gio::Cancellable::NONE,
            Some("DtlsOpensslServer receive"),
            glib::Priority::DEFAULT,
            move |_, _| match weak.upgrade() {
                Some(server) => {
                    crate::iface::guard("listener receive", (), || server.pump_and_dispatch());
                    glib::ControlFlow::Continue
                }
                None => glib::ControlFlow::Break,
            },
        );
        receive.attach(Some(&ctx));
        st.sources.push(receive);
        let weak = self.downgrade();
        let interval = self.sweep_interval();
        let timer = glib::timeout_source_new(
            interval,
            Some("DtlsOpensslServer idle timer"),
            glib::Priority::DEFAULT,
            move || match weak.upgrade() {
                Some(server) => {
                    crate::iface::guard("listener idle timer", (), || server.sweep());
                    glib::ControlFlow::Continue
                }
                None => glib::ControlFlow::Break,
            },
        );
        timer.attach(Some(&ctx));
        st.sources.push(timer);
        Ok(())
    }

    fn sweep_interval(&self) -> Duration {
        let idle = u64::from(self.config().idle_timeout.max(1)) * 1000;
        Duration::from_millis((idle / 4).clamp(250, 5000))
    }

    /// Whether [`Server::start`] has run and [`Server::close`] has not.
    pub fn is_active(&self) -> bool {
        let st = self.state();
        !st.closed && !st.sources.is_empty()
    }

    /// Waits for the next verified peer (its handshake not yet run),
    /// receiving from the socket meanwhile. `G_IO_ERROR_CLOSED` once the
    /// listener is closed; `G_IO_ERROR_CANCELLED` when cancelled.
    pub fn accept(
        &self,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<ServerConnection, glib::Error> {
        let ctx = glib::MainContext::new();
        let _owner = ctx
            .acquire()
            .map_err(|_| error::io(gio::IOErrorEnum::Failed, "could not acquire a wait context"))?;
        self.state().accept_contexts.push(ctx.clone());
        let socket_source = SocketExtManual::create_source(
            self.socket(),
            glib::IOCondition::IN,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            |_, _| glib::ControlFlow::Continue,
        );
        socket_source.attach(Some(&ctx));
        let cancel_source = cancellable.map(|c| {
            let s = crate::connection::io::on_cancelled(c, || glib::ControlFlow::Continue);
            s.attach(Some(&ctx));
            s
        });
        let result = loop {
            self.pump_and_dispatch();
            {
                let mut st = self.state();
                if let Some(conn) = st.accept_queue.pop_front() {
                    break Ok(conn);
                }
                if st.closed {
                    break Err(closed_error());
                }
            }
            if let Some(c) = cancellable {
                if let Err(e) = c.set_error_if_cancelled() {
                    break Err(e);
                }
            }
            ctx.iteration(true);
        };
        socket_source.destroy();
        if let Some(s) = cancel_source {
            s.destroy();
        }
        self.state().accept_contexts.retain(|c| c != &ctx);
        result
    }

    /// Calls `callback` with the next verified peer (at once if one is
    /// queued, else from the thread that receives it: the listener's
    /// context), or with the error that ends the wait: `G_IO_ERROR_CLOSED`,
    /// `G_IO_ERROR_CANCELLED`. The C API (`dtls_openssl_server_accept_async`)
    /// delivers the result in the caller's context through a GTask.
    pub fn accept_with_callback<F>(&self, cancellable: Option<&gio::Cancellable>, callback: F)
    where
        F: FnOnce(Result<ServerConnection, glib::Error>) + Send + 'static,
    {
        if let Some(Err(e)) = cancellable.map(|c| c.set_error_if_cancelled()) {
            return callback(Err(e));
        }
        let id = {
            let mut st = self.state();
            if let Some(conn) = st.accept_queue.pop_front() {
                drop(st);
                return callback(Ok(conn));
            }
            if st.closed {
                drop(st);
                return callback(Err(closed_error()));
            }
            st.next_id += 1;
            let id = st.next_id;
            st.pending.push_back((id, Box::new(callback)));
            id
        };
        if let Some(c) = cancellable {
            let weak = self.downgrade();
            // Runs at once when already cancelled; never with our lock held.
            c.connect_cancelled(move |_| {
                let Some(server) = weak.upgrade() else { return };
                let cb = {
                    let mut st = server.state();
                    let at = st.pending.iter().position(|(i, _)| *i == id);
                    at.and_then(|at| st.pending.remove(at)).map(|(_, cb)| cb)
                };
                if let Some(cb) = cb {
                    cb(Err(error::io(
                        gio::IOErrorEnum::Cancelled,
                        "Operation was cancelled",
                    )));
                }
            });
        }
    }

    /// Stops receiving, closes every peer (close_notify to those whose
    /// handshake completed, then their socket: their connections' further
    /// operations fail with `G_IO_ERROR_CLOSED`), drops connections not yet
    /// accepted and fails pending accepts with `G_IO_ERROR_CLOSED`. The
    /// socket itself stays open (it is the caller's). Idempotent.
    pub fn close(&self, cancellable: Option<&gio::Cancellable>) -> Result<(), glib::Error> {
        let (peers, queued, pending, sources, contexts) = {
            let mut st = self.state();
            if st.closed {
                return Ok(());
            }
            st.closed = true;
            st.listening = None;
            (
                std::mem::take(&mut st.peers),
                std::mem::take(&mut st.accept_queue),
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.sources),
                st.accept_contexts.clone(),
            )
        };
        for s in sources {
            s.destroy();
        }
        let mut result = Ok(());
        for peer in peers.into_values() {
            if let Some(conn) = peer.conn.upgrade() {
                let c = conn.upcast_ref::<Connection>();
                if c.handshake_succeeded() == Some(true) && !c.is_closed() {
                    if let Err(e) = conn.close(cancellable) {
                        if result.is_ok() && e.matches(gio::IOErrorEnum::Cancelled) {
                            result = Err(e);
                        }
                    }
                }
            }
            peer.shared.close();
        }
        drop(queued);
        for (_, cb) in pending {
            cb(Err(closed_error()));
        }
        for c in contexts {
            c.wakeup();
        }
        self.notify("peer-count");
        self.notify("active");
        result
    }

    /// Receives what the socket has (bounded), then hands new peers to the
    /// application.
    fn pump_and_dispatch(&self) {
        let (new, count_changed) = self.pump();
        if count_changed {
            self.notify("peer-count");
        }
        for conn in new {
            self.dispatch(conn);
        }
    }

    /// Hands a new connection to the `incoming` handlers, else to a pending
    /// `accept_async`, else to the accept queue.
    fn dispatch(&self, conn: ServerConnection) {
        let handled = self.emit_by_name::<bool>("incoming", &[&conn]);
        if handled {
            return;
        }
        let (cb, contexts) = {
            let mut st = self.state();
            if st.closed {
                return;
            }
            match st.pending.pop_front() {
                Some((_, cb)) => (Some(cb), Vec::new()),
                None => {
                    st.accept_queue.push_back(conn.clone());
                    (None, st.accept_contexts.clone())
                }
            }
        };
        if let Some(cb) = cb {
            cb(Ok(conn));
        }
        for c in contexts {
            c.wakeup();
        }
    }

    /// Receives up to [`MAX_PER_PUMP`] datagrams; returns the new
    /// connections and whether the peer count changed.
    fn pump(&self) -> (Vec<ServerConnection>, bool) {
        let socket = self.socket().clone();
        let mut new = Vec::new();
        let mut st = self.state();
        if st.closed {
            return (new, false);
        }
        let before = st.peers.len();
        let mut buf = std::mem::take(&mut st.buf);
        buf.resize(crate::connection::io::MAX_DATAGRAM, 0);
        for _ in 0..MAX_PER_PUMP {
            let (n, from) = match socket.receive_from(&mut buf[..], gio::Cancellable::NONE) {
                Ok(r) => r,
                Err(e) if e.matches(gio::IOErrorEnum::WouldBlock) => break,
                Err(e) => {
                    crate::debug!("listener receive: {}", e);
                    break;
                }
            };
            let Ok(from) = from.downcast::<gio::InetSocketAddress>() else {
                continue;
            };
            self.handle(&mut st, &buf[..n], from, &mut new);
        }
        st.buf = buf;
        let changed = st.peers.len() != before || !new.is_empty();
        (new, changed)
    }

    fn handle(
        &self,
        st: &mut State,
        datagram: &[u8],
        from: gio::InetSocketAddress,
        new: &mut Vec<ServerConnection>,
    ) {
        let key = SocketAddr::from(from.clone());
        let hello = engine::client_hello(datagram);
        if let Some(peer) = st.peers.get(&key) {
            match hello {
                Some(h) if h.random != peer.random.as_slice() => {
                    self.listen(st, datagram, &from, key, h, new)
                }
                _ => {
                    if !peer.shared.deliver(datagram) {
                        st.stats.dropped_datagrams += 1;
                    }
                }
            }
            return;
        }
        match hello {
            Some(h) => self.listen(st, datagram, &from, key, h, new),
            None => st.stats.dropped_datagrams += 1,
        }
    }

    /// The cookie exchange for a ClientHello from `key`, which has no peer
    /// or a peer this ClientHello would replace.
    fn listen(
        &self,
        st: &mut State,
        datagram: &[u8],
        from: &gio::InetSocketAddress,
        key: SocketAddr,
        hello: engine::ClientHello<'_>,
        new: &mut Vec<ServerConnection>,
    ) {
        let replacing = st.peers.contains_key(&key);
        let (max_peers, max_half_open) = {
            let c = self.config();
            (c.max_peers as usize, c.max_half_open as usize)
        };
        if !hello.cookie.is_empty() {
            // Limits before anything is made for the sender. A peer about
            // to be replaced makes room for its successor.
            let others = st.peers.len() - usize::from(replacing);
            let half_open = st
                .peers
                .iter()
                .filter(|(k, p)| **k != key && !p.established())
                .count();
            if others >= max_peers || half_open >= max_half_open {
                st.stats.refused += 1;
                return;
            }
        }
        let mut engine = match st.listening.take() {
            Some(e) => e,
            None => match crate::config::context(Role::Server).and_then(|ctx| {
                Engine::new(&ctx, Role::Server).map_err(crate::connection::core::engine_error)
            }) {
                Ok(e) => e,
                Err(e) => {
                    glib::g_warning!(crate::LOG_DOMAIN, "listener: no engine: {}", e);
                    return;
                }
            },
        };
        engine.set_stateless_cookies(key.to_string().as_bytes());
        match engine.listen(datagram) {
            Ok(Listened::HelloVerifyRequest(reply)) => {
                st.listening = Some(engine);
                st.stats.hello_verify_requests += 1;
                if let Err(e) =
                    self.socket()
                        .send_to(Some(from), &reply[..], gio::Cancellable::NONE)
                {
                    crate::debug!("HelloVerifyRequest to {}: {}", key, e);
                }
            }
            Ok(Listened::Dropped) => {
                st.listening = Some(engine);
                st.stats.dropped_datagrams += 1;
            }
            Ok(Listened::Verified) => {
                if let Some(old) = st.peers.remove(&key) {
                    old.shared.close();
                    st.stats.replaced += 1;
                }
                match self.new_peer(engine, from) {
                    Ok((conn, shared)) => {
                        st.peers.insert(
                            key,
                            Peer {
                                shared,
                                conn: conn.downgrade(),
                                random: hello.random.to_vec(),
                            },
                        );
                        st.stats.accepted += 1;
                        new.push(conn);
                    }
                    Err(e) => glib::g_warning!(crate::LOG_DOMAIN, "new peer {}: {}", key, e),
                }
            }
            Err(e) => crate::debug!("listen from {}: {}", key, e),
        }
    }

    /// The connection of a verified peer, over its own socket, with the
    /// engine that verified it.
    fn new_peer(
        &self,
        engine: Engine,
        from: &gio::InetSocketAddress,
    ) -> Result<(ServerConnection, Arc<PeerShared>), glib::Error> {
        let c = self.config();
        let shared = PeerShared::new(
            self.socket().clone(),
            from.clone().upcast(),
            c.queue_length as usize,
        );
        let base = PeerSocket::new(shared.clone());
        // gio-rs refuses to build an Initable without initialising it, and
        // the engine must be in place before `init`: plain g_object_new.
        let names = [c"base-socket".as_ptr()];
        let values = [base.upcast_ref::<gio::DatagramBased>().to_value()];
        // SAFETY: a concrete, instantiable GObject type; one property name
        // and one value (`glib::Value` is a transparent GValue), both alive
        // for the call; we own the new (non-floating) reference.
        #[allow(unsafe_code)]
        let object: glib::Object = unsafe {
            glib::translate::from_glib_full(glib::gobject_ffi::g_object_new_with_properties(
                glib::translate::IntoGlib::into_glib(ServerConnection::static_type()),
                1,
                names.as_ptr() as *mut _,
                values.as_ptr() as *const glib::gobject_ffi::GValue,
            ))
        };
        let conn = object
            .downcast::<ServerConnection>()
            .expect("g_object_new of this type");
        conn.set_property("certificate", c.certificate.clone());
        conn.set_property("interaction", c.interaction.clone());
        conn.set_property("authentication-mode", c.authentication_mode);
        // The listener did the cookie exchange; the engine keeps its
        // (address-bound) cookie for the ClientHello's retransmissions.
        conn.set_property("cookie-exchange", false);
        if let Some(db) = &c.database {
            conn.set_property("database", db);
        }
        if let Some(p) = &c.advertised_protocols {
            conn.set_property("advertised-protocols", glib::StrV::from(p.clone()));
        }
        drop(c);
        conn.upcast_ref::<Connection>().set_preset_engine(engine);
        // SAFETY: `conn` is new and not shared yet; init runs once, before
        // any other use (what `g_initable_init` requires).
        #[allow(unsafe_code)]
        unsafe {
            conn.init(gio::Cancellable::NONE)?
        };
        Ok((conn, shared))
    }

    /// Removes idle and finished peers.
    fn sweep(&self) {
        let idle = Duration::from_secs(self.config().idle_timeout.into());
        let removed: Vec<Peer> = {
            let mut st = self.state();
            let gone: Vec<SocketAddr> = st
                .peers
                .iter()
                .filter(|(_, p)| p.finished() || (!idle.is_zero() && p.shared.idle() >= idle))
                .map(|(k, _)| *k)
                .collect();
            let mut out = Vec::new();
            for k in gone {
                if let Some(p) = st.peers.remove(&k) {
                    if !p.finished() {
                        st.stats.idle_dropped += 1;
                    }
                    st.stats.dropped_datagrams += p.shared.dropped();
                    out.push(p);
                }
            }
            out
        };
        if removed.is_empty() {
            return;
        }
        for p in &removed {
            crate::debug!("listener: peer {:?} removed", p.shared.address());
            p.shared.close();
        }
        self.notify("peer-count");
    }

    /// Runs the idle sweep now (tests; normally the timer does).
    pub fn sweep_now(&self) {
        self.sweep();
    }
}

fn closed_error() -> glib::Error {
    error::io(gio::IOErrorEnum::Closed, "The DTLS listener is closed")
}

pub(crate) mod imp {
    use super::*;

    #[derive(Default)]
    pub struct Server {
        pub(super) socket: OnceLock<gio::Socket>,
        pub(super) config: Mutex<Config>,
        pub(super) state: Mutex<State>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Server {
        const NAME: &'static str = "DtlsOpensslServer";
        type Type = super::Server;
    }

    impl ObjectImpl for Server {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: std::sync::LazyLock<Vec<glib::ParamSpec>> = std::sync::LazyLock::new(
                || {
                    vec![
                        glib::ParamSpecObject::builder::<gio::Socket>("socket")
                            .blurb("The bound, unconnected UDP socket to serve on")
                            .construct_only()
                            .build(),
                        glib::ParamSpecObject::builder::<gio::TlsCertificate>("certificate")
                            .blurb("The certificate every peer's connection presents")
                            .build(),
                        glib::ParamSpecObject::builder::<gio::TlsDatabase>("database")
                            .blurb("The database client certificates are verified with (default: the backend's)")
                            .build(),
                        glib::ParamSpecObject::builder::<gio::TlsInteraction>("interaction")
                            .blurb("The interaction of every peer's connection")
                            .build(),
                        glib::ParamSpecEnum::builder_with_default(
                            "authentication-mode",
                            gio::TlsAuthenticationMode::None,
                        )
                        .blurb("Whether peers are asked for a client certificate")
                        .build(),
                        glib::ParamSpecBoxed::builder::<glib::StrV>("advertised-protocols")
                            .blurb("ALPN protocols to choose from, in preference order")
                            .build(),
                        glib::ParamSpecUInt::builder("max-peers")
                            .blurb("Most peers at once; verified ClientHellos beyond are ignored")
                            .minimum(1)
                            .default_value(DEFAULT_MAX_PEERS)
                            .build(),
                        glib::ParamSpecUInt::builder("max-half-open")
                            .blurb("Most peers whose handshake has not completed (accepted or not)")
                            .minimum(1)
                            .default_value(DEFAULT_MAX_HALF_OPEN)
                            .build(),
                        glib::ParamSpecUInt::builder("idle-timeout")
                            .blurb("Seconds without a datagram after which a peer is dropped (0: never)")
                            .default_value(DEFAULT_IDLE_TIMEOUT)
                            .build(),
                        glib::ParamSpecUInt::builder("receive-queue-length")
                            .blurb("Datagrams kept per peer until read; more are dropped")
                            .minimum(1)
                            .default_value(DEFAULT_QUEUE_LENGTH)
                            .build(),
                        glib::ParamSpecUInt::builder("peer-count")
                            .blurb("Peers now (verified, handshaking or established)")
                            .read_only()
                            .build(),
                        glib::ParamSpecBoolean::builder("active")
                            .blurb("Whether the listener has been started and not closed")
                            .read_only()
                            .build(),
                    ]
                },
            );
            PROPS.as_ref()
        }

        fn signals() -> &'static [Signal] {
            static SIGNALS: std::sync::LazyLock<Vec<Signal>> = std::sync::LazyLock::new(|| {
                vec![Signal::builder("incoming")
                    .param_types([ServerConnection::static_type()])
                    .return_type::<bool>()
                    .run_last()
                    // The first handler that returns TRUE takes the
                    // connection (g_signal_accumulator_true_handled).
                    .accumulator(|_hint, _acc, value| {
                        if value.get::<bool>().unwrap_or(false) {
                            std::ops::ControlFlow::Break(value.clone())
                        } else {
                            std::ops::ControlFlow::Continue(value.clone())
                        }
                    })
                    .build()]
            });
            SIGNALS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            if pspec.name() == "socket" {
                if let Ok(Some(s)) = value.get::<Option<gio::Socket>>() {
                    s.set_blocking(false);
                    let _ = self.socket.set(s);
                }
                return;
            }
            let mut c = self.config.lock().unwrap();
            match pspec.name() {
                "certificate" => c.certificate = value.get().ok().flatten(),
                "database" => c.database = value.get().ok().flatten(),
                "interaction" => c.interaction = value.get().ok().flatten(),
                "authentication-mode" => {
                    c.authentication_mode = value.get().unwrap_or(gio::TlsAuthenticationMode::None)
                }
                "advertised-protocols" => {
                    let v: Vec<String> = value
                        .get::<glib::StrV>()
                        .ok()
                        .map(|v| v.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default();
                    c.advertised_protocols = (!v.is_empty()).then_some(v);
                }
                "max-peers" => c.max_peers = value.get().unwrap_or(DEFAULT_MAX_PEERS),
                "max-half-open" => c.max_half_open = value.get().unwrap_or(DEFAULT_MAX_HALF_OPEN),
                "idle-timeout" => c.idle_timeout = value.get().unwrap_or(DEFAULT_IDLE_TIMEOUT),
                "receive-queue-length" => {
                    c.queue_length = value.get().unwrap_or(DEFAULT_QUEUE_LENGTH)
                }
                other => glib::g_warning!(crate::LOG_DOMAIN, "property {} is read-only", other),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            match pspec.name() {
                "socket" => return self.socket.get().to_value(),
                "peer-count" => return self.obj().peer_count().to_value(),
                "active" => return self.obj().is_active().to_value(),
                _ => {}
            }
            let c = self.config.lock().unwrap();
            match pspec.name() {
                "certificate" => c.certificate.to_value(),
                "database" => c.database.to_value(),
                "interaction" => c.interaction.to_value(),
                "authentication-mode" => c.authentication_mode.to_value(),
                "advertised-protocols" => {
                    crate::connection::properties::protocols_value(&c.advertised_protocols)
                }
                "max-peers" => c.max_peers.to_value(),
                "max-half-open" => c.max_half_open.to_value(),
                "idle-timeout" => c.idle_timeout.to_value(),
                "receive-queue-length" => c.queue_length.to_value(),
                _ => glib::Value::from_type(pspec.value_type()),
            }
        }

        fn dispose(&self) {
            let _ = self.obj().close(gio::Cancellable::NONE);
        }
    }
}
