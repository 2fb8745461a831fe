//! Load-balancing methods: round robin, ratio, least connections, weighted least
//! connections, and the candidate walk.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use rouge_pipelines::lb::{
    ConnCounts, Member, MemberId, MemberStates, Method, MonitorStatus, Pool, PoolConfig, PoolCursor,
};

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([198, 18, 2, host], 80))
}

fn client() -> IpAddr {
    "198.18.0.10".parse().unwrap()
}

struct Bed {
    pool: Pool,
    states: MemberStates,
    counts: ConnCounts,
    cursor: PoolCursor,
}

fn bed(method: Method, members: Vec<Member>) -> Bed {
    let pool = Pool::new(PoolConfig::new(method, members)).unwrap();
    let (states, counts, cursor) = (pool.member_states(), pool.conn_counts(), pool.cursor(0));
    Bed {
        pool,
        states,
        counts,
        cursor,
    }
}

impl Bed {
    /// Selects and ends the flow at once (so counts stay at zero).
    fn pick(&mut self) -> usize {
        let m = self
            .pool
            .select(&mut self.cursor, client(), &self.states, &self.counts)
            .expect("a member");
        assert!(self.counts.release(m));
        m.index()
    }

    /// Selects and keeps the flow open.
    fn open(&mut self) -> usize {
        self.pool
            .select(&mut self.cursor, client(), &self.states, &self.counts)
            .expect("a member")
            .index()
    }

    fn id(&self, i: usize) -> MemberId {
        self.pool.ids().nth(i).unwrap()
    }
}

fn plain(n: u8) -> Vec<Member> {
    (0..n).map(|i| Member::new(addr(11 + i))).collect()
}

#[test]
fn round_robin_cycles_evenly() {
    let mut b = bed(Method::RoundRobin, plain(4));
    let picks: Vec<usize> = (0..400).map(|_| b.pick()).collect();
    // Every window of 4 consecutive picks holds each member once.
    for w in picks.windows(4) {
        let set: HashSet<_> = w.iter().collect();
        assert_eq!(set.len(), 4, "{w:?}");
    }
    for m in 0..4 {
        assert_eq!(picks.iter().filter(|&&p| p == m).count(), 100);
    }
    // Total counts per member agree.
    for m in 0..4 {
        assert_eq!(b.counts.total(b.id(m)), 100);
    }
}

#[test]
fn round_robin_skips_a_down_member_and_stays_even() {
    let mut b = bed(Method::RoundRobin, plain(4));
    b.states.set_monitor(b.id(2), MonitorStatus::Down);
    let picks: Vec<usize> = (0..300).map(|_| b.pick()).collect();
    assert!(!picks.contains(&2));
    for w in picks.windows(3) {
        assert_eq!(w.iter().collect::<HashSet<_>>().len(), 3, "{w:?}");
    }
}

#[test]
fn cursors_with_different_seeds_start_apart() {
    let b = bed(Method::RoundRobin, plain(4));
    let mut firsts = HashSet::new();
    for worker in 0..4 {
        let mut c = b.pool.cursor(worker);
        firsts.insert(
            b.pool
                .select(&mut c, client(), &b.states, &b.counts)
                .unwrap(),
        );
    }
    assert_eq!(firsts.len(), 4);
}

fn ratio_members(ratios: &[u32]) -> Vec<Member> {
    ratios
        .iter()
        .enumerate()
        .map(|(i, &r)| Member::new(addr(11 + i as u8)).with_ratio(r))
        .collect()
}

#[test]
fn ratio_3_1_1_gives_exact_shares_smoothly() {
    let mut b = bed(Method::Ratio, ratio_members(&[3, 1, 1]));
    let picks: Vec<usize> = (0..500).map(|_| b.pick()).collect();
    let share = |m| picks.iter().filter(|&&p| p == m).count();
    assert_eq!((share(0), share(1), share(2)), (300, 100, 100));
    // Smooth: every window of 5 consecutive picks holds exactly 3, 1, 1.
    for w in picks.windows(5) {
        let c = |m| w.iter().filter(|&&p| p == m).count();
        assert_eq!((c(0), c(1), c(2)), (3, 1, 1), "{w:?}");
    }
    // And no member is picked more than twice in a row.
    let longest = picks
        .chunk_by(|a, b| a == b)
        .map(|run| run.len())
        .max()
        .unwrap();
    assert!(longest <= 2, "run of {longest}");
}

#[test]
fn ratio_without_a_down_member_keeps_the_others_ratio() {
    let mut b = bed(Method::Ratio, ratio_members(&[3, 1, 2]));
    b.states.set_monitor(b.id(0), MonitorStatus::Down);
    let picks: Vec<usize> = (0..300).map(|_| b.pick()).collect();
    let share = |m| picks.iter().filter(|&&p| p == m).count();
    assert_eq!((share(0), share(1), share(2)), (0, 100, 200));
}

#[test]
fn least_connections_picks_the_least_loaded() {
    let mut b = bed(Method::LeastConnections, plain(4));
    // Preload: 5, 2, 7, 3 open flows.
    for (m, n) in [(0, 5), (1, 2), (2, 7), (3, 3)] {
        for _ in 0..n {
            assert!(b.counts.try_acquire(b.id(m)));
        }
    }
    assert_eq!(b.open(), 1);
    // Then every pick goes to a member holding the fewest flows at that moment, with
    // pseudo-random flow ends in between.
    let mut rng = 0x1234_5678u32;
    for _ in 0..2_000 {
        let min = (0..4).map(|m| b.counts.current(b.id(m))).min().unwrap();
        let m = b.open();
        assert_eq!(b.counts.current(b.id(m)), min + 1, "picked a busier member");
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let end = b.id(rng as usize % 4);
        if rng % 3 != 1 && b.counts.current(end) > 0 {
            b.counts.release(end);
        }
    }
}

#[test]
fn least_connections_ties_rotate() {
    let mut b = bed(Method::LeastConnections, plain(3));
    let picks: Vec<usize> = (0..30).map(|_| b.pick()).collect();
    let share = |m| picks.iter().filter(|&&p| p == m).count();
    assert_eq!((share(0), share(1), share(2)), (10, 10, 10));
}

#[test]
fn weighted_least_connections_respects_ratio() {
    let mut b = bed(Method::WeightedLeastConnections, ratio_members(&[3, 1, 1]));
    for _ in 0..50 {
        let before: Vec<f64> = (0..3)
            .map(|m| f64::from(b.counts.current(b.id(m))) / f64::from([3, 1, 1][m]))
            .collect();
        let m = b.open();
        let min = before.iter().cloned().fold(f64::INFINITY, f64::min);
        assert_eq!(before[m], min, "picked {m} with load {before:?}");
    }
    let c: Vec<u32> = (0..3).map(|m| b.counts.current(b.id(m))).collect();
    assert_eq!(c, vec![30, 10, 10]);
    // Plain least connections would have levelled them instead.
    let mut p = bed(Method::LeastConnections, ratio_members(&[3, 1, 1]));
    for _ in 0..51 {
        p.open();
    }
    let c: Vec<u32> = (0..3).map(|m| p.counts.current(p.id(m))).collect();
    assert_eq!(c, vec![17, 17, 17]);
}

#[test]
fn candidates_walk_past_the_first_choice() {
    for method in [
        Method::RoundRobin,
        Method::Ratio,
        Method::LeastConnections,
        Method::WeightedLeastConnections,
        Method::ConsistentHash,
    ] {
        let mut b = bed(method, plain(5));
        b.states.set_monitor(b.id(3), MonitorStatus::Down);
        let mut c2 = b.cursor.clone();
        let first = b
            .pool
            .select(&mut c2, client(), &b.states, &b.counts)
            .unwrap();
        b.counts.release(first);
        let walk: Vec<MemberId> = b
            .pool
            .candidates(&mut b.cursor, client(), &b.states, &b.counts)
            .collect();
        assert_eq!(walk[0], first, "{method}: first candidate is the choice");
        let set: HashSet<_> = walk.iter().map(|m| m.index()).collect();
        assert_eq!(walk.len(), 4, "{method}: {walk:?}");
        assert_eq!(set, HashSet::from([0, 1, 2, 4]), "{method}");
        // No slot is taken by walking.
        assert!(b.pool.ids().all(|m| b.counts.current(m) == 0));
    }
}

#[test]
fn least_connections_walk_goes_by_load() {
    let mut b = bed(Method::LeastConnections, plain(4));
    for (m, n) in [(0, 4), (1, 1), (2, 3), (3, 2)] {
        for _ in 0..n {
            b.counts.try_acquire(b.id(m));
        }
    }
    let walk: Vec<usize> = b
        .pool
        .candidates(&mut b.cursor, client(), &b.states, &b.counts)
        .map(|m| m.index())
        .collect();
    assert_eq!(walk, vec![1, 3, 2, 0]);
}

#[test]
fn empty_pool_and_all_down_select_nothing() {
    let mut e = bed(Method::RoundRobin, vec![]);
    assert_eq!(
        e.pool.select(&mut e.cursor, client(), &e.states, &e.counts),
        None
    );
    let mut h = bed(Method::ConsistentHash, vec![]);
    assert_eq!(
        h.pool.select(&mut h.cursor, client(), &h.states, &h.counts),
        None
    );
    let mut b = bed(Method::WeightedLeastConnections, plain(3));
    for m in 0..3 {
        b.states.set_monitor(b.id(m), MonitorStatus::Down);
    }
    assert_eq!(
        b.pool.select(&mut b.cursor, client(), &b.states, &b.counts),
        None
    );
    assert_eq!(b.pool.active_priority_floor(&b.states, &b.counts), None);
}
