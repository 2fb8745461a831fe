//! The selection walk: which members a new flow may go to, best first.

use std::net::IpAddr;

use super::counts::ConnCounts;
use super::cursor::PoolCursor;
use super::hash::{hash_ip, probe, SEED_CLIENT};
use super::member::{MemberId, MemberStates};
use super::pool::{Method, Pool, MAX_MEMBERS};

/// Probes of the client's own hash sequence before the linear walk of the table.
const MAGLEV_PROBES: u32 = 16;

/// A set of member indices, on the stack, so a selection walk never allocates.
struct Offered([u64; MAX_MEMBERS / 64]);

impl Offered {
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
}

/// Where the walk is.
enum Stage {
    /// The method's first choice is still to be made.
    First,
    /// Walking on around the member list from `pos`, `left` steps to go.
    Ring { pos: usize, left: usize },
    /// Least connections: each step offers the least loaded member not yet offered.
    Least,
    /// Consistent hash: the `k`-th probe of the client's hash sequence comes next.
    Probe { k: u32 },
    /// Consistent hash after the probes: the table slots from `slot` on, `left` to go.
    Table { slot: usize, left: usize },
    /// Nothing left to offer.
    Done,
}

/// The members a new flow may go to, best first (see [`Pool::candidates`]).
///
/// Only members that are eligible when offered are yielded: available (admin
/// `enabled`, monitor `up`/`unchecked`, below the connection limit) and in an active
/// priority group. The first item is the method's choice:
///
/// - round robin: the next eligible member after the cursor; the walk goes on around
///   the list;
/// - ratio: the smooth weighted round-robin choice; the walk goes on around the list;
/// - (weighted) least connections: the eligible member with the fewest connections
///   (per unit of ratio), ties broken round-robin from the cursor; each further item is
///   the least loaded member not yet offered;
/// - consistent hash: the member in the client's slot of the Maglev table (its home).
///   If the home member is not eligible (down, disabled, forced offline, at its limit,
///   or in an inactive priority group), the walk **falls back along the client's own
///   preference list** instead of rebuilding the table: the slots of 15 further hashes
///   of the client address, then the table slots after the last one, in order; each
///   step offers the first eligible member not yet offered. The table itself is only
///   rebuilt when membership changes (a new [`Pool`]). So a member that goes down or is
///   disabled is skipped from the very next selection on every worker; only its own
///   clients move, spread over the others in proportion to their table shares (each
///   probe lands on a uniformly random slot); no other client moves; and when it comes
///   back every client returns to exactly its original member. Rebuilding the table
///   for the available set instead would also move a few clients between members that
///   stayed up (measured in `tests/lb_maglev.rs`: 14.42 % of clients moved when 1 of 7
///   members left, against 14.29 % with the fallback), and would cost a table build
///   on the control thread and a snapshot swap for every monitor transition.
pub struct Candidates<'a> {
    pool: &'a Pool,
    cursor: &'a mut PoolCursor,
    states: &'a MemberStates,
    counts: &'a ConnCounts,
    client_hash: u64,
    floor: u32,
    /// Eligible members not yet offered (as counted at the start).
    remaining: usize,
    offered: Offered,
    stage: Stage,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(
        pool: &'a Pool,
        cursor: &'a mut PoolCursor,
        client: IpAddr,
        states: &'a MemberStates,
        counts: &'a ConnCounts,
    ) -> Self {
        let n = pool.members().len();
        cursor.fit(n);
        debug_assert!(
            states.len() == n && counts.len() == n,
            "live state of another pool"
        );
        // Live state of another pool (a caller bug) offers nothing rather than panic.
        let same_pool = states.len() == n && counts.len() == n;
        let (floor, remaining, stage) = match same_pool
            .then(|| pool.eligibility(states, counts))
            .flatten()
        {
            Some((floor, count)) => (floor, count, Stage::First),
            None => (0, 0, Stage::Done),
        };
        let client_hash = if pool.method() == Method::ConsistentHash {
            hash_ip(SEED_CLIENT, client)
        } else {
            0
        };
        Self {
            pool,
            cursor,
            states,
            counts,
            client_hash,
            floor,
            remaining,
            offered: Offered([0; MAX_MEMBERS / 64]),
            stage,
        }
    }

    fn eligible(&self, i: usize) -> bool {
        !self.offered.contains(i)
            && self
                .pool
                .eligible(MemberId(i as u16), self.floor, self.states, self.counts)
    }

    /// Records `i` as offered and moves the round-robin cursor past it.
    fn offer(&mut self, i: usize) -> MemberId {
        self.offered.insert(i);
        self.remaining = self.remaining.saturating_sub(1);
        self.cursor.next = (i + 1) % self.pool.members().len();
        MemberId(i as u16)
    }

    /// Walks the member ring from `pos` for `left` steps to the next eligible member.
    fn ring(&mut self, mut pos: usize, mut left: usize) -> Option<MemberId> {
        let n = self.pool.members().len();
        while left > 0 {
            let i = pos;
            pos = (pos + 1) % n;
            left -= 1;
            if self.eligible(i) {
                self.stage = Stage::Ring { pos, left };
                return Some(self.offer(i));
            }
        }
        self.stage = Stage::Done;
        None
    }

    /// Smooth weighted round robin (nginx): every eligible member gains its ratio, the
    /// one with the highest current weight wins and loses the total.
    fn smooth_weighted(&mut self) -> Option<MemberId> {
        let n = self.pool.members().len();
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for i in 0..n {
            if !self.eligible(i) {
                continue;
            }
            let w = i64::from(self.pool.members()[i].ratio);
            self.cursor.current[i] += w;
            total += w;
            if best.is_none_or(|b| self.cursor.current[i] > self.cursor.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.cursor.current[b] -= total;
        self.stage = Stage::Ring {
            pos: (b + 1) % n,
            left: n - 1,
        };
        Some(self.offer(b))
    }

    /// The least loaded eligible member not yet offered; ties go to the first one at
    /// or after the cursor.
    fn least(&mut self, weighted: bool) -> Option<MemberId> {
        let n = self.pool.members().len();
        let start = self.cursor.next;
        let mut best: Option<(usize, u64, u64)> = None;
        for step in 0..n {
            let i = (start + step) % n;
            if !self.eligible(i) {
                continue;
            }
            let conns = u64::from(self.counts.current(MemberId(i as u16)));
            let w = if weighted {
                u64::from(self.pool.members()[i].ratio)
            } else {
                1
            };
            // conns / w < best_conns / best_w, without division.
            if best.is_none_or(|(_, bc, bw)| conns * bw < bc * w) {
                best = Some((i, conns, w));
            }
        }
        self.stage = Stage::Least;
        match best {
            Some((i, _, _)) => Some(self.offer(i)),
            None => {
                self.stage = Stage::Done;
                None
            }
        }
    }

    fn maglev_probe(&mut self, mut k: u32) -> Option<MemberId> {
        let Some(table) = self.pool.maglev().filter(|t| t.len() > 0) else {
            self.stage = Stage::Done;
            return None;
        };
        let mut slot = table.slot(self.client_hash);
        while k < MAGLEV_PROBES {
            slot = table.slot(probe(self.client_hash, k));
            k += 1;
            let i = table.at(slot);
            if self.eligible(i) {
                self.stage = Stage::Probe { k };
                return Some(self.offer(i));
            }
        }
        let len = table.len();
        self.maglev_table((slot + 1) % len, len)
    }

    fn maglev_table(&mut self, mut slot: usize, mut left: usize) -> Option<MemberId> {
        let Some(table) = self.pool.maglev() else {
            self.stage = Stage::Done;
            return None;
        };
        let len = table.len();
        while left > 0 {
            let i = table.at(slot);
            slot = (slot + 1) % len;
            left -= 1;
            if self.eligible(i) {
                self.stage = Stage::Table { slot, left };
                return Some(self.offer(i));
            }
        }
        self.stage = Stage::Done;
        None
    }
}

impl Iterator for Candidates<'_> {
    type Item = MemberId;

    fn next(&mut self) -> Option<MemberId> {
        if self.remaining == 0 {
            self.stage = Stage::Done;
        }
        match self.stage {
            Stage::Done => None,
            Stage::First => match self.pool.method() {
                Method::RoundRobin => {
                    let n = self.pool.members().len();
                    self.ring(self.cursor.next, n)
                }
                Method::Ratio => self.smooth_weighted(),
                Method::LeastConnections => self.least(false),
                Method::WeightedLeastConnections => self.least(true),
                Method::ConsistentHash => self.maglev_probe(0),
            },
            Stage::Ring { pos, left } => self.ring(pos, left),
            Stage::Least => self.least(self.pool.method() == Method::WeightedLeastConnections),
            Stage::Probe { k } => self.maglev_probe(k),
            Stage::Table { slot, left } => self.maglev_table(slot, left),
        }
    }
}
