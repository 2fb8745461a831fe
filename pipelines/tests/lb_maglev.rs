//! Consistent hash (Maglev): balance, disruption on member changes, determinism.
//!
//! Run with `--nocapture` to see the measured figures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rouge_pipelines::lb::{
    AdminState, ConnCounts, Member, MemberStates, Method, MonitorStatus, Pool, PoolConfig,
    PoolCursor,
};

const CLIENTS: usize = 100_000;

/// 90,000 addresses from 198.18.0.0/15 and 10,000 IPv6 addresses.
fn clients() -> Vec<IpAddr> {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let v4 = (0..90_000u32).map(|i| IpAddr::V4(Ipv4Addr::from(base + i)));
    let v6 = (0..10_000u128).map(|i| {
        let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x5, 0, 0, 0, 0, 0));
        IpAddr::V6(Ipv6Addr::from(base + (i << 16) + i))
    });
    let all: Vec<IpAddr> = v4.chain(v6).collect();
    assert_eq!(all.len(), CLIENTS);
    all
}

fn member_addr(i: usize) -> SocketAddr {
    if i % 4 == 3 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x2, 0, 0, 0, 0, i as u16)),
            80,
        )
    } else {
        SocketAddr::from(([198, 18, 2, 11 + i as u8], 80))
    }
}

fn pool_of(addrs: &[SocketAddr]) -> Pool {
    let members = addrs.iter().map(|&a| Member::new(a)).collect();
    Pool::new(PoolConfig::new(Method::ConsistentHash, members)).unwrap()
}

struct Live {
    pool: Pool,
    states: MemberStates,
    counts: ConnCounts,
    cursor: PoolCursor,
}

impl Live {
    fn new(pool: Pool) -> Self {
        let (states, counts, cursor) = (pool.member_states(), pool.conn_counts(), pool.cursor(0));
        Self {
            pool,
            states,
            counts,
            cursor,
        }
    }

    /// The member address each client is sent to (flows ended at once).
    fn map(&mut self, clients: &[IpAddr]) -> Vec<SocketAddr> {
        clients
            .iter()
            .map(|&c| {
                let m = self
                    .pool
                    .select(&mut self.cursor, c, &self.states, &self.counts)
                    .expect("a member");
                self.counts.release(m);
                self.pool.member(m).addr
            })
            .collect()
    }
}

fn share_of(map: &[SocketAddr], a: SocketAddr) -> f64 {
    map.iter().filter(|&&m| m == a).count() as f64 / map.len() as f64
}

fn moved(before: &[SocketAddr], after: &[SocketAddr]) -> usize {
    before.iter().zip(after).filter(|(a, b)| a != b).count()
}

#[test]
fn every_member_gets_its_share() {
    let cs = clients();
    for n in [2usize, 5, 9] {
        let addrs: Vec<SocketAddr> = (0..n).map(member_addr).collect();
        let map = Live::new(pool_of(&addrs)).map(&cs);
        let ideal = 1.0 / n as f64;
        for &a in &addrs {
            let s = share_of(&map, a);
            eprintln!("N={n} {a}: share {s:.4} (ideal {ideal:.4})");
            assert!(
                (s - ideal).abs() / ideal < 0.04,
                "N={n} {a}: {s} vs {ideal}"
            );
        }
    }
}

#[test]
fn weighted_shares_follow_ratios() {
    let cs = clients();
    let ratios = [1u32, 2, 3, 4];
    let members = ratios
        .iter()
        .enumerate()
        .map(|(i, &r)| Member::new(member_addr(i)).with_ratio(r))
        .collect();
    let pool = Pool::new(PoolConfig::new(Method::ConsistentHash, members)).unwrap();
    let map = Live::new(pool).map(&cs);
    for (i, &r) in ratios.iter().enumerate() {
        let ideal = f64::from(r) / 10.0;
        let s = share_of(&map, member_addr(i));
        assert!(
            (s - ideal).abs() / ideal < 0.05,
            "ratio {r}: {s} vs {ideal}"
        );
    }
}

#[test]
fn a_member_going_down_moves_only_its_own_clients_and_comes_back_exactly() {
    let cs = clients();
    let n = 7;
    let addrs: Vec<SocketAddr> = (0..n).map(member_addr).collect();
    let mut live = Live::new(pool_of(&addrs));
    let before = live.map(&cs);
    let gone = live.pool.find(addrs[3]).unwrap();

    for how in ["down", "disabled", "forced-offline"] {
        match how {
            "down" => drop(live.states.set_monitor(gone, MonitorStatus::Down)),
            "disabled" => drop(live.states.set_admin(gone, AdminState::Disabled)),
            _ => drop(live.states.set_admin(gone, AdminState::ForcedOffline)),
        }
        let after = live.map(&cs);
        let m = moved(&before, &after);
        let frac = m as f64 / CLIENTS as f64;
        eprintln!(
            "N={n}, one member {how}: {m} of {CLIENTS} clients moved ({:.2} %, 1/N = {:.2} %)",
            frac * 100.0,
            100.0 / n as f64
        );
        assert!(frac <= 1.0 / n as f64 + 0.01, "{frac}");
        // Exactly the clients of the member that left moved; nobody else.
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(*a, addrs[3]);
            if *b != addrs[3] {
                assert_eq!(a, b, "a client of a member that stayed moved");
            }
        }
        // Its clients spread over the others: each takes 1/(N-1) of them, +-20 %.
        let orphans: Vec<SocketAddr> = before
            .iter()
            .zip(&after)
            .filter(|(b, _)| **b == addrs[3])
            .map(|(_, a)| *a)
            .collect();
        for &a in addrs.iter().filter(|&&a| a != addrs[3]) {
            let got = orphans.iter().filter(|&&o| o == a).count() as f64;
            let ideal = orphans.len() as f64 / (n - 1) as f64;
            assert!((got / ideal - 1.0).abs() < 0.2, "{a}: {got} of {ideal}");
        }
        // Back: every client returns to its original member.
        live.states.set_monitor(gone, MonitorStatus::Up);
        live.states.set_admin(gone, AdminState::Enabled);
        assert_eq!(live.map(&cs), before, "{how}: mapping restored");
    }
}

#[test]
fn removing_a_member_from_the_config_moves_about_one_nth() {
    let cs = clients();
    for n in [4usize, 7, 10] {
        let addrs: Vec<SocketAddr> = (0..n).map(member_addr).collect();
        let before = Live::new(pool_of(&addrs)).map(&cs);
        let removed = addrs[1];
        let rest: Vec<SocketAddr> = addrs.iter().copied().filter(|&a| a != removed).collect();
        let after = Live::new(pool_of(&rest)).map(&cs);
        let m = moved(&before, &after);
        let frac = m as f64 / CLIENTS as f64;
        let stayed_clients: Vec<usize> = (0..CLIENTS).filter(|&i| before[i] != removed).collect();
        let kept = stayed_clients
            .iter()
            .filter(|&&i| before[i] == after[i])
            .count() as f64
            / stayed_clients.len() as f64;
        eprintln!(
            "N={n}, member removed from the config (table rebuilt): {m} of {CLIENTS} moved \
             ({:.2} %, 1/N = {:.2} %); clients of remaining members kept: {:.2} %",
            frac * 100.0,
            100.0 / n as f64,
            kept * 100.0
        );
        assert!(frac <= 1.0 / n as f64 + 0.02, "N={n}: {frac}");
        assert!(
            kept >= 0.98,
            "N={n}: only {kept} of the others' clients stayed"
        );
        assert!(after.iter().all(|&a| a != removed));

        // Adding it back restores the original mapping exactly.
        let back = Live::new(pool_of(&addrs)).map(&cs);
        assert_eq!(back, before, "N={n}");
    }
}

#[test]
fn adding_a_member_moves_about_one_over_n_plus_one() {
    let cs = clients();
    let addrs: Vec<SocketAddr> = (0..6).map(member_addr).collect();
    let before = Live::new(pool_of(&addrs[..5])).map(&cs);
    let after = Live::new(pool_of(&addrs)).map(&cs);
    let frac = moved(&before, &after) as f64 / CLIENTS as f64;
    eprintln!(
        "5 -> 6 members: {:.2} % moved (1/6 = 16.67 %)",
        frac * 100.0
    );
    assert!(frac <= 1.0 / 6.0 + 0.02, "{frac}");
    // Those that moved went to the new member (almost all).
    let to_new = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a && **a == addrs[5])
        .count() as f64;
    assert!(to_new / (frac * CLIENTS as f64) > 0.9);
}

#[test]
fn the_table_is_deterministic() {
    let cs = clients();
    let addrs: Vec<SocketAddr> = (0..8).map(member_addr).collect();
    let a = pool_of(&addrs);
    let b = pool_of(&addrs);
    let mut reversed = addrs.clone();
    reversed.reverse();
    let r = pool_of(&reversed);
    assert_eq!(a.maglev_shares(), b.maglev_shares());
    assert_eq!(a.maglev_shares().iter().sum::<usize>(), 65_537);
    for &c in cs.iter().step_by(7) {
        let home = |p: &Pool| p.member(p.maglev_home(c).unwrap()).addr;
        assert_eq!(home(&a), home(&b));
        assert_eq!(home(&a), home(&r), "configuration order must not matter");
    }
    // select agrees with the table's home member while everything is up.
    let mut live = Live::new(pool_of(&addrs));
    let map = live.map(&cs[..1000]);
    for (i, &c) in cs[..1000].iter().enumerate() {
        assert_eq!(map[i], a.member(a.maglev_home(c).unwrap()).addr);
    }
}

#[test]
fn a_client_sticks_to_its_member_across_workers() {
    let addrs: Vec<SocketAddr> = (0..5).map(member_addr).collect();
    let pool = pool_of(&addrs);
    let (states, counts) = (pool.member_states(), pool.conn_counts());
    let c: IpAddr = "198.18.77.1".parse().unwrap();
    let mut seen = std::collections::HashSet::new();
    for worker in 0..8 {
        let mut cursor = pool.cursor(worker);
        for _ in 0..10 {
            let m = pool.select(&mut cursor, c, &states, &counts).unwrap();
            seen.insert(m);
        }
    }
    assert_eq!(seen.len(), 1);
    // IPv4-mapped IPv6 is the same client.
    let mapped: IpAddr = "::ffff:198.18.77.1".parse().unwrap();
    assert_eq!(pool.maglev_home(c), pool.maglev_home(mapped));
}

#[test]
fn bad_table_sizes_are_refused() {
    let members: Vec<Member> = (0..3).map(|i| Member::new(member_addr(i))).collect();
    for size in [65_536, 2, 1, 0] {
        let cfg =
            PoolConfig::new(Method::ConsistentHash, members.clone()).with_maglev_table_size(size);
        assert!(Pool::new(cfg).is_err(), "{size}");
    }
    let cfg = PoolConfig::new(Method::ConsistentHash, members).with_maglev_table_size(251);
    assert!(Pool::new(cfg).is_ok());
}
