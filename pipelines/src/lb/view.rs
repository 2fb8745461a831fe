//! The operator's view of a pool's members, for `rouge show pool|member` and metrics.

use std::net::SocketAddr;

use serde::Serialize;

use super::counts::ConnCounts;
use super::member::{MemberId, MemberStates};
use super::pool::Pool;

/// One member as an operator sees it: configuration, the two state fields side by
/// side ("enabled / down"), whether it takes new flows and why not, and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// Address and port.
    pub addr: SocketAddr,
    /// Admin state: `enabled`, `disabled` or `forced-offline`.
    pub admin: &'static str,
    /// Monitor status: `up`, `down` or `unchecked`.
    pub monitor: &'static str,
    /// `available`, or the first reason it takes no new flows (`forced-offline`,
    /// `disabled`, `down`, `at-limit`).
    pub availability: &'static str,
    /// Whether its priority group is active: at or above the lowest group that
    /// priority group activation currently uses (higher groups always are).
    pub group_active: bool,
    /// Ratio (weight).
    pub ratio: u32,
    /// Priority group.
    pub priority: u32,
    /// Connection limit (0 = none).
    pub conn_limit: u32,
    /// Flows currently assigned (appliance-wide).
    pub current_conns: u32,
    /// Flows ever assigned.
    pub total_conns: u64,
}

impl Pool {
    /// The operator's view of every member, in configuration order. Allocates; for
    /// the control thread.
    pub fn view(&self, states: &MemberStates, counts: &ConnCounts) -> Vec<MemberView> {
        let floor = self.active_priority_floor(states, counts);
        self.ids()
            .map(|id| self.member_view(id, floor, states, counts))
            .collect()
    }

    fn member_view(
        &self,
        id: MemberId,
        floor: Option<u32>,
        states: &MemberStates,
        counts: &ConnCounts,
    ) -> MemberView {
        let m = self.member(id);
        MemberView {
            addr: m.addr,
            admin: states.admin(id).as_str(),
            monitor: states.monitor(id).as_str(),
            availability: self.availability(id, states, counts).as_str(),
            group_active: floor.is_some_and(|f| m.priority >= f),
            ratio: m.ratio,
            priority: m.priority,
            conn_limit: counts.limit(id),
            current_conns: counts.current(id),
            total_conns: counts.total(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AdminState, Member, Method, MonitorStatus, PoolConfig};
    use super::*;

    #[test]
    fn view_shows_both_state_fields_and_counts() {
        let a: SocketAddr = "198.18.2.11:80".parse().unwrap();
        let b: SocketAddr = "[2001:db8::12]:80".parse().unwrap();
        let pool = Pool::new(
            PoolConfig::new(
                Method::RoundRobin,
                vec![
                    Member::new(a).with_priority(10),
                    Member::new(b).with_conn_limit(5),
                ],
            )
            .with_min_active_members(1),
        )
        .unwrap();
        let (states, counts) = (pool.member_states(), pool.conn_counts());
        let (ia, ib) = (pool.find(a).unwrap(), pool.find(b).unwrap());
        states.set_monitor(ia, MonitorStatus::Down);
        states.set_admin(ib, AdminState::Disabled);
        assert!(pool.select_persisted(ib, &states, &counts));
        let v = pool.view(&states, &counts);
        assert_eq!((v[0].admin, v[0].monitor), ("enabled", "down"));
        assert_eq!(v[0].availability, "down");
        assert!(!v[0].group_active, "no member available: no group active");
        assert_eq!((v[1].admin, v[1].monitor), ("disabled", "unchecked"));
        assert_eq!(
            (v[1].current_conns, v[1].total_conns, v[1].conn_limit),
            (1, 1, 5)
        );
        states.set_admin(ib, AdminState::Enabled);
        let v = pool.view(&states, &counts);
        // Group 0 joined because group 10 has no available member; group 10 stays
        // active (it takes flows again as soon as its member is up).
        assert!(v[1].group_active && v[0].group_active);
        states.set_monitor(ia, MonitorStatus::Up);
        let v = pool.view(&states, &counts);
        assert!(v[0].group_active && !v[1].group_active);
        assert_eq!(v[1].availability, "available");
        assert_eq!(v[1].availability, "available");
    }
}
