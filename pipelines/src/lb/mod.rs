//! Pools and load balancing: which member a new flow goes to.
//!
//! A pure, sans-I/O library used by the fastl4 path (and later the full proxy):
//!
//! - [`member`]: a member's configuration ([`Member`]), its admin state
//!   ([`AdminState`]) and monitor status ([`MonitorStatus`]) as an operator sees them,
//!   and their live values ([`MemberStates`]);
//! - [`counts`]: appliance-wide connection counts and exact connection limits
//!   ([`ConnCounts`]);
//! - [`pool`]: the immutable [`Pool`] built once from a [`PoolConfig`], with priority
//!   group activation and the methods of [`Method`];
//! - [`cursor`]: a worker's own selection state ([`PoolCursor`]);
//! - [`select`]: the walk over the members a flow may go to ([`Candidates`]);
//! - [`maglev`]: the Maglev table behind [`Method::ConsistentHash`];
//! - [`view`]: the operator's view of the members ([`MemberView`]).
//!
//! # Sharing between the control thread and the workers
//!
//! | object | built | changed by | shared as |
//! | --- | --- | --- | --- |
//! | [`Pool`] | at config apply | never (a new config builds a new pool) | `Arc`, read-only |
//! | [`MemberStates`] | with the pool | control thread: operator commands, monitors | `Arc`, atomics |
//! | [`ConnCounts`] | with the pool | workers: flow assigned / flow ended | `Arc`, atomics |
//! | [`PoolCursor`] | per worker | its worker only | not shared |
//!
//! A selection reads the live states and counts directly, so a member that goes
//! down, is disabled or forced offline, or reaches its limit gets no new flow from the
//! next selection on, on every worker, without rebuilding anything.
//!
//! When a new configuration is applied, the control thread builds the new [`Pool`]
//! and then [`ConnCounts::carry_over`] and [`MemberStates::carry_over`]: members kept
//! (same address and port) share their connection counter with the old snapshot, so
//! flows opened before the change still count for least connections and limits and
//! release into the same counter, and keep their monitor status; admin states come
//! from the new configuration. Flows keep the pool snapshot they were opened with
//! (their [`MemberId`] indexes that snapshot). The Maglev table of an unchanged member
//! set is identical, so consistent-hash clients keep their members across the change.
//!
//! # Selecting
//!
//! ```
//! use std::net::IpAddr;
//! use rouge_pipelines::lb::{Member, Method, MonitorStatus, Pool, PoolConfig};
//!
//! let members = (11..=14)
//!     .map(|h| Member::new(format!("198.18.2.{h}:80").parse().unwrap()))
//!     .collect();
//! let pool = Pool::new(PoolConfig::new(Method::RoundRobin, members)).unwrap();
//! let (states, counts) = (pool.member_states(), pool.conn_counts());
//! let mut cursor = pool.cursor(0); // one per worker
//! let client: IpAddr = "198.18.0.7".parse().unwrap();
//!
//! states.set_monitor(pool.find("198.18.2.11:80".parse().unwrap()).unwrap(), MonitorStatus::Down);
//! let m = pool.select(&mut cursor, client, &states, &counts).unwrap();
//! assert_eq!(pool.member(m).addr, "198.18.2.12:80".parse().unwrap());
//! assert_eq!(counts.current(m), 1);
//! counts.release(m); // when the flow ends
//! ```
//!
//! [`Pool::select`] returns the first choice with a connection slot already taken on
//! it. A caller that must be able to walk past members it finds unusable (no SNAT port
//! towards it, say) iterates [`Pool::candidates`] instead, whose first item is the same
//! choice, and takes the slot itself with [`ConnCounts::try_acquire`].
//!
//! # Availability and priority groups
//!
//! A member is available for new flows when its admin state is `enabled`, its monitor
//! status `up` or `unchecked`, and it is below its connection limit. Priority groups
//! work as on F5: the highest group number is preferred; walking the groups downwards,
//! groups are activated until at least `min_active_members` available members are
//! active; members of lower groups get no new flows. With `min_active_members` 0 all
//! groups are active at once. Only available members of active groups are offered.
//! Persisted flows ([`Pool::select_persisted`]) accept `disabled` members and ignore
//! priority groups, but never go to `forced-offline` or `down` members or above the
//! limit.
//!
//! # Cost
//!
//! Selection does not allocate: the Maglev table, the priority order and the cursor
//! are built with the pool; a selection is one pass over the members to find the
//! active priority groups plus the method's walk (one more pass at most, except for
//! the consistent hash, which looks up one slot while the client's member is
//! available).

pub mod counts;
pub mod cursor;
mod hash;
pub mod maglev;
pub mod member;
pub mod pool;
pub mod select;
pub mod view;

pub use counts::ConnCounts;
pub use cursor::PoolCursor;
pub use maglev::DEFAULT_TABLE_SIZE;
pub use member::{
    AdminState, Availability, Member, MemberId, MemberStates, MonitorStatus, UnknownState,
};
pub use pool::{Method, Pool, PoolConfig, PoolError, MAX_MEMBERS};
pub use select::Candidates;
pub use view::MemberView;
