//! Pool configuration and the immutable [`Pool`] built from it.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::counts::ConnCounts;
use super::cursor::PoolCursor;
use super::hash::{hash_ip, SEED_CLIENT};
use super::maglev::{is_prime, MaglevTable, DEFAULT_TABLE_SIZE};
use super::member::{AdminState, Availability, Member, MemberId, MemberStates};
use super::select::Candidates;

/// Most members in one pool (member indices and the per-selection "already offered" set
/// are sized for it).
pub const MAX_MEMBERS: usize = 4096;

/// Load-balancing method of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// Each available member in turn.
    #[default]
    RoundRobin,
    /// Shares in proportion to the members' ratios, interleaved smoothly (nginx's
    /// smooth weighted round robin: ratios 3:1:1 give `a b a c a`, never `a a a b c`).
    Ratio,
    /// The member with the fewest current connections (appliance-wide).
    LeastConnections,
    /// The member with the fewest current connections per unit of ratio.
    WeightedLeastConnections,
    /// Consistent hash of the client's IP address through a Maglev table: a client
    /// keeps its member while that member is available, and membership changes move
    /// as few clients as possible.
    ConsistentHash,
}

impl Method {
    /// The configuration name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Ratio => "ratio",
            Self::LeastConnections => "least-connections",
            Self::WeightedLeastConnections => "weighted-least-connections",
            Self::ConsistentHash => "consistent-hash",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = PoolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "round-robin" => Self::RoundRobin,
            "ratio" => Self::Ratio,
            "least-connections" => Self::LeastConnections,
            "weighted-least-connections" => Self::WeightedLeastConnections,
            "consistent-hash" => Self::ConsistentHash,
            _ => return Err(PoolError::UnknownMethod(s.to_owned())),
        })
    }
}

/// The configuration a [`Pool`] is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The members, in configuration order (their [`MemberId`]s follow this order).
    pub members: Vec<Member>,
    /// The load-balancing method.
    pub method: Method,
    /// Priority group activation: lower priority groups are used only while fewer than
    /// this many members of the higher groups are available (0 = all groups used).
    pub min_active_members: u32,
    /// Size of the Maglev table for [`Method::ConsistentHash`]: a prime larger than the
    /// member count, ideally at least 100 times it (default 65,537).
    pub maglev_table_size: u32,
}

impl PoolConfig {
    /// A configuration with priority group activation off and the default table size.
    pub fn new(method: Method, members: Vec<Member>) -> Self {
        Self {
            members,
            method,
            min_active_members: 0,
            maglev_table_size: DEFAULT_TABLE_SIZE,
        }
    }

    /// Sets `min_active_members`.
    #[must_use]
    pub fn with_min_active_members(mut self, n: u32) -> Self {
        self.min_active_members = n;
        self
    }

    /// Sets the Maglev table size.
    #[must_use]
    pub fn with_maglev_table_size(mut self, size: u32) -> Self {
        self.maglev_table_size = size;
        self
    }
}

/// A pool configuration that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// More members than [`MAX_MEMBERS`].
    #[error("the pool has {0} members; at most {MAX_MEMBERS} are supported (split it)")]
    TooManyMembers(usize),
    /// The same address and port twice.
    #[error("member {0} is listed twice; remove one entry")]
    DuplicateMember(SocketAddr),
    /// A ratio of 0.
    #[error("member {0} has ratio 0; use 1 or more, or disable the member")]
    ZeroRatio(SocketAddr),
    /// A Maglev table size that is not a prime larger than the member count.
    #[error(
        "maglev table size {size} must be a prime larger than the {members} members \
         (65537 fits up to 655 members well)"
    )]
    BadTableSize {
        /// The size configured.
        size: u32,
        /// The member count.
        members: usize,
    },
    /// An unknown method name.
    #[error(
        "`{0}` is not a load-balancing method (expected round-robin, ratio, \
         least-connections, weighted-least-connections or consistent-hash)"
    )]
    UnknownMethod(String),
}

/// A pool: members, method and priority group activation, built once from a
/// [`PoolConfig`] and then immutable, so all workers share it through an `Arc`.
///
/// The live state that changes while the pool runs is kept beside it, also shared:
/// admin state and monitor status in [`MemberStates`], connection counts in
/// [`ConnCounts`]; each worker keeps its own [`PoolCursor`]. See the
/// [module documentation](super) for the selection semantics.
#[derive(Debug)]
pub struct Pool {
    members: Box<[Member]>,
    method: Method,
    min_active_members: u32,
    /// Member indices sorted by priority group, highest first (stable).
    by_priority: Box<[u16]>,
    /// The Maglev table ([`Method::ConsistentHash`] only).
    maglev: Option<MaglevTable>,
}

impl Pool {
    /// Validates `config` and builds the pool (and its Maglev table for
    /// [`Method::ConsistentHash`]).
    pub fn new(config: PoolConfig) -> Result<Self, PoolError> {
        let n = config.members.len();
        if n > MAX_MEMBERS {
            return Err(PoolError::TooManyMembers(n));
        }
        let mut seen = HashSet::with_capacity(n);
        for m in &config.members {
            if !seen.insert(m.addr) {
                return Err(PoolError::DuplicateMember(m.addr));
            }
            if m.ratio == 0 {
                return Err(PoolError::ZeroRatio(m.addr));
            }
        }
        let maglev = if config.method == Method::ConsistentHash {
            let size = config.maglev_table_size;
            if !is_prime(size) || size as usize <= n {
                return Err(PoolError::BadTableSize { size, members: n });
            }
            let weighted: Vec<(SocketAddr, u32)> =
                config.members.iter().map(|m| (m.addr, m.ratio)).collect();
            Some(MaglevTable::build(&weighted, size))
        } else {
            None
        };
        let mut by_priority: Vec<u16> = (0..n as u16).collect();
        by_priority.sort_by_key(|&i| std::cmp::Reverse(config.members[usize::from(i)].priority));
        Ok(Self {
            members: config.members.into_boxed_slice(),
            method: config.method,
            min_active_members: config.min_active_members,
            by_priority: by_priority.into_boxed_slice(),
            maglev,
        })
    }

    /// The members, indexed by [`MemberId::index`].
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The configuration of member `id`.
    ///
    /// # Panics
    /// If `id` does not belong to this pool.
    pub fn member(&self, id: MemberId) -> &Member {
        &self.members[id.index()]
    }

    /// All member ids in configuration order.
    pub fn ids(&self) -> impl Iterator<Item = MemberId> + '_ {
        (0..self.members.len() as u16).map(MemberId)
    }

    /// The id of the member with address `addr`.
    pub fn find(&self, addr: SocketAddr) -> Option<MemberId> {
        self.members
            .iter()
            .position(|m| m.addr == addr)
            .map(|i| MemberId(i as u16))
    }

    /// The load-balancing method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The priority group activation threshold (0 = off).
    pub fn min_active_members(&self) -> u32 {
        self.min_active_members
    }

    /// Fresh live states for this pool (admin state as configured, monitors
    /// `unchecked`), to share through an `Arc`.
    pub fn member_states(&self) -> MemberStates {
        MemberStates::new(&self.members)
    }

    /// Fresh connection counts for this pool with the configured limits, to share
    /// through an `Arc`.
    pub fn conn_counts(&self) -> ConnCounts {
        ConnCounts::new(&self.members)
    }

    /// A per-worker cursor for this pool (see [`PoolCursor::new`]).
    pub fn cursor(&self, seed: usize) -> PoolCursor {
        PoolCursor::new(self, seed)
    }

    /// Whether member `id` is available for new flows, or the first reason it is not.
    pub fn availability(
        &self,
        id: MemberId,
        states: &MemberStates,
        counts: &ConnCounts,
    ) -> Availability {
        match states.admin(id) {
            AdminState::ForcedOffline => return Availability::ForcedOffline,
            AdminState::Disabled => return Availability::Disabled,
            AdminState::Enabled => {}
        }
        if !states.monitor(id).is_usable() {
            return Availability::Down;
        }
        if !counts.has_room(id) {
            return Availability::AtLimit;
        }
        Availability::Available
    }

    /// The lowest priority group that currently takes new flows, or `None` when no
    /// member is available.
    ///
    /// Groups are walked from the highest number down, counting available members;
    /// the walk stops at the first group where the count reaches
    /// `min_active_members`. With `min_active_members` 0 every group is active.
    pub fn active_priority_floor(&self, states: &MemberStates, counts: &ConnCounts) -> Option<u32> {
        self.eligibility(states, counts).map(|(floor, _)| floor)
    }

    /// (lowest active priority group, number of eligible members), or `None`.
    pub(crate) fn eligibility(
        &self,
        states: &MemberStates,
        counts: &ConnCounts,
    ) -> Option<(u32, usize)> {
        let want = self.min_active_members as usize;
        let mut available = 0usize;
        let mut floor = None;
        let mut i = 0;
        while i < self.by_priority.len() {
            let group = self.members[usize::from(self.by_priority[i])].priority;
            if want > 0 && available >= want {
                break;
            }
            while i < self.by_priority.len() {
                let idx = self.by_priority[i];
                if self.members[usize::from(idx)].priority != group {
                    break;
                }
                if self
                    .availability(MemberId(idx), states, counts)
                    .is_available()
                {
                    available += 1;
                    floor = Some(group);
                }
                i += 1;
            }
        }
        floor.map(|f| (f, available))
    }

    /// Whether member `id` takes a new flow now, priority groups included.
    pub(crate) fn eligible(
        &self,
        id: MemberId,
        floor: u32,
        states: &MemberStates,
        counts: &ConnCounts,
    ) -> bool {
        self.members[id.index()].priority >= floor
            && self.availability(id, states, counts).is_available()
    }

    /// The members to try for a new flow from `client`, best first, without taking a
    /// connection slot. The first item is the method's choice; the caller may walk past
    /// members it finds unusable, and must [`ConnCounts::try_acquire`] the one it uses.
    /// Each eligible member is offered at most once. Does not allocate.
    pub fn candidates<'a>(
        &'a self,
        cursor: &'a mut PoolCursor,
        client: IpAddr,
        states: &'a MemberStates,
        counts: &'a ConnCounts,
    ) -> Candidates<'a> {
        Candidates::new(self, cursor, client, states, counts)
    }

    /// Chooses a member for a new flow from `client` and counts the flow on it: the
    /// first of [`candidates`](Self::candidates) whose exact
    /// [`ConnCounts::try_acquire`] succeeds. `None` when no member is available. The
    /// caller must [`ConnCounts::release`] the member when the flow ends (or if it
    /// abandons the flow). Does not allocate.
    pub fn select(
        &self,
        cursor: &mut PoolCursor,
        client: IpAddr,
        states: &MemberStates,
        counts: &ConnCounts,
    ) -> Option<MemberId> {
        self.candidates(cursor, client, states, counts)
            .find(|&id| counts.try_acquire(id))
    }

    /// Accepts a new flow that persistence maps to member `id`, and counts it on the
    /// member, if the member may take persisted flows: admin state `enabled` or
    /// `disabled` (draining members keep their persisted clients), monitor status `up`
    /// or `unchecked`, and a slot below the connection limit. `forced-offline` and
    /// `down` refuse. Priority group activation does not apply: a persisted client stays
    /// on its member even if that member's group is not active. On `false` the caller
    /// selects afresh with [`select`](Self::select).
    pub fn select_persisted(
        &self,
        id: MemberId,
        states: &MemberStates,
        counts: &ConnCounts,
    ) -> bool {
        id.index() < self.members.len()
            && id.index() < states.len()
            && id.index() < counts.len()
            && states.admin(id) != AdminState::ForcedOffline
            && states.monitor(id).is_usable()
            && counts.try_acquire(id)
    }

    /// The member the Maglev table maps `client` to, ignoring member states: the
    /// client's home member. `None` for other methods or an empty pool.
    pub fn maglev_home(&self, client: IpAddr) -> Option<MemberId> {
        let t = self.maglev.as_ref().filter(|t| t.len() > 0)?;
        Some(MemberId(t.at(t.slot(hash_ip(SEED_CLIENT, client))) as u16))
    }

    /// Slots of the Maglev table held by each member (empty for other methods).
    pub fn maglev_shares(&self) -> Vec<usize> {
        self.maglev
            .as_ref()
            .map(|t| t.shares(self.members.len()))
            .unwrap_or_default()
    }

    pub(crate) fn maglev(&self) -> Option<&MaglevTable> {
        self.maglev.as_ref()
    }
}
