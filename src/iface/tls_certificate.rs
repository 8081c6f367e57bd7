//! `GTlsCertificateClass`.

use gio::ffi::{GSocketConnectable, GTlsCertificate, GTlsCertificateClass, GTlsCertificateFlags};
use glib::subclass::prelude::*;
use glib::translate::*;

/// The `verify` vfunc of a GTlsCertificate subclass.
pub(crate) trait TlsCertificateImpl: ObjectSubclass {
    fn verify(
        &self,
        identity: Option<&gio::SocketConnectable>,
        trusted_ca: Option<&gio::TlsCertificate>,
    ) -> gio::TlsCertificateFlags;
}

unsafe extern "C" fn verify<T: TlsCertificateImpl>(
    cert: *mut GTlsCertificate,
    identity: *mut GSocketConnectable,
    trusted_ca: *mut GTlsCertificate,
) -> GTlsCertificateFlags {
    super::guard("verify", gio::TlsCertificateFlags::GENERIC_ERROR, || {
        // SAFETY: GIO calls `verify` on instances of `T::Type`; the other two
        // pointers are NULL or valid objects borrowed for the call.
        let (imp, identity, ca) = unsafe {
            (
                (*(cert as *const T::Instance)).imp(),
                Option::<gio::SocketConnectable>::from_glib_none(identity),
                Option::<gio::TlsCertificate>::from_glib_none(trusted_ca),
            )
        };
        imp.verify(identity.as_ref(), ca.as_ref())
    })
    .into_glib()
}

/// Fills GIO's class structure with `T`'s implementation.
pub(crate) fn init<T: TlsCertificateImpl>(class: &mut GTlsCertificateClass) {
    class.verify = Some(verify::<T>);
}
