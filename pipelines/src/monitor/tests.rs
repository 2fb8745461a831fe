//! The monitor engine against a second TCP stack playing the storage node, with a
//! virtual clock: up after N successes, down within `timeout` when refused, silent or
//! answering wrongly, with the reason reported. For https the node answers TLS with
//! Rouge's own server session and the test certificates (`appliance/configs/tls/`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rouge_drivers::steer::Steering;

use super::*;
use crate::counters::PipelineCounters;
use crate::ports::DEFAULT_RANGE;
use crate::tcp::{ListenerHandle, StackConfig, TcpProfile};
use crate::tls::{
    CaBundle, ClientAuth, ClientProfile, ServerProfile, TicketKeys, TlsAlert, TlsIdentity,
    TlsServerConfig, WallClock,
};

const SELF: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 2, 1));
const NODE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 2, 11));

#[derive(Clone, Copy, PartialEq)]
enum Node {
    Ok,
    Error500,
    Refuse,
    Silent,
    /// Completes the TCP handshake, then never answers.
    Mute,
    /// An S3 server without credentials: `403 AccessDenied` to a complete request
    /// head, without waiting for the client's FIN.
    S3Denied,
    /// Something that is not HTTP (an SSH server's banner) to a complete request.
    Garbage,
    /// Resets the connection when a complete request head arrives.
    ResetOnRequest,
}

/// What an S3 server answers a request without credentials.
const ACCESS_DENIED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 97\r\nConnection: close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message/></Error>";

/// The node's side of a TLS connection: the session, the request decrypted so far.
struct NodeTls {
    session: TlsSession,
    request: Vec<u8>,
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
    /// The node answers TLS with this configuration (https).
    node_tls: Option<TlsServerConfig>,
    node_sessions: HashMap<ConnHandle, NodeTls>,
    /// What the node's TLS sessions saw: requests decrypted (and the SNI of each),
    /// alerts received.
    node_requests: Vec<Vec<u8>>,
    node_alerts: Vec<TlsAlert>,
    node_sni: Vec<Option<String>>,
    /// The node's plain connections (S3 modes): request bytes so far.
    node_plain: HashMap<ConnHandle, Vec<u8>>,
    /// Requests whose sender had closed its side when the node answered (S3 modes).
    node_half_closed: usize,
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

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../appliance/configs/tls")
}

fn ident(name: &str) -> TlsIdentity {
    let d = tls_dir();
    TlsIdentity::load(
        &d.join(format!("{name}.crt")),
        &d.join(format!("{name}.key")),
    )
    .unwrap()
}

fn ca(name: &str) -> CaBundle {
    CaBundle::load(&tls_dir().join(format!("{name}.crt"))).unwrap()
}

/// A wall clock an hour into the test certificates' validity.
fn clock() -> WallClock {
    let (nb, _) = ident("member").validity().expect("validity");
    WallClock::at(nb + 3600)
}

/// The node's TLS server presenting `cert` (`member`: the test CA's certificate for
/// 198.18.2.11-14; `other`: another CA's for 198.18.2.11).
fn node_tls(cert: &str) -> ServerProfile {
    ServerProfile {
        identities: vec![ident(cert)],
        ..ServerProfile::default()
    }
}

/// An https monitor with `profile` (the server TLS profile, here named `members`).
fn https_with(profile: ClientProfile) -> ProbeKind {
    let cfg = crate::tls::TlsClientConfig::new(&profile, clock()).unwrap();
    ProbeKind::Https {
        send: "GET /health HTTP/1.0\r\n\r\n".into(),
        receive: "200".into(),
        tls: ProbeTls {
            profile: "members".into(),
            config: std::sync::Arc::new(cfg),
        },
    }
}

/// An https monitor verifying against the test CA.
fn https() -> ProbeKind {
    https_with(ClientProfile {
        ca: Some(ca("ca")),
        ..ClientProfile::default()
    })
}

impl Bed {
    fn https(kind: ProbeKind, mode: Node, server: ServerProfile) -> Bed {
        let mut bed = Bed::new(kind, 1, mode);
        let clk = clock();
        let keys = TicketKeys::new(clk.clone(), 3600).unwrap();
        bed.node_tls = Some(TlsServerConfig::new(&server, keys, clk).unwrap());
        bed.relisten(443);
        bed
    }

    /// Moves the node's listener to `port` and the target with it.
    fn relisten(&mut self, port: u16) {
        if let Some(l) = self.listener.take() {
            self.node.unlisten(self.now, l);
            self.listener = Some(
                self.node
                    .listen(SocketAddr::new(NODE, port), 16, ProfileId::DEFAULT)
                    .unwrap(),
            );
        }
        let mut t = self.mon.watches[0].target.clone();
        t.addr = SocketAddr::new(NODE, port);
        self.mon = Monitors::new();
        self.mon.set_targets(self.now, vec![t]);
    }

    fn stats(&self) -> &MonitorStats {
        &self.mon.monitor_stats()[0]
    }

    fn down(&self) -> &Transition {
        &self
            .log
            .iter()
            .find(|(_, t)| t.status == MonitorStatus::Down)
            .unwrap_or_else(|| panic!("no down transition: {:?}", self.log))
            .1
    }

    fn answer(&self) -> &'static [u8] {
        match self.mode {
            Node::Error500 => b"HTTP/1.0 500 Oops\r\n\r\n",
            Node::S3Denied => ACCESS_DENIED,
            Node::Garbage => {
                b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nInvalid SSH identification string.\r\n"
            }
            _ => b"HTTP/1.0 200 OK\r\n\r\n",
        }
    }

    /// The node's side of a plain connection in an S3 mode: answer (or reset) once the
    /// request head is complete, whether or not the client closed its side.
    fn node_plain_input(&mut self, now: Instant, h: ConnHandle) {
        let answer = self.answer();
        let req = self.node_plain.entry(h).or_default();
        let mut b = [0u8; 512];
        while let Ok(n) = self.node.read(h, &mut b) {
            if n == 0 {
                break;
            }
            req.extend_from_slice(&b[..n]);
        }
        if !contains(req, b"\r\n\r\n") {
            return;
        }
        let req = self.node_plain.remove(&h).unwrap_or_default();
        self.node_requests.push(req);
        if self.node.read_closed(h) {
            self.node_half_closed += 1;
        }
        if self.mode == Node::ResetOnRequest {
            let _ = self.node.abort(now, h);
            return;
        }
        let _ = self.node.write(h, answer);
        let _ = self.node.close(now, h);
    }

    /// The node's TLS side of connection `h`: decrypt, answer a complete request,
    /// close; on an error send the alert and close.
    fn node_tls_input(&mut self, now: Instant, h: ConnHandle) {
        let answer = self.answer();
        let Some(t) = self.node_sessions.get_mut(&h) else {
            return;
        };
        let mut b = [0u8; 2048];
        let mut failed = None;
        while let Ok(n) = self.node.read(h, &mut b) {
            if n == 0 {
                break;
            }
            match t.session.feed_ciphertext(&b[..n]) {
                Ok(_) => {
                    t.request.extend_from_slice(t.session.plaintext());
                    let all = t.session.plaintext().len();
                    t.session.consume_plaintext(all);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if !t.session.is_handshaking() && contains(&t.request, b"\r\n\r\n") {
            self.node_requests.push(std::mem::take(&mut t.request));
            self.node_sni.push(t.session.sni().map(str::to_string));
            t.session.write_plaintext(answer).unwrap();
            t.session.close().unwrap();
            let out = t.session.pending_ciphertext().to_vec();
            let _ = self.node.write(h, &out);
            let _ = self.node.close(now, h);
            self.node_sessions.remove(&h);
            return;
        }
        let out = t.session.pending_ciphertext().to_vec();
        t.session.consume_ciphertext(out.len());
        let _ = self.node.write(h, &out);
        if let Some(e) = failed {
            if let Some(a) = e.alert_received {
                self.node_alerts.push(a);
            }
            let _ = self.node.close(now, h);
            self.node_sessions.remove(&h);
        }
    }

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
            node_tls: None,
            node_sessions: HashMap::new(),
            node_requests: Vec::new(),
            node_alerts: Vec::new(),
            node_sni: Vec::new(),
            node_plain: HashMap::new(),
            node_half_closed: 0,
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
                    Event::Accepted(l) => {
                        while let Some(h) = self.node.accept(l) {
                            if let (Some(cfg), false) = (&self.node_tls, self.mode == Node::Mute) {
                                let session = TlsSession::server(cfg, now).unwrap();
                                let t = NodeTls {
                                    session,
                                    request: Vec::new(),
                                };
                                self.node_sessions.insert(h, t);
                            }
                        }
                    }
                    Event::Readable(_) | Event::PeerClosed(_) if self.mode == Node::Mute => {}
                    Event::Readable(h) | Event::PeerClosed(h) if self.node_tls.is_some() => {
                        self.node_tls_input(now, h)
                    }
                    Event::Readable(h) | Event::PeerClosed(h)
                        if matches!(
                            self.mode,
                            Node::S3Denied | Node::Garbage | Node::ResetOnRequest
                        ) =>
                    {
                        self.node_plain_input(now, h)
                    }
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

// ---- https ----

#[test]
fn https_member_comes_up_over_a_verified_handshake() {
    let mut bed = Bed::https(https(), Node::Ok, node_tls("member"));
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up, "{:?}", bed.log);
    // The request reached the node decrypted; no SNI for an address.
    assert_eq!(
        bed.node_requests,
        vec![b"GET /health HTTP/1.0\r\n\r\n".to_vec()]
    );
    assert_eq!(bed.node_sni, vec![None]);
    bed.run(5);
    assert_eq!(bed.status(), MonitorStatus::Up);
    assert!(bed.mon.failing().is_empty());
    assert_eq!(bed.log.len(), 1, "no flapping: {:?}", bed.log);
    let st = bed.stats();
    assert!(st.probes >= 5 && st.successes == st.probes, "{st:?}");
    assert_eq!(st.failures_total(), 0, "{st:?}");
    // Every probe is a full handshake (nothing resumed): each one verified.
    assert_eq!(bed.node_requests.len() as u64, st.successes);
}

#[test]
fn a_member_certificate_from_another_ca_is_down_with_reason_certificate() {
    let mut bed = Bed::https(https(), Node::Ok, node_tls("other"));
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    let down = bed.down();
    assert_eq!(down.failure, Some(ProbeFailure::Certificate), "{down:?}");
    assert!(down.reason.contains("certificate"), "{}", down.reason);
    assert!(down.reason.contains("unknown_ca"), "{}", down.reason);
    let st = bed.stats();
    assert!(st.failed(ProbeFailure::Certificate) >= 3, "{st:?}");
    assert_eq!(st.failures_total(), st.failed(ProbeFailure::Certificate));
    assert_eq!(st.successes, 0);
    assert_eq!(
        bed.mon.failing(),
        vec![(
            (0, 0),
            SocketAddr::new(NODE, 443),
            ProbeFailure::Certificate
        )]
    );
    // The member was told why, and never saw the request.
    assert!(
        bed.node_alerts.contains(&TlsAlert::UNKNOWN_CA),
        "{:?}",
        bed.node_alerts
    );
    assert!(bed.node_requests.is_empty());
    // The same member with verification off (written explicitly) is up.
    let off = https_with(ClientProfile {
        verify: false,
        ..ClientProfile::default()
    });
    let mut bed = Bed::https(off, Node::Ok, node_tls("other"));
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up);
}

#[test]
fn the_server_name_of_the_profile_is_sent_and_verified() {
    let named = |n: &str| {
        https_with(ClientProfile {
            ca: Some(ca("ca")),
            server_name: Some(n.into()),
            ..ClientProfile::default()
        })
    };
    let mut bed = Bed::https(named("member.rouge.test"), Node::Ok, node_tls("member"));
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up);
    assert_eq!(bed.node_sni, vec![Some("member.rouge.test".to_string())]);
    // A name the member's certificate does not cover: refused.
    let mut bed = Bed::https(named("s3.rouge.test"), Node::Ok, node_tls("member"));
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    assert_eq!(bed.down().failure, Some(ProbeFailure::Certificate));
}

#[test]
fn a_tls_handshake_that_never_finishes_is_a_timeout() {
    let slow = https_with(ClientProfile {
        ca: Some(ca("ca")),
        handshake_timeout: Duration::from_millis(500),
        ..ClientProfile::default()
    });
    let mut bed = Bed::https(slow, Node::Mute, node_tls("member"));
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    let down = bed.down();
    assert_eq!(down.failure, Some(ProbeFailure::Timeout), "{down:?}");
    // The profile's handshake timeout ended it, before the probe's own deadline (1 s).
    assert!(down.reason.contains("handshake-timeout"), "{}", down.reason);
    let st = bed.stats();
    assert!(st.failed(ProbeFailure::Timeout) >= 3, "{st:?}");
    assert_eq!(st.failures_total(), st.failed(ProbeFailure::Timeout));
    // The TCP handshake did complete: this is not a silent member.
    assert!(bed.node.counters().passive_opens >= 3);
}

#[test]
fn an_https_answer_without_the_receive_string_is_a_response_failure() {
    let mut bed = Bed::https(https(), Node::Error500, node_tls("member"));
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    let down = bed.down();
    assert_eq!(down.failure, Some(ProbeFailure::Response), "{down:?}");
    assert!(down.reason.contains("receive string"), "{}", down.reason);
    // The handshakes succeeded and the requests went through.
    assert!(bed.node_requests.len() >= 3);
    assert!(bed.stats().failed(ProbeFailure::Response) >= 3);
}

#[test]
fn an_alert_from_the_member_is_a_handshake_failure_and_refusal_is_tcp() {
    // The member insists on a client certificate the monitor does not have.
    let strict = ServerProfile {
        client_auth: ClientAuth::Require,
        client_ca: Some(ca("ca")),
        ..node_tls("member")
    };
    let mut bed = Bed::https(https(), Node::Ok, strict);
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    let down = bed.down();
    assert_eq!(down.failure, Some(ProbeFailure::Handshake), "{down:?}");
    assert!(down.reason.contains("received"), "{}", down.reason);
    let mut bed = Bed::https(https(), Node::Refuse, node_tls("member"));
    bed.run(4);
    assert_eq!(bed.down().failure, Some(ProbeFailure::Tcp));
    assert!(bed.stats().failed(ProbeFailure::Tcp) >= 3);
}

#[test]
fn a_rebuilt_tls_profile_of_the_same_name_keeps_the_status() {
    let mut bed = Bed::https(https(), Node::Ok, node_tls("member"));
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up);
    // A configuration change rebuilds the profile (same name, new build).
    let mut t = bed.mon.watches[0].target.clone();
    t.spec.kind = https();
    bed.mon.set_targets(bed.now, vec![t.clone()]);
    assert_eq!(bed.status(), MonitorStatus::Up);
    bed.run(2);
    assert_eq!(bed.log.len(), 1, "{:?}", bed.log);
    // A profile of another name starts over.
    if let ProbeKind::Https { tls, .. } = &mut t.spec.kind {
        tls.profile = "other".into();
    }
    bed.mon.set_targets(bed.now, vec![t]);
    assert_eq!(bed.status(), MonitorStatus::Unchecked);
}

#[test]
fn targets_set_before_the_clock_count_their_timeout_from_the_first_poll() {
    // The host sets targets at Instant::ZERO (it has no clock then); the worker's
    // clock is far later. A silent member must not be down before `timeout`.
    let mut bed = Bed::new(http(), 1, Node::Silent);
    let t = bed.mon.watches[0].target.clone();
    bed.mon = Monitors::new();
    bed.mon.set_targets(Instant::ZERO, vec![t]);
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Unchecked, "{:?}", bed.log);
    assert_eq!(bed.mon.counters().probes, 1, "probed at once");
    bed.run(2);
    assert_eq!(bed.status(), MonitorStatus::Unchecked, "{:?}", bed.log);
    bed.run(2);
    assert_eq!(bed.status(), MonitorStatus::Down);
    assert!(
        bed.down()
            .reason
            .starts_with("no successful probe for 3000 ms"),
        "{}",
        bed.down().reason
    );
}

/// An s3 monitor of the node on port 80 (`tls`: with the test CA's profile).
fn s3(tls: bool) -> ProbeKind {
    let tls = tls.then(|| match https() {
        ProbeKind::Https { tls, .. } => tls,
        _ => unreachable!(),
    });
    ProbeKind::S3 {
        send: "GET / HTTP/1.1\r\nHost: 198.18.2.11:80\r\nConnection: close\r\n\r\n".into(),
        tls,
    }
}

#[test]
fn an_s3_member_answering_access_denied_is_up() {
    let mut bed = Bed::new(s3(false), 1, Node::S3Denied);
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up, "{:?}", bed.log);
    bed.run(5);
    assert_eq!(bed.status(), MonitorStatus::Up);
    assert_eq!(bed.log.len(), 1, "no flapping: {:?}", bed.log);
    assert!(bed.node_requests.len() >= 5);
    assert!(
        bed.node_requests[0].starts_with(b"GET / HTTP/1.1\r\nHost: 198.18.2.11:80\r\n"),
        "{}",
        bed.node_requests[0].escape_ascii()
    );
    assert_eq!(bed.stats().failures_total(), 0);
    assert_eq!(bed.node_half_closed, 0, "the probe keeps its side open");
    // The same monitor with an http receive string of `200` would call it down.
    let mut bed = Bed::new(
        ProbeKind::Http {
            send: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            receive: "200".into(),
        },
        1,
        Node::S3Denied,
    );
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    assert!(bed.node_half_closed > 0, "an http probe closes its side");
}

#[test]
fn an_s3_member_answering_anything_but_http_is_down_with_reason_response() {
    let mut bed = Bed::new(s3(false), 1, Node::Garbage);
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    let down = bed.down();
    assert_eq!(down.failure, Some(ProbeFailure::Response), "{down:?}");
    assert!(down.reason.contains("not HTTP/1.x"), "{}", down.reason);
    assert!(down.reason.contains("SSH-2.0"), "{}", down.reason);
    assert!(bed.stats().failed(ProbeFailure::Response) >= 3);
}

#[test]
fn an_s3_member_that_resets_refuses_or_stays_silent_is_down() {
    for (mode, reason, words) in [
        (Node::ResetOnRequest, ProbeFailure::Tcp, "connection reset"),
        (Node::Refuse, ProbeFailure::Tcp, "connection refused"),
        (
            Node::Mute,
            ProbeFailure::Timeout,
            "waiting for the response",
        ),
        (Node::Silent, ProbeFailure::Timeout, "TCP handshake"),
    ] {
        let mut bed = Bed::new(s3(false), 1, mode);
        bed.run(4);
        assert_eq!(bed.status(), MonitorStatus::Down, "{words}");
        let down = bed.down();
        assert_eq!(down.failure, Some(reason), "{down:?}");
        assert!(down.reason.contains(words), "{}", down.reason);
    }
    // A member that comes back is up again.
    let mut bed = Bed::new(s3(false), 1, Node::ResetOnRequest);
    bed.run(4);
    assert_eq!(bed.status(), MonitorStatus::Down);
    bed.mode = Node::S3Denied;
    bed.run(2);
    assert_eq!(bed.status(), MonitorStatus::Up);
}

#[test]
fn an_https_s3_member_is_checked_inside_verified_tls() {
    let mut bed = Bed::https(s3(true), Node::S3Denied, node_tls("member"));
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up, "{:?}", bed.log);
    assert!(bed.node_requests[0].starts_with(b"GET / HTTP/1.1\r\n"));
    // Not HTTP inside TLS is a response failure; a foreign certificate is refused.
    let mut bed = Bed::https(s3(true), Node::Garbage, node_tls("member"));
    bed.run(4);
    assert_eq!(bed.down().failure, Some(ProbeFailure::Response));
    let mut bed = Bed::https(s3(true), Node::S3Denied, node_tls("other"));
    bed.run(4);
    assert_eq!(bed.down().failure, Some(ProbeFailure::Certificate));
}

#[test]
fn an_s3_monitor_keeps_its_status_across_a_rebuilt_tls_profile() {
    let mut bed = Bed::https(s3(true), Node::S3Denied, node_tls("member"));
    bed.step(Duration::from_millis(10));
    assert_eq!(bed.status(), MonitorStatus::Up);
    let mut t = bed.mon.watches[0].target.clone();
    t.spec.kind = s3(true);
    bed.mon.set_targets(bed.now, vec![t.clone()]);
    assert_eq!(bed.status(), MonitorStatus::Up, "same profile name");
    if let ProbeKind::S3 { send, .. } = &mut t.spec.kind {
        send.push('X');
    }
    bed.mon.set_targets(bed.now, vec![t]);
    assert_eq!(bed.status(), MonitorStatus::Unchecked, "another request");
}

#[test]
fn a_member_marked_down_by_passive_health_comes_back_after_up_after_probes() {
    let mut bed = Bed::new(http(), 2, Node::Ok);
    bed.step(Duration::from_millis(10));
    bed.run(2);
    assert_eq!(bed.status(), MonitorStatus::Up);
    let mut out = Vec::new();
    bed.mon
        .passive_down((0, 0), "passive health: test", &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].status, MonitorStatus::Down);
    assert!(out[0].reason.contains("passive"), "{out:?}");
    assert_eq!(bed.status(), MonitorStatus::Down);
    // Marking it again changes nothing; an unknown key is ignored.
    bed.mon.passive_down((0, 0), "again", &mut out);
    bed.mon.passive_down((9, 9), "unknown", &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    // One good probe is not enough with up_after = 2; two are.
    bed.run(1);
    assert_eq!(
        bed.status(),
        MonitorStatus::Down,
        "one success after the mark"
    );
    bed.run(1);
    assert_eq!(bed.status(), MonitorStatus::Up);
}
