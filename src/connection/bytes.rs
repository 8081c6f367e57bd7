//! The bytes API GIO lacks: one GBytes per datagram, sync and async, plus
//! the MTU and keying material. This is what makes DTLS usable from
//! Python, where GIO's message arrays cannot be built.

use gio::prelude::*;

use super::base::Connection;
use super::core::{Deadline, Received};
use super::engine::MAX_RECORD_PLAINTEXT;
use crate::error;

impl Connection {
    /// Sends `data` as one datagram (one record); empty data sends nothing.
    /// Timeout in microseconds:
    /// −1 blocks, 0 never blocks (`G_IO_ERROR_WOULD_BLOCK`), >0 bounds the
    /// call (`G_IO_ERROR_TIMED_OUT`).
    pub fn send_bytes(
        &self,
        data: &[u8],
        timeout_us: i64,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error> {
        self.send_record(data, Deadline::from_timeout_us(timeout_us), cancellable)
    }

    /// Receives one datagram of at most `max_size` bytes; an empty result
    /// means the peer closed the connection (close_notify). A larger
    /// datagram is not truncated: `G_IO_ERROR_MESSAGE_TOO_LARGE`, and it
    /// stays queued for a receive with a larger `max_size`.
    pub fn receive_bytes(
        &self,
        max_size: usize,
        timeout_us: i64,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<glib::Bytes, glib::Error> {
        let mut buf = vec![0u8; max_size.min(MAX_RECORD_PLAINTEXT)];
        match self.receive_record(&mut buf, Deadline::from_timeout_us(timeout_us), cancellable)? {
            Received::Data(n) => {
                buf.truncate(n);
                Ok(glib::Bytes::from_owned(buf))
            }
            Received::Eof => Ok(glib::Bytes::from_static(b"")),
        }
    }

    /// Sends without blocking the caller's main context: `done` runs in the
    /// thread-default context when the datagram is out or failed.
    pub fn send_bytes_async<F: FnOnce(Result<(), glib::Error>) + 'static>(
        &self,
        data: glib::Bytes,
        priority: glib::Priority,
        cancellable: Option<&gio::Cancellable>,
        done: F,
    ) {
        let conn = self.clone();
        retry_until_ready(
            self,
            glib::IOCondition::OUT,
            priority,
            cancellable,
            done,
            move |c| conn.send_record(&data, Deadline::Now, c),
        );
    }

    /// Receives without blocking the caller's main context.
    pub fn receive_bytes_async<F: FnOnce(Result<glib::Bytes, glib::Error>) + 'static>(
        &self,
        max_size: usize,
        priority: glib::Priority,
        cancellable: Option<&gio::Cancellable>,
        done: F,
    ) {
        let conn = self.clone();
        retry_until_ready(
            self,
            glib::IOCondition::IN,
            priority,
            cancellable,
            done,
            move |c| conn.receive_bytes(max_size, 0, c),
        );
    }

    /// The largest datagram this connection sends, in bytes.
    pub fn mtu(&self) -> u32 {
        self.property("mtu")
    }

    /// Sets the largest datagram to send: 256 to 65507 bytes, else
    /// `G_IO_ERROR_INVALID_ARGUMENT` and nothing changes.
    pub fn set_mtu(&self, mtu: u32) -> Result<(), glib::Error> {
        if !(super::engine::MIN_MTU..=super::properties::MAX_MTU).contains(&mtu) {
            return Err(error::io(
                gio::IOErrorEnum::InvalidArgument,
                format!(
                    "MTU {mtu} out of range: a DTLS datagram is {} to {} bytes",
                    super::engine::MIN_MTU,
                    super::properties::MAX_MTU
                ),
            ));
        }
        self.set_property("mtu", mtu);
        Ok(())
    }

    /// The largest payload one datagram can carry at the current MTU (known
    /// once the handshake has chosen a cipher).
    pub fn max_payload(&self) -> Result<usize, glib::Error> {
        let core = self.core()?;
        match core.handshake_outcome() {
            Some(Ok(())) => Ok(core.engine().max_plaintext()),
            _ => Err(error::io(
                gio::IOErrorEnum::NotConnected,
                "The DTLS handshake is not complete",
            )),
        }
    }

    /// RFC 5705 keying material (e.g. DTLS-SRTP keys, label
    /// "EXTRACTOR-dtls_srtp").
    pub fn export_keying_material(
        &self,
        label: &str,
        context: Option<&[u8]>,
        length: usize,
    ) -> Result<Vec<u8>, glib::Error> {
        let core = self.core()?;
        if !matches!(core.handshake_outcome(), Some(Ok(()))) {
            return Err(error::io(
                gio::IOErrorEnum::NotConnected,
                "The DTLS handshake is not complete",
            ));
        }
        let r = core.engine().export_keying_material(label, context, length);
        r.map_err(super::core::engine_error)
    }
}

/// Runs `attempt` now, and again each time the connection's source for
/// `condition` fires, until it stops answering WOULD_BLOCK.
fn retry_until_ready<T: Send + 'static, F, A>(
    conn: &Connection,
    condition: glib::IOCondition,
    priority: glib::Priority,
    cancellable: Option<&gio::Cancellable>,
    done: F,
    mut attempt: A,
) where
    F: FnOnce(Result<T, glib::Error>) + 'static,
    A: FnMut(Option<&gio::Cancellable>) -> Result<T, glib::Error> + 'static,
{
    let cancellable = cancellable.cloned();
    let first = attempt(cancellable.as_ref());
    let ctx = glib::MainContext::ref_thread_default();
    match first {
        Err(e) if e.matches(gio::IOErrorEnum::WouldBlock) => {}
        result => {
            // Deliver from the context, never from inside the call.
            let pending =
                glib::thread_guard::ThreadGuard::new(std::cell::RefCell::new(Some((done, result))));
            let idle = glib::idle_source_new(None, priority, move || {
                if let Some((done, result)) = pending.get_ref().borrow_mut().take() {
                    done(result);
                }
                glib::ControlFlow::Break
            });
            idle.attach(Some(&ctx));
            return;
        }
    }
    let mut done = Some(done);
    let for_source = cancellable.clone();
    let source = conn.create_source(
        condition,
        for_source.as_ref(),
        None,
        priority,
        move |_, _| match attempt(cancellable.as_ref()) {
            Err(e) if e.matches(gio::IOErrorEnum::WouldBlock) => glib::ControlFlow::Continue,
            result => {
                if let Some(d) = done.take() {
                    d(result);
                }
                glib::ControlFlow::Break
            }
        },
    );
    source.attach(Some(&ctx));
}
