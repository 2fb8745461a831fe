//! Fastl4: packet-by-packet full NAT from a virtual server's VIP to its members, with
//! a per-worker connection table (sans-I/O: the L2/L3 pipeline routes and sends).
//!
//! Per packet, the pipeline calls [`Fastl4::classify`] on the IPv4 or IPv6 packet; the answer
//! is [`Classified::NotOurs`] (the normal path goes on), a drop with its reason, or a
//! [`Plan`]: which flow, which way, and the address to route the translated packet to.
//! The pipeline checks TTL, route and MTU against the *untranslated* packet (so ICMP
//! errors it sends quote what the sender sent), then calls [`Fastl4::apply`] to rewrite
//! it in place and update the flow, and sends it. [`Fastl4::poll`] runs once per loop
//! turn: it expires idle flows and looks for flows whose member went down; RSTs to send
//! toward clients are taken with [`Fastl4::pop_reset`].
//!
//! What is matched, in order:
//! 1. non-first fragments: by the fragment table ([`frag`]); to a VIP without an entry,
//!    dropped as [`DropReason::Fastl4FragmentNoFlow`];
//! 2. TCP/UDP: the client-side key (client → VIP), then the server-side key
//!    (member → SNAT address), then a new flow if the destination is a fastl4 virtual
//!    server (TCP only on a SYN);
//! 3. ICMP destination unreachable / time exceeded quoting a packet of a flow: one the
//!    appliance sent to the member (server-side key of the quoted packet, reversed) is
//!    translated back to the client, one it sent to the client (client-side key) goes
//!    on to the member, so path MTU discovery works through the VIP both ways.
//!
//! SNAT ports are chosen so that the port driver's steering
//! ([`rouge_drivers::steer::Steering`], given at construction) sends the member's
//! replies to the worker that owns the flow. With SNAT `none` the client's port is kept and replies may land
//! on another worker (members must route back through the appliance; a lock-free
//! hand-off between workers is still to come).
//!
//! Not yet done (known limits):
//! - A flow keeps its family: an IPv6 virtual server has IPv6 members (SNAT automap
//!   takes the IPv6 self IP of the egress VLAN; SNAT pools hold IPv4 addresses only).
//! - Non-first fragments are steered to worker 0 by the AF_PACKET fanout, so they follow
//!   their flow only when worker 0 owns it (see [`frag`]).
//! - No TCP sequence validation: a RST that matches a flow's addresses and ports ends
//!   the flow whatever its sequence number; [`flow::Flow::seq_delta`] is reserved for
//!   SYN-cookie translation and always 0.
//! - Flow entries hold an `Arc` of their virtual server; mirroring them to an HA peer
//!   needs a plain-data form (virtual server by name, member by address).
//! - Table sizes are fixed by the first snapshot that has a fastl4 virtual server.
//! - Member selection is round robin over available members
//!   ([`crate::dataplane::Fastl4Vs::choose_member`]); the pool library replaces it.

pub mod flow;
pub mod frag;
pub mod nat;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::counters::PipelineCounters;
use crate::dataplane::{Dataplane, Fastl4Limits, Fastl4Vs, Snat};
use crate::lb::{MemberId, PoolCursor};
use crate::ports::SourcePorts;
use crate::time::Instant;
use crate::verdict::DropReason;
use crate::wire::checksum;
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{Flags, TcpPacket};
use crate::wire::udp::UdpPacket;
use flow::{Flow, FlowId, FlowState, FlowTable, InsertError};
pub use frag::Dir;
use frag::{FragKey, FragTable};

/// Most RSTs waiting to be sent.
pub const MAX_PENDING_RESETS: usize = 64;
/// How often (in `now` time) the member-down sweep runs.
pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// What kind of packet a plan translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole TCP/UDP packet.
    Whole,
    /// The first fragment of a datagram (ports, no full L4 payload).
    FirstFrag,
    /// A later fragment (addresses only).
    LaterFrag,
    /// An ICMP error quoting a packet of the flow.
    IcmpError,
}

/// How to translate one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The flow.
    pub flow: FlowId,
    /// Which way the packet goes.
    pub dir: Dir,
    /// What it is.
    pub kind: Kind,
    /// Its destination after translation (to route on).
    pub next_dst: IpAddr,
}

/// The answer of [`Fastl4::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// Not fastl4 traffic: the normal path handles it.
    NotOurs,
    /// Fastl4 traffic to drop.
    Drop(DropReason),
    /// Fastl4 traffic to translate.
    Translate(Plan),
}

/// A TCP RST to send toward a client (from the VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetSpec {
    /// Source: the VIP and port the client connected to.
    pub from: SocketAddr,
    /// Destination: the client.
    pub to: SocketAddr,
    /// Sequence number (the member's next sequence number as last seen).
    pub seq: u32,
    /// Acknowledgement number (the client's next sequence number as last seen).
    pub ack: u32,
}

/// The fastl4 state of one worker.
pub struct Fastl4 {
    worker: usize,
    limits: Fastl4Limits,
    flows: FlowTable,
    frags: FragTable,
    cursors: Vec<usize>,
    /// Per virtual server with a pool: this worker's position in it.
    lb_cursors: Vec<Option<PoolCursor>>,
    pool_cursor: usize,
    resets: ArrayVec<ResetSpec, MAX_PENDING_RESETS>,
    sweep_pos: usize,
    next_sweep: Instant,
    counters: Arc<PipelineCounters>,
}

/// The flags of a TCP header at the start of `seg` (at least 14 bytes).
#[inline]
fn tcp_flags(seg: &[u8]) -> Flags {
    TcpPacket::new_unchecked(seg).flags()
}

/// True for a SYN without ACK, RST or FIN: the segment that opens a connection.
#[inline]
fn opens_connection(seg: &[u8]) -> bool {
    let f = tcp_flags(seg);
    f.syn() && !f.ack() && !f.rst() && !f.fin()
}

/// Sequence-space "a is after b" (RFC 1982 style).
#[inline]
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Fastl4 {
    /// The state of worker `worker`, its tables sized by `limits` (all memory allocated
    /// now). SNAT ports come from the worker's [`PortAllocator`](crate::ports::PortAllocator).
    pub fn new(worker: usize, limits: Fastl4Limits, counters: Arc<PipelineCounters>) -> Fastl4 {
        Fastl4 {
            worker,
            limits,
            flows: FlowTable::new(limits.flows_per_worker),
            frags: FragTable::new(limits.fragments_per_worker),
            cursors: Vec::new(),
            lb_cursors: Vec::new(),
            pool_cursor: 0,
            resets: ArrayVec::new(),
            sweep_pos: 0,
            next_sweep: Instant::ZERO,
            counters,
        }
    }

    /// True when a flow of `proto` uses the pair `local` (an SNAT address and port) –
    /// `remote` (a member) on its server side: another connection between them would
    /// take its replies.
    pub fn port_in_use(&self, proto: u8, local: SocketAddr, remote: SocketAddr) -> bool {
        self.flows
            .server_key_taken(&flow::key(proto, remote, local))
    }

    /// The connection table.
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Takes a new snapshot: round-robin positions follow the virtual servers' indices.
    pub fn set_dataplane(&mut self, dp: &Dataplane) {
        let w = self.worker;
        self.cursors.resize(dp.fastl4.len(), w);
        self.lb_cursors = dp
            .fastl4
            .iter()
            .map(|vs| vs.lb.as_ref().map(|b| b.pool.cursor(w)))
            .collect();
    }

    /// Decides what to do with an IPv4 or IPv6 packet (`l3`: header and extension
    /// headers checked, truncated to its total length). A new flow with SNAT takes its port from `ports`; when none is
    /// free the client's SYN is answered with a RST (see [`Fastl4::pop_reset`]).
    pub fn classify(
        &mut self,
        now: Instant,
        dp: &Dataplane,
        l3: &[u8],
        mut ports: SourcePorts<'_>,
    ) -> Classified {
        let Some(h) = L3::parse(l3) else {
            return Classified::NotOurs;
        };
        let (proto, src, dst) = (h.proto, h.src, h.dst);
        let (offset, more, ident) = (h.offset, h.more, h.ident);
        let payload = &l3[h.l4_off..];
        if offset != 0 {
            let key = FragKey {
                src,
                dst,
                proto,
                ident,
            };
            if let Some((id, dir)) = self.frags.lookup(&key, now) {
                if let Some(f) = self.flows.get(id) {
                    let next_dst = match dir {
                        Dir::ToServer => f.server.ip(),
                        Dir::ToClient => f.client.ip(),
                    };
                    return Classified::Translate(Plan {
                        flow: id,
                        dir,
                        kind: Kind::LaterFrag,
                        next_dst,
                    });
                }
            }
            if dp.is_fastl4_vip_ip(proto, dst) {
                return Classified::Drop(DropReason::Fastl4FragmentNoFlow);
            }
            return Classified::NotOurs;
        }
        let malformed = match proto {
            nat::TCP => DropReason::Fastl4TcpMalformed,
            nat::UDP => DropReason::Fastl4UdpMalformed,
            1 if !h.v6 => return self.classify_icmp(payload, None),
            ipv6::NH_ICMPV6 if h.v6 => {
                let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                    return Classified::NotOurs;
                };
                return self.classify_icmp(payload, Some((s, d)));
            }
            _ => return Classified::NotOurs,
        };
        if payload.len() < 4 {
            return if dp.is_fastl4_vip_ip(proto, dst) {
                Classified::Drop(malformed)
            } else {
                Classified::NotOurs
            };
        }
        // TCP and UDP carry their ports in the same first four bytes.
        let l4 = UdpPacket::new_unchecked(payload);
        let (sport, dport) = (l4.src_port(), l4.dst_port());
        let (from, to) = (SocketAddr::new(src, sport), SocketAddr::new(dst, dport));
        let key = flow::key(proto, from, to);
        let kind = if more { Kind::FirstFrag } else { Kind::Whole };
        let mut found = if let Some(id) = self.flows.find_client(&key) {
            Some((id, Dir::ToServer))
        } else {
            self.flows.find_server(&key).map(|id| (id, Dir::ToClient))
        };
        let vs_bound = found.is_some() || dp.fastl4_for_ip(proto, dst, dport).is_some();
        if !vs_bound {
            return Classified::NotOurs;
        }
        if let Err(r) = check_l4(proto, payload, kind) {
            return Classified::Drop(r);
        }
        if let Some((id, Dir::ToServer)) = found {
            // A new SYN on a flow that is closing is a new connection reusing the
            // client's port (as a host's TIME-WAIT allows): end the old flow and
            // balance the new one.
            let closing = self
                .flows
                .get(id)
                .is_some_and(|f| f.state == FlowState::Closing);
            if proto == nat::TCP && closing && payload.len() > 13 && opens_connection(payload) {
                self.end(id, End::Reused);
                found = None;
            }
        }
        if let Some((id, dir)) = found {
            if let Some(r) = self.member_gone(id, dir, proto, payload) {
                return r;
            }
            if let Some(plan) = self.plan(id, dir, kind) {
                if kind == Kind::FirstFrag {
                    self.record_frag(src, dst, proto, ident, id, dir, now);
                }
                return Classified::Translate(plan);
            }
            // The flow was removed (UDP, member gone): a new one is made below.
        }
        if proto == nat::TCP {
            // A SYN without ACK, RST or FIN opens a flow; anything else needs one.
            if !opens_connection(payload) {
                return Classified::Drop(DropReason::Fastl4NoFlow);
            }
        }
        match self.open(now, dp, proto, from, to, &mut ports) {
            Ok(id) => {
                if kind == Kind::FirstFrag {
                    self.record_frag(src, dst, proto, ident, id, Dir::ToServer, now);
                }
                match self.plan(id, Dir::ToServer, kind) {
                    Some(p) => Classified::Translate(p),
                    None => Classified::Drop(DropReason::Fastl4NoFlow),
                }
            }
            Err(DropReason::Fastl4SnatExhausted) if proto == nat::TCP => {
                ports.alloc.count_exhausted();
                // No SNAT port: refuse the connection rather than let the client retry
                // into silence (RFC 9293: a RST answering a SYN acknowledges it).
                let syn = TcpPacket::new_unchecked(payload);
                let reset = ResetSpec {
                    from: to,
                    to: from,
                    seq: 0,
                    ack: syn.seq().wrapping_add(syn.seg_len() as u32),
                };
                if self.resets.try_push(reset).is_ok() {
                    self.counters.fastl4_snat_exhausted_rsts.inc();
                }
                Classified::Drop(DropReason::Fastl4SnatExhausted)
            }
            Err(r) => {
                if r == DropReason::Fastl4SnatExhausted {
                    ports.alloc.count_exhausted();
                }
                Classified::Drop(r)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_frag(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        ident: u32,
        id: FlowId,
        dir: Dir,
        now: Instant,
    ) {
        let key = FragKey {
            src,
            dst,
            proto,
            ident,
        };
        if self.frags.insert(key, id, dir, now) {
            self.counters.fastl4_frag_evicted.inc();
        }
    }

    fn plan(&self, id: FlowId, dir: Dir, kind: Kind) -> Option<Plan> {
        let f = self.flows.get(id)?;
        let next_dst = match dir {
            Dir::ToServer => f.server.ip(),
            Dir::ToClient => f.client.ip(),
        };
        Some(Plan {
            flow: id,
            dir,
            kind,
            next_dst,
        })
    }

    /// Handles a packet of a flow whose member is no longer available and whose virtual
    /// server resets such flows. `None` when the flow goes on as usual.
    fn member_gone(
        &mut self,
        id: FlowId,
        dir: Dir,
        proto: u8,
        payload: &[u8],
    ) -> Option<Classified> {
        let f = self.flows.get(id)?;
        if !f.vs.reset_on_member_down || !f.vs.member_down(f.member) {
            return None;
        }
        if proto == nat::UDP && dir == Dir::ToServer {
            // The datagram opens a new flow to an available member.
            self.end(id, End::MemberDown);
            return None;
        }
        if proto == nat::TCP && payload.len() >= 20 {
            // Learn from this segment before answering it, so the RST is acceptable.
            self.track_tcp(id, dir, payload, payload.len());
        }
        self.end(id, End::MemberDown);
        Some(Classified::Drop(DropReason::Fastl4MemberDown))
    }

    /// An ICMP error (`v6`: the ICMPv6 message's addresses, for its checksum; `None`
    /// for ICMPv4) that may quote a packet of a flow.
    fn classify_icmp(
        &mut self,
        icmp: &[u8],
        v6: Option<(std::net::Ipv6Addr, std::net::Ipv6Addr)>,
    ) -> Classified {
        let q = match v6 {
            None => nat::quoted(icmp),
            Some(_) => nat::quoted6(icmp),
        };
        let Some(q) = q else {
            return Classified::NotOurs;
        };
        let valid = match v6 {
            None => checksum::checksum(icmp) == 0,
            Some((s, d)) => Icmpv6Packet::new_checked(icmp, s, d).is_ok(),
        };
        if !valid {
            // Not translated: the normal path drops it by its reason.
            return Classified::NotOurs;
        }
        // Quoted packet from the SNAT address to the member: the error goes to the client.
        if let Some(id) = self.flows.find_server(&flow::key(q.proto, q.dst, q.src)) {
            return self
                .plan(id, Dir::ToClient, Kind::IcmpError)
                .map_or(Classified::NotOurs, Classified::Translate);
        }
        // Quoted packet from the VIP to the client: the error goes to the member.
        if let Some(id) = self.flows.find_client(&flow::key(q.proto, q.dst, q.src)) {
            return self
                .plan(id, Dir::ToServer, Kind::IcmpError)
                .map_or(Classified::NotOurs, Classified::Translate);
        }
        Classified::NotOurs
    }

    /// Makes a new flow from `client` to the virtual server at `vip`.
    fn open(
        &mut self,
        now: Instant,
        dp: &Dataplane,
        proto: u8,
        client: SocketAddr,
        vip: SocketAddr,
        ports: &mut SourcePorts<'_>,
    ) -> Result<FlowId, DropReason> {
        let Some((vsi, vs)) = dp.fastl4_for_ip(proto, vip.ip(), vip.port()) else {
            return Err(DropReason::NoVirtual);
        };
        if self.flows.len() >= self.flows.capacity() {
            return Err(DropReason::Fastl4TableFull);
        }
        if self.cursors.len() <= vsi {
            // Only when the caller skipped set_dataplane; sized once per snapshot.
            self.cursors.resize(dp.fastl4.len(), self.worker);
        }
        if self.lb_cursors.len() <= vsi {
            self.lb_cursors.resize_with(dp.fastl4.len(), || None);
        }
        let member = match (&vs.lb, &mut self.lb_cursors[vsi]) {
            (Some(b), Some(cursor)) => b
                .pool
                .select(cursor, client.ip(), &b.states, &b.counts)
                .map(MemberId::index),
            _ => vs.choose_member(client.ip(), self.worker, &mut self.cursors[vsi]),
        }
        .ok_or(DropReason::Fastl4NoMember)?;
        let vs = vs.clone();
        let opened = self.open_to(now, dp, proto, client, vip, &vs, member, ports);
        if opened.is_err() {
            // The member's connection slot was taken by the selection: give it back.
            if let Some(b) = &vs.lb {
                b.counts.release(MemberId(member as u16));
            }
        }
        opened
    }

    /// Second half of [`Fastl4::open`]: translation addresses and the flow entry.
    #[allow(clippy::too_many_arguments)]
    fn open_to(
        &mut self,
        now: Instant,
        dp: &Dataplane,
        proto: u8,
        client: SocketAddr,
        vip: SocketAddr,
        vs: &Arc<Fastl4Vs>,
        member: usize,
        ports: &mut SourcePorts<'_>,
    ) -> Result<FlowId, DropReason> {
        let maddr = vs.members[member].addr;
        if maddr.is_ipv4() != client.is_ipv4() {
            // A flow keeps its family (the configuration refuses mixed pools).
            return Err(DropReason::Fastl4NoMember);
        }
        let port = if maddr.port() == 0 {
            vip.port()
        } else {
            maddr.port()
        };
        let server = SocketAddr::new(maddr.ip(), port);
        let snat = match &vs.snat {
            Snat::None => client,
            Snat::Automap => {
                let route = dp.routes.lookup(server.ip()).ok_or(DropReason::NoRoute)?;
                let vlan = route.next_hop.vlan;
                let ip = match server.ip() {
                    IpAddr::V4(a) => dp.source_for(vlan, a).map(IpAddr::V4),
                    IpAddr::V6(a) => dp.source_for_v6(vlan, a).map(IpAddr::V6),
                }
                .ok_or(DropReason::NoRoute)?;
                self.snat_port(proto, server, ip, ports)?
            }
            Snat::Pool(_) if server.is_ipv6() => return Err(DropReason::Fastl4SnatExhausted),
            Snat::Pool(list) => {
                let mut got = Err(DropReason::Fastl4SnatExhausted);
                for i in 0..list.len() {
                    let ip = IpAddr::V4(list[(self.pool_cursor + i) % list.len()]);
                    if let Ok(a) = self.snat_port(proto, server, ip, ports) {
                        self.pool_cursor = (self.pool_cursor + i + 1) % list.len();
                        got = Ok(a);
                        break;
                    }
                }
                got?
            }
        };
        let flow = Flow::new(vs.clone(), member, proto, client, vip, server, snat, now);
        match self.flows.insert(flow) {
            Ok(id) => {
                self.counters.fastl4_flows_created.inc();
                vs.counters.shard(self.worker).conns_total.inc();
                vs.members[member]
                    .counters
                    .shard(self.worker)
                    .conns_total
                    .inc();
                Ok(id)
            }
            Err(InsertError::Full) => Err(DropReason::Fastl4TableFull),
            Err(InsertError::Exists) => Err(DropReason::Fastl4SnatExhausted),
        }
    }

    fn snat_port(
        &mut self,
        proto: u8,
        server: SocketAddr,
        ip: IpAddr,
        ports: &mut SourcePorts<'_>,
    ) -> Result<SocketAddr, DropReason> {
        let flows = &self.flows;
        let tcp = ports.tcp;
        ports
            .alloc
            .find(ip, server, |p| {
                let local = SocketAddr::new(ip, p);
                flows.server_key_taken(&flow::key(proto, server, local))
                    || (proto == nat::TCP && tcp.in_use(local, server))
            })
            .map(|p| SocketAddr::new(ip, p))
            .ok_or(DropReason::Fastl4SnatExhausted)
    }

    /// Rewrites the packet of `plan` in place (`l3`: the IPv4 or IPv6 packet) and
    /// updates its flow: state, last seen, counters.
    pub fn apply(&mut self, now: Instant, plan: &Plan, l3: &mut [u8]) {
        let Some(f) = self.flows.get_mut(plan.flow) else {
            return;
        };
        f.last_seen = now;
        let (src, dst) = match plan.dir {
            Dir::ToServer => (f.snat, f.server),
            Dir::ToClient => (f.vip, f.client),
        };
        let len = l3.len() as u64;
        match plan.dir {
            Dir::ToServer => f.bytes_in += len,
            Dir::ToClient => f.bytes_out += len,
        }
        let shard = f.vs.counters.shard(self.worker);
        shard.packets.inc();
        shard.bytes.add(len);
        let ms = f.vs.members[f.member].counters.shard(self.worker);
        ms.packets.inc();
        ms.bytes.add(len);
        let proto = f.proto;
        match plan.kind {
            Kind::IcmpError => match plan.dir {
                // Quoted: SNAT → member becomes client → VIP; outer: … → client, from the VIP.
                Dir::ToClient => {
                    nat::rewrite_icmp_error(l3, f.vip.ip(), f.client.ip(), f.client, f.vip)
                }
                // Quoted: VIP → client becomes member → SNAT; outer: … → member, from SNAT.
                Dir::ToServer => {
                    nat::rewrite_icmp_error(l3, f.snat.ip(), f.server.ip(), f.server, f.snat)
                }
            },
            Kind::LaterFrag => nat::rewrite(l3, proto, src, dst, false),
            Kind::Whole | Kind::FirstFrag => {
                let Some(hl) = L3::parse(l3).map(|h| h.l4_off) else {
                    return;
                };
                if proto == nat::TCP {
                    let seg_extra = if plan.kind == Kind::Whole {
                        l3.len() - hl
                    } else {
                        0
                    };
                    let payload = &l3[hl..];
                    let end = self.track_tcp(plan.flow, plan.dir, payload, seg_extra);
                    nat::rewrite(l3, proto, src, dst, true);
                    if end {
                        self.end(plan.flow, End::Rst);
                    }
                } else {
                    nat::rewrite(l3, proto, src, dst, true);
                }
            }
        }
    }

    /// The shaping class of `id`'s packets under `dp`'s policy and the flow's hash
    /// (chosen once per flow and snapshot generation); `None` when nothing is shaped.
    pub fn shaping_class(&mut self, id: FlowId, dp: &Dataplane) -> Option<(u16, u32)> {
        let policy = dp.shaping.as_ref()?;
        let f = self.flows.get_mut(id)?;
        let class = match f.class {
            Some((generation, c)) if generation == dp.generation => c,
            _ => {
                let c = policy.classify(&f.vs.name, f.server, f.client.ip()) as u16;
                f.class = Some((dp.generation, c));
                c
            }
        };
        // The slot index is unique among live flows; spread it over the flow queues.
        Some((class, id.idx.wrapping_mul(0x9E37_79B9)))
    }

    /// Follows a TCP segment (`seg`: header and payload; `whole_len` the segment length
    /// when it is complete, 0 for a first fragment). Returns true when it is a RST that
    /// ends the flow.
    fn track_tcp(&mut self, id: FlowId, dir: Dir, seg: &[u8], whole_len: usize) -> bool {
        let Some(f) = self.flows.get_mut(id) else {
            return false;
        };
        let t = TcpPacket::new_unchecked(seg);
        let flags = t.flags();
        let (fin, syn, rst, ack) = (flags.fin(), flags.syn(), flags.rst(), flags.ack());
        if rst {
            return true;
        }
        let (seq, ackn, doff) = (t.seq(), t.ack(), t.header_len());
        let data = whole_len.saturating_sub(doff) as u32;
        let next = seq
            .wrapping_add(data)
            .wrapping_add(syn as u32)
            .wrapping_add(fin as u32);
        let before = f.state;
        match dir {
            Dir::ToServer => {
                if syn || seq_after(next, f.client_next) || f.client_next == 0 {
                    f.client_next = next;
                }
                if ack {
                    f.client_ack = ackn;
                    if f.state == FlowState::Syn && f.syn_ack_seen {
                        f.state = FlowState::Established;
                    }
                }
            }
            Dir::ToClient => {
                if syn && ack {
                    f.syn_ack_seen = true;
                }
                if !f.server_seen || syn || seq_after(next, f.server_next) {
                    f.server_next = next;
                }
                f.server_seen = true;
            }
        }
        if fin && f.state != FlowState::Closing {
            f.state = FlowState::Closing;
        }
        if f.state != before {
            self.flows.rearm(id);
        }
        false
    }

    fn end(&mut self, id: FlowId, why: End) {
        let Some(f) = self.flows.remove(id) else {
            return;
        };
        match why {
            End::Rst => self.counters.fastl4_flows_closed_by_rst.inc(),
            End::Reused => self.counters.fastl4_flows_expired.inc(),
            End::MemberDown => {
                self.counters.fastl4_flows_member_down.inc();
                if f.proto == nat::TCP {
                    let seq = if f.server_seen {
                        f.server_next
                    } else {
                        f.client_ack
                    };
                    let _ = self.resets.try_push(ResetSpec {
                        from: f.vip,
                        to: f.client,
                        seq,
                        ack: f.client_next,
                    });
                }
            }
        }
        closed(&f, self.worker);
    }

    /// Runs timers: idle flows expire; every [`SWEEP_INTERVAL`], a bounded part of the
    /// table is examined for flows whose member went down (reset and removed when their
    /// virtual server says so, at most `resets_per_poll` per sweep).
    pub fn poll(&mut self, now: Instant) {
        let counters = &self.counters;
        let worker = self.worker;
        self.flows.expire(now, |f| {
            counters.fastl4_flows_expired.inc();
            closed(&f, worker);
        });
        if now < self.next_sweep || self.flows.is_empty() {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let cap = self.flows.capacity();
        let mut budget = self.limits.resets_per_poll;
        for _ in 0..self.limits.sweep_per_poll.min(cap) {
            if budget == 0 || self.resets.is_full() {
                break;
            }
            let pos = self.sweep_pos;
            self.sweep_pos = (self.sweep_pos + 1) % cap;
            let Some((id, f)) = self.flows.slot(pos) else {
                continue;
            };
            if f.vs.reset_on_member_down && f.vs.member_down(f.member) {
                self.end(id, End::MemberDown);
                budget -= 1;
            }
        }
    }

    /// The next RST to send toward a client, if any.
    pub fn pop_reset(&mut self) -> Option<ResetSpec> {
        self.resets.pop()
    }

    /// The earliest time [`Fastl4::poll`] has work to do: the first flow timer, and
    /// while flows exist the next sweep for flows on members that went down. `Some`
    /// of [`Instant::ZERO`] (due at once) while resets wait to be sent.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        if !self.resets.is_empty() {
            return Some(Instant::ZERO);
        }
        let sweep = (!self.flows.is_empty()).then_some(self.next_sweep);
        crate::time::earliest([self.flows.next_deadline(), sweep])
    }
}

#[derive(Clone, Copy)]
enum End {
    Rst,
    /// A closing flow whose client port a new SYN reuses.
    Reused,
    MemberDown,
}

fn closed(f: &Flow, worker: usize) {
    if let Some(b) = &f.vs.lb {
        b.counts.release(MemberId(f.member as u16));
    }
    f.vs.counters.shard(worker).conns_closed.inc();
    f.vs.members[f.member]
        .counters
        .shard(worker)
        .conns_closed
        .inc();
}

/// The IP-layer facts fastl4 needs of an IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy)]
struct L3 {
    v6: bool,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    /// Fragment offset in units of 8 bytes (0: whole or first fragment).
    offset: u16,
    more: bool,
    ident: u32,
    /// Where the upper-layer header starts.
    l4_off: usize,
}

impl L3 {
    /// Reads a packet the pipeline has checked (`None` for an unknown version or, for
    /// IPv6, an extension-header chain the pipeline would have refused).
    #[inline]
    fn parse(l3: &[u8]) -> Option<L3> {
        match l3.first()? >> 4 {
            4 => {
                let ip = Ipv4Packet::new_unchecked(l3);
                Some(L3 {
                    v6: false,
                    proto: ip.protocol(),
                    src: ip.src().into(),
                    dst: ip.dst().into(),
                    offset: ip.frag_offset(),
                    more: ip.more_frags(),
                    ident: ip.ident() as u32,
                    l4_off: ip.header_len(),
                })
            }
            6 if l3.len() >= ipv6::HEADER_LEN => {
                let ip = Ipv6Packet::new_unchecked(l3);
                let up = ipv6::upper_layer(ip.next_header(), &l3[ipv6::HEADER_LEN..]).ok()?;
                Some(L3 {
                    v6: true,
                    proto: up.proto,
                    src: ip.src().into(),
                    dst: ip.dst().into(),
                    offset: up.frag.map_or(0, |f| f.offset),
                    more: up.frag.is_some_and(|f| f.more),
                    ident: up.frag.map_or(0, |f| f.ident),
                    l4_off: ipv6::HEADER_LEN + up.offset,
                })
            }
            _ => None,
        }
    }
}

/// Checks the L4 header of a packet bound for a fastl4 flow or virtual server.
fn check_l4(proto: u8, payload: &[u8], kind: Kind) -> Result<(), DropReason> {
    if proto == nat::TCP {
        let bad = DropReason::Fastl4TcpMalformed;
        if payload.len() < 20 {
            return Err(bad);
        }
        let doff = TcpPacket::new_unchecked(payload).header_len();
        if doff < 20 || (kind == Kind::Whole && doff > payload.len()) {
            return Err(bad);
        }
    } else {
        let bad = DropReason::Fastl4UdpMalformed;
        if payload.len() < 8 {
            return Err(bad);
        }
        let len = UdpPacket::new_unchecked(payload).len();
        if len < 8 || (kind == Kind::Whole && len > payload.len()) {
            return Err(bad);
        }
    }
    Ok(())
}
