//! Fuzz target for the I/O-free DTLS engine (`connection::engine`), on
//! stable Rust: a seeded generator (xorshift64*), no dependencies.
//!
//! Each case (one seed) runs a client and a server [`Engine`] through a
//! handshake, an exchange of application records and sometimes a
//! close_notify, over an in-memory network that reorders, drops and
//! duplicates the genuine datagrams, while an attacker injects into either
//! side datagrams mutated from genuine ones seen so far (bit flips, byte
//! sets, truncations, insertions, splices, duplicated records, changed
//! record header and handshake fragment header fields) or made from scratch
//! (random bytes, forged headers with random lengths up to 70000 bytes,
//! forged plaintext handshake messages, alerts and ChangeCipherSpecs), and
//! fires the retransmission timers.
//!
//! Oracles, checked on every case:
//! - no panic (each case runs under `catch_unwind`; the seed is reported),
//!   no hang (every loop is bounded; after the hostile part of the
//!   handshake both sides must reach Done or a failure on a clean network
//!   within a bounded number of steps), bounded memory (after
//!   `WantRead` nothing waits in the engine's inbound queue, and no call
//!   queues more than [`MAX_OUT_PER_CALL`] datagrams);
//! - during the handshake, garbage may make it fail only with
//!   `EngineError::Handshake`, `TimedOut`, `CertificateRequired` or
//!   `NotTls`;
//! - once both sides are connected, nothing injected ends the connection:
//!   any `Err` from `read_record`/`write_record`/`handle_timeout` fails the
//!   case, `Closed` is accepted only after the peer's genuine close_notify
//!   was delivered, and every application record delivered is a genuine
//!   one from the peer, intact, at most once; every genuine record whose
//!   datagram reached the receiver unmodified is delivered.
//!
//! Budget: [`DEFAULT_CASES`] seeds from 1 plus the corpus in a normal
//! `cargo test`. The corpus (`tests/fuzz-corpus/`) holds seeds worth
//! keeping (`seeds.txt`) and hand-written datagrams (`datagrams.txt`), one
//! or more per screening rule, each checked to be dropped by exactly that
//! rule without harm to the connection. Environment:
//! - `DTLS_OPENSSL_FUZZ_CASES=N`: run N seeds;
//! - `DTLS_OPENSSL_FUZZ_SEED=S`: start at seed S (alone: that one case);
//! - `DTLS_OPENSSL_FUZZ_SECONDS=T`: keep going until T seconds have passed;
//! - `DTLS_OPENSSL_FUZZ_VERBOSE=1`: trace every step (to reproduce a seed);
//! - `DTLS_OPENSSL_FUZZ_SUMMARY=1`: one line per case (to pick corpus
//!   entries).
//!
//! A seed fixes every choice of the generator; OpenSSL's own randomness
//! (hello randoms, key shares, nonces) still differs between runs, so a
//! replayed seed makes the same moves on datagrams of the same shape.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use giodtlsopenssl::connection::engine::{
    client_context, server_context, ClientAuth, ContextConfig, Engine, EngineError,
    HandshakeStatus, Identity, ReadStatus, Role, MAX_RECORD_PLAINTEXT,
};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslContext, SslVersion};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Name, X509};

/// Seeds run by a plain `cargo test` (about 8 s in a debug build).
const DEFAULT_CASES: u64 = 600;
/// Handshake steps during which the network is hostile.
const HOSTILE_HANDSHAKE_STEPS: usize = 40;
/// Further steps on a clean network for the handshake to end either way.
const SETTLE_STEPS: usize = 200;
/// Most datagrams one engine call may queue (a flight at MTU 256 with a
/// client certificate is about 15).
const MAX_OUT_PER_CALL: usize = 64;
/// Every retransmission timeout: expired after 2 ms of real time, since
/// OpenSSL takes a timer with less than 15 ms left as expired. (Below
/// 15 ms, one engine call would retransmit until it gives up; the 2 ms
/// keep timers from expiring by themselves during most steps, which
/// would make cases less reproducible.)
const TIMER_STEP: Duration = Duration::from_millis(17);
/// How far the network may delay a genuine datagram behind later ones
/// (well inside DTLS's 64-record replay window).
const MAX_DELAY: u64 = 12;

// ---- generator ------------------------------------------------------------

/// xorshift64*, seeded through splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A length: mostly small, sometimes around the interesting limits.
    fn length(&mut self, max: usize) -> usize {
        match self.below(4) {
            0 => self.below(64.min(max + 1)),
            1 => self.below(max + 1),
            2 => max - self.below(64.min(max + 1)),
            _ => self.below(2048.min(max + 1)),
        }
    }
}

// ---- PKI ------------------------------------------------------------------

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if issuer.is_none() {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap())
            .unwrap();
    } else {
        let san = SubjectAlternativeName::new()
            .dns(cn)
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

struct Pki {
    server: Identity,
    client: Identity,
}

/// Root → server leaf (sent with the root as its chain, to make the
/// Certificate message fragment at small MTUs), root → client leaf.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let root_key = ec_key();
        let root = cert("Fuzz Root", &root_key, None);
        let server_key = ec_key();
        let client_key = ec_key();
        Pki {
            server: Identity {
                certificate: cert("server.test", &server_key, Some((&root, &root_key))),
                key: server_key,
                chain: vec![root.clone()],
            },
            client: Identity {
                certificate: cert("client.test", &client_key, Some((&root, &root_key))),
                key: client_key,
                chain: Vec::new(),
            },
        }
    })
}

// ---- screening statistics from the engine's debug log ---------------------

/// Drop reasons logged by the transport during the current case.
static DROP_REASONS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// The screening rule (`record::Dropped` variant) a log line names.
fn drop_reason(message: &str) -> &'static str {
    const RULES: &[(&str, &str)] = &[
        ("truncated record header", "ShortHeader"),
        ("not a DTLS 1.x record", "NotDtls"),
        ("runs past the datagram", "PastDatagram"),
        ("malformed handshake fragment", "BadHandshakeFragment"),
        ("-byte handshake message", "HandshakeTooLong"),
        ("before a cipher was negotiated", "NoCipherYet"),
        ("shorter than the cipher's", "TooShort"),
        ("bytes OpenSSL reads", "TooLarge"),
    ];
    RULES
        .iter()
        .find(|(text, _)| message.contains(text))
        .map_or("unknown", |(_, rule)| rule)
}

const ALL_RULES: &[&str] = &[
    "ShortHeader",
    "NotDtls",
    "PastDatagram",
    "BadHandshakeFragment",
    "HandshakeTooLong",
    "NoCipherYet",
    "TooShort",
    "TooLarge",
];

fn install_log_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // The drop messages are debug messages, built only when wanted.
        // SAFETY: a plain setter of GLib's (2.72+), callable from any thread.
        unsafe { glib::ffi::g_log_set_debug_enabled(glib::ffi::GTRUE) };
        glib::log_set_handler(
            Some(giodtlsopenssl::LOG_DOMAIN),
            glib::LogLevels::all(),
            false,
            false,
            |_, level, message| {
                if let Some(rest) = message.strip_prefix("dropped a received record: ") {
                    *DROP_REASONS
                        .lock()
                        .unwrap()
                        .entry(drop_reason(rest))
                        .or_default() += 1;
                } else if matches!(
                    level,
                    glib::LogLevel::Error | glib::LogLevel::Critical | glib::LogLevel::Warning
                ) {
                    eprintln!("fuzz: log {level:?}: {message}");
                }
            },
        );
    });
}

fn take_drop_reasons() -> BTreeMap<&'static str, u64> {
    std::mem::take(&mut *DROP_REASONS.lock().unwrap())
}

// ---- case set-up ----------------------------------------------------------

const SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-CCM",
    "ECDHE-ECDSA-AES128-CCM8",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA384",
];
const MTUS: &[u32] = &[256, 300, 512, 1000, 1400, 4096, 9000];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    /// Index in [`SUITES`], or `None` for OpenSSL's default list.
    suite: Option<usize>,
    /// DTLS 1.0 on both sides (CBC suites only).
    dtls10: bool,
    client_auth: ClientAuth,
    client_cert: bool,
}

impl Setup {
    fn draw(rng: &mut Rng) -> Setup {
        let suite = if rng.chance(1, 5) {
            None
        } else {
            Some(rng.below(SUITES.len()))
        };
        let cbc = suite.is_some_and(|i| SUITES[i].ends_with("SHA"));
        Setup {
            suite,
            dtls10: cbc && rng.chance(1, 3),
            client_auth: rng.pick(&[ClientAuth::None, ClientAuth::Request, ClientAuth::Require]),
            client_cert: rng.chance(1, 2),
        }
    }

    /// Whether a clean handshake succeeds with this set-up.
    fn can_connect(&self) -> bool {
        self.client_auth != ClientAuth::Require || self.client_cert
    }

    fn contexts(&self) -> (SslContext, SslContext) {
        static CACHE: Mutex<Option<HashMap<String, (SslContext, SslContext)>>> = Mutex::new(None);
        let mut cache = CACHE.lock().unwrap();
        let cache = cache.get_or_insert_with(HashMap::new);
        cache
            .entry(format!("{self:?}"))
            .or_insert_with(|| {
                let version = self.dtls10.then_some(SslVersion::DTLS1);
                let config = ContextConfig {
                    // @SECLEVEL=0: OpenSSL 3.0 keeps CCM_8 and DTLS 1.0
                    // (SHA-1 signatures) only there.
                    cipher_list: self.suite.map(|i| format!("{}:@SECLEVEL=0", SUITES[i])),
                    min_version: version,
                    max_version: version,
                    ..Default::default()
                };
                let server_config = ContextConfig {
                    client_auth: self.client_auth,
                    ..config.clone()
                };
                (
                    client_context(&config).unwrap(),
                    server_context(&pki().server, &server_config).unwrap(),
                )
            })
            .clone()
    }
}

// ---- statistics -----------------------------------------------------------

#[derive(Default)]
struct Stats {
    cases: u64,
    injected: u64,
    genuine_delivered: u64,
    handshakes_done: u64,
    handshakes_failed: u64,
    failure_reasons: BTreeMap<String, u64>,
    records_delivered: u64,
    records_lost: u64,
    closes: u64,
    dropped_records: u64,
    drop_reasons: BTreeMap<&'static str, u64>,
    /// First seed that hit each drop rule / handshake failure reason.
    first_seed: BTreeMap<String, u64>,
}

impl Stats {
    fn note_first(&mut self, key: String, seed: u64) {
        self.first_seed.entry(key).or_insert(seed);
    }

    fn print(&self, elapsed: Duration) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fuzz_engine: {} executions in {:.1} s ({:.0}/s)",
            self.cases,
            elapsed.as_secs_f64(),
            self.cases as f64 / elapsed.as_secs_f64().max(1e-9)
        );
        let _ = writeln!(
            out,
            "  datagrams injected: {} hostile, {} genuine delivered",
            self.injected, self.genuine_delivered
        );
        let _ = writeln!(
            out,
            "  handshakes: {} completed, {} failed",
            self.handshakes_done, self.handshakes_failed
        );
        for (reason, n) in &self.failure_reasons {
            let _ = writeln!(out, "    {n:>7}  {reason}");
        }
        let _ = writeln!(
            out,
            "  application records: {} delivered, {} lost on the network; {} closes",
            self.records_delivered, self.records_lost, self.closes
        );
        let _ = writeln!(
            out,
            "  records dropped by screening: {}",
            self.dropped_records
        );
        for (rule, n) in &self.drop_reasons {
            let _ = writeln!(out, "    {n:>9}  {rule}");
        }
        let _ = writeln!(out, "  first seed per outcome:");
        for (key, seed) in &self.first_seed {
            let _ = writeln!(out, "    {seed:>10}  {key}");
        }
        eprint!("{out}");
    }
}

/// What one case saw, for the statistics and the corpus checks.
#[derive(Default)]
struct Outcome {
    injected: u64,
    genuine_delivered: u64,
    /// `None`: both sides connected.
    handshake_failure: Option<String>,
    records_delivered: u64,
    records_lost: u64,
    closed: bool,
    dropped_records: u64,
    drop_reasons: BTreeMap<&'static str, u64>,
}

// ---- the network ----------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Handshake flight, retransmission or anything not application data.
    Control,
    /// One application record: (direction, message id).
    Data(usize, u32),
    /// The datagram carrying a close_notify.
    Close,
}

struct Wire {
    bytes: Vec<u8>,
    kind: Kind,
    born: u64,
}

const CLIENT: usize = 0;
const SERVER: usize = 1;
const NAMES: [&str; 2] = ["client", "server"];

struct Case {
    seed: u64,
    rng: Rng,
    verbose: bool,
    engines: [Engine; 2],
    /// Datagrams in flight towards each side.
    queues: [VecDeque<Wire>; 2],
    clock: u64,
    /// Genuine datagrams seen so far, the raw material of mutations.
    pool: Vec<Vec<u8>>,
    /// Whether the network may drop, duplicate and reorder.
    lossy: bool,
    /// How hard the attacker tries during the handshake: 0 (not at all)
    /// to 4 (up to 4 datagrams, half the steps).
    hostility: usize,
    /// Messages sent, per sending side, by id.
    sent: [HashMap<u32, Vec<u8>>; 2],
    /// Ids whose genuine datagram reached the receiver, per sending side.
    reached: [HashSet<u32>; 2],
    /// Ids delivered by the receiver, per sending side.
    delivered: [HashSet<u32>; 2],
    /// Whether the close_notify of each side reached the other.
    close_reached: [bool; 2],
    /// The datagram carrying each side's close_notify, once sent.
    close_datagram: [Option<Vec<u8>>; 2],
    next_id: u32,
    out: Outcome,
}

impl Case {
    fn trace(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("  [{}] {}", self.seed, what());
        }
    }

    /// Moves what `side` queued into the network towards its peer.
    fn collect(&mut self, side: usize, kind: Kind) {
        let mut n = 0;
        while let Some(d) = self.engines[side].pop_datagram() {
            n += 1;
            assert!(
                n <= MAX_OUT_PER_CALL,
                "{} queued more than {MAX_OUT_PER_CALL} datagrams at once",
                NAMES[side]
            );
            self.remember(&d);
            self.clock += 1;
            self.queues[1 - side].push_back(Wire {
                bytes: d,
                kind,
                born: self.clock,
            });
        }
    }

    fn remember(&mut self, d: &[u8]) {
        if self.pool.len() < 256 {
            self.pool.push(d.to_vec());
        } else {
            let i = self.rng.below(self.pool.len());
            self.pool[i] = d.to_vec();
        }
    }

    /// Delivers up to `n` datagrams towards `side`: in order on a clean
    /// network; else picked among the first few (never delaying one more
    /// than [`MAX_DELAY`]), sometimes dropped or duplicated.
    fn deliver(&mut self, side: usize, n: usize) -> usize {
        let mut moved = 0;
        for _ in 0..n {
            let Some(front) = self.queues[side].front() else {
                break;
            };
            let overdue = self.clock.saturating_sub(front.born) > MAX_DELAY;
            let i = if !self.lossy || overdue {
                0
            } else {
                self.rng.below(self.queues[side].len().min(4))
            };
            let wire = self.queues[side].remove(i).unwrap();
            self.clock += 1;
            if self.lossy && self.rng.chance(1, 25) {
                self.trace(|| format!("drop {:?} to {}", wire.kind, NAMES[side]));
                continue;
            }
            if self.lossy && self.rng.chance(1, 25) {
                self.queues[side].push_back(Wire {
                    bytes: wire.bytes.clone(),
                    kind: wire.kind,
                    born: self.clock,
                });
            }
            self.trace(|| {
                format!(
                    "deliver {:?} ({} bytes) to {}",
                    wire.kind,
                    wire.bytes.len(),
                    NAMES[side]
                )
            });
            self.engines[side].push_datagram(&wire.bytes);
            self.out.genuine_delivered += 1;
            match wire.kind {
                Kind::Data(dir, id) => {
                    self.reached[dir].insert(id);
                }
                Kind::Close => self.close_reached[1 - side] = true,
                Kind::Control => {}
            }
            moved += 1;
        }
        moved
    }

    /// Injects `n` hostile datagrams into random sides.
    fn attack(&mut self, n: usize) {
        for _ in 0..n {
            let side = self.rng.below(2);
            let d = hostile(&mut self.rng, &self.pool);
            self.trace(|| {
                format!(
                    "inject {} bytes into {}: {:02x?}",
                    d.len(),
                    NAMES[side],
                    &d[..d.len().min(24)]
                )
            });
            self.engines[side].push_datagram(&d);
            self.out.injected += 1;
            // A copy of the genuine close_notify is a close_notify.
            let peer = 1 - side;
            if let Some(close) = &self.close_datagram[peer] {
                if carries(&d, close) {
                    self.close_reached[peer] = true;
                }
            }
        }
    }

    // ---- handshake ----

    /// Runs the handshake: hostile for [`HOSTILE_HANDSHAKE_STEPS`], then
    /// clean until both sides end. `Ok(())` when both connected.
    fn handshake(&mut self) -> Result<(), String> {
        let mut status: [Option<Result<(), EngineError>>; 2] = [None, None];
        for step in 0..HOSTILE_HANDSHAKE_STEPS + SETTLE_STEPS {
            let hostile = step < HOSTILE_HANDSHAKE_STEPS;
            self.lossy = hostile;
            for side in [CLIENT, SERVER] {
                self.collect(side, Kind::Control);
            }
            let mut news = [false; 2];
            for side in [CLIENT, SERVER] {
                if hostile && self.rng.chance(self.hostility, 8) {
                    let n = 1 + self.rng.below(self.hostility);
                    self.attack(n);
                    news = [true; 2];
                }
                let n = if hostile {
                    self.rng.below(6)
                } else {
                    usize::MAX
                };
                news[side] |= self.deliver(side, n) > 0;
            }
            // Timers: a side without news waits for its timer to expire
            // (see TIMER_STEP) and calls again.
            let mut fire = [false; 2];
            let mut wait = Duration::ZERO;
            for side in [CLIENT, SERVER] {
                if status[side].is_none()
                    && !news[side]
                    && (step == 0 || !hostile || self.rng.chance(1, 2))
                {
                    fire[side] = true;
                    if let Some(t) = self.engines[side].timeout() {
                        wait = wait.max(t);
                    }
                }
            }
            if fire.contains(&true) {
                self.trace(|| format!("timers fire after {wait:?}: {fire:?}"));
                // OpenSSL takes less than 15 ms left as expired.
                std::thread::sleep(wait.saturating_sub(Duration::from_micros(14_900)));
            }
            for side in [CLIENT, SERVER] {
                match status[side] {
                    Some(Err(_)) => {}
                    Some(Ok(())) => self.drain_reads(side, true)?,
                    None => {
                        if !news[side] && !fire[side] {
                            continue;
                        }
                        let result = if fire[side] && self.rng.chance(1, 4) {
                            self.engines[side].handle_timeout().map(|_| ())
                        } else {
                            self.handshake_step(side)
                        };
                        match result {
                            Ok(()) if self.engines[side].is_handshake_done() => {
                                self.trace(|| format!("{} connected", NAMES[side]));
                                status[side] = Some(Ok(()));
                            }
                            Ok(()) => {}
                            Err(e) => {
                                self.trace(|| format!("{} failed: {e}", NAMES[side]));
                                check_handshake_error(&e)?;
                                if self.out.handshake_failure.is_none() {
                                    self.out.handshake_failure =
                                        Some(failure_reason(NAMES[side], &e));
                                }
                                status[side] = Some(Err(e));
                            }
                        }
                    }
                }
            }
            match &status {
                [Some(Ok(())), Some(Ok(()))] => {
                    // The client's Finished may still be needed by nobody;
                    // the server's may still be in flight: both connected.
                    return Ok(());
                }
                [Some(_), Some(_)] => break,
                _ => {}
            }
        }
        for side in [CLIENT, SERVER] {
            match &status[side] {
                None => {
                    return Err(format!(
                        "hang: {} neither connected nor failed after {} steps",
                        NAMES[side],
                        HOSTILE_HANDSHAKE_STEPS + SETTLE_STEPS
                    ))
                }
                Some(Err(_)) => return Ok(()),
                Some(Ok(())) => {}
            }
        }
        unreachable!("both connected returns earlier")
    }

    fn handshake_step(&mut self, side: usize) -> Result<(), EngineError> {
        let r = self.engines[side].handshake();
        if r == Ok(HandshakeStatus::WantRead) {
            assert!(
                !self.engines[side].has_incoming(),
                "{}: handshake wants to read with records queued",
                NAMES[side]
            );
        }
        assert_ne!(r, Ok(HandshakeStatus::WantCertificate));
        r.map(|_| ())
    }

    // ---- records ----

    /// Reads every record `side` can give now, checking each; `Err` on a
    /// broken promise. `handshaking`: the peer may not be connected yet.
    fn drain_reads(&mut self, side: usize, handshaking: bool) -> Result<(), String> {
        let peer = 1 - side;
        let mut buf = vec![0u8; MAX_RECORD_PLAINTEXT];
        for _ in 0..10_000 {
            let small = self.rng.chance(1, 10);
            let limit = if small { 64 } else { buf.len() };
            let r = self.engines[side].read_record(&mut buf[..limit]);
            self.trace(|| {
                format!(
                    "{} read_record: {r:?} (dropped so far {})",
                    NAMES[side],
                    self.engines[side].dropped_records()
                )
            });
            self.collect(side, Kind::Control);
            match r {
                Ok(ReadStatus::WantRead) => {
                    if self.engines[side].has_incoming() {
                        return Err(format!(
                            "{} returned WantRead with records still queued",
                            NAMES[side]
                        ));
                    }
                    return Ok(());
                }
                Ok(ReadStatus::Closed) => {
                    if !self.close_reached[peer] {
                        return Err(format!(
                            "{}: Closed without the peer's close_notify",
                            NAMES[side]
                        ));
                    }
                    self.out.closed = true;
                    return Ok(());
                }
                Ok(ReadStatus::Data(n)) => {
                    if handshaking {
                        return Err(format!("{}: {n} bytes of data nobody sent", NAMES[side]));
                    }
                    self.check_record(peer, &buf[..n])?;
                }
                Err(EngineError::Truncated { needed }) if small => {
                    if needed <= limit {
                        return Err(format!("Truncated({needed}) for a {limit}-byte buffer"));
                    }
                    match self.engines[side].read_record(&mut buf) {
                        Ok(ReadStatus::Data(n)) if n == needed => {
                            self.check_record(peer, &buf[..n])?;
                        }
                        other => {
                            return Err(format!(
                                "{}: retry after Truncated({needed}) gave {other:?}",
                                NAMES[side]
                            ))
                        }
                    }
                }
                Err(e) => return Err(format!("{}: read_record: {e:?}", NAMES[side])),
            }
        }
        Err(format!("hang: {} read 10000 records", NAMES[side]))
    }

    fn check_record(&mut self, from: usize, record: &[u8]) -> Result<(), String> {
        let to = NAMES[1 - from];
        let Some(id) = record
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        else {
            return Err(format!("{to}: a {}-byte record nobody sent", record.len()));
        };
        match self.sent[from].get(&id) {
            Some(msg) if msg == record => {}
            Some(_) => return Err(format!("{to}: record {id} corrupted")),
            None => {
                return Err(format!(
                    "{to}: record {id} ({} bytes) never sent by the {}",
                    record.len(),
                    NAMES[from]
                ))
            }
        }
        if !self.delivered[from].insert(id) {
            return Err(format!("{to}: record {id} delivered twice"));
        }
        self.trace(|| format!("{to} got record {id}"));
        self.out.records_delivered += 1;
        Ok(())
    }

    /// `side` sends one message of a random size.
    fn send(&mut self, side: usize) -> Result<(), String> {
        self.collect(side, Kind::Control);
        let max = self.engines[side].max_plaintext();
        if max < 5 {
            return Err(format!("{}: max_plaintext {max}", NAMES[side]));
        }
        if self.rng.chance(1, 20) {
            let too_big = vec![0; max + 1];
            let r = self.engines[side].write_record(&too_big);
            if r != Err(EngineError::MessageTooLarge { max }) {
                return Err(format!("{}: oversized write gave {r:?}", NAMES[side]));
            }
            if self.engines[side].has_outgoing() {
                return Err(format!("{}: oversized write sent something", NAMES[side]));
            }
        }
        let len = 5 + self.rng.length(max - 5);
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = id.to_le_bytes().to_vec();
        msg.push(side as u8);
        msg.extend(self.rng.bytes(len - 5));
        if let Err(e) = self.engines[side].write_record(&msg) {
            return Err(format!("{}: write_record({len}): {e:?}", NAMES[side]));
        }
        self.trace(|| format!("{} sends record {id} ({len} bytes)", NAMES[side]));
        self.sent[side].insert(id, msg);
        self.collect(side, Kind::Data(side, id));
        Ok(())
    }

    /// The exchange after the handshake.
    fn exchange(&mut self) -> Result<(), String> {
        self.lossy = true;
        let steps = 20 + self.rng.below(60);
        for _ in 0..steps {
            let side = self.rng.below(2);
            match self.rng.below(10) {
                0..=2 => self.send(side)?,
                3..=4 => {
                    let n = self.rng.below(5);
                    self.deliver(side, n);
                }
                5..=6 => {
                    let n = 1 + self.rng.below(6);
                    self.attack(n);
                }
                7 => {
                    let r = self.engines[side].handle_timeout();
                    self.collect(side, Kind::Control);
                    if let Err(e) = r {
                        return Err(format!("{}: handle_timeout: {e:?}", NAMES[side]));
                    }
                }
                8 => {
                    let r = self.engines[side].handshake();
                    if r != Ok(HandshakeStatus::Done) {
                        return Err(format!("{}: handshake() gave {r:?}", NAMES[side]));
                    }
                }
                _ => self.drain_reads(side, false)?,
            }
        }
        self.settle()
    }

    /// Clean network: delivers everything in order and reads until quiet,
    /// then checks that every record that reached its receiver was
    /// delivered.
    fn settle(&mut self) -> Result<(), String> {
        self.lossy = false;
        for _ in 0..20 {
            for side in [CLIENT, SERVER] {
                self.deliver(side, usize::MAX);
                self.drain_reads(side, false)?;
            }
            for side in [CLIENT, SERVER] {
                self.collect(side, Kind::Control);
            }
            if self.queues.iter().all(VecDeque::is_empty) {
                break;
            }
        }
        if !self.queues.iter().all(VecDeque::is_empty) {
            return Err("hang: the engines keep sending".into());
        }
        for from in [CLIENT, SERVER] {
            let mut missing: Vec<_> = self.reached[from]
                .difference(&self.delivered[from])
                .copied()
                .collect();
            if !missing.is_empty() {
                missing.sort_unstable();
                return Err(format!(
                    "records {missing:?} from the {} reached the {} and were not delivered",
                    NAMES[from],
                    NAMES[1 - from]
                ));
            }
            self.out.records_lost += (self.sent[from].len() - self.delivered[from].len()) as u64;
        }
        Ok(())
    }

    /// One side sends close_notify through the hostile network; the peer
    /// must see `Closed` once it arrived, and never before.
    fn close(&mut self) -> Result<(), String> {
        let side = self.rng.below(2);
        let peer = 1 - side;
        self.collect(side, Kind::Control);
        if let Err(e) = self.engines[side].shutdown() {
            return Err(format!("{}: shutdown: {e:?}", NAMES[side]));
        }
        self.trace(|| format!("{} closes", NAMES[side]));
        self.collect(side, Kind::Close);
        self.close_datagram[side] = self.queues[peer]
            .back()
            .filter(|w| w.kind == Kind::Close)
            .map(|w| w.bytes.clone());
        if self.close_datagram[side].is_none() {
            return Err(format!("{}: shutdown sent nothing", NAMES[side]));
        }
        let r = self.engines[side].write_record(b"after close");
        if r != Err(EngineError::Closed) {
            return Err(format!("{}: write after close gave {r:?}", NAMES[side]));
        }
        self.lossy = true;
        for _ in 0..10 {
            let n = self.rng.below(3);
            self.attack(n);
            let n = self.rng.below(3);
            self.deliver(peer, n);
            self.drain_reads(peer, false)?;
        }
        // The close_notify, if the network dropped it, is not resent.
        self.lossy = false;
        self.deliver(peer, usize::MAX);
        self.drain_reads(peer, false)?;
        if self.close_reached[side] {
            let mut buf = [0u8; 16];
            let r = self.engines[peer].read_record(&mut buf);
            if r != Ok(ReadStatus::Closed) {
                return Err(format!(
                    "{}: close_notify delivered, read gave {r:?}",
                    NAMES[peer]
                ));
            }
        }
        Ok(())
    }
}

/// What the handshake may legitimately fail with under attack.
fn check_handshake_error(e: &EngineError) -> Result<(), String> {
    match e {
        // CertificateRequired: a server that requires a client certificate
        // and a client without one (a case the generator makes on purpose).
        // NotTls: the attacker's forged ClientHello reached a client, or
        // every genuine datagram was lost and only garbage came.
        EngineError::Handshake(_)
        | EngineError::TimedOut(_)
        | EngineError::CertificateRequired(_)
        | EngineError::NotTls(_) => Ok(()),
        other => Err(format!("handshake failed with {other:?}")),
    }
}

/// A short label for a handshake failure: side and OpenSSL's reason.
fn failure_reason(side: &str, e: &EngineError) -> String {
    match e {
        EngineError::TimedOut(_) => format!("{side}: timed out"),
        EngineError::NotTls(_) => format!("{side}: not DTLS"),
        EngineError::Handshake(m) | EngineError::CertificateRequired(m) => {
            // "error:0A000410:SSL routines:func:reason:file:line:data"
            let reason = m
                .split("error:")
                .nth(1)
                .and_then(|e| e.split(':').nth(3))
                .unwrap_or(m);
            format!("{side}: {reason}")
        }
        other => format!("{side}: {other:?}"),
    }
}

// ---- hostile datagrams -----------------------------------------------------

/// Record boundaries in `d`: (start, end) of each whole record.
fn records(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while d.len() >= off + 13 {
        let end = off + 13 + usize::from(u16::from_be_bytes([d[off + 11], d[off + 12]]));
        if end > d.len() {
            break;
        }
        out.push((off, end));
        off = end;
    }
    out
}

/// Whether `record` is one of the records the transport takes from `d`
/// (framing as in `record.rs`: the first malformed header ends the
/// datagram), up to its version field: OpenSSL 3.0 authenticates a
/// protected record with the negotiated version, not the one in its header,
/// so a genuine record relayed with another DTLS version is still genuine.
fn carries(d: &[u8], record: &[u8]) -> bool {
    let mut off = 0;
    while d.len() >= off + 13 {
        if !(20..=23).contains(&d[off]) || d[off + 1] != 0xfe {
            return false;
        }
        let end = off + 13 + usize::from(u16::from_be_bytes([d[off + 11], d[off + 12]]));
        if end > d.len() {
            return false;
        }
        let candidate = &d[off..end];
        if candidate.len() == record.len()
            && candidate[0] == record[0]
            && candidate[3..] == record[3..]
        {
            return true;
        }
        off = end;
    }
    false
}

/// A record header and `body`.
fn forge(content_type: u8, version: u16, epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type];
    r.extend_from_slice(&version.to_be_bytes());
    r.extend_from_slice(&epoch.to_be_bytes());
    r.extend_from_slice(&seq.to_be_bytes()[2..]);
    r.extend_from_slice(&(body.len().min(65_535) as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A value for a field of `bits` bits: random, zero, maximum, or the
/// current one nudged.
fn field(rng: &mut Rng, current: u64, bits: u32) -> u64 {
    let max = (1u64 << bits) - 1;
    match rng.below(6) {
        0 => 0,
        1 => max,
        2 => current.wrapping_add(1) & max,
        3 => current.wrapping_sub(1) & max,
        4 => current ^ (1 << rng.below(bits as usize)),
        _ => rng.next() & max,
    }
}

fn get_be(d: &[u8], at: usize, n: usize) -> u64 {
    d[at..at + n].iter().fold(0, |v, &b| v << 8 | u64::from(b))
}

fn set_be(d: &mut [u8], at: usize, n: usize, v: u64) {
    for i in 0..n {
        d[at + i] = (v >> (8 * (n - 1 - i))) as u8;
    }
}

/// One datagram an attacker without keys could send.
fn hostile(rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    if pool.is_empty() || rng.chance(1, 4) {
        return from_scratch(rng);
    }
    let mut d = pool[rng.below(pool.len())].clone();
    let rounds = if rng.chance(1, 4) {
        2 + rng.below(3)
    } else {
        1
    };
    for _ in 0..rounds {
        mutate(rng, pool, &mut d);
    }
    d
}

fn mutate(rng: &mut Rng, pool: &[Vec<u8>], d: &mut Vec<u8>) {
    if d.is_empty() {
        *d = from_scratch(rng);
        return;
    }
    let recs = records(d);
    match rng.below(13) {
        // Bit flips.
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
        }
        // Byte sets.
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(d.len());
                d[i] = {
                    let r = rng.byte();
                    rng.pick(&[0, 0xff, 0x7f, 0x80, r])
                };
            }
        }
        // Truncation.
        2 => {
            let n = rng.below(d.len());
            d.truncate(n);
        }
        // Insertion or deletion in the middle.
        3 => {
            let i = rng.below(d.len());
            if rng.chance(1, 2) {
                let n = 1 + rng.below(16);
                let extra = rng.bytes(n);
                d.splice(i..i, extra);
            } else {
                let n = rng.below(16).min(d.len() - i);
                d.drain(i..i + n);
            }
        }
        // Splice: records of this datagram with records of another.
        4 => {
            let other = &pool[rng.below(pool.len())];
            let cut = rng.below(d.len() + 1);
            let from = rng.below(other.len() + 1);
            d.truncate(cut);
            d.extend_from_slice(&other[from..]);
        }
        5 => {
            let other = &pool[rng.below(pool.len())];
            let ors = records(other);
            if let Some(&(s, e)) = ors.get(rng.below(ors.len().max(1))) {
                let at = recs.get(rng.below(recs.len() + 1)).map_or(d.len(), |r| r.0);
                d.splice(at..at, other[s..e].iter().copied());
            }
        }
        // Duplicated records or a duplicated datagram.
        6 => {
            if let Some(&(s, e)) = recs.get(rng.below(recs.len().max(1))) {
                let copy = d[s..e].to_vec();
                d.splice(e..e, copy);
            } else {
                let copy = d.clone();
                d.extend(copy);
            }
        }
        // A record header field.
        7..=9 => {
            let Some(&(s, _)) = recs.get(rng.below(recs.len().max(1))) else {
                return;
            };
            match rng.below(5) {
                0 => {
                    d[s] = {
                        let r = rng.byte();
                        rng.pick(&[20, 21, 22, 23, 24, 0, 0xff, r])
                    }
                }
                1 => {
                    let v = rng.pick(&[0xfeff, 0xfefd, 0xfefc, 0x0303, 0x0100]);
                    set_be(d, s + 1, 2, v)
                }
                2 => {
                    let v = field(rng, get_be(d, s + 3, 2), 16);
                    set_be(d, s + 3, 2, v)
                }
                3 => {
                    let v = field(rng, get_be(d, s + 5, 6), 48);
                    set_be(d, s + 5, 6, v)
                }
                _ => {
                    let v = field(rng, get_be(d, s + 11, 2), 16);
                    set_be(d, s + 11, 2, v)
                }
            }
        }
        // A handshake fragment header field of a plaintext record.
        10..=11 => {
            let plain: Vec<_> = recs
                .iter()
                .filter(|&&(s, e)| d[s] == 22 && d[s + 3..s + 5] == [0, 0] && e - s >= 25)
                .copied()
                .collect();
            let Some(&(s, _)) = plain.get(rng.below(plain.len().max(1))) else {
                return;
            };
            let h = s + 13;
            match rng.below(5) {
                0 => {
                    d[h] = {
                        let r = rng.byte();
                        rng.pick(&[0, 1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 20, r])
                    }
                }
                1 => {
                    let v = field(rng, get_be(d, h + 1, 3), 24);
                    set_be(d, h + 1, 3, v)
                }
                2 => {
                    let v = field(rng, get_be(d, h + 4, 2), 16);
                    set_be(d, h + 4, 2, v)
                }
                3 => {
                    let v = field(rng, get_be(d, h + 6, 3), 24);
                    set_be(d, h + 6, 3, v)
                }
                _ => {
                    let v = field(rng, get_be(d, h + 9, 3), 24);
                    set_be(d, h + 9, 3, v)
                }
            }
        }
        // Appended garbage.
        _ => {
            let extra = from_scratch(rng);
            d.extend(extra);
        }
    }
}

/// Bytes made up without looking at any genuine datagram.
fn from_scratch(rng: &mut Rng) -> Vec<u8> {
    let version = {
        let r = 0xfe00 | u16::from(rng.byte());
        rng.pick(&[0xfefd, 0xfefd, 0xfeff, r])
    };
    let epoch = {
        let r = rng.next() as u16;
        rng.pick(&[0, 0, 1, 1, 2, 0xffff, r])
    };
    let seq = {
        let r = rng.next() & 0xffff_ffff_ffff;
        rng.pick(&[0, 1, 2, 5, r])
    };
    match rng.below(8) {
        // Random bytes, occasionally a huge datagram.
        0 => {
            let n = if rng.chance(1, 10) {
                rng.below(70_001)
            } else {
                rng.below(200)
            };
            rng.bytes(n)
        }
        // A forged header whose length may lie, with 0..=70000 bytes.
        1 | 2 => {
            let content_type = rng.pick(&[20, 21, 22, 23]);
            let claimed = rng.length(65_535);
            let body_len = match rng.below(4) {
                0 => claimed,
                1 => rng.length(70_000),
                2 => claimed.saturating_sub(1 + rng.below(8)),
                _ => claimed + rng.below(8),
            };
            let mut r = forge(content_type, version, epoch, seq, &rng.bytes(body_len));
            set_be(&mut r, 11, 2, claimed as u64);
            r
        }
        // A plaintext handshake message with random fragment fields.
        3 | 4 => {
            let msg_type = {
                let r = rng.byte();
                rng.pick(&[1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 20, r])
            };
            let body_len = rng.length(1500);
            let msg_len = match rng.below(4) {
                0 => body_len,
                1 => rng.length(0xff_ffff),
                _ => body_len + rng.below(300),
            };
            let offset = if rng.chance(1, 2) {
                0
            } else {
                rng.length(msg_len)
            };
            let frag_len = match rng.below(3) {
                0 => body_len,
                1 => msg_len.saturating_sub(offset),
                _ => rng.length(0xff_ffff),
            };
            let mut f = vec![msg_type];
            f.extend_from_slice(&(msg_len as u32).to_be_bytes()[1..]);
            f.extend_from_slice(&(rng.below(6) as u16).to_be_bytes());
            f.extend_from_slice(&(offset as u32).to_be_bytes()[1..]);
            f.extend_from_slice(&(frag_len as u32 & 0xff_ffff).to_be_bytes()[1..]);
            f.extend(rng.bytes(body_len));
            forge(22, version, 0, seq, &f)
        }
        // An alert, plaintext or not.
        5 => {
            let level = {
                let r = rng.byte();
                rng.pick(&[1, 2, r])
            };
            let desc = {
                let r = rng.byte();
                rng.pick(&[0, 10, 20, 40, 42, 47, 50, 70, 80, 90, 100, r])
            };
            let mut body = vec![level, desc];
            if rng.chance(1, 4) {
                let n = rng.below(40);
                body.extend(rng.bytes(n));
            }
            forge(21, version, epoch, seq, &body)
        }
        // A ChangeCipherSpec.
        6 => forge(20, version, epoch, seq, &[rng.pick(&[1, 1, 0, 2])]),
        // Several forged records in one datagram.
        _ => {
            let mut d = Vec::new();
            for _ in 0..1 + rng.below(5) {
                let content_type = rng.pick(&[20, 21, 22, 23]);
                let n = rng.length(300);
                d.extend(forge(content_type, version, epoch, seq, &rng.bytes(n)));
            }
            d
        }
    }
}

// ---- running ----------------------------------------------------------------

fn run_case(seed: u64, verbose: bool) -> Result<Outcome, String> {
    let mut rng = Rng::new(seed);
    let setup = Setup::draw(&mut rng);
    let (client_ctx, server_ctx) = setup.contexts();
    let mut client = Engine::new(&client_ctx, Role::Client).map_err(|e| e.to_string())?;
    let mut server = Engine::new(&server_ctx, Role::Server).map_err(|e| e.to_string())?;
    client.set_mtu(rng.pick(MTUS)).unwrap();
    server.set_mtu(rng.pick(MTUS)).unwrap();
    if setup.client_cert {
        let id = &pki().client;
        client
            .set_client_certificate(&id.certificate, &id.key, &id.chain)
            .unwrap();
    }
    for e in [&mut client, &mut server] {
        e.set_retransmit_timeouts(TIMER_STEP, TIMER_STEP);
        // Every other case: both ends give OpenSSL's record buffers back
        // each time they have read everything (not drawn from the
        // generator, so seeds keep their cases).
        if seed % 2 == 0 {
            e.set_quiet_gap(Duration::ZERO);
        }
    }
    if verbose {
        eprintln!(
            "  [{seed}] {setup:?}, MTU client {} server {}",
            client.mtu(),
            server.mtu()
        );
    }
    let mut case = Case {
        seed,
        rng,
        verbose,
        engines: [client, server],
        queues: [VecDeque::new(), VecDeque::new()],
        clock: 0,
        pool: Vec::new(),
        lossy: true,
        hostility: 0,
        sent: [HashMap::new(), HashMap::new()],
        reached: [HashSet::new(), HashSet::new()],
        delivered: [HashSet::new(), HashSet::new()],
        close_reached: [false; 2],
        close_datagram: [None, None],
        next_id: 0,
        out: Outcome::default(),
    };
    // A third of the cases leave the handshake alone (network disorder
    // only), so that enough of them reach the exchange.
    case.hostility = case.rng.pick(&[0, 0, 1, 1, 2, 4]);
    case.handshake()?;
    if let Some(reason) = &case.out.handshake_failure {
        // Reordering, loss and duplication alone never break a handshake
        // that can succeed; at worst the retransmissions run out.
        if case.hostility == 0 && setup.can_connect() && !reason.ends_with("timed out") {
            return Err(format!("no attack, yet the handshake failed: {reason}"));
        }
    }
    if case.out.handshake_failure.is_none() {
        if !setup.can_connect() {
            return Err(format!("{setup:?} cannot connect, yet it did"));
        }
        case.exchange()?;
        if case.rng.chance(1, 2) {
            case.close()?;
        }
    }
    let mut out = case.out;
    out.dropped_records = case.engines.iter().map(Engine::dropped_records).sum();
    Ok(out)
}

/// Runs one seed under `catch_unwind`; a panic becomes an `Err`.
fn run_guarded(seed: u64, verbose: bool) -> Result<Outcome, String> {
    take_drop_reasons();
    let result = catch_unwind(AssertUnwindSafe(|| run_case(seed, verbose)));
    let reasons = take_drop_reasons();
    match result {
        Ok(Ok(mut out)) => {
            out.drop_reasons = reasons;
            let logged: u64 = out.drop_reasons.values().sum();
            if logged != out.dropped_records {
                return Err(format!(
                    "dropped_records() says {}, the log {logged}",
                    out.dropped_records
                ));
            }
            Ok(out)
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => Err(format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(not a string)")
        )),
    }
}

fn record_outcome(stats: &mut Stats, seed: u64, out: &Outcome) {
    stats.cases += 1;
    stats.injected += out.injected;
    stats.genuine_delivered += out.genuine_delivered;
    match &out.handshake_failure {
        None => stats.handshakes_done += 1,
        Some(reason) => {
            stats.handshakes_failed += 1;
            *stats.failure_reasons.entry(reason.clone()).or_default() += 1;
            stats.note_first(format!("handshake failure: {reason}"), seed);
        }
    }
    stats.records_delivered += out.records_delivered;
    stats.records_lost += out.records_lost;
    stats.closes += u64::from(out.closed);
    stats.dropped_records += out.dropped_records;
    for (rule, n) in &out.drop_reasons {
        *stats.drop_reasons.entry(rule).or_default() += n;
        stats.note_first(format!("screening: {rule}"), seed);
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
    )
}

/// Non-comment lines of a corpus file, with their line numbers.
fn corpus_lines(name: &str) -> Vec<(usize, String)> {
    let path = format!("{}/tests/fuzz-corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.split('#').next().unwrap().trim().to_string()))
        .filter(|(_, content)| !content.is_empty())
        .collect()
}

/// `seeds.txt`: one seed per line, replayed through every oracle.
fn corpus_seeds() -> Vec<(usize, u64)> {
    corpus_lines("seeds.txt")
        .into_iter()
        .map(|(line, content)| {
            let seed = content
                .parse()
                .unwrap_or_else(|_| panic!("seeds.txt:{line}: not a seed: {content}"));
            (line, seed)
        })
        .collect()
}

/// `datagrams.txt`: `<rule> <phase> <hex>…`, where `rule` is the screening
/// rule that must drop the datagram (or `none`: it reaches OpenSSL, which
/// must cope), `phase` is `start` (into both engines after the client's
/// first flight was made) or `connected`, and the hex chunks may repeat a
/// byte as `XX*N`.
struct DatagramEntry {
    line: usize,
    rule: String,
    connected: bool,
    bytes: Vec<u8>,
}

fn corpus_datagrams() -> Vec<DatagramEntry> {
    corpus_lines("datagrams.txt")
        .into_iter()
        .map(|(line, content)| {
            let mut words = content.split_whitespace();
            let rule = words.next().unwrap().to_string();
            assert!(
                rule == "none" || ALL_RULES.contains(&rule.as_str()),
                "datagrams.txt:{line}: unknown rule {rule}"
            );
            let connected = match words.next() {
                Some("start") => false,
                Some("connected") => true,
                other => panic!("datagrams.txt:{line}: phase {other:?}"),
            };
            let mut bytes = Vec::new();
            for chunk in words {
                let (hex, times) = chunk.split_once('*').unwrap_or((chunk, "1"));
                let times: usize = times
                    .parse()
                    .unwrap_or_else(|_| panic!("datagrams.txt:{line}: {chunk}"));
                assert!(hex.len() % 2 == 0, "datagrams.txt:{line}: odd hex {hex}");
                let chunk_bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        u8::from_str_radix(&hex[i..i + 2], 16)
                            .unwrap_or_else(|_| panic!("datagrams.txt:{line}: {hex}"))
                    })
                    .collect();
                for _ in 0..times {
                    bytes.extend_from_slice(&chunk_bytes);
                }
            }
            DatagramEntry {
                line,
                rule,
                connected,
                bytes,
            }
        })
        .collect()
}

/// Moves datagrams both ways and steps both handshakes, without loss or
/// timers, until both are connected.
fn connect(engines: &mut [Engine; 2]) -> Result<(), String> {
    for _ in 0..20 {
        let mut done = true;
        for e in engines.iter_mut() {
            match e.handshake() {
                Ok(HandshakeStatus::Done) => {}
                Ok(_) => done = false,
                Err(err) => return Err(format!("{:?}: {err}", e.role())),
            }
        }
        if done {
            return Ok(());
        }
        for from in [CLIENT, SERVER] {
            while let Some(d) = engines[from].pop_datagram() {
                engines[1 - from].push_datagram(&d);
            }
        }
    }
    Err("the handshake stalled".into())
}

/// Replays one `datagrams.txt` entry into both engines; the rule must drop
/// it (and nothing else be dropped), and the connection must work after.
fn replay_datagram(entry: &DatagramEntry) -> Result<(), String> {
    let (client_ctx, server_ctx) = Setup {
        suite: None,
        dtls10: false,
        client_auth: ClientAuth::None,
        client_cert: false,
    }
    .contexts();
    let mut engines = [
        Engine::new(&client_ctx, Role::Client).unwrap(),
        Engine::new(&server_ctx, Role::Server).unwrap(),
    ];
    if entry.connected {
        connect(&mut engines)?;
    } else {
        engines[CLIENT].handshake().map_err(|e| e.to_string())?;
    }
    take_drop_reasons();
    let mut buf = vec![0u8; MAX_RECORD_PLAINTEXT];
    for e in engines.iter_mut() {
        e.push_datagram(&entry.bytes);
        if entry.connected {
            let r = e.read_record(&mut buf);
            if r != Ok(ReadStatus::WantRead) {
                return Err(format!("{:?}: read_record gave {r:?}", e.role()));
            }
        } else if let Err(err) = e.handshake() {
            return Err(format!("{:?}: {err}", e.role()));
        }
    }
    let drops = take_drop_reasons();
    let expected: BTreeMap<&str, u64> = if entry.rule == "none" {
        BTreeMap::new()
    } else {
        [(entry.rule.as_str(), 2)].into()
    };
    if drops != expected {
        return Err(format!("dropped {drops:?}, expected {expected:?}"));
    }
    if !entry.connected {
        connect(&mut engines)?;
    }
    for from in [CLIENT, SERVER] {
        engines[from]
            .write_record(b"still connected")
            .map_err(|e| e.to_string())?;
        while let Some(d) = engines[from].pop_datagram() {
            engines[1 - from].push_datagram(&d);
        }
        let r = engines[1 - from].read_record(&mut buf);
        if r != Ok(ReadStatus::Data(15)) || &buf[..15] != b"still connected" {
            return Err(format!("after it, a record gave {r:?}"));
        }
    }
    Ok(())
}

#[test]
fn fuzz_engine() {
    install_log_handler();
    let verbose = std::env::var_os("DTLS_OPENSSL_FUZZ_VERBOSE").is_some();
    let summary = std::env::var_os("DTLS_OPENSSL_FUZZ_SUMMARY").is_some();
    let start_seed = env_u64("DTLS_OPENSSL_FUZZ_SEED");
    let seconds = env_u64("DTLS_OPENSSL_FUZZ_SECONDS");
    let cases = env_u64("DTLS_OPENSSL_FUZZ_CASES").unwrap_or(match (start_seed, seconds) {
        (_, Some(_)) => u64::MAX,
        (Some(_), None) => 1,
        (None, None) => DEFAULT_CASES,
    });
    let start_seed = start_seed.unwrap_or(1);
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let begin = Instant::now();
    let mut stats = Stats::default();
    let mut failures = Vec::new();

    // The corpus first, unless one seed is being reproduced.
    let replay_corpus = std::env::var_os("DTLS_OPENSSL_FUZZ_SEED").is_none();
    if replay_corpus {
        let datagrams = corpus_datagrams();
        let mut covered = HashSet::new();
        for entry in &datagrams {
            match catch_unwind(AssertUnwindSafe(|| replay_datagram(entry))) {
                Ok(Ok(())) => {
                    covered.insert(entry.rule.clone());
                }
                Ok(Err(e)) => failures.push(format!("datagrams.txt:{}: {e}", entry.line)),
                Err(_) => failures.push(format!("datagrams.txt:{}: panic", entry.line)),
            }
        }
        for rule in ALL_RULES {
            if !covered.contains(*rule) {
                failures.push(format!("datagrams.txt exercises no {rule} drop"));
            }
        }
        let seeds = corpus_seeds();
        for &(line, seed) in &seeds {
            match run_guarded(seed, verbose) {
                Ok(out) => record_outcome(&mut stats, seed, &out),
                Err(e) => failures.push(format!("seeds.txt:{line} (seed {seed}): {e}")),
            }
        }
        eprintln!(
            "fuzz_engine: corpus of {} datagrams and {} seeds replayed in {:.1} s",
            datagrams.len(),
            seeds.len(),
            begin.elapsed().as_secs_f64()
        );
    }

    for seed in start_seed..start_seed.saturating_add(cases) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match run_guarded(seed, verbose) {
            Ok(out) => {
                if summary {
                    eprintln!(
                        "fuzz_engine: seed {seed}: {}, {} records, drops {:?}",
                        out.handshake_failure.as_deref().unwrap_or("connected"),
                        out.records_delivered,
                        out.drop_reasons
                    );
                }
                record_outcome(&mut stats, seed, &out)
            }
            Err(e) => {
                eprintln!("fuzz_engine: seed {seed} FAILED: {e}");
                failures.push(format!("seed {seed}: {e}"));
                stats.cases += 1;
            }
        }
        if (seed - start_seed + 1) % 10_000 == 0 {
            stats.print(begin.elapsed());
        }
    }
    stats.print(begin.elapsed());
    assert!(
        failures.is_empty(),
        "{} failing cases (reproduce one with DTLS_OPENSSL_FUZZ_SEED=<seed> \
         DTLS_OPENSSL_FUZZ_VERBOSE=1):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
