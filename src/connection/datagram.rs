//! GDatagramBased on a DTLS connection: one message is one record.
//!
//! Semantics (GIO's documentation, and GSocket's behaviour where it is
//! more specific):
//! - `flags` must be 0 (`G_IO_ERROR_INVALID_ARGUMENT` otherwise);
//! - timeout −1 blocks, 0 never blocks (`G_IO_ERROR_WOULD_BLOCK`), >0 is a
//!   deadline for the whole call (`G_IO_ERROR_TIMED_OUT`);
//! - receiving blocks for the first message only, then takes what is
//!   already there (like GSocket's `MSG_WAITFORONE`); an error or timeout
//!   after at least one message returns the count so far;
//! - a record larger than the message's buffers is never truncated: the
//!   call fails with `G_IO_ERROR_MESSAGE_TOO_LARGE`, the record stays
//!   queued, and a receive with larger buffers gets it;
//! - close_notify from the peer is a message of 0 bytes, then the count.

use std::cell::Cell;
use std::thread::LocalKey;

use super::base::Connection;
use super::core::{engine_error, Deadline, Received};
use super::engine::MAX_RECORD_PLAINTEXT;
use crate::error;
use crate::iface::datagram_based::{InputMessage, OutputMessage};

thread_local! {
    /// Per-thread scratch: no allocation per datagram.
    static RECORD: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static GATHER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer moved out of `slot`, so
/// nothing stays borrowed while `f` runs: the implicit handshake may run
/// application code (accept-certificate, a GTlsInteraction, a
/// GTlsDatabase) that sends or receives on another connection, and that
/// nested call finds the slot empty and uses a buffer of its own.
fn with_scratch<R>(slot: &'static LocalKey<Cell<Vec<u8>>>, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = slot.take();
    let r = f(&mut buf);
    slot.set(buf);
    r
}

fn check_flags(flags: i32) -> Result<(), glib::Error> {
    if flags != 0 {
        return Err(error::io(
            gio::IOErrorEnum::InvalidArgument,
            "Receive and send flags are not supported on DTLS connections",
        ));
    }
    Ok(())
}

pub(crate) fn receive_messages(
    conn: &Connection,
    messages: &mut [InputMessage],
    flags: i32,
    timeout_us: i64,
    cancellable: Option<&gio::Cancellable>,
) -> Result<usize, glib::Error> {
    check_flags(flags)?;
    let deadline = Deadline::from_timeout_us(timeout_us);
    let count = messages.len();
    for (i, message) in messages.iter_mut().enumerate() {
        let dl = if i == 0 { deadline } else { Deadline::Now };
        // One buffer (the usual case): the record goes straight into it.
        let got = if let Some(buf) = message.single_buffer() {
            let cap = buf.len().min(MAX_RECORD_PLAINTEXT);
            let r = conn.receive_record(&mut buf[..cap], dl, cancellable);
            if let Ok(r) = &r {
                message.received(match r {
                    Received::Data(n) => *n,
                    Received::Eof => 0,
                });
            }
            r
        } else {
            with_scratch(&RECORD, |buf| {
                buf.resize(MAX_RECORD_PLAINTEXT, 0);
                let cap = message.capacity().min(buf.len());
                let r = conn.receive_record(&mut buf[..cap], dl, cancellable)?;
                match r {
                    Received::Data(n) => message.fill(&buf[..n]),
                    Received::Eof => message.fill(&[]),
                }
                Ok::<_, glib::Error>(r)
            })
        };
        match got {
            Ok(Received::Data(_)) => {}
            Ok(Received::Eof) => return Ok(i + 1),
            Err(_) if i > 0 => return Ok(i),
            Err(e) => return Err(e),
        }
    }
    Ok(count)
}

pub(crate) fn send_messages(
    conn: &Connection,
    messages: &mut [OutputMessage],
    flags: i32,
    timeout_us: i64,
    cancellable: Option<&gio::Cancellable>,
) -> Result<usize, glib::Error> {
    check_flags(flags)?;
    if messages.is_empty() {
        return Ok(0);
    }
    let deadline = Deadline::from_timeout_us(timeout_us);
    // Each message is encrypted into the engine's queue, and the queue goes
    // to the base socket in batches (one sendmmsg per batch on a GSocket).
    with_scratch(&GATHER, |buf| {
        conn.send_records(messages.len(), deadline, cancellable, |i, engine| {
            let message = &mut messages[i];
            if message.has_control_messages() {
                return Err(error::io(
                    gio::IOErrorEnum::NotSupported,
                    "Control messages cannot be sent over DTLS",
                ));
            }
            let sent = match message.single() {
                Some(data) => {
                    engine.write_record(data).map_err(engine_error)?;
                    data.len()
                }
                None => {
                    buf.clear();
                    message.gather(buf);
                    engine.write_record(buf).map_err(engine_error)?;
                    buf.len()
                }
            };
            message.set_bytes_sent(sent);
            Ok(())
        })
    })
}

/// What is ready without touching the socket.
pub(crate) fn ready_now(conn: &Connection, condition: glib::IOCondition) -> glib::IOCondition {
    use glib::IOCondition as C;
    let Ok(core) = conn.core() else {
        return C::ERR & condition;
    };
    if core.in_callback_here() {
        // Asked from a handler the handshake is running (which may hold the
        // engine): nothing moves until it returns.
        return C::empty();
    }
    let mut ready = C::empty();
    let outcome = core.handshake_outcome();
    if matches!(outcome, Some(Err(_))) {
        // A failed connection: let the caller find out by trying.
        return condition & (C::IN | C::OUT) | C::ERR;
    }
    let engine = core.engine();
    if condition.contains(C::IN) && (engine.has_incoming() || engine.pending_record_len().is_some())
    {
        ready |= C::IN;
    }
    let connected = matches!(outcome, Some(Ok(())));
    drop(engine);
    // Before the handshake starts, a send is what starts it; during it,
    // only incoming datagrams or the timer move things.
    let writable = connected || !conn.handshake_started();
    if condition.contains(C::OUT) && writable && !core.has_unsent() {
        ready |= C::OUT;
    }
    if !connected && engine_timer_expired(conn) {
        // The handshake needs a retransmission: any operation will do it.
        ready |= condition & (C::IN | C::OUT);
    }
    ready
}

fn engine_timer_expired(conn: &Connection) -> bool {
    conn.core()
        .map(|c| c.engine().timeout().is_some_and(|t| t.is_zero()))
        .unwrap_or(false)
}

pub(crate) fn condition_check(
    conn: &Connection,
    condition: glib::IOCondition,
) -> glib::IOCondition {
    let ready = ready_now(conn, condition);
    if !ready.is_empty() || !condition.contains(glib::IOCondition::IN) {
        return ready;
    }
    // Look at the socket the only way the base-socket rule allows: a
    // non-blocking receive (skipped if a receive is already running, or if
    // a handler the handshake called asks).
    if let Some(core) = conn.core().ok().filter(|c| !c.in_callback_here()) {
        if let Ok(_op) = core.read_op.try_lock() {
            let _ = core.pull();
        }
    }
    ready_now(conn, condition)
}

pub(crate) fn condition_wait(
    conn: &Connection,
    condition: glib::IOCondition,
    timeout_us: i64,
    cancellable: Option<&gio::Cancellable>,
) -> Result<(), glib::Error> {
    let deadline = Deadline::from_timeout_us(timeout_us);
    let core = conn.core()?;
    // From a handler the handshake called, a wait could only end by its
    // timeout: the connection moves when the handler returns.
    core.reentered(deadline)?;
    loop {
        if !condition_check(conn, condition).is_empty() {
            return Ok(());
        }
        let until = match deadline {
            Deadline::Now => {
                return Err(error::io(
                    gio::IOErrorEnum::TimedOut,
                    "Socket I/O timed out",
                ))
            }
            Deadline::At(t) if std::time::Instant::now() >= t => {
                return Err(error::io(
                    gio::IOErrorEnum::TimedOut,
                    "Socket I/O timed out",
                ))
            }
            Deadline::At(t) => Some(t),
            Deadline::Never => None,
        };
        let timer = core
            .engine()
            .timeout()
            .map(|t| std::time::Instant::now() + t);
        let until = super::core::earliest(until, timer);
        super::io::wait(core.io(), glib::IOCondition::IN, until, cancellable)?;
    }
}
