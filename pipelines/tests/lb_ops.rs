//! Random sequences of operations (state changes, flows opened and ended, selections)
//! on random pools, checked after every selection against a plain reference model of
//! availability and priority group activation.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rouge_pipelines::lb::{
    AdminState, ConnCounts, Member, MemberId, MemberStates, Method, MonitorStatus, Pool, PoolConfig,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Reference: members that may take a new flow, computed the slow, obvious way.
fn reference_eligible(pool: &Pool, states: &MemberStates, counts: &ConnCounts) -> Vec<bool> {
    let members = pool.members();
    let available: Vec<bool> = pool
        .ids()
        .map(|id| {
            let m = &members[id.index()];
            states.admin(id) == AdminState::Enabled
                && states.monitor(id) != MonitorStatus::Down
                && (m.conn_limit == 0 || counts.current(id) < m.conn_limit)
        })
        .collect();
    let mut groups: Vec<u32> = members.iter().map(|m| m.priority).collect();
    groups.sort_unstable_by(|a, b| b.cmp(a));
    groups.dedup();
    let want = pool.min_active_members() as usize;
    let mut floor = 0;
    let mut active = 0;
    for &g in &groups {
        floor = g;
        active += (0..members.len())
            .filter(|&i| available[i] && members[i].priority == g)
            .count();
        if want > 0 && active >= want {
            break;
        }
    }
    (0..members.len())
        .map(|i| available[i] && members[i].priority >= floor)
        .collect()
}

fn random_pool(rng: &mut Rng, method: Method) -> Pool {
    let n = 1 + rng.below(12) as usize;
    let members = (0..n)
        .map(|i| {
            Member::new(SocketAddr::from(([198, 18, 2, 11 + i as u8], 80)))
                .with_ratio(1 + rng.below(4) as u32)
                .with_priority([0, 5, 10][rng.below(3) as usize])
                .with_conn_limit([0, 0, 1, 3][rng.below(4) as usize])
        })
        .collect();
    let cfg = PoolConfig::new(method, members)
        .with_min_active_members(rng.below(4) as u32)
        .with_maglev_table_size(4_099);
    Pool::new(cfg).unwrap()
}

#[test]
fn selections_always_agree_with_the_reference_model() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut checked = 0u32;
    for method in [
        Method::RoundRobin,
        Method::Ratio,
        Method::LeastConnections,
        Method::WeightedLeastConnections,
        Method::ConsistentHash,
    ] {
        for _pool in 0..40 {
            let pool = random_pool(&mut rng, method);
            let (states, counts) = (pool.member_states(), pool.conn_counts());
            let mut cursor = pool.cursor(rng.below(8) as usize);
            let mut open: Vec<MemberId> = Vec::new();
            let n = pool.members().len() as u64;
            for _op in 0..1_500 {
                let id = pool.ids().nth(rng.below(n) as usize).unwrap();
                match rng.below(10) {
                    0 => {
                        let a = [
                            AdminState::Enabled,
                            AdminState::Enabled,
                            AdminState::Disabled,
                            AdminState::ForcedOffline,
                        ];
                        states.set_admin(id, a[rng.below(4) as usize]);
                    }
                    1 => {
                        let s = [
                            MonitorStatus::Up,
                            MonitorStatus::Down,
                            MonitorStatus::Unchecked,
                        ];
                        states.set_monitor(id, s[rng.below(3) as usize]);
                    }
                    2 | 3 if !open.is_empty() => {
                        let i = rng.below(open.len() as u64) as usize;
                        assert!(counts.release(open.swap_remove(i)));
                    }
                    _ => {
                        let client =
                            IpAddr::V4(Ipv4Addr::from(0xc612_0000 + rng.below(1 << 17) as u32));
                        let eligible = reference_eligible(&pool, &states, &counts);
                        let loads: Vec<u32> = pool.ids().map(|m| counts.current(m)).collect();
                        let walk: Vec<MemberId> = pool
                            .candidates(&mut cursor.clone(), client, &states, &counts)
                            .collect();
                        let got = pool.select(&mut cursor, client, &states, &counts);
                        let expected: Vec<MemberId> =
                            pool.ids().filter(|m| eligible[m.index()]).collect();
                        // The walk offers exactly the eligible members, once each.
                        let mut sorted = walk.clone();
                        sorted.sort();
                        assert_eq!(sorted, expected, "{method}: walk {walk:?}");
                        let Some(m) = got else {
                            assert!(expected.is_empty(), "{method}: nothing chosen");
                            continue;
                        };
                        checked += 1;
                        assert!(eligible[m.index()], "{method}: chose ineligible {m}");
                        assert_eq!(Some(&m), walk.first(), "{method}: select = first candidate");
                        let limit = pool.member(m).conn_limit;
                        assert!(limit == 0 || counts.current(m) <= limit);
                        let w = |i: usize| u64::from(pool.members()[i].ratio);
                        match method {
                            Method::LeastConnections => {
                                let min = expected.iter().map(|e| loads[e.index()]).min();
                                assert_eq!(Some(loads[m.index()]), min, "{method}");
                            }
                            Method::WeightedLeastConnections => {
                                let i = m.index();
                                for e in &expected {
                                    let j = e.index();
                                    assert!(
                                        u64::from(loads[i]) * w(j) <= u64::from(loads[j]) * w(i),
                                        "{method}: {i} is busier than {j}"
                                    );
                                }
                            }
                            Method::ConsistentHash => {
                                let home = pool.maglev_home(client).unwrap();
                                if eligible[home.index()] {
                                    assert_eq!(m, home, "{method}: left an eligible home");
                                }
                            }
                            _ => {}
                        }
                        open.push(m);
                    }
                }
            }
            for m in open {
                assert!(counts.release(m));
            }
            assert!(pool.ids().all(|m| counts.current(m) == 0));
        }
    }
    assert!(checked > 50_000, "only {checked} selections checked");
}
