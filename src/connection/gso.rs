//! UDP generic segmentation offload (Linux's `UDP_SEGMENT`, kernel ≥ 4.18)
//! for the batches [`super::io::try_send_batch`] hands to a connected
//! GSocket of GIO's own class.
//!
//! A batch is split into runs of consecutive datagrams of one size (the
//! last of a run may be shorter); each run of two or more is one message
//! of the `sendmmsg` carrying the whole batch, with a `UDP_SEGMENT` control
//! message giving that size: the kernel runs its UDP/IP send path once per
//! run and cuts the run into datagrams at the end (in the device when it
//! can, else in software), so the peer receives exactly the datagrams a
//! plain `sendmmsg` would have sent. A run holds at most
//! [`MAX_SEGMENTS`] datagrams and [`MAX_RUN_BYTES`] bytes (the kernel's
//! limits); a datagram alone in its run goes as a plain message of the
//! same call.
//!
//! Per connection ([`Gso`]): off when `DTLS_OPENSSL_GSO=0`, or when the
//! kernel does not know `UDP_SEGMENT` (probed with `getsockopt` on first
//! use), or for good once the kernel refuses a segmented send with EIO
//! (a device without checksum offload), EINVAL, ENOPROTOOPT, EOPNOTSUPP
//! or EMSGSIZE (a segment larger than the path's MTU); that batch is then
//! sent again without segmentation, so nothing is lost or sent twice. A
//! segmented message is sent whole or not at all, so a partial `sendmmsg`
//! still reports whole datagrams.
//!
//! Elsewhere than on Linux, [`try_send`] always declines.
#![cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]

#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(any(target_os = "linux", target_os = "android"))]
use super::io::{socket_error, MAX_BATCH};

/// Most datagrams in one segmented send (the kernel's `UDP_MAX_SEGMENTS`;
/// newer kernels take more, none fewer).
pub const MAX_SEGMENTS: usize = 64;

/// Most bytes in one segmented send: the largest UDP payload over IPv4
/// (65 535 − 20 − 8; IPv6 would allow 20 more).
pub const MAX_RUN_BYTES: usize = 65_507;

const UNPROBED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

/// Whether a connection's sends may be segmented.
#[derive(Debug)]
pub struct Gso(AtomicU8);

impl Gso {
    /// Allowed unless `DTLS_OPENSSL_GSO=0`; the kernel is asked on first use.
    pub fn new() -> Gso {
        Gso(AtomicU8::new(if crate::config::gso_allowed() {
            UNPROBED
        } else {
            OFF
        }))
    }

    /// Never segments.
    #[cfg(test)]
    pub fn off() -> Gso {
        Gso(AtomicU8::new(OFF))
    }

    /// Whether segmentation is (still) tried.
    pub fn enabled(&self) -> bool {
        self.0.load(Ordering::Relaxed) != OFF
    }

    fn disable(&self, why: &str) {
        if self.0.swap(OFF, Ordering::Relaxed) != OFF {
            glib::g_debug!(
                crate::LOG_DOMAIN,
                "{:p}: UDP segmentation offload off for this socket: {why}",
                self
            );
        }
    }
}

impl Default for Gso {
    fn default() -> Gso {
        Gso::new()
    }
}

/// Consecutive datagrams sent as one segmented message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Run {
    /// Index of its first datagram in the batch.
    pub start: usize,
    /// How many datagrams (1: sent plain).
    pub count: usize,
    /// Size of each datagram but the last (the segment size).
    pub size: usize,
}

/// Splits datagrams of lengths `lens` into runs, in order, writing them to
/// `out` (room for one per datagram); returns how many. A run continues
/// while the next datagram has the run's size and the limits hold; one
/// shorter datagram may end it. Empty datagrams stay alone: a segment size
/// of 0 segments nothing, and an empty last segment would be no datagram.
pub fn split(lens: &[usize], out: &mut [Run]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < lens.len() {
        let size = lens[i];
        let (mut count, mut bytes) = (1, size);
        while size > 0 && i + count < lens.len() && count < MAX_SEGMENTS {
            let next = lens[i + count];
            if next == 0 || next > size || bytes + next > MAX_RUN_BYTES {
                break;
            }
            count += 1;
            bytes += next;
            if next < size {
                break;
            }
        }
        out[n] = Run {
            start: i,
            count,
            size,
        };
        n += 1;
        i += count;
    }
    n
}

#[cfg(any(target_os = "linux", target_os = "android"))]
/// A `UDP_SEGMENT` control message: the header, then the segment size,
/// padded to `CMSG_SPACE(2)` (checked below).
#[repr(C)]
#[derive(Clone, Copy)]
struct SegmentCmsg {
    header: libc::cmsghdr,
    size: u16,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
// SAFETY: CMSG_SPACE and CMSG_LEN are arithmetic on their argument.
const _: () = unsafe {
    assert!(std::mem::size_of::<SegmentCmsg>() == libc::CMSG_SPACE(2) as usize);
    assert!(std::mem::offset_of!(SegmentCmsg, size) == libc::CMSG_LEN(0) as usize);
};

#[cfg(any(target_os = "linux", target_os = "android"))]
/// Sends `datagrams` (the first [`MAX_BATCH`]) on `fd` — the descriptor of
/// a connected GSocket of GIO's own class, open, without a timeout — in
/// one `sendmmsg`,
/// runs of equal sizes segmented. `Ok(Some(n))`: the first `n` went (0:
/// the socket would block). `Ok(None)`: nothing was sent, send them
/// plainly: segmentation is off, gains nothing for this batch (no two
/// datagrams share a run), or the kernel just refused it. Other failures
/// are GSocket's errors for the same `errno`.
pub fn try_send(fd: RawFd, datagrams: &[Vec<u8>], gso: &Gso) -> Result<Option<usize>, glib::Error> {
    let n = datagrams.len().min(MAX_BATCH);
    if n < 2 || !gso.enabled() {
        return Ok(None);
    }
    let mut lens = [0; MAX_BATCH];
    for (l, d) in lens.iter_mut().zip(datagrams) {
        *l = d.len();
    }
    let mut runs = [Run::default(); MAX_BATCH];
    let r = split(&lens[..n], &mut runs);
    if r == n {
        return Ok(None);
    }
    if gso.0.load(Ordering::Relaxed) == UNPROBED {
        probe(fd, gso);
        if !gso.enabled() {
            return Ok(None);
        }
    }
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_BATCH];
    for (v, d) in iovecs.iter_mut().zip(&datagrams[..n]) {
        // The kernel only reads through it (sendmmsg).
        v.iov_base = d.as_ptr() as *mut libc::c_void;
        v.iov_len = d.len();
    }
    // SAFETY: plain C structs (integers and pointers), for which all zero
    // bytes are a valid value (null pointers, zero lengths).
    let (mut cmsgs, mut headers): ([SegmentCmsg; MAX_BATCH], [libc::mmsghdr; MAX_BATCH]) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    for (run, c) in runs[..r].iter().zip(&mut cmsgs) {
        if run.count > 1 {
            // SAFETY: arithmetic on the argument.
            c.header.cmsg_len = unsafe { libc::CMSG_LEN(2) } as _;
            c.header.cmsg_level = libc::SOL_UDP;
            c.header.cmsg_type = libc::UDP_SEGMENT;
            c.size = run.size as u16; // ≤ MAX_RUN_BYTES
        }
    }
    let (vectors, controls) = (iovecs.as_mut_ptr(), cmsgs.as_mut_ptr());
    for (k, (run, h)) in runs[..r].iter().zip(&mut headers).enumerate() {
        h.msg_hdr.msg_iov = vectors.wrapping_add(run.start);
        h.msg_hdr.msg_iovlen = run.count as _;
        if run.count > 1 {
            h.msg_hdr.msg_control = controls.wrapping_add(k).cast();
            h.msg_hdr.msg_controllen = std::mem::size_of::<SegmentCmsg>() as _;
        }
    }
    let sent = loop {
        // SAFETY: `headers[..r]` are message headers without addresses
        // whose vectors (`iovecs`, over `datagrams`) and control messages
        // (`cmsgs`) stay alive and in place for the call; the kernel reads
        // them and writes only each header's `msg_len`.
        let ret = unsafe {
            libc::sendmmsg(
                fd,
                headers.as_mut_ptr(),
                r as _,
                (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as _,
            )
        };
        if ret >= 0 {
            break ret as usize;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            _ => return refused(&err, runs[0].count > 1, gso),
        }
    };
    // A segmented message goes whole or not at all.
    Ok(Some(runs[..sent.min(r)].iter().map(|run| run.count).sum()))
}

/// The outcome of a `sendmmsg` that sent nothing, failing with `err`, its
/// first message `segmented` or not.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn refused(err: &std::io::Error, segmented: bool, gso: &Gso) -> Result<Option<usize>, glib::Error> {
    let errno = err.raw_os_error().unwrap_or(0);
    match errno {
        libc::EAGAIN => Ok(Some(0)),
        // Segmentation unusable on this socket: a device without checksum
        // offload or an IPsec route (EIO), no UDP checksums (EINVAL), a
        // kernel or protocol without it, a segment larger than the path's
        // MTU (EMSGSIZE; EINVAL on older kernels).
        libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP | libc::EMSGSIZE
            if segmented =>
        {
            gso.disable(&format!("the kernel refused a segmented send ({err})"));
            Ok(None)
        }
        _ => Err(socket_error(errno, "Error sending message", err)),
    }
}

/// Asks the kernel whether it knows `UDP_SEGMENT` (`getsockopt` answers
/// ENOPROTOOPT before 4.18; a kernel that old would ignore the control
/// message and send a run as one datagram).
fn probe(fd: RawFd, gso: &Gso) {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are writable and `len` is `value`'s size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        let _ = gso
            .0
            .compare_exchange(UNPROBED, ON, Ordering::Relaxed, Ordering::Relaxed);
    } else {
        let err = std::io::Error::last_os_error();
        gso.disable(&format!("UDP_SEGMENT unknown ({err})"));
    }
}

/// Segmentation is Linux's: elsewhere every batch goes through GIO.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn try_send(
    _fd: std::os::fd::RawFd,
    _datagrams: &[Vec<u8>],
    _gso: &Gso,
) -> Result<Option<usize>, glib::Error> {
    Ok(None)
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use gio::prelude::*;

    use super::*;
    use crate::connection::io::{try_send_batch, Base};

    fn runs(lens: &[usize]) -> Vec<(usize, usize, usize)> {
        let mut out = vec![Run::default(); lens.len()];
        let n = split(lens, &mut out);
        out[..n]
            .iter()
            .map(|r| (r.start, r.count, r.size))
            .collect()
    }

    #[test]
    fn runs_of_equal_sizes_the_last_may_be_shorter() {
        assert_eq!(runs(&[1000; 32]), [(0, 32, 1000)]);
        assert_eq!(
            runs(&[1000, 1000, 500, 1000, 1200, 1200]),
            [(0, 3, 1000), (3, 1, 1000), (4, 2, 1200)]
        );
        // A longer datagram starts a new run; a shorter one ends it.
        assert_eq!(
            runs(&[100, 200, 200, 100, 100, 50, 50]),
            [(0, 1, 100), (1, 3, 200), (4, 2, 100), (6, 1, 50)]
        );
        assert_eq!(runs(&[7]), [(0, 1, 7)]);
        assert_eq!(runs(&[]), []);
    }

    #[test]
    fn empty_datagrams_stay_alone() {
        assert_eq!(runs(&[0, 0, 0]), [(0, 1, 0), (1, 1, 0), (2, 1, 0)]);
        assert_eq!(runs(&[10, 10, 0, 10]), [(0, 2, 10), (2, 1, 0), (3, 1, 10)]);
    }

    #[test]
    fn runs_respect_the_kernels_limits() {
        assert_eq!(runs(&[10; 70]), [(0, 64, 10), (64, 6, 10)]);
        // 4 × 16 000 fit in 65 507 bytes, a fifth does not.
        assert_eq!(runs(&[16_000; 5]), [(0, 4, 16_000), (4, 1, 16_000)]);
        assert_eq!(
            runs(&[16_000, 16_000, 16_000, 16_000, 1_507, 1]),
            [(0, 5, 16_000), (5, 1, 1)]
        );
        assert_eq!(runs(&[65_507, 1]), [(0, 1, 65_507), (1, 1, 1)]);
    }

    /// A GSocket connected to a fresh UDP socket on loopback, which reads
    /// with a timeout.
    fn pair() -> (gio::Socket, UdpSocket) {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let port = receiver.local_addr().unwrap().port();
        let socket = gio::Socket::new(
            gio::SocketFamily::Ipv4,
            gio::SocketType::Datagram,
            gio::SocketProtocol::Udp,
        )
        .unwrap();
        let to = gio::InetSocketAddress::from_string("127.0.0.1", port.into()).unwrap();
        SocketExt::connect(&socket, &to, gio::Cancellable::NONE).unwrap();
        (socket, receiver)
    }

    /// Datagrams of `sizes`, each filled with its index (from `first`).
    fn datagrams(sizes: &[usize], first: u8) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![first.wrapping_add(i as u8); n])
            .collect()
    }

    /// Sends all of `batch` (in several calls if the socket takes fewer),
    /// returning what each call reported.
    fn send_all(socket: &gio::Socket, batch: &[Vec<u8>], gso: &Gso) -> Vec<usize> {
        let base = Base::new(socket.clone().upcast());
        let mut counts = Vec::new();
        let mut done = 0;
        while done < batch.len() {
            let n = try_send_batch(&base, &batch[done..], gso).unwrap();
            assert!(n > 0, "loopback never blocks here");
            counts.push(n);
            done += n;
        }
        counts
    }

    fn receive(receiver: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        (0..n)
            .map(|_| {
                let len = receiver.recv(&mut buf).unwrap();
                buf[..len].to_vec()
            })
            .collect()
    }

    fn nothing_more(receiver: &UdpSocket) {
        receiver.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        let e = receiver.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "no duplicate");
        receiver.set_nonblocking(false).unwrap();
    }

    fn unprobed() -> Gso {
        Gso(AtomicU8::new(UNPROBED))
    }

    const MIXED: [usize; 12] = [
        1000, 1000, 500, 1000, 1200, 1200, 0, 40, 40, 16_000, 16_000, 3,
    ];

    #[test]
    fn segmented_or_not_the_receiver_gets_the_same_datagrams() {
        for gso in [unprobed(), Gso::off()] {
            let (socket, receiver) = pair();
            let equal = datagrams(&[1000; 32], 0);
            assert_eq!(send_all(&socket, &equal, &gso), [32]);
            assert_eq!(receive(&receiver, 32), equal);
            let mixed = datagrams(&MIXED, 100);
            assert_eq!(send_all(&socket, &mixed, &gso), [MIXED.len()]);
            assert_eq!(receive(&receiver, MIXED.len()), mixed);
            nothing_more(&receiver);
        }
    }

    /// Turns on UDP_GRO on `receiver`: a segmented send then arrives as
    /// one buffer with its segment size in a control message, which is how
    /// these tests see segmentation on the wire. False if the kernel
    /// lacks it (before 5.0).
    fn coalescing(receiver: &UdpSocket) -> bool {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a readable c_int and the length is its size.
        unsafe {
            libc::setsockopt(
                receiver.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_GRO,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    }

    /// One receive on a UDP_GRO socket: (bytes, segment size if segmented).
    fn receive_coalesced(receiver: &UdpSocket) -> (usize, Option<u16>) {
        let mut buf = vec![0u8; 65_536];
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` describes `buf` and `control`, alive for the call.
        let n = unsafe { libc::recvmsg(receiver.as_raw_fd(), &mut msg, 0) };
        assert!(n >= 0, "{}", std::io::Error::last_os_error());
        let mut segment = None;
        // SAFETY: walking the control messages the kernel wrote into
        // `control`, with the CMSG macros, within `msg_controllen`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                    segment = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u16>()));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        (n as usize, segment)
    }

    #[test]
    fn a_run_goes_as_one_segmented_send() {
        let (socket, receiver) = pair();
        if !coalescing(&receiver) {
            eprintln!("UDP_GRO unknown to this kernel: not checked");
            return;
        }
        let gso = unprobed();
        send_all(&socket, &datagrams(&[1000; 32], 0), &gso);
        assert_eq!(receive_coalesced(&receiver), (32_000, Some(1000)));
        send_all(&socket, &datagrams(&[1200, 1200, 700, 90], 0), &gso);
        assert_eq!(receive_coalesced(&receiver), (3100, Some(1200)));
        assert_eq!(receive_coalesced(&receiver), (90, None));
        assert!(gso.enabled());

        let off = Gso::off();
        send_all(&socket, &datagrams(&[1000; 3], 0), &off);
        for _ in 0..3 {
            assert_eq!(receive_coalesced(&receiver), (1000, None));
        }
    }

    /// SO_NO_CHECK: the kernel refuses segmented sends with EINVAL.
    fn without_checksums(socket: &gio::Socket) {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a readable c_int and the length is its size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    }

    #[test]
    fn a_refused_segmented_send_is_sent_again_plainly_and_segmentation_stays_off() {
        let (socket, receiver) = pair();
        without_checksums(&socket);
        let gso = unprobed();
        let batch = datagrams(&[1000; 32], 0);
        assert_eq!(send_all(&socket, &batch, &gso), [32]);
        assert!(!gso.enabled(), "off after EINVAL");
        assert_eq!(receive(&receiver, 32), batch);
        nothing_more(&receiver);
    }

    #[test]
    fn a_partial_send_counts_the_datagrams_that_went() {
        let (socket, receiver) = pair();
        without_checksums(&socket);
        let gso = unprobed();
        // The plain first message goes; the kernel refuses the segmented
        // second, which sendmmsg reports as one message sent.
        let batch = datagrams(&[500, 1000, 1000, 1000, 20], 0);
        assert_eq!(send_all(&socket, &batch, &gso), [1, 4]);
        assert!(!gso.enabled());
        assert_eq!(receive(&receiver, 5), batch);
        nothing_more(&receiver);
    }

    #[test]
    fn errors_are_gsockets() {
        // A connected socket whose peer's port is closed: the ICMP error
        // comes back on a later send, as GSocket's error.
        let (socket, receiver) = pair();
        drop(receiver);
        let gso = unprobed();
        let batch = datagrams(&[100; 4], 0);
        let base = Base::new(socket.clone().upcast());
        let mut refused = None;
        for _ in 0..100 {
            match try_send_batch(&base, &batch, &gso) {
                Ok(n) => assert!(n > 0),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let e = refused.expect("ECONNREFUSED reported");
        assert!(e.matches(gio::IOErrorEnum::ConnectionRefused), "{e}");
        assert!(e.message().starts_with("Error sending message: "), "{e}");
        assert!(gso.enabled(), "not a segmentation problem");
    }
}
