//! A UDP relay between one client and one server on 127.0.0.1 that records
//! every datagram's size per direction and can drop or duplicate chosen
//! ones (glib-networking's lossy tests drop the first datagram each way).
//!
//! The client sends to [`Relay::addr`]; the relay forwards from its own
//! socket connected to the server, and sends the server's datagrams back to
//! the address the client last sent from. Two threads (one per direction)
//! with a short read timeout; Drop stops and joins them.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ToServer,
    ToClient,
}

/// What happens to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Drop,
    /// Forward twice.
    Duplicate,
    /// Forward after this long (datagrams behind it overtake it).
    Delay(Duration),
}

/// One datagram seen by the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Index within its direction, from 0.
    pub index: usize,
    pub len: usize,
    pub verdict: Verdict,
    /// When it arrived, relative to the relay's start.
    pub at: Duration,
}

type Filter = Box<dyn FnMut(Direction, usize, &[u8]) -> Verdict + Send>;

struct State {
    to_server: Vec<Record>,
    to_client: Vec<Record>,
    client: Option<SocketAddr>,
    errors: Vec<String>,
}

impl State {
    fn records(&mut self, dir: Direction) -> &mut Vec<Record> {
        match dir {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    filter: Mutex<Filter>,
    stop: AtomicBool,
    start: Instant,
}

/// See the module documentation.
pub struct Relay {
    addr: SocketAddr,
    server: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Clones of the two sockets, for [`Relay::inject`].
    front: UdpSocket,
    back: UdpSocket,
}

impl Relay {
    /// Starts relaying to `server` (forwarding everything until a filter is set).
    pub fn start(server: SocketAddr) -> Self {
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay front");
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay back");
        back.connect(server).expect("connect relay back");
        // The link's losses are the impairment's, not the relay's own
        // socket overflowing while a burst waits for its thread.
        for s in [&front, &back] {
            super::echo_peer::big_receive_buffer(s);
        }
        front.set_read_timeout(Some(POLL)).unwrap();
        back.set_read_timeout(Some(POLL)).unwrap();
        let addr = front.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                to_server: Vec::new(),
                to_client: Vec::new(),
                client: None,
                errors: Vec::new(),
            }),
            cond: Condvar::new(),
            filter: Mutex::new(Box::new(|_, _, _| Verdict::Forward)),
            stop: AtomicBool::new(false),
            start: Instant::now(),
        });
        let front2 = front.try_clone().unwrap();
        let back2 = back.try_clone().unwrap();
        let (front3, back3) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let t1 = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("relay-to-server".into())
                .spawn(move || pump(&shared, Direction::ToServer, &front, &back))
                .unwrap()
        };
        let t2 = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("relay-to-client".into())
                .spawn(move || pump(&shared, Direction::ToClient, &back2, &front2))
                .unwrap()
        };
        Relay {
            addr,
            server,
            shared,
            threads: vec![t1, t2],
            front: front3,
            back: back3,
        }
    }

    /// Where the client must send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The address the server sees the relay's datagrams come from (to
    /// connect a server's socket to).
    pub fn back_addr(&self) -> SocketAddr {
        self.back.local_addr().unwrap()
    }

    /// Replaces the filter: `f(direction, index_in_direction, datagram)`.
    pub fn set_filter(&self, f: impl FnMut(Direction, usize, &[u8]) -> Verdict + Send + 'static) {
        *self.shared.filter.lock().unwrap() = Box::new(f);
    }

    /// Drops the datagrams with these indices (per direction, from 0).
    pub fn drop_indices(&self, to_server: &[usize], to_client: &[usize]) {
        let (s, c): (HashSet<usize>, HashSet<usize>) = (
            to_server.iter().copied().collect(),
            to_client.iter().copied().collect(),
        );
        self.set_filter(move |dir, i, _| {
            let set = if dir == Direction::ToServer { &s } else { &c };
            if set.contains(&i) {
                Verdict::Drop
            } else {
                Verdict::Forward
            }
        });
    }

    /// glib-networking's lossy test: the first datagram of each side is lost.
    pub fn drop_first_each_way(&self) {
        self.drop_indices(&[0], &[0]);
    }

    /// Sends `datagram` as if it came from the other end: to the client
    /// from the server's side (spoofed: same source address as the
    /// server's datagrams), or to the server from the client's side.
    pub fn inject(&self, dir: Direction, datagram: &[u8]) {
        match dir {
            Direction::ToClient => {
                let client = self.client().expect("the client has sent something");
                self.front.send_to(datagram, client).unwrap();
            }
            Direction::ToServer => {
                self.back.send(datagram).unwrap();
            }
        };
    }

    /// Impairs both directions as `imp` says.
    pub fn impair(&self, imp: Impairment) {
        self.set_filter(imp.filter());
    }

    /// Drops everything in `dir` (a silent peer).
    pub fn blackhole(&self, dir: Direction) {
        self.set_filter(move |d, _, _| {
            if d == dir {
                Verdict::Drop
            } else {
                Verdict::Forward
            }
        });
    }

    /// Every datagram seen in `dir`, dropped ones included.
    pub fn records(&self, dir: Direction) -> Vec<Record> {
        self.shared.state.lock().unwrap().records(dir).clone()
    }

    /// Sizes of every datagram seen in `dir`, dropped ones included.
    pub fn sizes(&self, dir: Direction) -> Vec<usize> {
        self.records(dir).iter().map(|r| r.len).collect()
    }

    /// Sizes of the datagrams actually forwarded in `dir`.
    pub fn forwarded_sizes(&self, dir: Direction) -> Vec<usize> {
        self.records(dir)
            .iter()
            .filter(|r| r.verdict != Verdict::Drop)
            .map(|r| r.len)
            .collect()
    }

    pub fn count(&self, dir: Direction) -> usize {
        self.shared.state.lock().unwrap().records(dir).len()
    }

    /// The client's address (once it sent something).
    pub fn client(&self) -> Option<SocketAddr> {
        self.shared.state.lock().unwrap().client
    }

    /// Socket errors the relay met (ECONNREFUSED from a vanished peer…).
    pub fn errors(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().errors.clone()
    }

    /// Waits until at least `n` datagrams were seen in `dir`.
    pub fn wait_count(&self, dir: Direction, n: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if st.records(dir).len() >= n {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let seen = st.records(dir).len();
                return Err(format!(
                    "relay: {seen} datagrams {dir:?}, expected {n} within {timeout:?}"
                ));
            }
            st = self.shared.cond.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// Stops both threads. Idempotent.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let st = self.shared.state.lock().unwrap();
            eprintln!(
                "---- relay ----\nto server: {:?}\nto client: {:?}\nerrors: {:?}",
                st.to_server
                    .iter()
                    .map(|r| (r.len, r.verdict))
                    .collect::<Vec<_>>(),
                st.to_client
                    .iter()
                    .map(|r| (r.len, r.verdict))
                    .collect::<Vec<_>>(),
                st.errors
            );
        }
    }
}

fn send(shared: &Shared, dir: Direction, to: &UdpSocket, data: &[u8]) {
    let r = match dir {
        Direction::ToServer => to.send(data),
        Direction::ToClient => match shared.state.lock().unwrap().client {
            Some(d) => to.send_to(data, d),
            None => Ok(0),
        },
    };
    if let Err(e) = r {
        shared
            .state
            .lock()
            .unwrap()
            .errors
            .push(format!("{dir:?} send: {e}"));
    }
}

fn pump(shared: &Shared, dir: Direction, from: &UdpSocket, to: &UdpSocket) {
    let mut buf = vec![0u8; 65536];
    // Delayed datagrams, released when due.
    let mut held: Vec<(Instant, Vec<u8>)> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        held.sort_by_key(|(due, _)| *due);
        while held.first().is_some_and(|(due, _)| *due <= now) {
            let (_, data) = held.remove(0);
            send(shared, dir, to, &data);
        }
        let wait = held.first().map_or(POLL, |(due, _)| {
            (*due - now).clamp(Duration::from_micros(100), POLL)
        });
        from.set_read_timeout(Some(wait)).unwrap();
        let (n, src) = match from.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                shared
                    .state
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("{dir:?} recv: {e}"));
                continue;
            }
        };
        let data = &buf[..n];
        if dir == Direction::ToServer {
            shared.state.lock().unwrap().client = Some(src);
        }
        let index = shared.state.lock().unwrap().records(dir).len();
        let verdict = (shared.filter.lock().unwrap())(dir, index, data);
        match verdict {
            Verdict::Forward => send(shared, dir, to, data),
            Verdict::Drop => {}
            Verdict::Duplicate => {
                send(shared, dir, to, data);
                send(shared, dir, to, data);
            }
            Verdict::Delay(d) => held.push((Instant::now() + d, data.to_vec())),
        }
        {
            let mut st = shared.state.lock().unwrap();
            let at = shared.start.elapsed();
            st.records(dir).push(Record {
                index,
                len: n,
                verdict,
                at,
            });
        }
        shared.cond.notify_all();
    }
}

/// A lossy, duplicating, reordering network, reproducible from its seed:
/// each datagram, in either direction, is dropped with probability
/// `loss`, else duplicated with `duplicate`, else delayed by a uniform
/// `delay` (so that later ones overtake it) with `reorder`.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub delay: (Duration, Duration),
    pub seed: u64,
}

impl Impairment {
    /// The network: 20 % loss, 10 % duplication, 20 % reordering
    /// by 5–50 ms.
    pub fn harsh(seed: u64) -> Self {
        Impairment {
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.2,
            delay: (Duration::from_millis(5), Duration::from_millis(50)),
            seed,
        }
    }

    /// The filter implementing it (one generator for both directions).
    pub fn filter(self) -> impl FnMut(Direction, usize, &[u8]) -> Verdict + Send {
        let mut state = self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut uniform = move || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        move |_, _, _| {
            let x = uniform();
            if x < self.loss {
                Verdict::Drop
            } else if x < self.loss + self.duplicate {
                Verdict::Duplicate
            } else if x < self.loss + self.duplicate + self.reorder {
                let (lo, hi) = self.delay;
                Verdict::Delay(lo + (hi - lo).mul_f64(uniform()))
            } else {
                Verdict::Forward
            }
        }
    }
}
