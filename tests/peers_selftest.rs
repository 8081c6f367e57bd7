//! Tests of the DTLS test infrastructure itself (tests/common/{peers,
//! echo_peer,relay,strict_socket,gio_peer}.rs) against real peers. No GIO
//! TLS of ours here: only the helpers the DTLS tests build on (gio-peer
//! runs glib-networking's GnuTLS backend in its own process).

mod common;

use std::time::{Duration, Instant};

use common::echo_peer::{self, EchoPeer, EchoPeerOpts, RawClient, RawClientOpts};
use common::gio_peer::{GioPeer, GioPeerOpts};
use common::peers::{
    self, ClientCert, GnutlsClient, GnutlsClientOpts, GnutlsServer, GnutlsServerOpts, MsgDir,
    OpensslClient, OpensslClientOpts, OpensslServer, OpensslServerOpts, Stream,
};
use common::relay::{Direction, Relay, Verdict};
use common::strict_socket::{SendMode, StrictSocket};

const T: Duration = Duration::from_secs(5);

fn pki() -> &'static std::path::Path {
    &common::init().pki
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// A client that verifies the test server and presents client.pem.
fn full_client_opts() -> RawClientOpts {
    RawClientOpts::default()
        .verify(&pki().join("ca.pem"), "server.example.com")
        .client_cert(&pki().join("client.pem"), &pki().join("client.key"))
}

#[test]
fn openssl_server_echo_prefix_through_relay() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(pki())
            .client_cert(ClientCert::Require, &pki().join("ca.pem"))
            .alpn("foo,bar")
            .mtu(1400)
            .echo_prefix("echo:"),
    );
    let relay = Relay::start(server.addr());
    let mut client =
        RawClient::connect(relay.addr(), &full_client_opts().alpn(&["bar"])).expect("handshake");
    assert_eq!(client.alpn().as_deref(), Some("bar"));
    server.wait_handshake(1, T).unwrap();

    let reply = client.echo(b"echo:hello s_server\n").unwrap();
    assert_eq!(reply, b"echo:hello s_server\n");
    // Lines without the prefix are only printed, not echoed; the server can talk on its own.
    client.send(b"not echoed\n").unwrap();
    server.wait_for("not echoed", T).unwrap();
    client.send(b"no newline").unwrap();
    server.wait_stdout_contains(b"no newline", T).unwrap();
    server.send("from the server\n");
    assert_eq!(client.recv(T).unwrap(), b"from the server\n");

    assert_eq!(server.selected_alpn().as_deref(), Some("bar"));
    let subject = server
        .client_cert_subject()
        .expect("s_server saw a client certificate");
    assert!(subject.contains("client.example.com"), "{subject}");
    assert!(
        relay.count(Direction::ToServer) >= 5 && relay.count(Direction::ToClient) >= 4,
        "{:?}",
        relay.records(Direction::ToServer)
    );
    assert!(
        relay.sizes(Direction::ToClient).iter().all(|&n| n <= 1400),
        "{:?}",
        relay.sizes(Direction::ToClient)
    );
    client.close().unwrap();
}

#[test]
fn openssl_server_listen_cookie_and_sequential_clients() {
    let server = OpensslServer::start(OpensslServerOpts::new(pki()).listen().echo_prefix("e "));
    let relay = Relay::start(server.addr());
    for i in 1..=2 {
        let mut client =
            RawClient::connect(relay.addr(), &RawClientOpts::default()).expect("handshake");
        let msg = format!("e client {i}\n");
        assert_eq!(client.echo(msg.as_bytes()).unwrap(), msg.as_bytes());
        client.close().unwrap();
        server.wait_handshake(i, T).unwrap();
    }
    // -listen: the first ClientHello is answered by a HelloVerifyRequest.
    assert!(
        relay.count(Direction::ToServer) >= 8,
        "{:?}",
        relay.sizes(Direction::ToServer)
    );
}

#[test]
fn openssl_s_client_to_s_server_through_relay() {
    let server = OpensslServer::start(OpensslServerOpts::new(pki()));
    let relay = Relay::start(server.addr());
    let ca = pki().join("ca.pem");
    let client = peers::openssl_client(
        relay.addr(),
        &["-CAfile", ca.to_str().unwrap(), "-verify_return_error"],
    );
    server.wait_handshake(1, T).unwrap();
    client.write_stdin(b"hello from s_client\n").unwrap();
    server.wait_for("hello from s_client", T).unwrap();
    server.send("hello from s_server\n");
    client
        .wait_line(T, |s, l| s == Stream::Stdout && l == "hello from s_server")
        .unwrap();
    assert!(client.has_line("verify return:1"));
    assert!(relay.count(Direction::ToServer) >= 4);
}

#[test]
fn gnutls_server_echo_with_raw_client() {
    let server = GnutlsServer::start(
        GnutlsServerOpts::new(pki())
            .require_client_cert(&pki().join("ca.pem"))
            .alpn("foo"),
    );
    let mut client =
        RawClient::connect(server.addr(), &full_client_opts().alpn(&["foo"])).expect("handshake");
    assert_eq!(client.alpn().as_deref(), Some("foo"));
    for n in [1, 100, 254] {
        let p = payload(n);
        assert_eq!(client.echo(&p).unwrap(), p, "{n} bytes");
    }
    // Longer records come back split: 254 bytes, then the rest.
    let p = payload(300);
    assert_eq!(client.echo(&p).unwrap(), &p[..254]);
    assert_eq!(client.recv(T).unwrap(), &p[254..]);
    client.close().unwrap();
}

#[test]
fn gnutls_server_requires_client_cert() {
    let server = GnutlsServer::start(
        GnutlsServerOpts::new(pki()).require_client_cert(&pki().join("ca.pem")),
    );
    // gnutls-serv's UDP mode sends no alert when the handshake fails: the
    // client only times out. Its output says why.
    let opts = RawClientOpts {
        timeout: Duration::from_millis(1000),
        ..RawClientOpts::default()
    };
    let err = RawClient::connect(server.addr(), &opts)
        .err()
        .expect("handshake without a client certificate must fail");
    assert!(err.contains("timed out"), "{err}");
    server
        .wait_for("Error in handshake(): No certificate was found.", T)
        .unwrap();
}

#[test]
fn gnutls_cli_to_gnutls_serv() {
    let server = GnutlsServer::start(GnutlsServerOpts::new(pki()));
    let ca = pki().join("ca.pem");
    let client = peers::gnutls_client(server.addr(), &["--x509cafile", ca.to_str().unwrap()]);
    client.wait_for("Handshake was completed", T).unwrap();
    client.write_stdin(b"hello gnutls\n").unwrap();
    client
        .wait_line(T, |s, l| s == Stream::Stdout && l == "hello gnutls")
        .unwrap();
}

#[test]
fn echo_peer_with_raw_client() {
    let peer = EchoPeer::start(
        EchoPeerOpts::new(pki())
            .request_client_cert(&pki().join("ca.pem"), true)
            .alpn(&["x", "y"]),
    );
    let mut client =
        RawClient::connect(peer.addr(), &full_client_opts().alpn(&["y", "z"])).expect("handshake");
    assert_eq!(client.alpn().as_deref(), Some("y"));
    for n in [1000, 10000, echo_peer::MAX_ECHO] {
        let p = payload(n);
        echo_peer::raw_echo_roundtrip(&mut client, &p);
    }
    client.close().unwrap();
    let log = peer.wait_finished(T).unwrap();
    assert_eq!(log.conns.len(), 1);
    let c = &log.conns[0];
    assert!(c.handshake_ok && c.closed_by_client, "{c:?}");
    assert_eq!(c.version, "DTLSv1.2");
    assert_eq!(c.alpn.as_deref(), Some("y"));
    assert_eq!(c.client_cert_cn.as_deref(), Some("client.example.com"));
    assert_eq!(c.echoed, vec![1000, 10000, echo_peer::MAX_ECHO]);
}

#[test]
fn echo_peer_mtu_limits_handshake_datagrams() {
    // Every handshake datagram fits the MTU (the pitfall: without
    // NO_QUERY_MTU OpenSSL falls back to 256-byte fragments, or ignores it).
    let peer = EchoPeer::start(
        EchoPeerOpts::new(pki())
            .cert(&pki().join("chain-full.pem"), &pki().join("leaf-int.key"))
            .mtu(600),
    );
    let relay = Relay::start(peer.addr());
    let opts = RawClientOpts {
        mtu: 600,
        ..RawClientOpts::default()
    };
    let mut client = RawClient::connect(relay.addr(), &opts).expect("handshake");
    client.close().unwrap();
    let to_client = relay.sizes(Direction::ToClient);
    assert!(to_client.iter().all(|&n| n <= 600), "{to_client:?}");
    assert!(
        to_client.iter().any(|&n| n > 400),
        "fragments far below the MTU: {to_client:?}"
    );
}

#[test]
fn echo_peer_cookie_exchange_and_resumption() {
    let peer = EchoPeer::start(
        EchoPeerOpts::new(pki())
            .cookie_exchange()
            .max_connections(2),
    );
    let relay = Relay::start(peer.addr());
    let mut first =
        RawClient::connect(relay.addr(), &RawClientOpts::default()).expect("first handshake");
    assert!(!first.session_reused());
    first.close().unwrap();
    peer.wait(T, |l| l.conns.len() == 1 && l.conns[0].closed_by_client)
        .unwrap();
    // ClientHello, HelloVerifyRequest, ClientHello with the 16-byte cookie.
    let up = relay.sizes(Direction::ToServer);
    assert_eq!(up[1], up[0] + 16, "{up:?}");

    let mut second = first.resume(relay.addr()).expect("resumed handshake");
    assert!(second.session_reused());
    second.close().unwrap();
    let log = peer.wait_finished(T).unwrap();
    assert_eq!(log.conns.len(), 2);
    assert!(log.conns[1].session_reused, "{log:?}");
}

#[test]
fn relay_drops_first_datagram_each_way() {
    let peer = EchoPeer::start(EchoPeerOpts::new(pki()));
    let relay = Relay::start(peer.addr());
    relay.drop_first_each_way();
    let start = Instant::now();
    let mut client = RawClient::connect(relay.addr(), &RawClientOpts::default())
        .expect("handshake despite losses");
    let took = start.elapsed();
    echo_peer::raw_echo_roundtrip(&mut client, b"after the losses");
    client.close().unwrap();
    peer.wait_finished(T).unwrap();

    let up = relay.records(Direction::ToServer);
    let down = relay.records(Direction::ToClient);
    assert_eq!(up[0].verdict, Verdict::Drop);
    assert_eq!(down[0].verdict, Verdict::Drop);
    assert!(up[1..]
        .iter()
        .chain(&down[1..])
        .all(|r| r.verdict == Verdict::Forward));
    // The lost ClientHello was sent again, byte-for-byte the same size.
    assert_eq!(up[0].len, up[1].len, "{up:?}");
    // Two retransmission timers (1 s each, OpenSSL's initial value) ran.
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    println!(
        "lossy handshake took {took:?}; to server {:?}; to client {:?}",
        relay.sizes(Direction::ToServer),
        relay.sizes(Direction::ToClient)
    );
}

#[test]
fn relay_custom_filter_and_duplicates() {
    let peer = EchoPeer::start(EchoPeerOpts::new(pki()));
    let relay = Relay::start(peer.addr());
    // Duplicate everything the server sends: DTLS must discard the replays.
    relay.set_filter(|dir, _, _| {
        if dir == Direction::ToClient {
            Verdict::Duplicate
        } else {
            Verdict::Forward
        }
    });
    let mut client =
        RawClient::connect(relay.addr(), &RawClientOpts::default()).expect("handshake");
    for i in 0..5 {
        let msg = format!("message {i}");
        assert_eq!(client.echo(msg.as_bytes()).unwrap(), msg.as_bytes());
    }
    client.close().unwrap();
    assert_eq!(peer.wait_finished(T).unwrap().conns[0].echoed.len(), 5);
    assert!(relay.errors().is_empty(), "{:?}", relay.errors());
}

fn socket_pair() -> (gio::Socket, gio::Socket) {
    use gio::prelude::*;
    let mk = || {
        let s = gio::Socket::new(
            gio::SocketFamily::Ipv4,
            gio::SocketType::Datagram,
            gio::SocketProtocol::Udp,
        )
        .unwrap();
        s.bind(
            &gio::InetSocketAddress::from_string("127.0.0.1", 0).unwrap(),
            false,
        )
        .unwrap();
        s
    };
    let (a, b) = (mk(), mk());
    SocketExt::connect(&a, &b.local_address().unwrap(), gio::Cancellable::NONE).unwrap();
    SocketExt::connect(&b, &a.local_address().unwrap(), gio::Cancellable::NONE).unwrap();
    (a, b)
}

fn strict_send(s: &StrictSocket, data: &[u8], flags: i32) -> Result<usize, glib::Error> {
    use gio::prelude::*;
    let v = [gio::OutputVector::new(data)];
    let mut m = [gio::OutputMessage::new(gio::SocketAddress::NONE, &v, &[])];
    s.send_messages(&mut m, flags, Some(Duration::ZERO), gio::Cancellable::NONE)
}

fn strict_recv(s: &StrictSocket, flags: i32) -> Result<Vec<u8>, glib::Error> {
    use gio::prelude::*;
    let mut buf = vec![0u8; 2048];
    let n = {
        let mut v = [gio::InputVector::new(&mut buf)];
        let mut m = [gio::InputMessage::new(None, &mut v, None)];
        let count = s.receive_messages::<std::iter::Empty<&mut [&mut [u8]]>, gio::Cancellable>(
            &mut m,
            flags,
            Some(Duration::ZERO),
            None,
        )?;
        assert_eq!(count, 1);
        m[0].bytes_received()
    };
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn strict_socket_alternates_would_block_and_checks_flags() {
    use gio::prelude::*;
    common::init();
    let (a, b) = socket_pair();
    let strict = StrictSocket::new(&a);

    let e = strict_send(&strict, b"one", 0).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::WouldBlock), "{e}");
    assert_eq!(strict_send(&strict, b"one", 0).unwrap(), 1);
    assert!(strict_send(&strict, b"two", 0)
        .unwrap_err()
        .matches(gio::IOErrorEnum::WouldBlock));
    assert_eq!(strict_send(&strict, b"two", 0).unwrap(), 1);
    let e = strict_send(&strict, b"bad", gio::ffi::G_SOCKET_MSG_PEEK).unwrap_err();
    assert!(e.matches(gio::IOErrorEnum::InvalidArgument), "{e}");

    b.set_blocking(false);
    let mut buf = [0u8; 16];
    let n = b.receive(&mut buf[..], gio::Cancellable::NONE).unwrap();
    assert_eq!(&buf[..n], b"one");
    let n = b.receive(&mut buf[..], gio::Cancellable::NONE).unwrap();
    assert_eq!(&buf[..n], b"two");

    // Receiving: nothing yet → WOULD_BLOCK (timeout 0 never blocks).
    assert!(strict_recv(&strict, 0)
        .unwrap_err()
        .matches(gio::IOErrorEnum::WouldBlock));
    assert!(strict_recv(&strict, gio::ffi::G_SOCKET_MSG_PEEK)
        .unwrap_err()
        .matches(gio::IOErrorEnum::InvalidArgument));

    // create_source delegates to the inner socket: it fires once data arrives.
    let ctx = glib::MainContext::new();
    let fired = std::rc::Rc::new(std::cell::Cell::new(false));
    let source = {
        let fired = fired.clone();
        strict.create_source(
            glib::IOCondition::IN,
            gio::Cancellable::NONE,
            None,
            glib::Priority::DEFAULT,
            move |_, cond| {
                assert!(cond.contains(glib::IOCondition::IN));
                fired.set(true);
                glib::ControlFlow::Break
            },
        )
    };
    source.attach(Some(&ctx));
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guard = {
        let timed_out = timed_out.clone();
        glib::timeout_source_new(T, None, glib::Priority::DEFAULT, move || {
            timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
            glib::ControlFlow::Break
        })
    };
    guard.attach(Some(&ctx));
    b.send(b"three", gio::Cancellable::NONE).unwrap();
    while !fired.get() && !timed_out.load(std::sync::atomic::Ordering::SeqCst) {
        ctx.iteration(true);
    }
    guard.destroy();
    assert!(fired.get(), "source did not fire");
    assert_eq!(strict_recv(&strict, 0).unwrap(), b"three");

    strict.set_send_mode(SendMode::Normal);
    assert_eq!(strict_send(&strict, b"four", 0).unwrap(), 1);

    let c = strict.counts();
    assert_eq!(
        (c.send_messages, c.send_would_block, c.bad_flags),
        (6, 2, 2),
        "{c:?}"
    );
    assert_eq!(
        (
            c.receive_messages,
            c.create_source,
            c.condition_check,
            c.condition_wait
        ),
        (3, 1, 0, 0),
        "{c:?}"
    );
}

/// Runs in a child process (see the next test): condition_check must abort.
#[test]
fn strict_socket_abort_child() {
    use gio::prelude::*;
    if std::env::var_os("PEERS_SELFTEST_ABORT_CHILD").is_none() {
        return;
    }
    let (a, _b) = socket_pair();
    let strict = StrictSocket::new(&a);
    match std::env::var("PEERS_SELFTEST_ABORT_CHILD")
        .unwrap()
        .as_str()
    {
        "check" => {
            strict.condition_check(glib::IOCondition::IN);
        }
        "timeout" => {
            let _ = strict_send(&strict, b"x", 0);
            let v = [gio::OutputVector::new(b"x")];
            let mut m = [gio::OutputMessage::new(gio::SocketAddress::NONE, &v, &[])];
            let _ = strict.send_messages(
                &mut m,
                0,
                Some(Duration::from_millis(5)),
                gio::Cancellable::NONE,
            );
        }
        _ => unreachable!(),
    }
    unreachable!("StrictSocket did not abort");
}

#[test]
fn strict_socket_aborts_on_condition_check_and_timeouts() {
    use std::os::unix::process::ExitStatusExt;
    for mode in ["check", "timeout"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "strict_socket_abort_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PEERS_SELFTEST_ABORT_CHILD", mode)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{mode}: {:?}\n{stderr}",
            out.status
        );
        assert!(stderr.contains("StrictSocket: "), "{stderr}");
    }
}

#[test]
fn peers_are_reaped_on_drop_and_on_panic() {
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    let server = OpensslServer::start(OpensslServerOpts::new(pki()));
    let pid = server.pid();
    assert!(alive(pid));
    drop(server);
    assert!(!alive(pid), "s_server {pid} survived its Drop");

    let pid = std::sync::Arc::new(std::sync::Mutex::new(0));
    let r = {
        let pid = pid.clone();
        std::thread::spawn(move || {
            let server = GnutlsServer::start(GnutlsServerOpts::new(pki()));
            *pid.lock().unwrap() = server.pid();
            panic!("deliberate panic with a live peer");
        })
        .join()
    };
    assert!(r.is_err());
    let pid = *pid.lock().unwrap();
    assert!(
        pid != 0 && !alive(pid),
        "gnutls-serv {pid} survived a panicking test"
    );
}

#[test]
fn raw_openssl_baseline() {
    const RUNS: usize = 50;
    let peer = EchoPeer::start(EchoPeerOpts::new(pki()).max_connections(RUNS + 1));
    let mut hs: Vec<Duration> = (0..RUNS)
        .map(|_| echo_peer::raw_client_handshake(peer.addr()))
        .collect();
    let mut client = RawClient::connect(peer.addr(), &RawClientOpts::default()).unwrap();
    let p = payload(1000);
    echo_peer::raw_echo_roundtrip(&mut client, &p); // warm-up
    let mut rt: Vec<Duration> = (0..RUNS)
        .map(|_| echo_peer::raw_echo_roundtrip(&mut client, &p))
        .collect();
    client.close().unwrap();
    let (h, r) = (echo_peer::median(&mut hs), echo_peer::median(&mut rt));
    println!("raw OpenSSL DTLS 1.2 loopback (ECDSA P-256, no verification): handshake median {h:?} (min {:?}, max {:?}); 1000-byte echo round trip median {r:?} (min {:?}, max {:?}) over {RUNS} runs", hs[0], hs[RUNS - 1], rt[0], rt[RUNS - 1]);
    peer.wait(T, |l| l.handshakes() == RUNS + 1).unwrap();
}

// ---------------------------------------------------------------------------
// OpensslClient, GnutlsClient, gio-peer

fn ok_exit(status: std::process::ExitStatus, what: &str) {
    assert!(status.success(), "{what} exited with {status}");
}

#[test]
fn openssl_client_against_s_server_echo() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(pki())
            .client_cert(ClientCert::Require, &pki().join("ca.pem"))
            .alpn("foo,bar")
            .echo_prefix("echo:"),
    );
    let mut client = OpensslClient::start(
        server.addr(),
        OpensslClientOpts::default()
            .verify(&pki().join("ca.pem"), "server.example.com")
            .client_cert(&pki().join("client.pem"), &pki().join("client.key"))
            .alpn("bar")
            .msg(),
    );
    let line = client.wait_handshake(T).unwrap();
    assert!(line.contains("TLSv1.2"), "{line}");
    assert_eq!(client.verify_result(), Some((0, "ok".to_string())));
    assert_eq!(client.verification(), Some(Ok(())));
    assert_eq!(client.verify_error(), None);
    assert_eq!(client.alpn().as_deref(), Some("bar"));
    assert!(client
        .cipher()
        .is_some_and(|c| c.starts_with("ECDHE-ECDSA-")));
    client.send_line("echo:hello s_server");
    client.wait_data("echo:hello s_server", T).unwrap();
    client.send_line("echo:second");
    client.wait_data("echo:second", T).unwrap();
    assert!(server
        .client_cert_subject()
        .is_some_and(|s| s.contains("client.example.com")));
    // s_server sets SSL_OP_COOKIE_EXCHANGE for DTLS even without -listen.
    assert!(
        client.saw_hello_verify_request(),
        "{:?}",
        client.message_order()
    );
    let order = client.message_order();
    assert_eq!(
        order[..5],
        [
            ">>> ClientHello",
            "<<< HelloVerifyRequest",
            ">>> ClientHello",
            "<<< ServerHello",
            "<<< Certificate"
        ],
        "{order:?}"
    );
    assert!(
        order.contains(&"<<< CertificateRequest".to_string()),
        "{order:?}"
    );
    assert!(
        order.contains(&">>> CertificateVerify".to_string()),
        "{order:?}"
    );
    let status = client.stop(T).unwrap();
    ok_exit(status, "s_client");
    assert!(client.has_line("DONE"));
}

#[test]
fn openssl_client_msg_shows_hello_verify_request_only_with_cookies() {
    for cookies in [true, false] {
        let mut opts = EchoPeerOpts::new(pki());
        if cookies {
            opts = opts.cookie_exchange();
        }
        let peer = EchoPeer::start(opts);
        let mut client = OpensslClient::start(
            peer.addr(),
            OpensslClientOpts::default()
                .verify(&pki().join("ca.pem"), "server.example.com")
                .msg(),
        );
        client.wait_handshake(T).unwrap();
        client.send_line("hello echo peer");
        client.wait_data("hello echo peer", T).unwrap();
        let order = client.message_order();
        assert_eq!(client.saw_hello_verify_request(), cookies, "{order:?}");
        if cookies {
            assert_eq!(
                order[..4],
                [
                    ">>> ClientHello",
                    "<<< HelloVerifyRequest",
                    ">>> ClientHello",
                    "<<< ServerHello"
                ],
                "{order:?}"
            );
            // The second ClientHello carries the 16-byte cookie: its body
            // is 16 bytes longer (DTLS handshake header: 3-byte length at 1).
            let hellos: Vec<_> = client
                .messages()
                .into_iter()
                .filter(|m| m.dir == MsgDir::Sent && m.handshake_type() == Some(1))
                .collect();
            let len = |h: &[u8]| u32::from_be_bytes([0, h[1], h[2], h[3]]);
            assert_eq!(
                len(&hellos[1].head),
                len(&hellos[0].head) + 16,
                "{hellos:?}"
            );
        } else {
            assert_eq!(
                order[..2],
                [">>> ClientHello", "<<< ServerHello"],
                "{order:?}"
            );
        }
        ok_exit(client.stop(T).unwrap(), "s_client");
        let log = peer.wait_finished(T).unwrap();
        assert!(log.conns[0].closed_by_client, "{log:?}");
        assert_eq!(log.conns[0].echoed, vec!["hello echo peer\n".len()]);
    }
}

#[test]
fn openssl_client_renegotiates() {
    let server = OpensslServer::start(
        OpensslServerOpts::new(pki())
            .echo_prefix("echo:")
            .arg("-client_renegotiation"),
    );
    let mut client = OpensslClient::start(
        server.addr(),
        OpensslClientOpts::default()
            .verify(&pki().join("ca.pem"), "server.example.com")
            .msg(),
    );
    client.wait_handshake(T).unwrap();
    client.send_line("echo:before");
    client.wait_data("echo:before", T).unwrap();
    client.renegotiate(T).unwrap();
    client.wait_renegotiated(1, T).unwrap();
    let server_hellos = client
        .messages()
        .iter()
        .filter(|m| m.dir == MsgDir::Received && m.handshake_type() == Some(2))
        .count();
    assert_eq!(server_hellos, 2, "{:?}", client.message_order());
    client.send_line("echo:after");
    client.wait_data("echo:after", T).unwrap();
    ok_exit(client.stop(T).unwrap(), "s_client");
}

#[test]
fn openssl_client_reports_verification_failure() {
    let server = OpensslServer::start(OpensslServerOpts::new(pki()));
    let mut client = OpensslClient::start(
        server.addr(),
        OpensslClientOpts::default().verify(&pki().join("ca.pem"), "wrong.example.com"),
    );
    let err = client.wait_handshake(T).unwrap_err();
    assert!(err.contains("handshake failed"), "{err}");
    let status = client.wait_exit(T).unwrap();
    assert!(!status.success());
    let e = client.verify_error().expect("a verify error line");
    assert!(e.contains("hostname mismatch"), "{e}");
    assert_eq!(
        client.verification(),
        Some(Err("hostname mismatch".to_string()))
    );
    // The session block's verify result is not set on that path.
    assert_eq!(client.verify_result(), Some((0, "ok".to_string())));
}

#[test]
fn gnutls_client_against_gnutls_serv() {
    let server = GnutlsServer::start(
        GnutlsServerOpts::new(pki())
            .require_client_cert(&pki().join("ca.pem"))
            .alpn("foo"),
    );
    let mut client = GnutlsClient::start(
        server.addr(),
        GnutlsClientOpts::new(pki())
            .client_cert(&pki().join("client.pem"), &pki().join("client.key"))
            .alpn("foo"),
    );
    client.wait_handshake(T).unwrap();
    assert_eq!(client.alpn().as_deref(), Some("foo"));
    assert_eq!(
        client.status().as_deref(),
        Some("The certificate is trusted.")
    );
    assert!(client
        .description()
        .is_some_and(|d| d.starts_with("(DTLS1.2-X.509)")));
    assert!(client
        .peer_subject()
        .is_some_and(|s| s.starts_with("CN=server.example.com")));
    client.send_line("hello gnutls-serv");
    client.wait_data("hello gnutls-serv", T).unwrap();
    ok_exit(client.stop(T).unwrap(), "gnutls-cli");
}

#[test]
fn gnutls_client_reports_name_mismatch() {
    let server = GnutlsServer::start(GnutlsServerOpts::new(pki()));
    let mut client = GnutlsClient::start(
        server.addr(),
        GnutlsClientOpts::new(pki()).verify_hostname("wrong.example.com"),
    );
    // "*** PKI verification …" (stdout) or "*** Fatal error: Error in the
    // certificate." (stderr), whichever pipe is read first.
    let line = client.wait_handshake_failure(T).unwrap();
    assert!(line.starts_with("*** "), "{line}");
    assert!(!client.wait_exit(T).unwrap().success());
    assert!(client
        .status()
        .is_some_and(|s| s.contains("does not match the expected")));
    assert!(client.has_line("*** Fatal error: Error in the certificate."));
}

#[test]
fn gio_peer_gnutls_client_against_gnutls_serv() {
    let server = GnutlsServer::start(
        GnutlsServerOpts::new(pki())
            .require_client_cert(&pki().join("ca.pem"))
            .alpn("foo"),
    );
    let mut client = GioPeer::start(
        GioPeerOpts::client(pki(), server.port())
            .cert(&pki().join("client.pem"), &pki().join("client.key"))
            .alpn("foo")
            .echo(3),
    );
    let line = client.wait_handshake(T).unwrap();
    assert!(line.contains("protocol=DTLS1.2"), "{line}");
    assert_eq!(client.backend_type().as_deref(), Some("GTlsBackendGnutls"));
    assert_eq!(
        client.connection_type().as_deref(),
        Some("GTlsClientConnectionGnutls")
    );
    assert_eq!(client.alpn().as_deref(), Some("foo"));
    assert!(client
        .peer_cert_subject()
        .is_some_and(|s| s.ends_with("CN=server.example.com")));
    client.wait_done(T).unwrap();
    assert!(client.has_line("ECHO 3 10"));
    server.wait_for("gio-peer 3", T).unwrap();
}

#[test]
fn gio_peer_gnutls_client_rejects_wrong_identity() {
    let server = GnutlsServer::start(GnutlsServerOpts::new(pki()));
    let mut client = GioPeer::start(
        GioPeerOpts::client(pki(), server.port())
            .identity("wrong.example.com")
            .echo(1),
    );
    let line = client.wait_error(T).unwrap();
    assert!(
        line.starts_with("ERROR handshake domain=g-tls-error-quark code=2 "),
        "{line}"
    );
    // G_TLS_CERTIFICATE_BAD_IDENTITY
    assert!(
        client.has_line("PEER-CERT-ERRORS 0x2"),
        "{}",
        client.output()
    );
    assert_eq!(client.wait_exit(T).unwrap().code(), Some(1));
}

#[test]
fn gio_peer_gnutls_server_against_gnutls_cli() {
    let mut server = GioPeer::start(GioPeerOpts::server(pki()).alpn("foo").echo(2));
    let mut client = GnutlsClient::start(server.addr(), GnutlsClientOpts::new(pki()).alpn("foo"));
    client.wait_handshake(T).unwrap();
    server.wait_handshake(T).unwrap();
    assert_eq!(
        server.connection_type().as_deref(),
        Some("GTlsServerConnectionGnutls")
    );
    assert_eq!(server.alpn().as_deref(), Some("foo"));
    assert_eq!(client.alpn().as_deref(), Some("foo"));
    assert!(server.has_line("PEER-CERT none"));
    client.send_line("one");
    client.wait_data("one", T).unwrap();
    client.send_line("two");
    client.wait_data("two", T).unwrap();
    server.wait_done(T).unwrap();
    // The server closed with close_notify after its two echoes.
    client
        .wait_for("- Peer has closed the GnuTLS connection", T)
        .unwrap();
    client.stop(T).unwrap();
}

#[test]
fn gio_peer_gnutls_server_with_client_cert_against_s_client() {
    let mut server = GioPeer::start(
        GioPeerOpts::server(pki())
            .require_client_cert(&pki().join("ca.pem"))
            .echo(1),
    );
    let mut client = OpensslClient::start(
        server.addr(),
        OpensslClientOpts::default()
            .verify(&pki().join("ca.pem"), "server.example.com")
            .client_cert(&pki().join("client.pem"), &pki().join("client.key")),
    );
    client.wait_handshake(T).unwrap();
    server.wait_handshake(T).unwrap();
    assert!(server.has_line("ACCEPT-CERTIFICATE errors=0x0 accepted"));
    assert!(server
        .peer_cert_subject()
        .is_some_and(|s| s.ends_with("CN=client.example.com")));
    assert!(server
        .client_addr()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    client.send_line("hello gio-peer");
    client.wait_data("hello gio-peer", T).unwrap();
    server.wait_done(T).unwrap();
    // close_notify from the server ends s_client.
    ok_exit(client.wait_exit(T).unwrap(), "s_client");
}

#[test]
fn gio_peer_gnutls_server_requires_a_client_cert() {
    let server = GioPeer::start(
        GioPeerOpts::server(pki())
            .require_client_cert(&pki().join("ca.pem"))
            .echo(1),
    );
    let _client = OpensslClient::start(
        server.addr(),
        OpensslClientOpts::default().ca(&pki().join("ca.pem")),
    );
    let line = server.wait_error(T).unwrap();
    assert!(
        line.starts_with("ERROR handshake domain=g-tls-error-quark"),
        "{line}"
    );
}

#[test]
fn gio_peer_gnutls_client_and_server() {
    let mut server = GioPeer::start(
        GioPeerOpts::server(pki())
            .request_client_cert(&pki().join("ca.pem"))
            .echo(4),
    );
    let mut client = GioPeer::start(
        GioPeerOpts::client(pki(), server.port())
            .cert(&pki().join("client.pem"), &pki().join("client.key"))
            .echo(4),
    );
    client.wait_done(T).unwrap();
    server.wait_done(T).unwrap();
    assert!(server
        .peer_cert_subject()
        .is_some_and(|s| s.ends_with("CN=client.example.com")));
}
