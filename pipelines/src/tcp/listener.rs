//! Passive opens: listeners with a SYN queue and an accept queue (the backlog), and the
//! compact TIME-WAIT table.

use crate::hashing::{self, FastMap};
use std::collections::VecDeque;
use std::net::SocketAddr;

use super::state::ConnKey;
use super::ConnHandle;
use crate::time::Instant;

/// A listening socket.
#[derive(Debug)]
pub struct Listener {
    /// Address and port listened on (an unspecified address matches any).
    pub local: SocketAddr,
    /// Profile of the connections it creates.
    pub profile: u16,
    /// Most connections waiting in the accept queue.
    pub backlog: usize,
    /// Most half-open connections (SYN-RECEIVED) held; beyond it, SYN cookies.
    pub syn_backlog: usize,
    /// Half-open connections held now.
    pub syn_queue: usize,
    /// Established connections waiting for `accept`.
    pub accept_queue: VecDeque<ConnHandle>,
    /// Cookies sent by this listener (an ACK to it may carry one).
    pub cookies_sent: u64,
    /// The application its events and connections go to.
    pub owner: crate::tcp::Owner,
}

impl Listener {
    /// A listener with the given queue bounds.
    pub fn new(local: SocketAddr, profile: u16, backlog: usize, syn_backlog: usize) -> Self {
        Listener {
            local,
            profile,
            backlog,
            syn_backlog,
            syn_queue: 0,
            accept_queue: VecDeque::with_capacity(backlog),
            cookies_sent: 0,
            owner: crate::tcp::Owner::NONE,
        }
    }

    /// True when no more connections fit in the accept queue.
    pub fn accept_full(&self) -> bool {
        self.accept_queue.len() >= self.backlog
    }
}

/// What is left of a connection in TIME-WAIT: enough to acknowledge a retransmitted FIN
/// and to tell old duplicates from a new connection (RFC 6191).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWaitEntry {
    /// Our next sequence number (after our FIN).
    pub snd_nxt: u32,
    /// The peer's next sequence number (after its FIN).
    pub rcv_nxt: u32,
    /// Last timestamp seen from the peer, when timestamps were on.
    pub ts_recent: Option<u32>,
    /// Our timestamp offset.
    pub ts_offset: u32,
    /// The connection's profile (for the TIME-WAIT duration on restart).
    pub profile: u16,
    /// When the entry goes.
    pub expires: Instant,
}

/// TIME-WAIT entries, bounded: when full, the oldest is recycled.
#[derive(Debug)]
pub struct TimeWaitTable {
    map: FastMap<ConnKey, TimeWaitEntry>,
    fifo: VecDeque<(Instant, ConnKey)>,
    max: usize,
}

impl TimeWaitTable {
    /// A table of at most `max` entries.
    pub fn new(max: usize) -> Self {
        TimeWaitTable {
            map: hashing::with_capacity(max.min(1 << 16)),
            fifo: VecDeque::with_capacity(max.min(1 << 16)),
            max: max.max(1),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entry of `key`.
    pub fn get(&self, key: &ConnKey) -> Option<&TimeWaitEntry> {
        self.map.get(key)
    }

    /// Adds an entry; returns true if an older one had to be recycled to make room.
    pub fn insert(&mut self, key: ConnKey, e: TimeWaitEntry) -> bool {
        let mut recycled = false;
        while self.map.len() >= self.max && !self.map.contains_key(&key) {
            match self.fifo.pop_front() {
                Some((_, k)) => {
                    if self.map.remove(&k).is_some() {
                        recycled = true;
                    }
                }
                None => break,
            }
        }
        if self.map.insert(key, e).is_none() {
            self.fifo.push_back((e.expires, key));
        }
        recycled
    }

    /// Restarts the 2 MSL wait of `key`. The queue keeps one slot per entry: the later
    /// deadline is found when the old slot comes up, and the entry queued again.
    pub fn restart(&mut self, key: &ConnKey, expires: Instant) {
        if let Some(e) = self.map.get_mut(key) {
            e.expires = expires;
        }
    }

    /// Removes `key` (a new connection reuses the tuple).
    pub fn remove(&mut self, key: &ConnKey) -> Option<TimeWaitEntry> {
        self.map.remove(key)
    }

    /// Drops every entry whose time is up.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, k)) = self.fifo.front() {
            if at > now {
                break;
            }
            self.fifo.pop_front();
            match self.map.get(&k).map(|x| x.expires) {
                Some(e) if e <= now => {
                    self.map.remove(&k);
                }
                Some(e) if e > at => self.fifo.push_back((e, k)),
                _ => {}
            }
        }
    }

    /// When the next entry may expire.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.fifo.front().map(|f| f.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ConnKey {
        ConnKey {
            local: "198.18.1.1:80".parse().unwrap(),
            remote: SocketAddr::new("198.18.1.2".parse().unwrap(), port),
        }
    }

    fn entry(at: u64) -> TimeWaitEntry {
        TimeWaitEntry {
            snd_nxt: 1,
            rcv_nxt: 2,
            ts_recent: None,
            ts_offset: 0,
            profile: 0,
            expires: Instant::from_secs(at),
        }
    }

    #[test]
    fn bounded_recycles_oldest_and_expires() {
        let mut t = TimeWaitTable::new(2);
        assert!(!t.insert(key(1), entry(10)));
        assert!(!t.insert(key(2), entry(11)));
        t.restart(&key(1), Instant::from_secs(20));
        t.expire(Instant::from_secs(10));
        assert!(t.get(&key(1)).is_some(), "restarted: lives to 20 s");
        // Full: the oldest in the queue (key 2) is recycled.
        assert!(t.insert(key(3), entry(12)));
        assert!(t.get(&key(2)).is_none());
        t.expire(Instant::from_secs(15));
        // Entries never go early (a restarted one ahead may hold later ones back a bit).
        assert!(t.get(&key(1)).is_some());
        t.expire(Instant::from_secs(20));
        assert!(t.is_empty());
        assert!(t.fifo.is_empty(), "one queue slot per entry");
    }
}
