//! Member states, persistence semantics, priority groups and connection limits.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rouge_pipelines::lb::{
    AdminState, Availability, ConnCounts, Member, MemberId, MemberStates, Method, MonitorStatus,
    Pool, PoolConfig, PoolCursor,
};

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([198, 18, 2, host], 80))
}

fn client(i: u32) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::from(
        u32::from_be_bytes([198, 18, 0, 0]) + i,
    ))
}

fn id(pool: &Pool, i: usize) -> MemberId {
    pool.ids().nth(i).unwrap()
}

/// Members picked by `n` selections (flows ended at once), as counts per member.
fn shares(
    pool: &Pool,
    cursor: &mut PoolCursor,
    states: &MemberStates,
    counts: &ConnCounts,
    n: u32,
) -> Vec<usize> {
    let mut s = vec![0; pool.members().len()];
    for i in 0..n {
        let m = pool
            .select(cursor, client(i), states, counts)
            .expect("a member");
        counts.release(m);
        s[m.index()] += 1;
    }
    s
}

#[test]
fn disabled_forced_offline_and_down_get_no_new_flows() {
    for method in [
        Method::RoundRobin,
        Method::Ratio,
        Method::LeastConnections,
        Method::WeightedLeastConnections,
        Method::ConsistentHash,
    ] {
        let members = (0..5).map(|i| Member::new(addr(11 + i))).collect();
        let pool = Pool::new(PoolConfig::new(method, members)).unwrap();
        let (states, counts) = (pool.member_states(), pool.conn_counts());
        let mut cursor = pool.cursor(0);
        // All five take flows at first.
        let s = shares(&pool, &mut cursor, &states, &counts, 1000);
        assert!(s.iter().all(|&n| n > 0), "{method}: {s:?}");

        states.set_admin(id(&pool, 1), AdminState::Disabled);
        states.set_admin(id(&pool, 2), AdminState::ForcedOffline);
        states.set_monitor(id(&pool, 3), MonitorStatus::Down);
        states.set_monitor(id(&pool, 4), MonitorStatus::Up);
        let s = shares(&pool, &mut cursor, &states, &counts, 1000);
        assert_eq!(s[1] + s[2] + s[3], 0, "{method}: {s:?}");
        assert_eq!(s[0] + s[4], 1000, "{method}: {s:?}");

        // Takes effect from the very next selection: member 4 goes down now.
        states.set_monitor(id(&pool, 4), MonitorStatus::Down);
        let s = shares(&pool, &mut cursor, &states, &counts, 100);
        assert_eq!(s[0], 100, "{method}: {s:?}");
        // And back again at once.
        states.set_admin(id(&pool, 1), AdminState::Enabled);
        states.set_monitor(id(&pool, 0), MonitorStatus::Down);
        let s = shares(&pool, &mut cursor, &states, &counts, 100);
        assert_eq!(s[1], 100, "{method}: {s:?}");
        // Nothing left.
        states.set_admin(id(&pool, 1), AdminState::Disabled);
        assert_eq!(pool.select(&mut cursor, client(0), &states, &counts), None);
    }
}

#[test]
fn availability_reports_the_first_reason() {
    let members = vec![Member::new(addr(11)).with_conn_limit(1)];
    let pool = Pool::new(PoolConfig::new(Method::RoundRobin, members)).unwrap();
    let (states, counts) = (pool.member_states(), pool.conn_counts());
    let m = id(&pool, 0);
    assert_eq!(states.monitor(m), MonitorStatus::Unchecked);
    assert_eq!(
        pool.availability(m, &states, &counts),
        Availability::Available
    );
    assert!(counts.try_acquire(m));
    assert_eq!(
        pool.availability(m, &states, &counts),
        Availability::AtLimit
    );
    states.set_monitor(m, MonitorStatus::Down);
    assert_eq!(pool.availability(m, &states, &counts), Availability::Down);
    states.set_admin(m, AdminState::Disabled);
    assert_eq!(
        pool.availability(m, &states, &counts),
        Availability::Disabled
    );
    states.set_admin(m, AdminState::ForcedOffline);
    assert_eq!(
        pool.availability(m, &states, &counts),
        Availability::ForcedOffline
    );
}

#[test]
fn persistence_accepts_disabled_but_not_forced_offline_down_or_full() {
    let members = vec![
        Member::new(addr(11)).with_conn_limit(2).with_priority(5),
        Member::new(addr(12)).with_priority(10),
        Member::new(addr(13)).with_priority(10),
    ];
    let cfg = PoolConfig::new(Method::RoundRobin, members).with_min_active_members(1);
    let pool = Pool::new(cfg).unwrap();
    let (states, counts) = (pool.member_states(), pool.conn_counts());
    let m = id(&pool, 0);

    // Enabled, in an inactive priority group: persistence still accepts it.
    assert_eq!(pool.active_priority_floor(&states, &counts), Some(10));
    assert!(pool.select_persisted(m, &states, &counts));
    assert_eq!(counts.current(m), 1);

    // Disabled (draining): no new flows, but persisted ones are accepted.
    states.set_admin(m, AdminState::Disabled);
    states.set_admin(id(&pool, 1), AdminState::Disabled);
    states.set_admin(id(&pool, 2), AdminState::Disabled);
    let mut cursor = pool.cursor(0);
    assert_eq!(pool.select(&mut cursor, client(1), &states, &counts), None);
    assert!(pool.select_persisted(m, &states, &counts));
    assert_eq!(counts.current(m), 2);
    // ... within the connection limit.
    assert!(!pool.select_persisted(m, &states, &counts));
    assert_eq!(counts.current(m), 2);
    counts.release(m);
    counts.release(m);

    // Disabled and down: refused.
    states.set_monitor(m, MonitorStatus::Down);
    assert!(!pool.select_persisted(m, &states, &counts));
    // Enabled and down: refused.
    states.set_admin(m, AdminState::Enabled);
    assert!(!pool.select_persisted(m, &states, &counts));
    // Forced offline and up: refused.
    states.set_monitor(m, MonitorStatus::Up);
    states.set_admin(m, AdminState::ForcedOffline);
    assert!(!pool.select_persisted(m, &states, &counts));
    assert_eq!(counts.current(m), 0, "a refusal takes no slot");
}

fn grouped(method: Method, min_active: u32) -> Pool {
    // Group 10: members 0, 1, 2. Group 5: members 3, 4. Group 1: member 5.
    let members = vec![
        Member::new(addr(11)).with_priority(10),
        Member::new(addr(12)).with_priority(10),
        Member::new(addr(13)).with_priority(10),
        Member::new(addr(21)).with_priority(5),
        Member::new(addr(22)).with_priority(5),
        Member::new(addr(31)).with_priority(1),
    ];
    Pool::new(PoolConfig::new(method, members).with_min_active_members(min_active)).unwrap()
}

#[test]
fn priority_groups_activate_as_on_f5() {
    for method in [
        Method::RoundRobin,
        Method::Ratio,
        Method::LeastConnections,
        Method::WeightedLeastConnections,
        Method::ConsistentHash,
    ] {
        let pool = grouped(method, 2);
        let (states, counts) = (pool.member_states(), pool.conn_counts());
        let mut cursor = pool.cursor(0);
        let used = |s: &[usize]| -> Vec<usize> { (0..6).filter(|&i| s[i] > 0).collect() };

        // Three of group 10 up: only group 10.
        let s = shares(&pool, &mut cursor, &states, &counts, 3000);
        assert_eq!(used(&s), vec![0, 1, 2], "{method}: {s:?}");
        assert_eq!(pool.active_priority_floor(&states, &counts), Some(10));

        // Two of group 10 up: still only group 10.
        states.set_monitor(id(&pool, 0), MonitorStatus::Down);
        let s = shares(&pool, &mut cursor, &states, &counts, 3000);
        assert_eq!(used(&s), vec![1, 2], "{method}: {s:?}");

        // One of group 10 up: group 5 joins (group 1 does not: 3 are active).
        states.set_admin(id(&pool, 1), AdminState::Disabled);
        let s = shares(&pool, &mut cursor, &states, &counts, 3000);
        assert_eq!(used(&s), vec![2, 3, 4], "{method}: {s:?}");
        assert_eq!(pool.active_priority_floor(&states, &counts), Some(5));

        // None of group 10, one of group 5: group 1 joins too.
        states.set_admin(id(&pool, 2), AdminState::ForcedOffline);
        states.set_monitor(id(&pool, 3), MonitorStatus::Down);
        let s = shares(&pool, &mut cursor, &states, &counts, 3000);
        assert_eq!(used(&s), vec![4, 5], "{method}: {s:?}");

        // Group 10 back: lower groups leave at once.
        states.set_monitor(id(&pool, 0), MonitorStatus::Up);
        states.set_admin(id(&pool, 1), AdminState::Enabled);
        let s = shares(&pool, &mut cursor, &states, &counts, 3000);
        assert_eq!(used(&s), vec![0, 1], "{method}: {s:?}");
    }
}

#[test]
fn priority_groups_off_uses_all_groups() {
    let pool = grouped(Method::RoundRobin, 0);
    let (states, counts) = (pool.member_states(), pool.conn_counts());
    let mut cursor = pool.cursor(0);
    let s = shares(&pool, &mut cursor, &states, &counts, 600);
    assert_eq!(s, vec![100; 6]);
    assert_eq!(pool.active_priority_floor(&states, &counts), Some(1));
}

#[test]
fn a_member_at_its_limit_counts_as_unavailable_for_priority_groups() {
    let members = vec![
        Member::new(addr(11)).with_priority(10).with_conn_limit(3),
        Member::new(addr(12)).with_priority(10),
        Member::new(addr(21)).with_priority(5),
    ];
    let pool =
        Pool::new(PoolConfig::new(Method::RoundRobin, members).with_min_active_members(2)).unwrap();
    let (states, counts) = (pool.member_states(), pool.conn_counts());
    let mut cursor = pool.cursor(0);
    let mut held = vec![0u32; 3];
    for i in 0..30 {
        let m = pool
            .select(&mut cursor, client(i), &states, &counts)
            .unwrap();
        held[m.index()] += 1;
    }
    // Member 0 filled up to 3; while it was full, group 5 took flows.
    assert_eq!(held[0], 3);
    assert_eq!(counts.current(id(&pool, 0)), 3);
    assert!(held[2] > 0, "{held:?}");
    assert_eq!(held.iter().sum::<u32>(), 30);
}

#[test]
fn connection_limits_are_never_exceeded_by_selection() {
    let members = vec![
        Member::new(addr(11)).with_conn_limit(4),
        Member::new(addr(12)).with_conn_limit(2),
        Member::new(addr(13)).with_conn_limit(1),
    ];
    for method in [
        Method::RoundRobin,
        Method::Ratio,
        Method::LeastConnections,
        Method::WeightedLeastConnections,
        Method::ConsistentHash,
    ] {
        let pool = Pool::new(PoolConfig::new(method, members.clone())).unwrap();
        let (states, counts) = (pool.member_states(), pool.conn_counts());
        let mut cursor = pool.cursor(0);
        let mut got = 0;
        for i in 0..20 {
            if pool
                .select(&mut cursor, client(i), &states, &counts)
                .is_some()
            {
                got += 1;
            }
        }
        assert_eq!(got, 7, "{method}: the pool holds 4 + 2 + 1");
        let c: Vec<u32> = pool.ids().map(|m| counts.current(m)).collect();
        assert_eq!(c, vec![4, 2, 1], "{method}");
        counts.release(id(&pool, 1));
        let m = pool.select(&mut cursor, client(99), &states, &counts);
        assert_eq!(m, Some(id(&pool, 1)), "{method}: the freed slot is used");
    }
}

#[test]
fn try_acquire_is_exact_under_threads() {
    // Limit 1 keeps every thread racing at the boundary: a check-then-increment
    // (instead of a compare-and-swap) lets two holders in within a few thousand rounds.
    const LIMIT: u32 = 1;
    const THREADS: usize = 4;
    const ROUNDS: usize = 2_000_000;
    let members = vec![Member::new(addr(11)).with_conn_limit(LIMIT)];
    let pool = Pool::new(PoolConfig::new(Method::RoundRobin, members)).unwrap();
    let counts = Arc::new(pool.conn_counts());
    let m = id(&pool, 0);
    // Holders counted independently of ConnCounts.
    let holders = Arc::new(AtomicI64::new(0));
    let violations = Arc::new(AtomicI64::new(0));
    let start = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (counts, holders, violations, start) = (
                counts.clone(),
                holders.clone(),
                violations.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                let mut acquired = 0u64;
                start.wait();
                for _ in 0..ROUNDS {
                    if counts.try_acquire(m) {
                        acquired += 1;
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        if now > i64::from(LIMIT) || counts.current(m) > LIMIT {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                        holders.fetch_sub(1, Ordering::SeqCst);
                        assert!(counts.release(m));
                    }
                }
                acquired
            })
        })
        .collect();
    let acquired: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(violations.load(Ordering::SeqCst), 0, "limit exceeded");
    assert!(acquired > 0);
    assert_eq!(counts.current(m), 0);
    assert_eq!(counts.total(m), acquired);
}

#[test]
fn limits_hold_for_selection_from_several_workers() {
    const WORKERS: usize = 6;
    let members: Vec<Member> = (0..4)
        .map(|i| Member::new(addr(11 + i)).with_conn_limit(3))
        .collect();
    let pool = Arc::new(Pool::new(PoolConfig::new(Method::LeastConnections, members)).unwrap());
    let states = Arc::new(pool.member_states());
    let counts = Arc::new(pool.conn_counts());
    let over = Arc::new(AtomicI64::new(0));
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (pool, states, counts, over) =
                (pool.clone(), states.clone(), counts.clone(), over.clone());
            std::thread::spawn(move || {
                let mut cursor = pool.cursor(w);
                let mut held: Vec<MemberId> = Vec::with_capacity(16);
                for i in 0..20_000u32 {
                    if i % 3 != 2 {
                        if let Some(m) = pool.select(&mut cursor, client(i), &states, &counts) {
                            if counts.current(m) > 3 {
                                over.fetch_add(1, Ordering::Relaxed);
                            }
                            held.push(m);
                        }
                    } else if let Some(m) = held.pop() {
                        counts.release(m);
                    }
                }
                for m in held {
                    counts.release(m);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(over.load(Ordering::Relaxed), 0);
    assert!(pool.ids().all(|m| counts.current(m) == 0));
    assert!(pool.ids().all(|m| counts.total(m) > 0));
}

#[test]
fn counts_and_monitor_status_carry_over_to_a_new_snapshot() {
    let old_pool = Pool::new(PoolConfig::new(
        Method::LeastConnections,
        vec![
            Member::new(addr(11)).with_conn_limit(2),
            Member::new(addr(12)),
            Member::new(addr(13)),
        ],
    ))
    .unwrap();
    let (old_states, old_counts) = (old_pool.member_states(), old_pool.conn_counts());
    let (a, b) = (id(&old_pool, 0), id(&old_pool, 1));
    assert!(old_counts.try_acquire(a) && old_counts.try_acquire(a));
    assert!(old_counts.try_acquire(b));
    old_states.set_monitor(id(&old_pool, 2), MonitorStatus::Down);

    // New config: 198.18.2.12 removed, .14 added, .11 first with limit 3, .13 disabled
    // in the config.
    let new_pool = Pool::new(PoolConfig::new(
        Method::LeastConnections,
        vec![
            Member::new(addr(14)),
            Member::new(addr(13)).with_admin(AdminState::Disabled),
            Member::new(addr(11)).with_conn_limit(3),
        ],
    ))
    .unwrap();
    let counts = ConnCounts::carry_over(&new_pool, &old_pool, &old_counts);
    let states = MemberStates::carry_over(&new_pool, &old_pool, &old_states);
    let na = new_pool.find(addr(11)).unwrap();
    let n13 = new_pool.find(addr(13)).unwrap();
    assert_eq!(counts.current(na), 2, "old flows still count");
    assert_eq!(counts.limit(na), 3, "limit from the new config");
    assert_eq!(states.monitor(n13), MonitorStatus::Down);
    assert_eq!(states.admin(n13), AdminState::Disabled);
    assert_eq!(
        states.monitor(new_pool.find(addr(14)).unwrap()),
        MonitorStatus::Unchecked
    );
    // One more fits under the new limit, counted in both views.
    assert!(counts.try_acquire(na));
    assert!(!counts.try_acquire(na));
    assert_eq!(old_counts.current(a), 3);
    // Old flows ending release into the shared counter.
    assert!(old_counts.release(a));
    assert_eq!(counts.current(na), 2);
    // Least connections in the new pool sees the old flows: the new member wins.
    let mut cursor = new_pool.cursor(0);
    let m = new_pool.select(&mut cursor, client(1), &states, &counts);
    assert_eq!(m, new_pool.find(addr(14)));
}
