//! The monitor engine against a second TCP stack playing the storage node, with a
//! virtual clock: up after N successes, down within `timeout` when refused, silent or
//! answering wrongly, with the reason reported.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rouge_drivers::steer::Steering;

use super::*;
use crate::counters::PipelineCounters;
use crate::ports::DEFAULT_RANGE;
use crate::tcp::{ListenerHandle, StackConfig, TcpProfile};

const SELF: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 2, 1));
const NODE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 2, 11));

#[derive(Clone, Copy, PartialEq)]
enum Node {
    Ok,
    Error500,
    Refuse,
    Silent,
}

struct Bed {
    lb: TcpStack,
    node: TcpStack,
    listener: Option<ListenerHandle>,
    mode: Node,
    mon: Monitors,
    ports: PortAllocator,
    /// Ports used by something other than the TCP stack (fastl4 flows in the pipeline).
    other: fn(SocketAddr, SocketAddr) -> bool,
    /// Local ports of the probes started.
    probe_ports: Vec<u16>,
    now: Instant,
    log: Vec<(Instant, Transition)>,
}

fn spec(kind: ProbeKind, up_after: u32) -> MonitorSpec {
    MonitorSpec {
        name: "m".into(),
        kind,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
        up_after,
    }
}

fn http() -> ProbeKind {
    ProbeKind::Http {
        send: "GET / HTTP/1.0\r\n\r\n".into(),
        receive: "200".into(),
    }
}

impl Bed {
    fn new(kind: ProbeKind, up_after: u32, mode: Node) -> Bed {
        let cfg = |s| StackConfig {
            secret: (s, s),
            ..StackConfig::default()
        };
        let mut node = TcpStack::new(cfg(2), TcpProfile::default());
        let listener = (mode != Node::Refuse).then(|| {
            node.listen(SocketAddr::new(NODE, 80), 16, ProfileId::DEFAULT)
                .unwrap()
        });
        let mut mon = Monitors::new();
        let now = Instant::from_secs(10);
        mon.set_targets(
            now,
            vec![Target {
                key: (0, 0),
                addr: SocketAddr::new(NODE, 80),
                source: SELF,
                spec: spec(kind, up_after),
            }],
        );
        Bed {
            lb: TcpStack::new(cfg(1), TcpProfile::default()),
            node,
            listener,
            mode,
            mon,
            ports: PortAllocator::new(
                0,
                Steering::Opaque,
                DEFAULT_RANGE,
                PipelineCounters::new_shared(),
            ),
            other: |_, _| false,
            probe_ports: Vec::new(),
            now,
            log: Vec::new(),
        }
    }

    fn step(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        let mut out = Vec::new();
        let other = self.other;
        self.mon
            .poll(now, &mut self.lb, &mut self.ports, &other, &mut out);
        for &h in self.mon.probes.keys() {
            if let Some((local, _)) = self.lb.addresses(h) {
                if !self.probe_ports.contains(&local.port()) {
                    self.probe_ports.push(local.port());
                }
            }
        }
        let mut seg = vec![0u8; 2048];
        for _ in 0..8 {
            while let Some(t) = self.lb.poll_transmit(now, &mut seg) {
                if self.mode != Node::Silent {
                    self.node.handle_segment(now, t.src, t.dst, &seg[..t.len]);
                }
            }
            // The node: answer each request once it is complete, then close.
            while let Some(ev) = self.node.poll_event() {
                match ev {
                    Event::Accepted(l) => while self.node.accept(l).is_some() {},
                    Event::Readable(h) | Event::PeerClosed(h) => {
                        let mut b = [0u8; 512];
                        while let Ok(n) = self.node.read(h, &mut b) {
                            if n == 0 {
                                break;
                            }
                        }
                        if matches!(ev, Event::PeerClosed(_)) {
                            let answer: &[u8] = if self.mode == Node::Error500 {
                                b"HTTP/1.0 500 Oops\r\n\r\n"
                            } else {
                                b"HTTP/1.0 200 OK\r\n\r\n"
                            };
                            let _ = self.node.write(h, answer);
                            let _ = self.node.close(now, h);
                        }
                    }
                    Event::Closed(h) => {
                        let _ = self.node.close(now, h);
                    }
                    _ => {}
                }
            }
            while let Some(t) = self.node.poll_transmit(now, &mut seg) {
                self.lb.handle_segment(now, t.src, t.dst, &seg[..t.len]);
            }
            while let Some(ev) = self.lb.poll_event() {
                self.mon.on_event(now, &mut self.lb, ev, &mut out);
            }
        }
        self.lb.handle_timeout(now);
        self.node.handle_timeout(now);
        self.log.extend(out.into_iter().map(|t| (now, t)));
    }

    fn run(&mut self, secs: u64) {
        for _ in 0..secs * 10 {
            self.step(Duration::from_millis(100));
        }
    }

    fn status(&self) -> MonitorStatus {
        self.mon.statuses()[0].2
    }
}

#[test]
fn http_member_comes_up_after_its_first_good_answer() {
    let mut bed = Bed::new(http(), 1, Node::Ok);
    assert_eq!(bed.status(), MonitorStatus::Unchecked);
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up);
    assert_eq!(bed.log.len(), 1);
    assert!(
        bed.log[0].1.reason.contains("1 consecutive"),
        "{:?}",
        bed.log
    );
    bed.run(10);
    assert_eq!(bed.status(), MonitorStatus::Up, "stays up");
    assert_eq!(bed.log.len(), 1, "no flapping");
    let c = bed.mon.counters();
    assert!(
        c.probes >= 10 && c.successes >= 10 && c.failures == 0,
        "{c:?}"
    );
}

#[test]
fn up_after_counts_consecutive_successes() {
    let mut bed = Bed::new(http(), 3, Node::Ok);
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Unchecked);
    bed.run(1);
    assert_eq!(
        bed.status(),
        MonitorStatus::Unchecked,
        "two successes are not enough"
    );
    bed.run(1);
    assert_eq!(bed.status(), MonitorStatus::Up);
}

#[test]
fn a_refusing_member_goes_down_within_its_timeout_with_the_reason() {
    let mut bed = Bed::new(http(), 1, Node::Ok);
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up);
    let last_up = bed.now;
    // The server process dies: the node refuses connections.
    let l = bed.listener.take().unwrap();
    bed.node.unlisten(bed.now, l);
    bed.run(5);
    assert_eq!(bed.status(), MonitorStatus::Down);
    let (at, t) = bed
        .log
        .iter()
        .find(|(_, t)| t.status == MonitorStatus::Down)
        .unwrap();
    let after = *at - last_up;
    assert!(
        after >= Duration::from_secs(3) && after <= Duration::from_millis(3200),
        "down after {after:?}"
    );
    assert!(t.reason.contains("connection refused"), "{}", t.reason);
    // And back up when it listens again.
    bed.listener = Some(
        bed.node
            .listen(SocketAddr::new(NODE, 80), 16, ProfileId::DEFAULT)
            .unwrap(),
    );
    bed.run(2);
    assert_eq!(bed.status(), MonitorStatus::Up);
}

#[test]
fn wrong_answers_and_silence_are_failures() {
    for (mode, why) in [
        (Node::Error500, "receive string"),
        (Node::Silent, "timed out"),
    ] {
        let mut bed = Bed::new(http(), 1, mode);
        bed.run(4);
        assert_eq!(bed.status(), MonitorStatus::Down, "{why}");
        let down = &bed
            .log
            .iter()
            .find(|(_, t)| t.status == MonitorStatus::Down)
            .unwrap()
            .1;
        assert!(down.reason.contains(why), "{}", down.reason);
        assert!(bed.mon.counters().failures >= 2);
    }
}

#[test]
fn tcp_monitors_check_the_handshake_only() {
    let mut bed = Bed::new(ProbeKind::Tcp, 1, Node::Error500);
    bed.step(Duration::from_millis(10));
    assert_eq!(
        bed.status(),
        MonitorStatus::Up,
        "a 500 does not matter to a tcp monitor"
    );
    let mut bed = Bed::new(ProbeKind::Tcp, 1, Node::Refuse);
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
}

#[test]
fn source_ports_follow_the_steering_and_targets_keep_state_across_changes() {
    let mut bed = Bed::new(http(), 1, Node::Ok);
    let steering = Steering::FanoutXor { workers: 3 };
    bed.mon = Monitors::new();
    bed.ports = PortAllocator::new(2, steering, DEFAULT_RANGE, PipelineCounters::new_shared());
    let t = Target {
        key: (0, 0),
        addr: SocketAddr::new(NODE, 80),
        source: SELF,
        spec: spec(http(), 1),
    };
    bed.mon.set_targets(bed.now, vec![t.clone()]);
    bed.run(3);
    assert_eq!(bed.status(), MonitorStatus::Up);
    assert!(bed.lb.counters().active_opens >= 3);
    assert!(bed.probe_ports.len() >= 3, "{:?}", bed.probe_ports);
    for &p in &bed.probe_ports {
        let reply = steering.worker(t.addr, SocketAddr::new(SELF, p));
        assert_eq!(reply, Some(2), "port {p}");
    }
    // Same target again: status kept; a new target starts unchecked.
    let other = Target {
        key: (0, 1),
        addr: SocketAddr::new(NODE, 81),
        ..t.clone()
    };
    bed.mon.set_targets(bed.now, vec![t, other]);
    let st = bed.mon.statuses();
    assert_eq!(st[0].2, MonitorStatus::Up);
    assert_eq!(st[1].2, MonitorStatus::Unchecked);
}

#[test]
fn ports_taken_elsewhere_are_skipped_and_exhaustion_fails_the_probe() {
    // Ports other than 5003 are held by fastl4 flows: every probe uses 5003.
    let mut bed = Bed::new(ProbeKind::Tcp, 1, Node::Ok);
    let counters = PipelineCounters::new_shared();
    bed.ports = PortAllocator::new(0, Steering::Opaque, (5000, 5007), counters.clone());
    bed.other = |local, _| local.port() != 5003;
    bed.run(1);
    assert_eq!(bed.status(), MonitorStatus::Up);
    assert_eq!(bed.probe_ports, vec![5003]);
    assert_eq!(counters.source_ports_exhausted.get(), 0);
    // Every port taken: the probes fail, are counted, and the member goes down.
    let mut bed = Bed::new(ProbeKind::Tcp, 1, Node::Ok);
    bed.ports = PortAllocator::new(0, Steering::Opaque, (5000, 5007), counters.clone());
    bed.other = |_, _| true;
    bed.run(5);
    assert_eq!(bed.status(), MonitorStatus::Down);
    assert!(counters.source_ports_exhausted.get() >= 3);
    assert!(bed.mon.counters().failures >= 3);
    assert_eq!(bed.lb.counters().active_opens, 0);
    assert!(
        bed.log
            .iter()
            .any(|(_, t)| t.reason.contains("no free source port")),
        "{:?}",
        bed.log
    );
}
