//! The client's session cache: process-wide, bounded, from "who the server
//! is" to the last resumable session with it, so that a client reconnecting
//! to a server it verified before gets an abbreviated handshake without
//! asking for it. The resumed handshake is verified like a full one (the
//! session keeps the server's chain).
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use openssl::ssl::SslSession;

/// Servers remembered at most; the oldest is forgotten first.
pub const CAPACITY: usize = 256;

/// A bounded map that forgets its oldest entry first.
struct Bounded<T> {
    entries: HashMap<String, T>,
    /// Keys, oldest first.
    order: VecDeque<String>,
    capacity: usize,
}

impl<T: Clone> Bounded<T> {
    fn new(capacity: usize) -> Self {
        Bounded {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: &str) -> Option<T> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: &str, value: T) {
        if self.entries.insert(key.to_string(), value).is_none() {
            self.order.push_back(key.to_string());
            if self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.entries.remove(&oldest);
                }
            }
        }
    }

    fn forget(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

static CACHE: Mutex<Option<Bounded<SslSession>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Bounded<SslSession>) -> R) -> R {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(|| Bounded::new(CAPACITY)))
}

/// The session kept for `key`, if any.
pub fn get(key: &str) -> Option<SslSession> {
    with(|c| c.get(key))
}

/// Keeps `session` for `key`, replacing the previous one.
pub fn put(key: &str, session: SslSession) {
    with(|c| c.put(key, session))
}

/// Forgets the session for `key` (e.g. after the server rejected it).
pub fn forget(key: &str) {
    with(|c| c.forget(key))
}

/// The cache key of a client: the server identity it verifies against and
/// the address it talks to (a connected GSocket's remote address), so a
/// session is only offered to the same server name at the same address.
/// `None` (no caching) when neither is known.
pub fn key(identity: Option<&gio::SocketConnectable>, base: &gio::DatagramBased) -> Option<String> {
    use gio::prelude::*;
    let name = identity
        .and_then(crate::trust::Identity::from_connectable)
        .map(|id| format!("{id:?}"));
    let address = base
        .downcast_ref::<gio::Socket>()
        .and_then(|s| s.remote_address().ok())
        .and_then(|a| a.downcast::<gio::InetSocketAddress>().ok())
        .map(|a| format!("{}:{}", a.address(), a.port()));
    (name.is_some() || address.is_some()).then(|| {
        format!(
            "{}|{}",
            name.unwrap_or_default(),
            address.unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first_and_replaced() {
        let mut c = Bounded::new(3);
        for i in 0..5 {
            c.put(&format!("k{i}"), i);
        }
        assert_eq!(
            (c.get("k0"), c.get("k1")),
            (None, None),
            "the oldest went first"
        );
        assert_eq!((c.get("k2"), c.get("k4")), (Some(2), Some(4)));
        c.put("k2", 20);
        assert_eq!(c.get("k2"), Some(20), "replaced in place");
        assert_eq!(c.order.len(), 3);
        c.forget("k3");
        assert_eq!(c.get("k3"), None);
        assert_eq!((c.entries.len(), c.order.len()), (2, 2));
    }
}
