//! Remembered verdicts: a trust store asked about the same chain again (every
//! handshake with the same server, every resumption) answers from memory
//! instead of checking every signature again.
//!
//! A verdict is reused only when nothing it depended on can have changed:
//! the key is a SHA-256 over the purpose, the security level and the exact
//! DER of every certificate given (leaf and untrusted ones, in order); the
//! store's anchors and CRLs are fixed for its lifetime; and the clock must
//! still be inside the window where every certificate of the chain OpenSSL
//! built (anchor included) and every CRL of the store was valid when the
//! verdict was made, so expiry is seen at the same second as without the
//! cache. What is left — files appearing in the system store's hashed
//! directory, or OpenSSL preferring another candidate issuer once that one
//! becomes valid — is bounded by [`MAX_AGE`].
//!
//! With each verdict go the answers to "is the leaf a certificate for this
//! identity?" for the last few identities asked: they depend on the leaf
//! alone, and a resumed handshake would otherwise parse the leaf's names
//! again (about 14,000 instructions).
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::Mutex;

use gio::TlsCertificateFlags as Flags;

use super::identity::Identity;

/// How long a verdict is reused at most, in seconds.
pub const MAX_AGE: i64 = 60;

/// Verdicts kept per store (the most recently used ones).
const CAPACITY: usize = 32;

/// The identity of one verification: see the module documentation.
pub type Key = [u8; 32];

/// Seconds since the epoch from which, and until which (excluded), a
/// verdict may be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub until: i64,
}

impl Window {
    /// Any time at all (narrowed with [`Window::narrow`]).
    pub const ALWAYS: Window = Window {
        from: i64::MIN,
        until: i64::MAX,
    };

    /// The part of `self` that lies in `[from, until)`.
    pub fn narrow(self, from: i64, until: i64) -> Window {
        Window {
            from: self.from.max(from),
            until: self.until.min(until),
        }
    }

    fn contains(&self, now: i64) -> bool {
        self.from <= now && now < self.until
    }
}

struct Entry {
    key: Key,
    flags: Flags,
    window: Window,
    /// Whether the leaf is a certificate for an identity, for the last few
    /// asked (a resumed handshake asks again with the same chain).
    identities: VecDeque<(Identity, bool)>,
}

/// Identity answers kept per verdict.
const IDENTITIES: usize = 4;

/// A small most-recently-used list of verdicts, safe to share between
/// threads.
#[derive(Default)]
pub struct Verdicts {
    entries: Mutex<VecDeque<Entry>>,
}

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("Verdicts").field("entries", &n).finish()
    }
}

impl Verdicts {
    /// The verdict remembered for `key`, if it may be reused at `now`.
    pub fn get(&self, key: &Key, now: i64) -> Option<Flags> {
        let mut entries = self.entries.lock().ok()?;
        let i = entries.iter().position(|e| &e.key == key)?;
        if !entries[i].window.contains(now) {
            entries.remove(i);
            return None;
        }
        let entry = entries.remove(i)?;
        let flags = entry.flags;
        entries.push_front(entry);
        Some(flags)
    }

    /// Remembers `flags` for `key`, made at `now`, valid in `window` (and
    /// for [`MAX_AGE`] at most). Nothing is kept when `now` is outside the
    /// window: such a verdict already depends on the time.
    pub fn put(&self, key: Key, flags: Flags, window: Window, now: i64) {
        let window = window.narrow(i64::MIN, now.saturating_add(MAX_AGE));
        if !window.contains(now) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.retain(|e| e.key != key);
        entries.push_front(Entry {
            key,
            flags,
            window,
            identities: VecDeque::new(),
        });
        entries.truncate(CAPACITY);
    }

    /// Whether the leaf of the chain `key` names is a certificate for
    /// `identity`, if remembered (with its verdict: the answer depends on
    /// the leaf alone, which the key covers).
    pub fn identity(&self, key: &Key, identity: &Identity) -> Option<bool> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.iter().find(|e| &e.key == key)?;
        entry
            .identities
            .iter()
            .find(|(id, _)| id == identity)
            .map(|&(_, matched)| matched)
    }

    /// Remembers [`Verdicts::identity`]'s answer, while the verdict for
    /// `key` is kept.
    pub fn note_identity(&self, key: &Key, identity: &Identity, matched: bool) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if let Some(entry) = entries.iter_mut().find(|e| &e.key == key) {
            entry.identities.retain(|(id, _)| id != identity);
            entry.identities.push_front((identity.clone(), matched));
            entry.identities.truncate(IDENTITIES);
        }
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn reused_inside_the_window_only() {
        let v = Verdicts::default();
        let w = Window::ALWAYS.narrow(NOW - 100, NOW + 10);
        v.put(key(1), Flags::UNKNOWN_CA, w, NOW);
        assert_eq!(v.get(&key(1), NOW), Some(Flags::UNKNOWN_CA));
        assert_eq!(v.get(&key(1), NOW + 9), Some(Flags::UNKNOWN_CA));
        assert_eq!(v.get(&key(2), NOW), None, "another chain");
        // At the earliest notAfter the verdict is made again (and dropped).
        assert_eq!(v.get(&key(1), NOW + 10), None);
        assert_eq!(v.get(&key(1), NOW), None, "dropped once stale");
        // Before the latest notBefore: not reused either.
        v.put(key(3), Flags::empty(), w, NOW);
        assert_eq!(v.get(&key(3), NOW - 101), None);
    }

    #[test]
    fn identity_answers_go_with_their_verdict() {
        let v = Verdicts::default();
        let host = Identity::parse("a.example").unwrap();
        let ip = Identity::parse("192.0.2.1").unwrap();
        v.note_identity(&key(1), &host, true);
        assert_eq!(v.identity(&key(1), &host), None, "no verdict, no answer");
        v.put(key(1), Flags::empty(), Window::ALWAYS, NOW);
        v.note_identity(&key(1), &host, true);
        v.note_identity(&key(1), &ip, false);
        assert_eq!(v.identity(&key(1), &host), Some(true));
        assert_eq!(v.identity(&key(1), &ip), Some(false));
        assert_eq!(v.identity(&key(2), &host), None, "another chain");
        for n in 0..IDENTITIES as u8 {
            let other = Identity::parse(&format!("h{n}.example")).unwrap();
            v.note_identity(&key(1), &other, false);
        }
        assert_eq!(v.identity(&key(1), &host), None, "the oldest answer went");
        v.put(key(1), Flags::UNKNOWN_CA, Window::ALWAYS, NOW);
        assert_eq!(
            v.identity(&key(1), &ip),
            None,
            "a new verdict starts afresh"
        );
    }

    #[test]
    fn never_older_than_max_age() {
        let v = Verdicts::default();
        v.put(key(1), Flags::empty(), Window::ALWAYS, NOW);
        assert_eq!(v.get(&key(1), NOW + MAX_AGE - 1), Some(Flags::empty()));
        assert_eq!(v.get(&key(1), NOW + MAX_AGE), None);
    }

    #[test]
    fn a_verdict_made_outside_its_window_is_not_kept() {
        let v = Verdicts::default();
        // Made after the chain expired (EXPIRED): not remembered.
        v.put(
            key(1),
            Flags::EXPIRED,
            Window::ALWAYS.narrow(NOW - 100, NOW - 1),
            NOW,
        );
        assert_eq!(v.get(&key(1), NOW), None);
        // Made before a certificate became valid (NOT_ACTIVATED): neither.
        v.put(
            key(2),
            Flags::NOT_ACTIVATED,
            Window::ALWAYS.narrow(NOW + 5, NOW + 100),
            NOW,
        );
        assert_eq!(v.get(&key(2), NOW), None);
        assert_eq!(v.get(&key(2), NOW + 6), None);
    }

    #[test]
    fn bounded_most_recently_used() {
        let v = Verdicts::default();
        for n in 0..CAPACITY as u8 {
            v.put(key(n), Flags::empty(), Window::ALWAYS, NOW);
        }
        // Touch the oldest, then add one more: the second oldest goes.
        assert!(v.get(&key(0), NOW).is_some());
        v.put(key(200), Flags::empty(), Window::ALWAYS, NOW);
        assert!(v.get(&key(0), NOW).is_some());
        assert!(v.get(&key(1), NOW).is_none());
        assert!(v.get(&key(200), NOW).is_some());
    }
}
