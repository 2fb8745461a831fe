//! The source-port allocator of one worker: every connection or flow this worker opens
//! from one of its local addresses (fastl4 SNAT, health-monitor probes, later the
//! proxy's server-side connections) takes its source port here.
//!
//! A port is handed out only when the port driver's [`Steering`] brings the replies to
//! it back to this worker, and when nobody on this worker uses the pair (local address
//! and port, remote address and port) yet: the caller says who might (the TCP stack's
//! live connections and TIME-WAIT entries, fastl4's flows) through a `taken` check.
//! One range serves every user; no ports are set aside by convention. A request that
//! finds no port is counted (`source_ports_exhausted`) and the caller answers it (fastl4
//! resets the client; a monitor probe fails).
//!
//! Each local address has its own cursor, so consecutive connections from one address
//! walk the range instead of retrying the same ports. The cursors of different workers
//! start apart.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rouge_drivers::steer::Steering;

use crate::counters::PipelineCounters;
use crate::tcp::TcpStack;

/// The range of source ports the appliance chooses from by default: everything above
/// the well-known ports.
pub const DEFAULT_RANGE: (u16, u16) = (1024, 65535);

/// Local addresses whose cursors are kept without growing (self IPs and SNAT pools are
/// few); more are still served, their cursors allocated once.
const CURSORS: usize = 16;

/// What choosing a port on a worker needs: its allocator and its TCP stack (whose live
/// connections and TIME-WAIT entries hold ports too).
#[derive(Debug)]
pub struct SourcePorts<'a> {
    /// The worker's allocator.
    pub alloc: &'a mut PortAllocator,
    /// The worker's TCP stack.
    pub tcp: &'a TcpStack,
}

/// The source-port allocator of one worker.
#[derive(Debug)]
pub struct PortAllocator {
    worker: usize,
    steering: Steering,
    min: u16,
    max: u16,
    /// Next port to try, per local address.
    cursors: Vec<(IpAddr, u16)>,
    counters: Arc<PipelineCounters>,
}

impl PortAllocator {
    /// The allocator of worker `worker`, whose ports spread frames as `steering` says,
    /// over the ports `min..=max` (see [`DEFAULT_RANGE`]).
    pub fn new(
        worker: usize,
        steering: Steering,
        (min, max): (u16, u16),
        counters: Arc<PipelineCounters>,
    ) -> PortAllocator {
        let (min, max) = (min.min(max), max.max(min));
        PortAllocator {
            worker,
            steering,
            min,
            max,
            cursors: Vec::with_capacity(CURSORS),
            counters,
        }
    }

    /// Replaces the steering description (before any traffic).
    pub fn set_steering(&mut self, steering: Steering) {
        self.steering = steering;
    }

    /// The steering description ports are chosen under.
    pub fn steering(&self) -> Steering {
        self.steering
    }

    /// Replaces the port range (cursors outside it restart at its start).
    pub fn set_range(&mut self, (min, max): (u16, u16)) {
        (self.min, self.max) = (min.min(max), max.max(min));
    }

    /// A port of `local_ip` for a connection to `remote` whose replies reach this
    /// worker and for which `taken(port)` is false. `None` when there is none, counted
    /// as `source_ports_exhausted`: the caller answers the request that needed it.
    pub fn allocate(
        &mut self,
        local_ip: IpAddr,
        remote: SocketAddr,
        taken: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let got = self.find(local_ip, remote, taken);
        if got.is_none() {
            self.count_exhausted();
        }
        got
    }

    /// Counts a request that found no port (after [`PortAllocator::find`] failed for
    /// every address the request could use, as for a SNAT pool).
    pub fn count_exhausted(&self) {
        self.counters.source_ports_exhausted.inc();
    }

    /// As [`PortAllocator::allocate`], without counting a failure (the caller may try
    /// another local address first).
    pub fn find(
        &mut self,
        local_ip: IpAddr,
        remote: SocketAddr,
        mut taken: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (min, max) = (self.min as u32, self.max as u32);
        let span = max - min + 1;
        let cursor = self.cursor(local_ip);
        let start = (cursor as u32).saturating_sub(min) % span;
        for i in 0..span {
            let port = (min + (start + i) % span) as u16;
            let local = SocketAddr::new(local_ip, port);
            if !self.steering.replies_reach(local, remote, self.worker) || taken(port) {
                continue;
            }
            let next = if port as u32 == max {
                min as u16
            } else {
                port + 1
            };
            self.set_cursor(local_ip, next);
            return Some(port);
        }
        None
    }

    fn cursor(&mut self, ip: IpAddr) -> u16 {
        if let Some(&(_, c)) = self.cursors.iter().find(|(a, _)| *a == ip) {
            return c;
        }
        // Spread the workers' starting points over the range.
        let span = (self.max - self.min) as usize + 1;
        let start = self.min + ((self.worker * 7919) % span) as u16;
        self.cursors.push((ip, start));
        start
    }

    fn set_cursor(&mut self, ip: IpAddr, next: u16) {
        if let Some(c) = self.cursors.iter_mut().find(|(a, _)| *a == ip) {
            c.1 = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{ProfileId, StackConfig, TcpProfile};
    use crate::time::Instant;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn steerings(n: u32) -> [Steering; 2] {
        [
            Steering::FanoutXor { workers: n },
            Steering::SymmetricRss {
                queues: n,
                reta_size: 128,
            },
        ]
    }

    #[test]
    fn every_port_handed_out_brings_its_replies_back_to_its_worker() {
        let local = ip("198.18.2.1");
        let member = sock("198.18.2.11:80");
        for n in 1..=4 {
            for s in steerings(n) {
                for w in 0..n as usize {
                    let c = PipelineCounters::new_shared();
                    let mut a = PortAllocator::new(w, s, DEFAULT_RANGE, c.clone());
                    let mut given = Vec::new();
                    for _ in 0..200 {
                        let p = a.allocate(local, member, |p| given.contains(&p)).unwrap();
                        let reply = s.worker(member, SocketAddr::new(local, p));
                        assert_eq!(reply, Some(w), "{s:?} port {p}");
                        assert!(p >= 1024);
                        given.push(p);
                    }
                    assert_eq!(c.source_ports_exhausted.get(), 0);
                }
            }
        }
    }

    #[test]
    fn ports_of_live_and_time_wait_connections_are_never_handed_out() {
        let (local, member) = (ip("198.18.2.1"), sock("198.18.2.11:80"));
        let mut node = TcpStack::new(StackConfig::default(), TcpProfile::default());
        let mut lb = TcpStack::new(StackConfig::default(), TcpProfile::default());
        let l = node.listen(member, 16, ProfileId::DEFAULT).unwrap();
        let c = PipelineCounters::new_shared();
        // A range of 8 ports, one worker: every port is a candidate.
        let mut a = PortAllocator::new(0, Steering::Opaque, (5000, 5007), c.clone());
        let now = Instant::from_secs(1);
        let mut seg = [0u8; 1600];
        let mut pump = |lb: &mut TcpStack, node: &mut TcpStack| {
            for _ in 0..8 {
                while let Some(t) = lb.poll_transmit(now, &mut seg) {
                    node.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                }
                while let Some(t) = node.poll_transmit(now, &mut seg) {
                    lb.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                }
            }
        };
        // Two connections stay open, two are closed actively (TIME-WAIT on our side).
        let mut conns = Vec::new();
        for _ in 0..4 {
            let p = a
                .allocate(local, member, |p| {
                    lb.in_use(SocketAddr::new(local, p), member)
                })
                .unwrap();
            let h = lb
                .connect(now, SocketAddr::new(local, p), member, ProfileId::DEFAULT)
                .unwrap();
            conns.push((p, h));
        }
        pump(&mut lb, &mut node);
        while node.accept(l).is_some() {}
        for &(_, h) in &conns[2..] {
            lb.close(now, h).unwrap();
        }
        pump(&mut lb, &mut node);
        // The peer closes too, so ours pass through FIN-WAIT-2 into TIME-WAIT.
        while let Some(e) = node.poll_event() {
            if let crate::tcp::Event::PeerClosed(h) = e {
                let _ = node.close(now, h);
            }
        }
        pump(&mut lb, &mut node);
        assert_eq!(lb.time_wait_count(), 2, "two of ours in TIME-WAIT");
        let used: Vec<u16> = conns.iter().map(|&(p, _)| p).collect();
        for &p in &used {
            assert!(lb.in_use(SocketAddr::new(local, p), member), "port {p}");
        }
        // The other four ports of the range, then exhaustion: never one of the four.
        let mut rest = Vec::new();
        for _ in 0..4 {
            let p = a
                .allocate(local, member, |p| {
                    lb.in_use(SocketAddr::new(local, p), member) || rest.contains(&p)
                })
                .unwrap();
            assert!(!used.contains(&p), "port {p} is in use");
            rest.push(p);
        }
        let again = a.allocate(local, member, |p| {
            lb.in_use(SocketAddr::new(local, p), member) || rest.contains(&p)
        });
        assert_eq!(again, None);
        assert_eq!(c.source_ports_exhausted.get(), 1);
        // Another remote address has the whole range.
        let other = sock("198.18.2.12:80");
        assert!(a
            .allocate(local, other, |p| lb
                .in_use(SocketAddr::new(local, p), other))
            .is_some());
    }

    #[test]
    fn exhaustion_is_counted_and_each_address_has_its_own_cursor() {
        let c = PipelineCounters::new_shared();
        let member = sock("198.18.2.11:80");
        let mut a = PortAllocator::new(0, Steering::Opaque, (2000, 2003), c.clone());
        assert_eq!(a.allocate(ip("198.18.2.1"), member, |_| true), None);
        assert_eq!(a.allocate(ip("198.18.2.1"), member, |_| true), None);
        assert_eq!(c.source_ports_exhausted.get(), 2);
        assert_eq!(a.allocate(ip("198.18.2.1"), member, |_| false), Some(2000));
        assert_eq!(a.allocate(ip("198.18.2.1"), member, |_| false), Some(2001));
        assert_eq!(a.allocate(ip("198.18.2.2"), member, |_| false), Some(2000));
        assert_eq!(
            a.allocate(ip("198.18.2.1"), member, |p| p == 2002),
            Some(2003)
        );
        assert_eq!(
            a.allocate(ip("198.18.2.1"), member, |_| false),
            Some(2000),
            "wraps"
        );
        // Under a steering that sends every reply elsewhere, nothing fits.
        let mut b = PortAllocator::new(
            5,
            Steering::FanoutXor { workers: 2 },
            (2000, 2003),
            c.clone(),
        );
        assert_eq!(b.allocate(ip("198.18.2.1"), member, |_| false), None);
        assert_eq!(c.source_ports_exhausted.get(), 3);
    }
}
