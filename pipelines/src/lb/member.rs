//! Pool members: their configuration, their admin state and monitor status, and the
//! live per-member state that the control thread changes and every worker reads.
//!
//! # States as an operator sees them
//!
//! A member has two independent state fields, shown side by side ("enabled / down"):
//!
//! - the **admin state** ([`AdminState`]), part of the running configuration and set by
//!   the operator: `enabled`, `disabled` (drain: no new flows, but flows that
//!   persistence maps to the member are still accepted, and existing flows continue to
//!   their end) or `forced-offline` (no new flows at all, not even persisted ones;
//!   existing flows end at their own pace);
//! - the **monitor status** ([`MonitorStatus`]), set by the health monitors: `up`,
//!   `down`, or `unchecked` (no monitor assigned, or no verdict yet; treated as up).
//!
//! A member is **available for new flows** when its admin state is `enabled`, its
//! monitor status is `up` or `unchecked`, and its current connection count is below its
//! connection limit (0 = no limit). [`Availability`] names the first reason a member
//! is not available, in that order of precedence.
//!
//! A flow that persistence maps to a member (a later feature) is accepted by
//! [`Pool::select_persisted`](super::Pool::select_persisted) when the admin state is
//! `enabled` or `disabled`, the monitor status is `up` or `unchecked`, and a
//! connection slot below the limit can be taken; `forced-offline` and `down` refuse it.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::pool::Pool;

/// The index of a member in its [`Pool`], stable for the life of that pool
/// snapshot (members keep their configuration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub(crate) u16);

impl MemberId {
    /// The member's position in the pool's member list.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member#{}", self.0)
    }
}

/// The operator's admin state of a member (part of the running configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum AdminState {
    /// Takes new flows.
    #[default]
    Enabled = 0,
    /// Drain: no new flows except persisted ones; existing flows continue.
    Disabled = 1,
    /// No new flows at all, persisted ones included; existing flows end at their pace.
    ForcedOffline = 2,
}

impl AdminState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Enabled,
            1 => Self::Disabled,
            _ => Self::ForcedOffline,
        }
    }

    /// The operator's name: `enabled`, `disabled` or `forced-offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::ForcedOffline => "forced-offline",
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a {what} (expected one of: {expected})")]
pub struct UnknownState {
    given: String,
    what: &'static str,
    expected: &'static str,
}

impl FromStr for AdminState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(Self::Enabled),
            "disabled" => Ok(Self::Disabled),
            "forced-offline" => Ok(Self::ForcedOffline),
            _ => Err(UnknownState {
                given: s.to_owned(),
                what: "member admin state",
                expected: "enabled, disabled, forced-offline",
            }),
        }
    }
}

/// The health monitors' verdict on a member, kept apart from the admin state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum MonitorStatus {
    /// The last probes succeeded.
    Up = 0,
    /// The monitor timed out or the probes failed: no new flows.
    Down = 1,
    /// No monitor, or no verdict yet: treated as up.
    #[default]
    Unchecked = 2,
}

impl MonitorStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Up,
            1 => Self::Down,
            _ => Self::Unchecked,
        }
    }

    /// The operator's name: `up`, `down` or `unchecked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Unchecked => "unchecked",
        }
    }

    /// Whether this status lets the member take flows (`up` or `unchecked`).
    pub fn is_usable(self) -> bool {
        !matches!(self, Self::Down)
    }
}

impl fmt::Display for MonitorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MonitorStatus {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up" => Ok(Self::Up),
            "down" => Ok(Self::Down),
            "unchecked" => Ok(Self::Unchecked),
            _ => Err(UnknownState {
                given: s.to_owned(),
                what: "monitor status",
                expected: "up, down, unchecked",
            }),
        }
    }
}

/// Why a member is or is not available for new flows, first reason first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Availability {
    /// Takes new flows.
    Available,
    /// Admin state `forced-offline`.
    ForcedOffline,
    /// Admin state `disabled` (persisted flows still accepted).
    Disabled,
    /// Monitor status `down`.
    Down,
    /// At its connection limit.
    AtLimit,
}

impl Availability {
    /// Whether new flows may go to the member.
    pub fn is_available(self) -> bool {
        self == Self::Available
    }

    /// The operator's name: `available`, `forced-offline`, `disabled`, `down` or
    /// `at-limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::ForcedOffline => "forced-offline",
            Self::Disabled => "disabled",
            Self::Down => "down",
            Self::AtLimit => "at-limit",
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configuration of one pool member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Address and port of the member (IPv4 or IPv6).
    pub addr: SocketAddr,
    /// Weight for the ratio, weighted least connections and consistent hash methods
    /// (at least 1; default 1).
    pub ratio: u32,
    /// Priority group: higher numbers are preferred (default 0).
    pub priority: u32,
    /// Most concurrent flows the member takes, for the whole appliance (0 = no limit).
    pub conn_limit: u32,
    /// Admin state at configuration time; the live value is in [`MemberStates`].
    pub admin: AdminState,
}

impl Member {
    /// A member with the defaults: ratio 1, priority group 0, no connection limit,
    /// enabled.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            ratio: 1,
            priority: 0,
            conn_limit: 0,
            admin: AdminState::Enabled,
        }
    }

    /// Sets the ratio (weight).
    #[must_use]
    pub fn with_ratio(mut self, ratio: u32) -> Self {
        self.ratio = ratio;
        self
    }

    /// Sets the priority group.
    #[must_use]
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the connection limit (0 = none).
    #[must_use]
    pub fn with_conn_limit(mut self, limit: u32) -> Self {
        self.conn_limit = limit;
        self
    }

    /// Sets the admin state.
    #[must_use]
    pub fn with_admin(mut self, admin: AdminState) -> Self {
        self.admin = admin;
        self
    }
}

/// One member's live states, packed in one byte each.
#[derive(Debug)]
struct StateSlot {
    admin: AtomicU8,
    monitor: AtomicU8,
    /// Marked down by passive health and not yet seen by its monitor.
    passive: AtomicBool,
}

/// Live admin state and monitor status of every member of one pool, shared by the
/// control thread (writer) and all workers (readers) through an `Arc`.
///
/// A change is a single atomic store, so the next selection on any worker sees it:
/// there is no table to rebuild and no snapshot to publish for a member to stop (or
/// start again) getting new flows. Relaxed ordering is enough: each field is read on
/// its own and nothing else is published through it.
#[derive(Debug)]
pub struct MemberStates {
    slots: Box<[StateSlot]>,
    /// Some member was marked down by passive health since the last
    /// [`MemberStates::take_passive`].
    any_passive: AtomicBool,
}

impl MemberStates {
    /// States for `members`: admin state as configured, monitor status `unchecked`.
    pub fn new(members: &[Member]) -> Self {
        Self {
            slots: members
                .iter()
                .map(|m| StateSlot {
                    admin: AtomicU8::new(m.admin as u8),
                    monitor: AtomicU8::new(MonitorStatus::Unchecked as u8),
                    passive: AtomicBool::new(false),
                })
                .collect(),
            any_passive: AtomicBool::new(false),
        }
    }

    /// States for the pool `new` (a new configuration snapshot): admin states as the
    /// new configuration says (it is the running configuration), monitor status copied
    /// from `old_states` for members also in `old` (same address), so that a member
    /// known to be down does not get flows until its monitor says otherwise; members new
    /// to the pool start `unchecked`.
    pub fn carry_over(new: &Pool, old: &Pool, old_states: &MemberStates) -> Self {
        let states = Self::new(new.members());
        for (i, m) in new.members().iter().enumerate() {
            if let Some(id) = old.find(m.addr).filter(|id| id.index() < old_states.len()) {
                states.slots[i]
                    .monitor
                    .store(old_states.monitor(id) as u8, Ordering::Relaxed);
            }
        }
        states
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The live admin state of `id`.
    ///
    /// # Panics
    /// If `id` does not belong to this pool.
    pub fn admin(&self, id: MemberId) -> AdminState {
        AdminState::from_u8(self.slots[id.index()].admin.load(Ordering::Relaxed))
    }

    /// The live monitor status of `id`.
    ///
    /// # Panics
    /// If `id` does not belong to this pool.
    pub fn monitor(&self, id: MemberId) -> MonitorStatus {
        MonitorStatus::from_u8(self.slots[id.index()].monitor.load(Ordering::Relaxed))
    }

    /// Sets the admin state of `id`; the next selection on every worker sees it.
    /// Returns the previous state.
    ///
    /// # Panics
    /// If `id` does not belong to this pool.
    pub fn set_admin(&self, id: MemberId, admin: AdminState) -> AdminState {
        AdminState::from_u8(
            self.slots[id.index()]
                .admin
                .swap(admin as u8, Ordering::Relaxed),
        )
    }

    /// Passive health: marks `id` down because real traffic to it kept failing, if its
    /// monitor has it up (a member without a monitor, or not up, is left alone: nothing
    /// would bring it back). Its monitor sees the mark at its next poll
    /// ([`MemberStates::take_passive`]) and brings the member back only after
    /// `up_after` successful probes from then. True when the member was marked.
    ///
    /// # Panics
    /// If `id` does not belong to this pool.
    pub fn mark_passive_down(&self, id: MemberId) -> bool {
        let slot = &self.slots[id.index()];
        let marked = slot
            .monitor
            .compare_exchange(
                MonitorStatus::Up as u8,
                MonitorStatus::Down as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if marked {
            slot.passive.store(true, Ordering::Relaxed);
            self.any_passive.store(true, Ordering::Release);
        }
        marked
    }

    /// The members marked down by passive health since the last call (for the monitor
    /// that watches them).
    pub fn take_passive(&self) -> impl Iterator<Item = MemberId> + '_ {
        let any = self.any_passive.load(Ordering::Relaxed)
            && self.any_passive.swap(false, Ordering::Acquire);
        let n = if any { self.slots.len() } else { 0 };
        self.slots[..n]
            .iter()
            .enumerate()
            .filter(|(_, s)| s.passive.swap(false, Ordering::Relaxed))
            .map(|(i, _)| MemberId(i as u16))
    }

    /// Sets the monitor status of `id`; the next selection on every worker sees it.
    /// Returns the previous status.
    ///
    /// # Panics
    /// If `id` does not belong to this pool.
    pub fn set_monitor(&self, id: MemberId, status: MonitorStatus) -> MonitorStatus {
        MonitorStatus::from_u8(
            self.slots[id.index()]
                .monitor
                .swap(status as u8, Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_marks_only_members_up_and_is_taken_once() {
        let members: Vec<Member> = (0..3)
            .map(|i| Member::new(format!("198.18.2.{}:80", 11 + i).parse().unwrap()))
            .collect();
        let s = MemberStates::new(&members);
        assert_eq!(s.take_passive().count(), 0);
        // Unchecked (no monitor, or not probed yet): left alone.
        assert!(!s.mark_passive_down(MemberId(0)));
        assert_eq!(s.monitor(MemberId(0)), MonitorStatus::Unchecked);
        s.set_monitor(MemberId(1), MonitorStatus::Up);
        s.set_monitor(MemberId(2), MonitorStatus::Down);
        assert!(s.mark_passive_down(MemberId(1)));
        assert!(!s.mark_passive_down(MemberId(1)), "already down");
        assert!(!s.mark_passive_down(MemberId(2)), "down by its monitor");
        assert_eq!(s.monitor(MemberId(1)), MonitorStatus::Down);
        let taken: Vec<MemberId> = s.take_passive().collect();
        assert_eq!(taken, vec![MemberId(1)]);
        assert_eq!(s.take_passive().count(), 0, "taken once");
    }

    #[test]
    fn names_round_trip() {
        for a in [
            AdminState::Enabled,
            AdminState::Disabled,
            AdminState::ForcedOffline,
        ] {
            assert_eq!(a.as_str().parse::<AdminState>(), Ok(a));
            assert_eq!(AdminState::from_u8(a as u8), a);
        }
        for m in [
            MonitorStatus::Up,
            MonitorStatus::Down,
            MonitorStatus::Unchecked,
        ] {
            assert_eq!(m.as_str().parse::<MonitorStatus>(), Ok(m));
            assert_eq!(MonitorStatus::from_u8(m as u8), m);
        }
        assert!("offline".parse::<AdminState>().is_err());
        assert!("sick".parse::<MonitorStatus>().is_err());
    }

    #[test]
    fn states_start_from_config() {
        let a: SocketAddr = "198.18.2.11:80".parse().unwrap();
        let members = [
            Member::new(a),
            Member::new(a).with_admin(AdminState::Disabled),
        ];
        let s = MemberStates::new(&members);
        assert_eq!(s.admin(MemberId(0)), AdminState::Enabled);
        assert_eq!(s.admin(MemberId(1)), AdminState::Disabled);
        assert_eq!(s.monitor(MemberId(1)), MonitorStatus::Unchecked);
        assert_eq!(
            s.set_monitor(MemberId(1), MonitorStatus::Down),
            MonitorStatus::Unchecked
        );
        assert_eq!(s.monitor(MemberId(1)), MonitorStatus::Down);
    }
}
