//! Engine tests: a client and a server engine exchanging datagrams in memory.

use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::SslContext;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Name, X509};

use super::*;

mod hostile;

// ---- certificates ---------------------------------------------------------

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> X509Name {
    let mut b = X509Name::builder().unwrap();
    b.append_entry_by_nid(Nid::ORGANIZATIONNAME, "gio-dtls-openssl tests")
        .unwrap();
    b.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    b.build()
}

/// A certificate for `cn` with `key`, signed by `issuer` (self-signed when
/// `None`). `sans` extra DNS names make it bigger.
fn cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
    sans: usize,
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    let subject = name(cn);
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(issuer.map_or(&*subject, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        let mut san = SubjectAlternativeName::new();
        san.dns(cn);
        for i in 0..sans {
            san.dns(&format!("padding-name-{i}.{cn}"));
        }
        let ext = san.build(&b.x509v3_context(None, None)).unwrap();
        b.append_extension(ext).unwrap();
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

struct Pki {
    ca: X509,
    server: Identity,
    client: Identity,
}

/// Root CA → intermediate → server leaf; root → client leaf. EC P-256.
fn pki() -> Pki {
    let ca_key = ec_key();
    let ca = cert("Test Root", &ca_key, None, true, 0);
    let int_key = ec_key();
    let int = cert("Test Intermediate", &int_key, Some((&ca, &ca_key)), true, 0);
    let server_key = ec_key();
    let server_cert = cert("server.test", &server_key, Some((&int, &int_key)), false, 0);
    let client_key = ec_key();
    let client_cert = cert("client.test", &client_key, Some((&ca, &ca_key)), false, 0);
    Pki {
        ca,
        server: Identity {
            certificate: server_cert,
            key: server_key,
            chain: vec![int],
        },
        client: Identity {
            certificate: client_cert,
            key: client_key,
            chain: Vec::new(),
        },
    }
}

/// A server identity whose Certificate message is large: a 4096-bit RSA
/// leaf with 60 DNS names under three intermediates.
fn big_identity() -> Identity {
    let root_key = ec_key();
    let root = cert("Big Root", &root_key, None, true, 0);
    let mut issuer = (root, root_key);
    let mut chain = Vec::new();
    for i in 0..3 {
        let k = ec_key();
        let c = cert(
            &format!("Big Intermediate {i}"),
            &k,
            Some((&issuer.0, &issuer.1)),
            true,
            0,
        );
        chain.insert(0, c.clone());
        issuer = (c, k);
    }
    let key = PKey::from_rsa(Rsa::generate(4096).unwrap()).unwrap();
    let leaf = cert(
        "big.server.test",
        &key,
        Some((&issuer.0, &issuer.1)),
        false,
        150,
    );
    Identity {
        certificate: leaf,
        key,
        chain,
    }
}

// ---- the pair -------------------------------------------------------------

struct Pair {
    client: Engine,
    server: Engine,
    /// Sizes of all datagrams moved so far, per direction.
    client_sent: Vec<Vec<u8>>,
    server_sent: Vec<Vec<u8>>,
}

impl Pair {
    fn new(client_ctx: &SslContext, server_ctx: &SslContext) -> Pair {
        Pair {
            client: Engine::new(client_ctx, Role::Client).unwrap(),
            server: Engine::new(server_ctx, Role::Server).unwrap(),
            client_sent: Vec::new(),
            server_sent: Vec::new(),
        }
    }

    fn with(pki: &Pki, server_config: &ContextConfig) -> Pair {
        let c = client_context(&ContextConfig::default()).unwrap();
        let s = server_context(&pki.server, server_config).unwrap();
        Pair::new(&c, &s)
    }

    /// Moves every queued datagram to the other side; how many moved.
    fn pump(&mut self) -> usize {
        self.pump_filtered(|_, _| true)
    }

    /// Like `pump`, but `keep(from_client, index_in_direction)` may drop.
    fn pump_filtered(&mut self, mut keep: impl FnMut(bool, usize) -> bool) -> usize {
        let mut moved = 0;
        while let Some(d) = self.client.pop_datagram() {
            let i = self.client_sent.len();
            self.client_sent.push(d.clone());
            if keep(true, i) {
                self.server.push_datagram(&d);
            }
            moved += 1;
        }
        while let Some(d) = self.server.pop_datagram() {
            let i = self.server_sent.len();
            self.server_sent.push(d.clone());
            if keep(false, i) {
                self.client.push_datagram(&d);
            }
            moved += 1;
        }
        moved
    }

    fn step(
        &mut self,
    ) -> (
        Result<HandshakeStatus, EngineError>,
        Result<HandshakeStatus, EngineError>,
    ) {
        (self.client.handshake(), self.server.handshake())
    }

    /// Runs the handshake to completion without loss.
    fn handshake(&mut self) -> Result<(), (EngineError, Option<EngineError>)> {
        for _ in 0..20 {
            let (c, s) = self.step();
            self.pump();
            match (c, s) {
                (Ok(HandshakeStatus::Done), Ok(HandshakeStatus::Done)) => {
                    // The server may still need the client's last flight.
                    return Ok(());
                }
                (Err(c), s) => return Err((c, s.err())),
                (_, Err(s)) => return Err((s, None)),
                _ => {}
            }
        }
        panic!("handshake did not finish in 20 rounds");
    }

    /// `from` writes `msg`; the other side reads it back.
    fn transfer(&mut self, from_client: bool, msg: &[u8]) -> Vec<u8> {
        let (tx, _) = self.sides(from_client);
        tx.write_record(msg).unwrap();
        self.pump();
        let (_, rx) = self.sides(from_client);
        let mut buf = vec![0; MAX_RECORD_PLAINTEXT];
        match rx.read_record(&mut buf).unwrap() {
            ReadStatus::Data(n) => buf[..n].to_vec(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    fn sides(&mut self, from_client: bool) -> (&mut Engine, &mut Engine) {
        if from_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        }
    }
}

/// Checks that `datagram` is a whole number of DTLS records.
fn assert_record_framing(datagram: &[u8]) {
    let mut off = 0;
    while off < datagram.len() {
        assert!(datagram.len() - off >= 13, "partial record header");
        let version = u16::from_be_bytes([datagram[off + 1], datagram[off + 2]]);
        assert!(
            version == 0xfefd || version == 0xfeff,
            "not a DTLS record at {off}: {version:#x}"
        );
        let len = u16::from_be_bytes([datagram[off + 11], datagram[off + 12]]) as usize;
        off += 13 + len;
    }
    assert_eq!(off, datagram.len(), "record runs past the datagram");
}

// ---- tests ----------------------------------------------------------------

#[test]
fn handshake_and_echo() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.client.set_server_name("server.test").unwrap();
    assert_eq!(
        p.client.write_record(b"early"),
        Err(EngineError::NotConnected)
    );
    assert_eq!(p.client.protocol_version(), None);
    p.handshake().unwrap();
    for e in [&p.client, &p.server] {
        assert!(e.is_handshake_done());
        assert_eq!(e.protocol_version(), Some("DTLSv1.2"));
        let cipher = e.cipher_iana_name().unwrap();
        assert!(cipher.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{cipher}");
        assert_eq!(e.alpn_selected(), None);
    }
    assert_eq!(
        p.server
            .ssl_ref()
            .servername(openssl::ssl::NameType::HOST_NAME),
        Some("server.test")
    );
    assert_eq!(p.transfer(true, b"ping"), b"ping");
    assert_eq!(p.transfer(false, b"pong"), b"pong");
    for i in 0..50u8 {
        let msg = vec![i; 1 + i as usize * 20];
        assert_eq!(p.transfer(i % 2 == 0, &msg), msg);
    }
    // Nothing more to read.
    let mut buf = [0u8; 16];
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::WantRead));
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
}

#[test]
fn one_record_per_datagram_and_record_order() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    p.client.write_record(b"one").unwrap();
    p.client.write_record(b"two").unwrap();
    assert!(p.client.has_outgoing());
    let d1 = p.client.pop_datagram().unwrap();
    let d2 = p.client.pop_datagram().unwrap();
    assert!(!p.client.has_outgoing());
    assert_record_framing(&d1);
    assert_record_framing(&d2);
    // Delivered out of order: DTLS hands them over as they come.
    p.server.push_datagram(&d2);
    p.server.push_datagram(&d1);
    let mut buf = [0u8; 16];
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Data(3)));
    assert_eq!(&buf[..3], b"two");
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Data(3)));
    assert_eq!(&buf[..3], b"one");
    // A replayed datagram is discarded silently.
    p.server.push_datagram(&d1);
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
}

#[test]
fn records_sharing_a_datagram_are_all_read() {
    // What a peer may send (OpenSSL packs records into one datagram when
    // they fit): every record is read before the engine asks for more, and
    // asking for more (the skipped SSL_read) never hides one.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
    for round in 0..3u8 {
        let words: [&[u8]; 3] = [b"one", b"two", b"three"];
        let mut datagram = Vec::new();
        for w in words {
            p.client.write_record(w).unwrap();
            datagram.extend(p.client.pop_datagram().unwrap());
        }
        assert_record_framing(&datagram);
        p.server.push_datagram(&datagram);
        for w in words {
            assert_eq!(
                p.server.read_record(&mut buf),
                Ok(ReadStatus::Data(w.len())),
                "round {round}"
            );
            assert_eq!(&buf[..w.len()], w);
        }
        assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
        assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
        // One record per datagram again, after the starved reads.
        assert_eq!(p.transfer(true, b"single"), b"single");
    }
    // The peer's close_notify gets through a starved engine.
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
    p.client.shutdown().unwrap();
    p.pump();
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Closed));
}

#[test]
fn message_too_large() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    assert_eq!(p.client.max_plaintext(), 0);
    p.handshake().unwrap();
    for mtu in [DEFAULT_MTU, 600, 256, 9000] {
        p.client.set_mtu(mtu).unwrap();
        let max = p.client.max_plaintext();
        assert!(max > 0 && max < mtu as usize, "mtu {mtu} max {max}");
        assert_eq!(
            p.client.write_record(&vec![1; max + 1]),
            Err(EngineError::MessageTooLarge { max })
        );
        assert!(!p.client.has_outgoing(), "nothing may be sent");
        let msg = vec![7; max];
        p.client.write_record(&msg).unwrap();
        let d = p.client.pop_datagram().unwrap();
        assert!(!p.client.has_outgoing(), "exactly one datagram");
        // AEAD ciphers have no padding: the datagram fills the MTU exactly.
        assert_eq!(d.len(), mtu as usize, "mtu {mtu}");
        assert_record_framing(&d);
        p.server.push_datagram(&d);
        let mut buf = vec![0; max];
        assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Data(max)));
        assert_eq!(buf, msg);
    }
    // Above 16 KiB + overhead the record-size limit, not the MTU, rules.
    p.client.set_mtu(65_535).unwrap();
    assert_eq!(p.client.max_plaintext(), MAX_RECORD_PLAINTEXT);
    assert_eq!(
        p.client.write_record(&vec![0; MAX_RECORD_PLAINTEXT + 1]),
        Err(EngineError::MessageTooLarge {
            max: MAX_RECORD_PLAINTEXT
        })
    );
    assert_eq!(
        p.transfer(true, &vec![3; MAX_RECORD_PLAINTEXT]).len(),
        MAX_RECORD_PLAINTEXT
    );

    assert!(matches!(p.client.set_mtu(100), Err(EngineError::Config(_))));
    assert_eq!(p.client.mtu(), 65_535);
}

#[test]
fn cbc_cipher_max_plaintext_is_exact_bound() {
    // CBC padding makes DTLS_get_data_mtu round down; check it never
    // overshoots the MTU.
    let pki = pki();
    let config = ContextConfig {
        cipher_list: Some("ECDHE-ECDSA-AES128-SHA".into()),
        ..Default::default()
    };
    let c = client_context(&config).unwrap();
    let s = server_context(&pki.server, &config).unwrap();
    let mut p = Pair::new(&c, &s);
    p.handshake().unwrap();
    assert_eq!(
        p.client.cipher_iana_name(),
        Some("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA")
    );
    for mtu in [1400, 1000, 999, 600, 301] {
        p.client.set_mtu(mtu).unwrap();
        let max = p.client.max_plaintext();
        p.client.write_record(&vec![1; max]).unwrap();
        let d = p.client.pop_datagram().unwrap();
        assert!(d.len() <= mtu as usize, "mtu {mtu}: {} bytes", d.len());
        assert!(
            d.len() + 16 > mtu as usize,
            "mtu {mtu}: wasteful {}",
            d.len()
        );
        p.server.push_datagram(&d);
        let mut buf = vec![0; max];
        assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Data(max)));
    }
}

#[test]
fn truncation_is_reported_and_recoverable() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    let msg: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    p.server.write_record(&msg).unwrap();
    p.server.write_record(b"next").unwrap();
    p.pump();
    let mut small = [0u8; 100];
    assert_eq!(
        p.client.read_record(&mut small),
        Err(EngineError::Truncated { needed: 1000 })
    );
    assert_eq!(small, [0; 100], "nothing copied");
    assert_eq!(p.client.pending_record_len(), Some(1000));
    // Still too small: same answer, nothing lost.
    assert_eq!(
        p.client.read_record(&mut small),
        Err(EngineError::Truncated { needed: 1000 })
    );
    let mut big = vec![0u8; 1000];
    assert_eq!(p.client.read_record(&mut big), Ok(ReadStatus::Data(1000)));
    assert_eq!(big, msg);
    assert_eq!(p.client.read_record(&mut small), Ok(ReadStatus::Data(4)));
    assert_eq!(&small[..4], b"next");

    // Discarding instead of retrying.
    p.server.write_record(&msg).unwrap();
    p.server.write_record(b"after").unwrap();
    p.pump();
    assert_eq!(
        p.client.read_record(&mut small),
        Err(EngineError::Truncated { needed: 1000 })
    );
    assert_eq!(p.client.discard_pending_record(), Some(1000));
    assert_eq!(p.client.read_record(&mut small), Ok(ReadStatus::Data(5)));
}

#[test]
fn largest_datagram_openssl_reads() {
    // The BIO never truncates, so OpenSSL must offer a buffer big enough for
    // a maximum-size record; record what it offers.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    p.client.set_mtu(65_535).unwrap();
    let msg = vec![9; MAX_RECORD_PLAINTEXT];
    assert_eq!(p.transfer(true, &msg), msg);
    let offered = p.server.stream.get_ref().largest_read_buffer();
    assert!(offered >= MAX_RECORD_PLAINTEXT + 13 + 16, "{offered}");
}

#[test]
fn close_notify_client_first() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    p.client.write_record(b"last words").unwrap();
    p.client.shutdown().unwrap();
    assert!(p.client.sent_close_notify());
    assert!(!p.client.received_close_notify());
    assert_eq!(p.client.write_record(b"x"), Err(EngineError::Closed));
    p.client.shutdown().unwrap(); // idempotent
    p.pump();
    let mut buf = [0u8; 64];
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Data(10)));
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Closed));
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Closed));
    assert!(p.server.received_close_notify());
    // The server may still send before closing its side.
    p.server.write_record(b"bye").unwrap();
    p.server.shutdown().unwrap();
    p.pump();
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::Data(3)));
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::Closed));
    assert!(p.client.received_close_notify());
}

#[test]
fn close_notify_server_first() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    p.server.shutdown().unwrap();
    p.pump();
    let mut buf = [0u8; 64];
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::Closed));
    assert!(p.client.received_close_notify());
    p.client.shutdown().unwrap();
    p.pump();
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Closed));
    assert!(p.server.received_close_notify());
}

#[test]
fn shutdown_before_handshake_sends_nothing() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.client.shutdown().unwrap();
    assert!(!p.client.has_outgoing());
}

fn check_mtu_during_handshake(mtu: u32, identity: &Identity) {
    let c = client_context(&ContextConfig::default()).unwrap();
    let s = server_context(identity, &ContextConfig::default()).unwrap();
    let mut p = Pair::new(&c, &s);
    p.client.set_mtu(mtu).unwrap();
    p.server.set_mtu(mtu).unwrap();
    p.handshake().unwrap();
    assert_eq!(p.client.peer_chain_der().len(), 1 + identity.chain.len());
    let effective = mtu.min(HANDSHAKE_MTU_CAP) as usize;
    let cert_bytes: usize = p.client.peer_chain_der().iter().map(Vec::len).sum();
    assert!(
        cert_bytes > effective * 3 / 2,
        "chain of {cert_bytes} bytes too small for the test"
    );
    let all = p.client_sent.iter().chain(&p.server_sent);
    let mut largest = 0;
    for d in all {
        assert!(
            d.len() <= mtu as usize,
            "{}-byte datagram at MTU {mtu}",
            d.len()
        );
        assert_record_framing(d);
        largest = largest.max(d.len());
    }
    // Fragments are not needlessly small (the 256-byte fallback would show).
    assert!(
        largest > effective * 3 / 4,
        "largest datagram {largest} at MTU {mtu}"
    );
    // Application data honours it too.
    let max = p.server.max_plaintext();
    p.server.write_record(&vec![0; max]).unwrap();
    assert_eq!(p.server.pop_datagram().unwrap().len(), mtu as usize);
}

#[test]
fn mtu_honoured_during_handshake() {
    let identity = big_identity();
    for mtu in [1400, 600] {
        check_mtu_during_handshake(mtu, &identity);
    }
}

#[test]
fn mtu_larger_than_openssl_write_buffer() {
    // OpenSSL packs a flight in a 4 KiB BIO_f_buffer during the handshake,
    // which splits records across writes above 4096 bytes: the engine caps
    // the handshake's MTU at 4096 and lifts it afterwards.
    let identity = big_identity();
    check_mtu_during_handshake(9000, &identity);
}

#[test]
fn lossy_first_datagram_each_side() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    // Above OpenSSL's 15 ms "expired" threshold, so retransmissions come
    // from handle_timeout, not from handshake().
    let initial = Duration::from_millis(30);
    p.client.set_initial_timeout(initial);
    p.server.set_initial_timeout(initial);
    let start = Instant::now();
    let mut timeouts = 0;
    loop {
        let (c, s) = p.step();
        let c = c.unwrap();
        let s = s.unwrap();
        let moved = p.pump_filtered(|_, index| index != 0);
        if c == HandshakeStatus::Done && s == HandshakeStatus::Done {
            break;
        }
        if moved > 0 {
            continue;
        }
        // Nothing in flight: wait for the earliest timer, then fire.
        let wait = [p.client.timeout(), p.server.timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer must run while the handshake is stuck");
        assert!(wait <= initial * 4, "timer {wait:?} longer than expected");
        std::thread::sleep(wait);
        let fired = p.client.handle_timeout().unwrap() | p.server.handle_timeout().unwrap();
        if fired {
            timeouts += 1;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "no progress");
    }
    assert!(
        timeouts >= 2,
        "both losses need a retransmission: {timeouts}"
    );
    assert!(p.client_sent.len() > 1 && p.server_sent.len() > 1);
    assert_eq!(p.transfer(true, b"through"), b"through");
    assert_eq!(p.transfer(false, b"back"), b"back");
}

#[test]
fn lost_final_flight_is_answered_after_handshake() {
    // The server's last flight (ChangeCipherSpec + Finished) gets lost: the
    // client retransmits its own flight; the server, already connected,
    // answers from read_record.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.client.set_initial_timeout(Duration::from_millis(10));
    let (_, _) = p.step(); // ClientHello
    p.pump();
    let (_, _) = p.step(); // server flight
    p.pump();
    let (_, _) = p.step(); // client flight
    p.pump();
    assert_eq!(p.server.handshake(), Ok(HandshakeStatus::Done));
    // Drop the server's final flight.
    let lost = std::iter::from_fn(|| p.server.pop_datagram()).count();
    assert!(lost > 0);
    assert_eq!(p.client.handshake(), Ok(HandshakeStatus::WantRead));
    let wait = p.client.timeout().unwrap();
    std::thread::sleep(wait);
    assert_eq!(p.client.handle_timeout(), Ok(true));
    p.pump();
    let mut buf = [0u8; 16];
    assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::WantRead));
    p.pump();
    assert_eq!(p.client.handshake(), Ok(HandshakeStatus::Done));
    assert_eq!(p.client.timeout(), None);
}

#[test]
fn timer_policy() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    assert_eq!(p.client.timeout(), None);
    assert_eq!(p.client.handle_timeout(), Ok(false));
    p.client.handshake().unwrap();
    let t = p.client.timeout().unwrap();
    assert!(
        t <= DEFAULT_INITIAL_TIMEOUT && t > Duration::from_millis(900),
        "{t:?}"
    );
    assert_eq!(p.client.handle_timeout(), Ok(false), "not expired yet");

    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.client.set_initial_timeout(Duration::from_millis(20));
    p.client.handshake().unwrap();
    let hello = p.client.pop_datagram().unwrap();
    assert!(p.client.timeout().unwrap() <= Duration::from_millis(20));
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(p.client.timeout(), Some(Duration::ZERO));
    assert_eq!(p.client.handle_timeout(), Ok(true));
    assert_eq!(p.client.pop_datagram().unwrap().len(), hello.len());
    // Doubled for the retransmission.
    let t = p.client.timeout().unwrap();
    assert!(
        t > Duration::from_millis(20) && t <= Duration::from_millis(40),
        "{t:?}"
    );
}

#[test]
fn backoff_stops_at_the_maximum_step() {
    // The timer callback doubles up to the maximum; with 1 ms steps (below
    // OpenSSL's 15 ms "expired" threshold) every timer is expired at once,
    // so no sleeping: only the callback's arithmetic is under test here.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.client
        .set_retransmit_timeouts(Duration::from_millis(20), Duration::from_millis(50));
    assert_eq!(
        p.client.retransmit_timeouts(),
        (Duration::from_millis(20), Duration::from_millis(50))
    );
    p.client.handshake().unwrap();
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(p.client.handle_timeout(), Ok(true));
    let t = p.client.timeout().unwrap();
    assert!(
        t > Duration::from_millis(20) && t <= Duration::from_millis(40),
        "{t:?}"
    );
    std::thread::sleep(t);
    assert_eq!(p.client.handle_timeout(), Ok(true));
    let t = p.client.timeout().unwrap();
    assert!(
        t > Duration::from_millis(40) && t <= Duration::from_millis(50),
        "capped: {t:?}"
    );
}

#[test]
fn a_silent_peer_times_the_handshake_out() {
    // 20 ms steps: above OpenSSL's 15 ms threshold, so only our calls
    // retransmit (below it, one handshake() call would burn them all).
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    let step = Duration::from_millis(20);
    p.client.set_retransmit_timeouts(step, step);
    p.client.handshake().unwrap();
    let mut sent = 0;
    let err = loop {
        while p.client.pop_datagram().is_some() {
            sent += 1;
        }
        std::thread::sleep(p.client.timeout().expect("the timer runs"));
        match p.client.handle_timeout() {
            Ok(_) => {}
            Err(e) => break e,
        }
        assert!(sent < 100, "never gave up");
    };
    assert_eq!(
        sent,
        1 + MAX_RETRANSMISSIONS as usize,
        "the ClientHello and its copies"
    );
    assert!(
        matches!(&err, EngineError::TimedOut(m) if m.contains("12 retransmissions")),
        "{err:?}"
    );
    assert_eq!(p.client.handshake(), Err(err), "sticky");
}

#[test]
fn alpn() {
    let pki = pki();
    let config = ContextConfig {
        alpn_protocols: vec![b"h2".to_vec(), b"coap".to_vec()],
        ..Default::default()
    };
    let mut p = Pair::with(&pki, &config);
    p.client.set_alpn_protocols(&[b"coap", b"other"]).unwrap();
    p.handshake().unwrap();
    assert_eq!(p.client.alpn_selected(), Some(&b"coap"[..]));
    assert_eq!(p.server.alpn_selected(), Some(&b"coap"[..]));

    // No overlap: no ALPN (the server does not fail the handshake).
    let mut p = Pair::with(&pki, &config);
    p.client.set_alpn_protocols(&[b"nope"]).unwrap();
    p.handshake().unwrap();
    assert_eq!(p.client.alpn_selected(), None);

    assert!(matches!(
        p.client.set_alpn_protocols(&[b""]),
        Err(EngineError::Config(_))
    ));
}

#[test]
fn exporter_and_tls_unique() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    assert!(matches!(
        p.client.export_keying_material("EXPORTER-test", None, 32),
        Err(EngineError::NotConnected)
    ));
    assert_eq!(p.client.tls_unique(), None);
    p.handshake().unwrap();
    let a = p
        .client
        .export_keying_material("EXPORTER-test", Some(b"ctx"), 48)
        .unwrap();
    let b = p
        .server
        .export_keying_material("EXPORTER-test", Some(b"ctx"), 48)
        .unwrap();
    assert_eq!(a.len(), 48);
    assert_eq!(a, b);
    let other = p
        .client
        .export_keying_material("EXPORTER-other", Some(b"ctx"), 48)
        .unwrap();
    assert_ne!(a, other);

    let cf = p.client.finished().unwrap();
    let sf = p.server.finished().unwrap();
    assert_eq!(cf.len(), 12);
    assert_ne!(cf, sf);
    assert_eq!(p.client.peer_finished().unwrap(), sf);
    assert_eq!(p.server.peer_finished().unwrap(), cf);
    assert_eq!(p.client.tls_unique().unwrap(), cf);
    assert_eq!(p.server.tls_unique().unwrap(), cf);
}

#[test]
fn peer_chain_der_leaf_first_on_both_sides() {
    let pki = pki();
    let config = ContextConfig {
        client_auth: ClientAuth::Require,
        ..Default::default()
    };
    let mut p = Pair::with(&pki, &config);
    let client = &pki.client;
    let chain = vec![pki.ca.clone()];
    p.client
        .set_client_certificate(&client.certificate, &client.key, &chain)
        .unwrap();
    assert!(p.client.peer_chain_der().is_empty());
    p.handshake().unwrap();
    assert_eq!(
        p.client.peer_chain_der(),
        vec![
            pki.server.certificate.to_der().unwrap(),
            pki.server.chain[0].to_der().unwrap()
        ]
    );
    assert_eq!(
        p.server.peer_chain_der(),
        vec![
            client.certificate.to_der().unwrap(),
            pki.ca.to_der().unwrap()
        ]
    );
}

#[test]
fn client_ca_list_reaches_client() {
    let pki = pki();
    let ca_name = pki.ca.subject_name().to_der().unwrap();
    let other = name("Another CA").to_der().unwrap();
    let config = ContextConfig {
        client_auth: ClientAuth::Request,
        client_ca_names: vec![ca_name.clone(), other.clone()],
        ..Default::default()
    };
    let mut p = Pair::with(&pki, &config);
    p.handshake().unwrap();
    assert_eq!(p.client.client_ca_names(), vec![ca_name, other]);
    // Requested but none sent: accepted; the caller decides.
    assert!(p.server.peer_chain_der().is_empty());

    // Not requested: nothing received.
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    assert!(p.client.client_ca_names().is_empty());
}

#[test]
fn client_certificate_required() {
    let pki = pki();
    let config = ContextConfig {
        client_auth: ClientAuth::Require,
        ..Default::default()
    };
    // Without a certificate the server fails and alerts the client.
    let mut p = Pair::with(&pki, &config);
    let (server_err, client_err) = match p.handshake() {
        Err((first, second)) => (first, second),
        Ok(()) => panic!("handshake without required client certificate"),
    };
    assert!(
        matches!(&server_err, EngineError::CertificateRequired(m) if m.contains("client sent no certificate")),
        "{server_err:?}"
    );
    assert!(client_err.is_none());
    // Sticky.
    assert_eq!(p.server.handshake(), Err(server_err));
    assert_eq!(p.server.write_record(b"x"), Err(EngineError::Closed));
    p.pump();
    match p.client.handshake() {
        Err(EngineError::CertificateRequired(msg)) => {
            assert!(
                msg.contains("requires a client certificate") && msg.contains("alert"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }

    // With one (self-signed, unknown to anyone: OpenSSL must not judge).
    let mut p = Pair::with(&pki, &config);
    let key = ec_key();
    let selfsigned = cert("self.client", &key, None, false, 0);
    p.client
        .set_client_certificate(&selfsigned, &key, &[])
        .unwrap();
    p.handshake().unwrap();
    assert_eq!(
        p.server.peer_chain_der(),
        vec![selfsigned.to_der().unwrap()]
    );
}

#[test]
fn max_version_option() {
    let pki = pki();
    let config = ContextConfig {
        max_version: Some(SslVersion::DTLS1_2),
        ..Default::default()
    };
    let c = client_context(&config).unwrap();
    let s = server_context(&pki.server, &config).unwrap();
    let mut p = Pair::new(&c, &s);
    p.handshake().unwrap();
    assert_eq!(p.server.protocol_version(), Some("DTLSv1.2"));

    // A client limited to DTLS 1.0 cannot reach a DTLS 1.2-only server.
    let old = ContextConfig {
        min_version: Some(SslVersion::DTLS1),
        max_version: Some(SslVersion::DTLS1),
        ..Default::default()
    };
    let c = client_context(&old).unwrap();
    let mut p = Pair::new(&c, &s);
    assert!(p.handshake().is_err());
}

#[test]
fn garbage_during_handshake_is_ignored() {
    // DTLS discards undecodable datagrams rather than failing.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.server.push_datagram(b"definitely not DTLS");
    p.handshake().unwrap();
    p.client
        .push_datagram(&[0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4]);
    let mut buf = [0u8; 16];
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::WantRead));
}

/// `cargo test --release -- --ignored --nocapture bench_handshakes`
#[test]
#[ignore]
fn bench_handshakes() {
    let pki = pki();
    let c = client_context(&ContextConfig::default()).unwrap();
    let s = server_context(&pki.server, &ContextConfig::default()).unwrap();
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut p = Pair::new(&c, &s);
        p.handshake().unwrap();
    }
    let per = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    println!("{rounds} in-memory DTLS 1.2 handshakes (EC P-256): {per:.3} ms each");

    let big = big_identity();
    let s = server_context(&big, &ContextConfig::default()).unwrap();
    let start = Instant::now();
    for _ in 0..rounds {
        let mut p = Pair::new(&c, &s);
        p.handshake().unwrap();
    }
    let per = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    println!("{rounds} handshakes, RSA-4096 leaf + 3 intermediates: {per:.3} ms each");
}

#[test]
fn engine_is_send() {
    // The GIO connection moves its engine between threads behind a lock.
    fn assert_send<T: Send>() {}
    assert_send::<Engine>();
    assert_send::<EngineError>();
}

#[test]
fn resumption_with_a_ticket_keeps_the_peer_chain() {
    let pki = pki();
    let c = client_context(&ContextConfig::default()).unwrap();
    let s = server_context(&pki.server, &ContextConfig::default()).unwrap();
    let mut first = Pair::new(&c, &s);
    first.handshake().unwrap();
    assert!(!first.client.session_reused());
    let chain = first.client.peer_chain_der();
    let session = first
        .client
        .resumable_session()
        .expect("a resumable session");

    // Dropped without close_notify (OpenSSL then marks its own session
    // object unresumable): the kept copy still resumes.
    drop(first);
    let mut second = Pair::new(&c, &s);
    assert!(second.client.resume(&session));
    second.handshake().unwrap();
    assert!(second.client.session_reused() && second.server.session_reused());
    assert_eq!(
        second.client.peer_chain_der(),
        chain,
        "the resumed session keeps the chain"
    );
    assert_eq!(second.transfer(true, b"resumed"), b"resumed");

    // Ticket keys rotate: after one rotation the ticket still resumes (and
    // is renewed under the new key); after two it is refused. (One test:
    // the keys are process-wide.)
    let resumes = |session: &openssl::ssl::SslSession| {
        let mut p = Pair::new(&c, &s);
        assert!(p.client.resume(session));
        p.handshake().unwrap();
        (
            p.client.session_reused(),
            p.client.resumable_session().unwrap(),
        )
    };
    super::super::tickets::rotate_now();
    let (reused, renewed) = resumes(&session);
    assert!(reused, "a ticket under the previous key still resumes");
    super::super::tickets::rotate_now();
    assert!(!resumes(&session).0, "two rotations old: a full handshake");
    assert!(resumes(&renewed).0, "the renewed ticket resumes");

    // A server that refuses resumption makes it a full handshake.
    let mut third = Pair::new(&c, &s);
    assert!(third.client.resume(&session));
    third.server.refuse_resumption();
    third.handshake().unwrap();
    assert!(!third.client.session_reused() && !third.server.session_reused());
}

// ---- idle memory ------------------------------------------------------------

/// Reads until `WantRead`; what was read.
fn drain(e: &mut Engine) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; MAX_RECORD_PLAINTEXT];
    loop {
        match e.read_record(&mut buf) {
            Ok(ReadStatus::Data(n)) => out.push(buf[..n].to_vec()),
            Ok(ReadStatus::WantRead) => return out,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn idle_connections_give_the_record_buffers_back() {
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    // Established and idle: both ends gave OpenSSL's buffers back.
    assert!(p.client.buffers_released() && p.server.buffers_released());

    // A busy connection keeps them once it has them again.
    p.client.set_quiet_gap(Duration::MAX);
    p.server.set_quiet_gap(Duration::MAX);
    assert_eq!(p.transfer(true, b"ping"), b"ping");
    assert!(!p.client.buffers_released() && !p.server.buffers_released());
    assert!(drain(&mut p.server).is_empty());
    assert!(!p.server.buffers_released(), "busy: kept");

    // A quiet one gives them back once everything is read, not before.
    p.server.set_quiet_gap(Duration::ZERO);
    p.client.write_record(b"one").unwrap();
    p.client.write_record(b"two").unwrap();
    p.pump();
    let mut small = [0u8; 8];
    assert_eq!(p.server.read_record(&mut small), Ok(ReadStatus::Data(3)));
    assert!(!p.server.buffers_released(), "a record still queued");
    assert_eq!(drain(&mut p.server), [b"two".to_vec()]);
    assert!(p.server.buffers_released());

    // Released, it still writes first, reads records of every size (into
    // small buffers too, and keeps a record too large for one), and each
    // time gives the buffers back again.
    for size in [1, 100, 1000, p.server.max_plaintext()] {
        let msg: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        assert!(p.server.buffers_released());
        assert_eq!(p.transfer(false, &msg), msg);
        p.client.write_record(&msg).unwrap();
        p.pump();
        let mut buf = vec![0u8; size];
        if size > 1 {
            assert_eq!(
                p.server.read_record(&mut buf[..size - 1]),
                Err(EngineError::Truncated { needed: size })
            );
        }
        assert_eq!(p.server.read_record(&mut buf), Ok(ReadStatus::Data(size)));
        assert_eq!(buf, msg);
        assert!(drain(&mut p.server).is_empty());
    }
    assert!(p.server.buffers_released());

    // And closes: close_notify goes out from released buffers.
    p.server.shutdown().unwrap();
    p.pump();
    let mut buf = [0u8; 16];
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::Closed));
}

#[test]
fn released_buffers_still_retransmit_the_final_flight() {
    // A resumed handshake: the client sends the last flight
    // (ChangeCipherSpec + Finished) and is done, buffers given back. The
    // flight is lost; the server retransmits its own, and the client must
    // answer with its last flight again.
    let pki = pki();
    let c = client_context(&ContextConfig::default()).unwrap();
    let s = server_context(&pki.server, &ContextConfig::default()).unwrap();
    let mut first = Pair::new(&c, &s);
    first.handshake().unwrap();
    let session = first.client.resumable_session().unwrap();
    drop(first);

    let mut p = Pair::new(&c, &s);
    assert!(p.client.resume(&session));
    // Timers below 15 ms count as expired at once: waiting for the
    // client's answer, the server's handshake call retransmits its flight
    // at 1, 2, 4 and 8 ms, and stops at 16 ms. No waiting needed.
    p.server
        .set_retransmit_timeouts(Duration::from_millis(1), Duration::from_millis(20));
    assert_eq!(p.client.handshake(), Ok(HandshakeStatus::WantRead));
    p.pump(); // ClientHello
    assert_eq!(p.server.handshake(), Ok(HandshakeStatus::WantRead));
    // ServerHello, ChangeCipherSpec and Finished in one datagram, then
    // retransmitted one record per datagram.
    let flights: Vec<Vec<u8>> = std::iter::from_fn(|| p.server.pop_datagram()).collect();
    assert!(flights.len() >= 4, "{} datagrams", flights.len());
    assert!(trace::describe_datagram(&flights[3]).contains("Finished"));
    p.client.push_datagram(&flights[0]);
    assert_eq!(p.client.handshake(), Ok(HandshakeStatus::Done));
    assert!(p.client.session_reused());
    assert!(p.client.buffers_released());
    let lost = std::iter::from_fn(|| p.client.pop_datagram()).count();
    assert!(lost > 0, "the client's last flight");

    // The server's retransmitted flight reaches the client.
    for d in &flights[1..4] {
        p.client.push_datagram(d);
    }
    assert!(drain(&mut p.client).is_empty());
    assert!(p.client.has_outgoing(), "the client's last flight again");
    p.pump();
    assert_eq!(p.server.handshake(), Ok(HandshakeStatus::Done));
    assert!(p.server.session_reused());
    assert_eq!(p.transfer(true, b"resumed"), b"resumed");
    assert_eq!(p.transfer(false, b"and back"), b"and back");
}

#[test]
fn released_buffers_still_refuse_renegotiation() {
    // Our server, idle with its buffers given back, gets a renegotiating
    // ClientHello: it answers with a warning no_renegotiation alert (as in
    // tests/gio/server_peers.rs with s_client), which OpenSSL 3.0's client
    // takes as fatal.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    p.server.set_quiet_gap(Duration::ZERO);
    assert_eq!(p.transfer(true, b"before"), b"before");
    assert!(drain(&mut p.server).is_empty());
    assert!(p.server.buffers_released());

    assert!(ossl::start_renegotiation(p.client.ssl_mut()));
    assert!(drain(&mut p.client).is_empty());
    assert_eq!(p.pump(), 1, "the renegotiating ClientHello");
    assert!(drain(&mut p.server).is_empty(), "no handshake, no data");
    let alert = p.server.pop_datagram().expect("an alert");
    assert!(p.server.pop_datagram().is_none(), "no ServerHello");
    assert_eq!(alert[0], 21, "an alert record");
    p.client.push_datagram(&alert);
    let mut buf = [0u8; 16];
    match p.client.read_record(&mut buf) {
        Err(EngineError::Protocol(m)) => assert!(m.contains("no renegotiation"), "{m}"),
        other => panic!("{other:?}"),
    }
    p.pump();
    assert!(matches!(
        p.server.read_record(&mut buf),
        Err(EngineError::Protocol(_))
    ));
}

#[test]
fn a_small_buffer_never_cuts_a_larger_record_queued_behind() {
    // Once OpenSSL's own queues are drained, a buffer that fits every
    // queued record gets the record directly; one that does not goes
    // through the scratch, whichever record SSL_read reaches first — here
    // a replayed record, which OpenSSL skips, in front of a larger one.
    let pki = pki();
    let mut p = Pair::with(&pki, &ContextConfig::default());
    p.handshake().unwrap();
    assert!(drain(&mut p.client).is_empty());
    p.server.write_record(b"small").unwrap();
    let small = p.server.pop_datagram().unwrap();
    p.client.push_datagram(&small);
    let mut buf = [0u8; 100];
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::Data(5)));
    assert_eq!(&buf[..5], b"small");

    let big: Vec<u8> = (0..900u32).map(|i| i as u8).collect();
    p.server.write_record(&big).unwrap();
    p.server.write_record(b"last").unwrap();
    p.client.push_datagram(&small); // a replay, dropped by OpenSSL
    p.pump();
    assert_eq!(
        p.client.read_record(&mut buf),
        Err(EngineError::Truncated { needed: 900 })
    );
    let mut whole = vec![0u8; 900];
    assert_eq!(p.client.read_record(&mut whole), Ok(ReadStatus::Data(900)));
    assert_eq!(whole, big);
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::Data(4)));
    assert_eq!(&buf[..4], b"last");
    assert_eq!(p.client.read_record(&mut buf), Ok(ReadStatus::WantRead));
}
