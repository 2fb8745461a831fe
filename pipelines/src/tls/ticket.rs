//! Session-ticket keys shared by every worker, and the wall clock TLS reads.
//!
//! [`TicketKeys`] seals the server's resumption state (TLS 1.3 and TLS 1.2 tickets) with
//! AES-256-GCM under a key that rotates every `rotation_secs` of the [`WallClock`]; the
//! previous key still opens tickets, so a ticket lives between one and two rotation
//! periods. One `Arc<TicketKeys>` is given to every worker's
//! [`TlsServerConfig`](super::TlsServerConfig), so a client resuming on another worker
//! succeeds. Sealing takes no lock: the key set is read through `arc-swap`, nonces come
//! from an atomic counter; only a rotation (once per period) draws random bytes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::UnixTime;
use rustls::server::ProducesTickets;
use rustls::time_provider::TimeProvider;

/// The wall clock of the TLS engine, in seconds since the UNIX epoch, set by the caller
/// (the worker loop or the control thread, once a second is plenty; tests set any time).
/// Certificates are checked and tickets aged against it; nothing in the engine reads
/// the system clock. Clones share the same value.
#[derive(Clone, Default)]
pub struct WallClock(Arc<AtomicU64>);

impl WallClock {
    /// A clock at `unix_secs`.
    pub fn at(unix_secs: u64) -> WallClock {
        let c = WallClock::default();
        c.set(unix_secs);
        c
    }

    /// Sets the time.
    pub fn set(&self, unix_secs: u64) {
        self.0.store(unix_secs, Ordering::Relaxed);
    }

    /// The time, in seconds since the UNIX epoch.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WallClock({})", self.now())
    }
}

impl TimeProvider for WallClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(self.now())))
    }
}

/// Length of a key's name at the start of each ticket.
const NAME_LEN: usize = 16;
/// Bytes a ticket adds to the sealed state: name, nonce, tag.
const OVERHEAD: usize = NAME_LEN + NONCE_LEN + 16;

struct TicketKey {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
    /// Nonce counter (with the key's random name, nonces never repeat under one key).
    nonces: AtomicU64,
}

impl TicketKey {
    fn generate(rng: &SystemRandom) -> Option<TicketKey> {
        let mut name = [0u8; NAME_LEN];
        let mut secret = [0u8; 32];
        rng.fill(&mut name).ok()?;
        rng.fill(&mut secret).ok()?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?);
        Some(TicketKey {
            name,
            key,
            nonces: AtomicU64::new(0),
        })
    }
}

struct KeySet {
    current: Arc<TicketKey>,
    /// The key before `current`: opens tickets, never seals.
    previous: Option<Arc<TicketKey>>,
    /// When `current` is replaced (UNIX seconds).
    rotate_at: u64,
}

/// Ticket keys shared by all workers, rotated on the wall clock (see the module doc).
pub struct TicketKeys {
    keys: ArcSwap<KeySet>,
    clock: WallClock,
    rotation_secs: u64,
    rng: SystemRandom,
    rotations: AtomicU64,
    issued: AtomicU64,
    accepted: AtomicU64,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        f.debug_struct("TicketKeys")
            .field("rotation_secs", &self.rotation_secs)
            .field("rotations", &self.rotations.load(Ordering::Relaxed))
            .finish()
    }
}

impl TicketKeys {
    /// Fresh keys rotating every `rotation_secs` (at least 1) of `clock`; `None` when
    /// the system's random source fails.
    pub fn new(clock: WallClock, rotation_secs: u64) -> Option<Arc<TicketKeys>> {
        let rng = SystemRandom::new();
        let rotation_secs = rotation_secs.max(1);
        let set = KeySet {
            current: Arc::new(TicketKey::generate(&rng)?),
            previous: None,
            rotate_at: clock.now().saturating_add(rotation_secs),
        };
        Some(Arc::new(TicketKeys {
            keys: ArcSwap::from_pointee(set),
            clock,
            rotation_secs,
            rng,
            rotations: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        }))
    }

    /// Replaces the current key now (the old one still opens tickets for one period).
    /// Returns false when the random source failed (the keys stay as they were).
    pub fn rotate(&self) -> bool {
        self.replace(true)
    }

    /// Rotations done so far.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// Tickets sealed so far (all workers).
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// Tickets opened so far (all workers): resumptions the keys allowed.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Replaces the current key when `force` or when its period is over. Two workers
    /// finding it due at once rotate once: the second sees the new deadline.
    fn replace(&self, force: bool) -> bool {
        let now = self.clock.now();
        if !force && now < self.keys.load().rotate_at {
            return true;
        }
        let mut fresh: Option<Arc<TicketKey>> = None;
        let mut rotated = false;
        self.keys.rcu(|old| {
            rotated = false;
            if !force && now < old.rotate_at {
                return Arc::clone(old);
            }
            if fresh.is_none() {
                fresh = TicketKey::generate(&self.rng).map(Arc::new);
            }
            match &fresh {
                Some(k) => {
                    rotated = true;
                    Arc::new(KeySet {
                        current: Arc::clone(k),
                        previous: Some(Arc::clone(&old.current)),
                        rotate_at: now.saturating_add(self.rotation_secs),
                    })
                }
                None => Arc::clone(old),
            }
        });
        if rotated {
            self.rotations.fetch_add(1, Ordering::Relaxed);
        }
        fresh.is_some()
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.rotation_secs.min(u64::from(u32::MAX)) as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.replace(false);
        let set = self.keys.load();
        let k = &set.current;
        let n = k.nonces.fetch_add(1, Ordering::Relaxed);
        if n == u64::MAX {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce[4..].copy_from_slice(&n.to_be_bytes());
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(&k.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = k
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&k.name),
                &mut out[NAME_LEN + NONCE_LEN..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        self.issued.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < OVERHEAD {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let set = self.keys.load();
        let k = [Some(&set.current), set.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = k.key.open_in_place(nonce, Aad::from(name), &mut buf).ok()?;
        let len = plain.len();
        buf.truncate(len);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Some(buf)
    }
}
