//! `g_dtls_connection_handshake_async`: the handshake as a state machine on
//! the caller's thread-default main context. No thread, no blocking: each
//! step runs until it needs the socket or the DTLS timer, then sources on
//! that context wake the next step. Cancelling the cancellable wakes it too.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use gio::prelude::*;
use glib::thread_guard::ThreadGuard;

use super::base::Connection;
use super::core::{Step, TryClaim, Wait};
use crate::iface::task::Completion;

/// The async handshake's claim on the connection's handshake: released
/// when dropped (e.g. if the main context is destroyed with the handshake
/// waiting), so another caller can drive it; [`AsyncClaim::finish`]
/// records the outcome instead.
struct AsyncClaim(Option<Connection>);

impl AsyncClaim {
    fn finish(mut self, result: Result<(), glib::Error>) {
        if let Some(core) = self.0.take().as_ref().and_then(|c| c.core().ok()) {
            core.release(Some(result));
        }
    }
}

impl Drop for AsyncClaim {
    fn drop(&mut self) {
        if let Some(core) = self.0.as_ref().and_then(|c| c.core().ok()) {
            core.release(None);
        }
    }
}

struct Pending {
    claim: AsyncClaim,
    conn: Connection,
    cancellable: Option<gio::Cancellable>,
    done: Completion,
    sources: Vec<glib::Source>,
    /// The base socket's own timeout, from the start (see
    /// `Connection::bounded`): not sticky, like the blocking handshake's.
    deadline: Option<Instant>,
}

/// Starts the handshake; `done` completes in the caller's context.
pub(crate) fn start(conn: Connection, cancellable: Option<gio::Cancellable>, done: Completion) {
    let core = match conn.core() {
        Ok(c) => c,
        Err(e) => return done.complete(Err(e)),
    };
    match core.try_claim() {
        TryClaim::Finished(r) => done.complete(r),
        TryClaim::Claimed => {
            let deadline = super::io::socket_timeout(core.base()).map(|t| Instant::now() + t);
            step(Pending {
                claim: AsyncClaim(Some(conn.clone())),
                conn,
                cancellable,
                done,
                sources: Vec::new(),
                deadline,
            })
        }
        TryClaim::Busy => {
            // Another thread drives it: wait for its outcome off this context.
            let deadline = conn.bounded(super::core::Deadline::Never);
            std::thread::spawn(move || {
                let r = conn.handshake_blocking(deadline, cancellable.as_ref());
                done.complete(r);
            });
        }
    }
}

fn finish(p: Pending, result: Result<(), glib::Error>) {
    let Pending { claim, done, .. } = p;
    claim.finish(result.clone());
    done.complete(result);
}

fn step(mut p: Pending) {
    for s in p.sources.drain(..) {
        s.destroy();
    }
    let core = match p.conn.core() {
        Ok(c) => c,
        Err(e) => return finish(p, Err(e)),
    };
    core.drive_here();
    if let Some(Err(e)) = p.cancellable.as_ref().map(|c| c.set_error_if_cancelled()) {
        return finish(p, Err(e));
    }
    if p.deadline.is_some_and(|d| Instant::now() >= d) {
        // Not sticky: dropping the claim releases it without an outcome.
        let Pending { claim, done, .. } = p;
        drop(claim);
        return done.complete(Err(crate::error::io(
            gio::IOErrorEnum::TimedOut,
            "Socket I/O timed out",
        )));
    }
    let (conn, cancellable) = (p.conn.clone(), p.cancellable.clone());
    match conn.prepare(core).and_then(|_| core.handshake_step()) {
        Ok(Step::Done) => {
            conn.complete_handshake_async(cancellable.as_ref(), move |r| finish(p, r))
        }
        Ok(Step::WantCertificate) => {
            conn.request_certificate_async(cancellable.as_ref(), move |r| match r {
                Ok(()) => step(p),
                Err(e) => finish(p, Err(e)),
            })
        }
        Ok(Step::Wait(w)) => wait(p, w),
        Err(e) => finish(p, Err(e)),
    }
}

/// Attaches the sources that wake the next step; the first to fire wins.
fn wait(p: Pending, w: Wait) {
    let ctx = glib::MainContext::ref_thread_default();
    let base = p
        .conn
        .core()
        .map(|c| c.base().clone())
        .expect("initialised");
    let cancellable = p.cancellable.clone();
    let slot: Rc<RefCell<Option<Pending>>> = Rc::new(RefCell::new(None));
    let fire = {
        let slot = slot.clone();
        move || {
            if let Some(p) = slot.borrow_mut().take() {
                step(p);
            }
        }
    };
    let mut sources = Vec::new();
    let f = fire.clone();
    let s = super::io::base_source(
        &base,
        w.condition | glib::IOCondition::ERR | glib::IOCondition::HUP,
        cancellable.as_ref(),
        move || {
            f();
            glib::ControlFlow::Break
        },
    );
    let s = match s {
        Ok(s) => s,
        Err(e) => return finish(p, Err(e)),
    };
    s.attach(Some(&ctx));
    sources.push(s);
    if let Some(deadline) = super::core::earliest(w.deadline, p.deadline) {
        let f = ThreadGuard::new(fire.clone());
        let s = glib::timeout_source_new(
            deadline.saturating_duration_since(Instant::now()),
            None,
            glib::Priority::DEFAULT,
            move || {
                (f.get_ref())();
                glib::ControlFlow::Break
            },
        );
        s.attach(Some(&ctx));
        sources.push(s);
    }
    if let Some(c) = &cancellable {
        let s = super::io::on_cancelled(c, move || {
            fire();
            glib::ControlFlow::Break
        });
        s.attach(Some(&ctx));
        sources.push(s);
    }
    *slot.borrow_mut() = Some(Pending { sources, ..p });
}
