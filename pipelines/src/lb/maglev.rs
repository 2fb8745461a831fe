//! The Maglev lookup table (Eichelberger et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016, section 3.4), with weights.
//!
//! Every member has a permutation of the table's slots, derived from its address alone
//! (`offset` and `skip` from two hashes; the table size is prime, so every skip visits
//! every slot). Members take turns claiming the next free slot of their permutation
//! until the table is full; a member of ratio `w` takes `w / max_ratio` turns per round,
//! so its share of the table is proportional to its ratio. Turns go in the order of the
//! members' addresses, not of the configuration, so the same member set always gives
//! the same table.
//!
//! Because each permutation depends only on the member's own address, removing a member
//! mostly hands its slots to others and leaves the rest in place, and adding it back
//! gives the original table again. The table is built at configuration time only; how
//! members that go down are skipped without a rebuild is described in
//! [`Candidates`](super::Candidates).

use std::net::SocketAddr;

use super::hash::{hash_socket, SEED_OFFSET, SEED_SKIP};

/// Default table size: a prime, at least 100 times the members of any sensible pool
/// (the paper's advice for a balance within about 1 %).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// A filled Maglev table: slot → member index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MaglevTable {
    entries: Box<[u16]>,
}

/// Whether `n` is prime (trial division; only used at configuration time).
pub(crate) fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n.checked_rem(d) == Some(0) {
            return false;
        }
        d += 1;
    }
    true
}

impl MaglevTable {
    /// Builds the table of prime `size` for members given as (address, ratio), indexed
    /// by their position in `members`. `size` must be a prime larger than the member
    /// count, and every ratio at least 1 (the pool checks both). An empty member list
    /// gives an empty table.
    pub(crate) fn build(members: &[(SocketAddr, u32)], size: u32) -> Self {
        let n = members.len();
        if n == 0 {
            return Self {
                entries: Box::new([]),
            };
        }
        debug_assert!(is_prime(size) && size as usize > n);
        let m = u64::from(size);
        // Turn order by address, so the table does not depend on configuration order.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| members[i].0);
        struct Perm {
            index: u16,
            next: u64,
            skip: u64,
            weight: u64,
            placed: u64,
        }
        let mut perms: Vec<Perm> = order
            .iter()
            .map(|&i| {
                let (addr, w) = members[i];
                Perm {
                    index: i as u16,
                    next: hash_socket(SEED_OFFSET, addr) % m,
                    skip: hash_socket(SEED_SKIP, addr) % (m - 1) + 1,
                    weight: u64::from(w.max(1)),
                    placed: 0,
                }
            })
            .collect();
        let max_w = perms.iter().map(|p| p.weight).max().unwrap_or(1);
        const EMPTY: u16 = u16::MAX;
        let mut entries = vec![EMPTY; size as usize];
        let mut filled = 0usize;
        let mut round = 1u64;
        'fill: loop {
            for p in &mut perms {
                // After `round` rounds a member has had `round * w / max_w` turns.
                if p.placed * max_w >= round * p.weight {
                    continue;
                }
                loop {
                    let slot = p.next as usize;
                    p.next = (p.next + p.skip) % m;
                    if entries[slot] == EMPTY {
                        entries[slot] = p.index;
                        break;
                    }
                }
                p.placed += 1;
                filled += 1;
                if filled == entries.len() {
                    break 'fill;
                }
            }
            round += 1;
        }
        Self {
            entries: entries.into_boxed_slice(),
        }
    }

    /// Number of slots (0 for an empty pool).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The member index in the slot that `hash` falls in. The table must not be empty.
    pub(crate) fn slot(&self, hash: u64) -> usize {
        (hash % self.entries.len() as u64) as usize
    }

    /// The member index in `slot`.
    pub(crate) fn at(&self, slot: usize) -> usize {
        usize::from(self.entries[slot])
    }

    /// Slots held by each member index, for statistics and tests.
    pub(crate) fn shares(&self, members: usize) -> Vec<usize> {
        let mut s = vec![0; members];
        for &e in self.entries.iter() {
            s[usize::from(e)] += 1;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<(SocketAddr, u32)> {
        (0..n)
            .map(|i| (SocketAddr::from(([198, 18, 2, 11 + i as u8], 80)), 1))
            .collect()
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537) && is_prime(251) && is_prime(2));
        assert!(!is_prime(65_536) && !is_prime(1) && !is_prime(0) && !is_prime(255));
    }

    #[test]
    fn table_is_full_balanced_and_order_independent() {
        let ms = members(7);
        let t = MaglevTable::build(&ms, 65_537);
        let shares = t.shares(7);
        assert_eq!(shares.iter().sum::<usize>(), 65_537);
        for s in &shares {
            // Unweighted Maglev: every member holds floor or ceil of M/N slots.
            assert!((9_362..=9_363).contains(s), "{shares:?}");
        }
        let mut rev = ms.clone();
        rev.reverse();
        let t2 = MaglevTable::build(&rev, 65_537);
        for slot in 0..t.len() {
            assert_eq!(ms[t.at(slot)].0, rev[t2.at(slot)].0);
        }
    }

    #[test]
    fn weights_give_proportional_shares() {
        let mut ms = members(3);
        ms[0].1 = 3;
        let t = MaglevTable::build(&ms, 65_537);
        let s = t.shares(3);
        let unit = 65_537.0 / 5.0;
        assert!((s[0] as f64 / (3.0 * unit) - 1.0).abs() < 0.01, "{s:?}");
        assert!((s[1] as f64 / unit - 1.0).abs() < 0.01, "{s:?}");
        assert!((s[2] as f64 / unit - 1.0).abs() < 0.01, "{s:?}");
    }
}
