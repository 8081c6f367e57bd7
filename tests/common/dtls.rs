//! Moving datagrams through any GDatagramBased from tests, with GIO's exact
//! arguments (raw calls: the gio crate's wrappers cannot express timeout 0
//! vs −1, or several vectors).

use gio::prelude::*;
use glib::translate::*;

/// A UDP GSocket connected to `addr`.
pub fn connected_socket(addr: std::net::SocketAddr) -> gio::Socket {
    let family = if addr.is_ipv4() {
        gio::SocketFamily::Ipv4
    } else {
        gio::SocketFamily::Ipv6
    };
    let socket =
        gio::Socket::new(family, gio::SocketType::Datagram, gio::SocketProtocol::Udp).unwrap();
    let address =
        gio::InetSocketAddress::from_string(&addr.ip().to_string(), addr.port() as u32).unwrap();
    SocketExt::connect(&socket, &address, gio::Cancellable::NONE).unwrap();
    socket
}

/// `g_dtls_client_connection_new` on a socket connected to `addr`.
pub fn client(addr: std::net::SocketAddr, identity: Option<&str>) -> gio::DtlsClientConnection {
    crate::common::init();
    let socket = connected_socket(addr);
    let id = identity
        .map(|h| gio::NetworkAddress::new(h, addr.port()).upcast::<gio::SocketConnectable>());
    gio::DtlsClientConnection::new(&socket, id.as_ref()).unwrap()
}

/// Sends each of `messages` as one datagram in one call.
pub fn send_many(
    conn: &impl IsA<gio::DatagramBased>,
    messages: &[&[u8]],
    timeout_us: i64,
    cancellable: Option<&gio::Cancellable>,
) -> Result<usize, glib::Error> {
    let vectors: Vec<gio::ffi::GOutputVector> = messages
        .iter()
        .map(|m| gio::ffi::GOutputVector {
            buffer: m.as_ptr() as *const _,
            size: m.len(),
        })
        .collect();
    let mut msgs: Vec<gio::ffi::GOutputMessage> = vectors
        .iter()
        .map(|v| gio::ffi::GOutputMessage {
            address: std::ptr::null_mut(),
            vectors: v as *const _ as *mut _,
            num_vectors: 1,
            bytes_sent: 0,
            control_messages: std::ptr::null_mut(),
            num_control_messages: 0,
        })
        .collect();
    let mut error = std::ptr::null_mut();
    // SAFETY: the arrays and buffers outlive the call.
    let n = unsafe {
        gio::ffi::g_datagram_based_send_messages(
            conn.as_ref().to_glib_none().0,
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            0,
            timeout_us,
            cancellable.to_glib_none().0,
            &mut error,
        )
    };
    if n < 0 {
        // SAFETY: GIO set the error.
        return Err(unsafe { from_glib_full(error) });
    }
    for (m, d) in msgs.iter().zip(messages).take(n as usize) {
        assert_eq!(m.bytes_sent as usize, d.len(), "bytes_sent");
    }
    Ok(n as usize)
}

pub fn send(
    conn: &impl IsA<gio::DatagramBased>,
    data: &[u8],
    timeout_us: i64,
) -> Result<(), glib::Error> {
    send_many(conn, &[data], timeout_us, None).map(|n| assert_eq!(n, 1))
}

/// Receives up to `caps.len()` messages, message i into vectors of sizes
/// `caps[i]`.
pub fn recv_vectored(
    conn: &impl IsA<gio::DatagramBased>,
    caps: &[&[usize]],
    flags: i32,
    timeout_us: i64,
    cancellable: Option<&gio::Cancellable>,
) -> Result<Vec<Vec<u8>>, glib::Error> {
    let mut buffers: Vec<Vec<Vec<u8>>> = caps
        .iter()
        .map(|c| c.iter().map(|&n| vec![0u8; n]).collect())
        .collect();
    let mut vectors: Vec<Vec<gio::ffi::GInputVector>> = buffers
        .iter_mut()
        .map(|bufs| {
            bufs.iter_mut()
                .map(|b| gio::ffi::GInputVector {
                    buffer: b.as_mut_ptr() as *mut _,
                    size: b.len(),
                })
                .collect()
        })
        .collect();
    let mut msgs: Vec<gio::ffi::GInputMessage> = vectors
        .iter_mut()
        .map(|v| gio::ffi::GInputMessage {
            address: std::ptr::null_mut(),
            vectors: v.as_mut_ptr(),
            num_vectors: v.len() as u32,
            bytes_received: usize::MAX,
            flags: -1,
            control_messages: std::ptr::null_mut(),
            num_control_messages: std::ptr::null_mut(),
        })
        .collect();
    let mut error = std::ptr::null_mut();
    // SAFETY: the arrays and buffers outlive the call.
    let n = unsafe {
        gio::ffi::g_datagram_based_receive_messages(
            conn.as_ref().to_glib_none().0,
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            flags,
            timeout_us,
            cancellable.to_glib_none().0,
            &mut error,
        )
    };
    if n < 0 {
        // SAFETY: GIO set the error.
        return Err(unsafe { from_glib_full(error) });
    }
    let mut out = Vec::new();
    for (m, bufs) in msgs.iter().zip(&buffers).take(n as usize) {
        assert_eq!(m.flags, 0, "message flags");
        let joined: Vec<u8> = bufs.iter().flatten().copied().collect();
        assert!(
            m.bytes_received <= joined.len(),
            "bytes_received beyond the buffers"
        );
        out.push(joined[..m.bytes_received].to_vec());
    }
    Ok(out)
}

/// Receives one datagram of at most `cap` bytes.
pub fn recv(
    conn: &impl IsA<gio::DatagramBased>,
    cap: usize,
    timeout_us: i64,
) -> Result<Vec<u8>, glib::Error> {
    let mut v = recv_vectored(conn, &[&[cap]], 0, timeout_us, None)?;
    assert_eq!(v.len(), 1);
    Ok(v.remove(0))
}

/// A bound UDP socket on 127.0.0.1 that never answers (a silent peer).
pub fn silent_peer() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// An address on 127.0.0.1 where nothing listens (bound then closed).
pub fn closed_port() -> std::net::SocketAddr {
    silent_peer().local_addr().unwrap()
}

/// Non-blocking use from a GMainLoop on `ctx`: sends `messages` in order
/// and receives as many datagrams, every call with timeout 0, woken only by
/// the connection's own GSource (`g_datagram_based_create_source`). Returns
/// what arrived (fewer than sent if 10 s pass first).
pub fn exchange_via_source(
    conn: &impl IsA<gio::DatagramBased>,
    ctx: &glib::MainContext,
    messages: &[&[u8]],
) -> Vec<Vec<u8>> {
    use std::cell::RefCell;
    use std::rc::Rc;
    let want = messages.len();
    ctx.with_thread_default(|| {
        let main_loop = glib::MainLoop::new(Some(ctx), false);
        let received = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
        let to_send = Rc::new(RefCell::new(
            messages
                .iter()
                .rev()
                .map(|m| m.to_vec())
                .collect::<Vec<_>>(),
        ));
        let (r, s, l) = (received.clone(), to_send.clone(), main_loop.clone());
        let source = conn.create_source(
            glib::IOCondition::IN | glib::IOCondition::OUT,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            move |c, _| {
                let next = s.borrow().last().cloned();
                if let Some(m) = next {
                    match send(c, &m, 0) {
                        Ok(()) => {
                            s.borrow_mut().pop();
                        }
                        Err(e) => assert!(e.matches(gio::IOErrorEnum::WouldBlock), "{e}"),
                    }
                }
                match recv(c, 64, 0) {
                    Ok(d) => r.borrow_mut().push(d),
                    Err(e) => assert!(e.matches(gio::IOErrorEnum::WouldBlock), "{e}"),
                }
                if r.borrow().len() == want {
                    l.quit();
                    return glib::ControlFlow::Break;
                }
                glib::ControlFlow::Continue
            },
        );
        source.attach(Some(ctx));
        let guard = glib::timeout_source_new(
            std::time::Duration::from_secs(10),
            None,
            glib::Priority::DEFAULT,
            {
                let l = main_loop.clone();
                move || {
                    l.quit();
                    glib::ControlFlow::Break
                }
            },
        );
        guard.attach(Some(ctx));
        main_loop.run();
        guard.destroy();
        source.destroy();
        let got = received.borrow().clone();
        got
    })
    .unwrap()
}
