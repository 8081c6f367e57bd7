//! `GDatagramBasedInterface`, and safe access to the message arrays GIO
//! passes (scatter into `GInputVector`s, gather from `GOutputVector`s).

use super::cancellable;
use gio::ffi::{
    GCancellable, GDatagramBased, GDatagramBasedInterface, GInputMessage, GOutputMessage,
};
use glib::ffi::{gboolean, GError, GIOCondition, GSource};
use glib::subclass::prelude::*;
use glib::translate::*;

/// One received datagram's destination, as GIO describes it: a
/// `GInputMessage` itself, so GIO's array is used in place (no copy of it,
/// no allocation per call).
#[repr(transparent)]
pub(crate) struct InputMessage(GInputMessage);

impl InputMessage {
    /// Total capacity of the message's vectors.
    pub(crate) fn capacity(&self) -> usize {
        self.vectors().iter().map(|v| v.size).sum()
    }

    fn vectors(&self) -> &[gio::ffi::GInputVector] {
        if self.0.vectors.is_null() || self.0.num_vectors == 0 {
            return &[];
        }
        // SAFETY: GIO's contract: `vectors` holds `num_vectors` entries.
        unsafe { std::slice::from_raw_parts(self.0.vectors, self.0.num_vectors as usize) }
    }

    /// The message's one buffer, when it has exactly one (the usual case):
    /// a record can be read straight into it.
    pub(crate) fn single_buffer(&mut self) -> Option<&mut [u8]> {
        match self.vectors() {
            [v] if !v.buffer.is_null() && v.size > 0 => {
                // SAFETY: the vector's buffer holds `size` writable bytes, and
                // the returned borrow of `self` keeps the message ours.
                Some(unsafe { std::slice::from_raw_parts_mut(v.buffer as *mut u8, v.size) })
            }
            _ => None,
        }
    }

    /// Copies `data` across the vectors (the caller checked the capacity)
    /// and fills in the output fields.
    pub(crate) fn fill(&mut self, data: &[u8]) {
        let mut rest = data;
        for v in self.vectors() {
            if rest.is_empty() {
                break;
            }
            let n = rest.len().min(v.size);
            if n > 0 && !v.buffer.is_null() {
                // SAFETY: each vector's buffer holds `size` writable bytes.
                unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), v.buffer as *mut u8, n) };
            }
            rest = &rest[n..];
        }
        self.received(data.len());
    }

    /// Fills in the output fields for `len` bytes already in the buffers.
    pub(crate) fn received(&mut self, len: usize) {
        self.0.bytes_received = len;
        self.0.flags = 0;
        if !self.0.address.is_null() {
            // SAFETY: an out-pointer GIO asked us to fill; a connected DTLS
            // connection reports no per-message address.
            unsafe { *self.0.address = std::ptr::null_mut() };
        }
        if !self.0.num_control_messages.is_null() {
            // SAFETY: as above.
            unsafe { *self.0.num_control_messages = 0 };
        }
        if !self.0.control_messages.is_null() {
            // SAFETY: as above.
            unsafe { *self.0.control_messages = std::ptr::null_mut() };
        }
    }
}

/// One datagram to send: a `GOutputMessage` itself, like [`InputMessage`].
#[repr(transparent)]
pub(crate) struct OutputMessage(GOutputMessage);

impl OutputMessage {
    /// The message's bytes when they are in one vector (the usual case),
    /// to encrypt without gathering them first.
    pub(crate) fn single(&self) -> Option<&[u8]> {
        if self.0.vectors.is_null() || self.0.num_vectors != 1 {
            return None;
        }
        // SAFETY: GIO's contract: `vectors` holds `num_vectors` (1) entries
        // of `size` readable bytes each.
        let v = unsafe { &*self.0.vectors };
        if v.buffer.is_null() {
            return (v.size == 0).then_some(&[][..]);
        }
        // SAFETY: as above.
        Some(unsafe { std::slice::from_raw_parts(v.buffer as *const u8, v.size) })
    }

    /// Appends the message's bytes to `out`.
    pub(crate) fn gather(&self, out: &mut Vec<u8>) {
        if self.0.vectors.is_null() {
            return;
        }
        // SAFETY: GIO's contract: `vectors` holds `num_vectors` entries, each
        // `size` readable bytes.
        let vectors =
            unsafe { std::slice::from_raw_parts(self.0.vectors, self.0.num_vectors as usize) };
        for v in vectors {
            if v.size > 0 && !v.buffer.is_null() {
                // SAFETY: as above.
                out.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(v.buffer as *const u8, v.size)
                });
            }
        }
    }

    pub(crate) fn has_control_messages(&self) -> bool {
        self.0.num_control_messages > 0
    }

    pub(crate) fn set_bytes_sent(&mut self, n: usize) {
        self.0.bytes_sent = n as u32;
    }
}

pub(crate) trait DatagramBasedImpl: ObjectSubclass {
    fn receive_messages(
        &self,
        messages: &mut [InputMessage],
        flags: i32,
        timeout_us: i64,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<usize, glib::Error>;
    fn send_messages(
        &self,
        messages: &mut [OutputMessage],
        flags: i32,
        timeout_us: i64,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<usize, glib::Error>;
    fn create_source(
        &self,
        condition: glib::IOCondition,
        cancellable: Option<&gio::Cancellable>,
    ) -> glib::Source;
    fn condition_check(&self, condition: glib::IOCondition) -> glib::IOCondition;
    fn condition_wait(
        &self,
        condition: glib::IOCondition,
        timeout_us: i64,
        cancellable: Option<&gio::Cancellable>,
    ) -> Result<(), glib::Error>;
}

fn imp<'a, T: DatagramBasedImpl>(d: *mut GDatagramBased) -> &'a T {
    // SAFETY: GIO calls these vfuncs only on instances of `T::Type`.
    unsafe { (*(d as *const T::Instance)).imp() }
}

/// GLib-style argument check for the message arrays: a CRITICAL naming the
/// failed check (like `g_return_val_if_fail`), then — unlike
/// `g_return_val_if_fail`, which sets no error — −1 with
/// `G_IO_ERROR_INVALID_ARGUMENT`, because GIO's wrappers require an error
/// with every −1 (`(retval < 0) == (child_error != NULL)`) and a caller
/// must be able to tell the failure. GSocket itself fails such a call with
/// an error (the kernel's EFAULT), never a crash or a silent success.
/// `parts` gives a message's (num_vectors, vectors), `bad` whether a vector
/// has a NULL buffer with a non-zero size.
///
/// # Safety
/// `messages` is NULL or holds `num` entries; each message's `vectors`,
/// when not NULL, holds `num_vectors` entries.
unsafe fn check_messages<M, V>(
    func: &str,
    messages: *const M,
    num: u32,
    parts: impl Fn(&M) -> (u32, *const V),
    bad: impl Fn(&V) -> bool,
) -> Result<(), glib::Error> {
    if messages.is_null() {
        return match num {
            0 => Ok(()),
            _ => Err(argument_error(
                func,
                "num_messages == 0 || messages != NULL",
            )),
        };
    }
    // SAFETY: per the contract.
    let msgs = unsafe { std::slice::from_raw_parts(messages, num as usize) };
    for (i, m) in msgs.iter().enumerate() {
        let (n, vectors) = parts(m);
        if n == 0 {
            continue;
        }
        if vectors.is_null() {
            return Err(argument_error(
                func,
                &format!("messages[{i}].num_vectors == 0 || messages[{i}].vectors != NULL"),
            ));
        }
        // SAFETY: per the contract.
        let vectors = unsafe { std::slice::from_raw_parts(vectors, n as usize) };
        if let Some(j) = vectors.iter().position(&bad) {
            return Err(argument_error(
                func,
                &format!(
                    "messages[{i}].vectors[{j}].buffer != NULL || messages[{i}].vectors[{j}].size == 0"
                ),
            ));
        }
    }
    Ok(())
}

/// Logs "FUNC: assertion 'EXPR' failed" as a CRITICAL in our domain and
/// returns the error the call fails with.
fn argument_error(func: &str, expr: &str) -> glib::Error {
    let func = std::ffi::CString::new(func).unwrap_or_default();
    let expr = std::ffi::CString::new(expr).unwrap_or_default();
    // SAFETY: NUL-terminated strings alive for the call.
    unsafe {
        glib::ffi::g_return_if_fail_warning(c"dtls-openssl".as_ptr(), func.as_ptr(), expr.as_ptr())
    };
    crate::error::io(
        gio::IOErrorEnum::InvalidArgument,
        format!(
            "Invalid argument to {}: {} is false",
            func.to_string_lossy(),
            expr.to_string_lossy()
        ),
    )
}

unsafe extern "C" fn receive_messages<T: DatagramBasedImpl>(
    d: *mut GDatagramBased,
    messages: *mut GInputMessage,
    num: u32,
    flags: i32,
    timeout: i64,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> i32 {
    let r = super::guard_or(
        "receive_messages",
        || Err(super::internal_error()),
        || {
            // SAFETY: GIO's contract on the arrays (NULL pointers are checked).
            unsafe {
                check_messages(
                    "g_datagram_based_receive_messages",
                    messages,
                    num,
                    |m: &GInputMessage| (m.num_vectors, m.vectors as *const gio::ffi::GInputVector),
                    |v| v.size > 0 && v.buffer.is_null(),
                )
            }?;
            let msgs: &mut [InputMessage] = if num == 0 || messages.is_null() {
                &mut []
            } else {
                // SAFETY: GIO checked `messages` holds `num` entries we may
                // write, for the whole call; InputMessage is a
                // repr(transparent) GInputMessage.
                unsafe {
                    std::slice::from_raw_parts_mut(messages.cast::<InputMessage>(), num as usize)
                }
            };
            // SAFETY: cancellable from GIO.
            imp::<T>(d).receive_messages(
                msgs,
                flags,
                timeout,
                unsafe { cancellable(cancel) }.as_ref(),
            )
        },
    );
    // SAFETY: `error` from GIO.
    unsafe { super::set_error(r.map(|n| n as i32), error, -1) }
}

unsafe extern "C" fn send_messages<T: DatagramBasedImpl>(
    d: *mut GDatagramBased,
    messages: *mut GOutputMessage,
    num: u32,
    flags: i32,
    timeout: i64,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> i32 {
    let r = super::guard_or(
        "send_messages",
        || Err(super::internal_error()),
        || {
            // SAFETY: GIO's contract on the arrays (NULL pointers are checked).
            unsafe {
                check_messages(
                    "g_datagram_based_send_messages",
                    messages,
                    num,
                    |m: &GOutputMessage| {
                        (m.num_vectors, m.vectors as *const gio::ffi::GOutputVector)
                    },
                    |v| v.size > 0 && v.buffer.is_null(),
                )
            }?;
            let msgs: &mut [OutputMessage] = if num == 0 || messages.is_null() {
                &mut []
            } else {
                // SAFETY: GIO checked `messages` holds `num` entries, for the
                // whole call; OutputMessage is a repr(transparent)
                // GOutputMessage.
                unsafe {
                    std::slice::from_raw_parts_mut(messages.cast::<OutputMessage>(), num as usize)
                }
            };
            // SAFETY: cancellable from GIO.
            imp::<T>(d).send_messages(
                msgs,
                flags,
                timeout,
                unsafe { cancellable(cancel) }.as_ref(),
            )
        },
    );
    // SAFETY: `error` from GIO.
    unsafe { super::set_error(r.map(|n| n as i32), error, -1) }
}

unsafe extern "C" fn create_source<T: DatagramBasedImpl>(
    d: *mut GDatagramBased,
    condition: GIOCondition,
    cancel: *mut GCancellable,
) -> *mut GSource {
    super::guard("create_source", std::ptr::null_mut(), || {
        // SAFETY: cancellable from GIO.
        let source = imp::<T>(d).create_source(
            unsafe { from_glib(condition) },
            unsafe { cancellable(cancel) }.as_ref(),
        );
        source.into_glib_ptr()
    })
}

unsafe extern "C" fn condition_check<T: DatagramBasedImpl>(
    d: *mut GDatagramBased,
    condition: GIOCondition,
) -> GIOCondition {
    super::guard("condition_check", glib::IOCondition::ERR, || {
        imp::<T>(d).condition_check(unsafe { from_glib(condition) })
    })
    .into_glib()
}

unsafe extern "C" fn condition_wait<T: DatagramBasedImpl>(
    d: *mut GDatagramBased,
    condition: GIOCondition,
    timeout: i64,
    cancel: *mut GCancellable,
    error: *mut *mut GError,
) -> gboolean {
    let r = super::guard_or(
        "condition_wait",
        || Err(super::internal_error()),
        || {
            // SAFETY: cancellable from GIO.
            imp::<T>(d).condition_wait(
                unsafe { from_glib(condition) },
                timeout,
                unsafe { cancellable(cancel) }.as_ref(),
            )
        },
    );
    // SAFETY: `error` from GIO.
    unsafe { super::set_error(r.map(|_| true), error, false) }.into_glib()
}

/// Fills GIO's vtable with `T`'s implementation.
pub(crate) fn init<T: DatagramBasedImpl>(iface: &mut GDatagramBasedInterface) {
    iface.receive_messages = Some(receive_messages::<T>);
    iface.send_messages = Some(send_messages::<T>);
    iface.create_source = Some(create_source::<T>);
    iface.condition_check = Some(condition_check::<T>);
    iface.condition_wait = Some(condition_wait::<T>);
}
