//! What makes a client a client and a server a server: the hooks each
//! role's GObject type gives the shared [`Connection`], as virtual methods
//! of its class. The shared connection never asks which type it is; adding
//! a role is adding a type that implements [`ConnectionImpl`].

use std::marker::PhantomData;

use glib::prelude::*;
use glib::subclass::prelude::*;

use super::base::{Connection, Material};
use super::engine::{Engine, Role};

/// The hooks of one role. Implemented by the `imp` of
/// `DtlsOpensslClientConnection` and `DtlsOpensslServerConnection`.
pub trait ConnectionImpl: ObjectImpl + ObjectSubclass<Type: IsA<Connection>> {
    /// Which end of the handshake this type is.
    const ROLE: Role;

    /// Configures the engine before the first flight (the shared settings,
    /// MTU and timers, are already applied). `certificate` is the
    /// connection's certificate, read before the engine was locked.
    fn prepare(
        &self,
        engine: &mut Engine,
        certificate: Option<&Material>,
    ) -> Result<(), glib::Error>;

    /// How to judge the peer's certificate.
    fn verification(&self) -> Verification;

    /// After OpenSSL's handshake, with the engine locked: records what this
    /// role publishes; returns the properties to notify once unlocked.
    fn negotiated(&self, _engine: &Engine) -> &'static [&'static str] {
        &[]
    }

    /// After the peer was verified and accepted, with the engine locked
    /// (e.g. a client keeps the session for resuming).
    fn established(&self, _engine: &Engine) {}
}

/// What verifying the peer needs, decided by the role.
#[derive(Debug, Clone)]
pub struct Verification {
    /// `G_TLS_DATABASE_PURPOSE_AUTHENTICATE_SERVER` or `…_CLIENT`.
    pub purpose: &'static str,
    /// The identity the peer's certificate must match, if any.
    pub identity: Option<gio::SocketConnectable>,
    /// A missing identity is itself `BAD_IDENTITY` (a client that was not
    /// told which server it wants cannot accept any).
    pub identity_required: bool,
    /// The errors that count (validation-flags); others are ignored.
    pub mask: gio::TlsCertificateFlags,
    /// The verdict on a peer that sent no certificate.
    pub without_certificate: Result<(), glib::Error>,
}

/// The hooks as function pointers, stored in the class.
pub(crate) struct Hooks {
    pub role: Role,
    pub prepare: fn(&Connection, &mut Engine, Option<&Material>) -> Result<(), glib::Error>,
    pub verification: fn(&Connection) -> Verification,
    pub negotiated: fn(&Connection, &Engine) -> &'static [&'static str],
    pub established: fn(&Connection, &Engine),
}

/// `DtlsOpensslConnection`'s class: GObject's, plus the role's hooks (set
/// by each concrete subclass; none on the abstract type).
#[repr(C)]
pub struct ConnectionClass {
    parent_class: glib::gobject_ffi::GObjectClass,
    pub(crate) hooks: Option<&'static Hooks>,
}

// SAFETY: `ConnectionClass` starts with its parent's class struct and is
// the class of `imp::Connection`.
#[allow(unsafe_code)]
unsafe impl ClassStruct for ConnectionClass {
    type Type = super::base::imp::Connection;
}

struct HooksOf<T>(PhantomData<T>);

impl<T: ConnectionImpl> HooksOf<T> {
    const HOOKS: Hooks = Hooks {
        role: T::ROLE,
        prepare: |conn, engine, material| imp_of::<T>(conn).prepare(engine, material),
        verification: |conn| imp_of::<T>(conn).verification(),
        negotiated: |conn, engine| imp_of::<T>(conn).negotiated(engine),
        established: |conn, engine| imp_of::<T>(conn).established(engine),
    };
}

fn imp_of<T: ConnectionImpl>(conn: &Connection) -> &T {
    let obj = conn
        .downcast_ref::<T::Type>()
        .expect("the class's hooks run on instances of the class");
    T::from_obj(obj)
}

// SAFETY: the only class data is `hooks`, set here for `T`'s class (GObject
// copied the parent's class struct, whose hooks are none, beforehand).
#[allow(unsafe_code)]
unsafe impl<T: ConnectionImpl> IsSubclassable<T> for Connection {
    fn class_init(class: &mut glib::Class<Self>) {
        Self::parent_class_init::<T>(class);
        class.as_mut().hooks = Some(&HooksOf::<T>::HOOKS);
    }
}

impl Connection {
    /// The hooks of this connection's role.
    pub(crate) fn hooks(&self) -> &'static Hooks {
        self.class()
            .as_ref()
            .hooks
            .expect("DtlsOpensslConnection is abstract: every instance has a role")
    }

    /// Which end of the handshake this connection is.
    pub(crate) fn role(&self) -> Role {
        self.hooks().role
    }
}
