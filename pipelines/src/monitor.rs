//! Health monitors run from the data plane: probes leave through the appliance's own
//! TCP stack, from a self IP, like any other traffic.
//!
//! A sans-I/O engine: [`Monitors::poll`] starts the probes that are due and reports
//! status changes; [`Monitors::on_event`] takes the TCP events of its own connections.
//! Types: `tcp` (the handshake completes), `http` (send a request, the response
//! must contain the receive string, e.g. `200 OK`), `https` (the same inside TLS: a
//! full TLS handshake verified as the server TLS profile says, then the request
//! encrypted and the decrypted response checked) and `s3` (for S3 storage nodes: a
//! request, in TLS or not, answered by any well-formed HTTP/1.x status line; an S3
//! server answers an unauthenticated request with `403 AccessDenied`, and that is
//! alive).
//!
//! Semantics (as an F5 operator expects): a probe starts every `interval`; a member is
//! marked **down** when no probe has succeeded within `timeout`; a member that is down
//! (or not yet checked) is marked **up** after `up_after` consecutive successes. Every
//! transition is reported with its reason. Each probe is bounded by `timeout` too, and
//! a probe that has not finished when the next is due is abandoned (counted as failed).
//!
//! Every failure has a [`ProbeFailure`] reason (tcp, timeout, certificate, handshake,
//! response, source port), counted per monitor ([`Monitors::monitor_stats`]) and named
//! in the transition that marks a member down.

use crate::hashing::FastMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::lb::MonitorStatus;
use crate::ports::PortAllocator;
use crate::tcp::{ConnHandle, Event, Owner, ProfileId, TcpStack};
use crate::tls::{TlsClientConfig, TlsSession};
use crate::Instant;

mod answer;
mod failure;
mod https;

use answer::Expect;

pub use failure::{MonitorStats, ProbeError, ProbeFailure};

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// The TCP handshake completes.
    Tcp,
    /// After the handshake, `send` is written and the response must contain `receive`.
    Http {
        /// Request bytes, e.g. `GET / HTTP/1.0\r\n\r\n`.
        send: String,
        /// Text the response must contain, e.g. `200`.
        receive: String,
    },
    /// After the TCP handshake, a TLS handshake as `tls` says (verification, server
    /// name); then `send` is written encrypted and the decrypted response must contain
    /// `receive`.
    Https {
        /// Request bytes, e.g. `GET / HTTP/1.0\r\n\r\n`.
        send: String,
        /// Text the response must contain, e.g. `200`.
        receive: String,
        /// The server TLS profile.
        tls: ProbeTls,
    },
    /// For S3 members: after the TCP handshake (and a TLS handshake when `tls` is
    /// given), `send` is written (the write side stays open: the request says
    /// `Connection: close`) and the answer must begin with a well-formed HTTP/1.x
    /// status line, whatever the status (`403` from an S3 server that was not given
    /// credentials is alive). A reset, a timeout or an answer that is not HTTP fails.
    S3 {
        /// Request bytes (the configuration's default names the member as `Host`),
        /// e.g. `GET / HTTP/1.1\r\nHost: 198.18.2.11:9000\r\nConnection: close\r\n\r\n`.
        send: String,
        /// The server TLS profile, for members that serve https.
        tls: Option<ProbeTls>,
    },
}

/// The TLS side of an https monitor: the `[[tls_profile]]` it names and the client
/// configuration built from it. The worker that probes takes its own copy
/// ([`TlsClientConfig::for_worker`]) without a session cache: every probe is a full
/// handshake, so the member's certificate is verified each time, as a new client would.
///
/// Two are equal when they are the same build of the same profile; a new build of a
/// profile with the same name (a configuration change) keeps the members' status (see
/// [`Monitors::set_targets`]).
#[derive(Debug, Clone)]
pub struct ProbeTls {
    /// The profile's name.
    pub profile: String,
    /// The configuration built from it.
    pub config: Arc<TlsClientConfig>,
}

impl PartialEq for ProbeTls {
    fn eq(&self, other: &ProbeTls) -> bool {
        self.profile == other.profile && Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ProbeTls {}

impl ProbeKind {
    /// The same monitor for the purpose of keeping a member's status: equal, or an
    /// https monitor whose TLS profile has the same name (and may have been rebuilt).
    fn continues(&self, new: &ProbeKind) -> bool {
        match (self, new) {
            (
                ProbeKind::Https {
                    send: s1,
                    receive: r1,
                    tls: t1,
                },
                ProbeKind::Https {
                    send: s2,
                    receive: r2,
                    tls: t2,
                },
            ) => s1 == s2 && r1 == r2 && t1.profile == t2.profile,
            (ProbeKind::S3 { send: s1, tls: t1 }, ProbeKind::S3 { send: s2, tls: t2 }) => {
                s1 == s2 && t1.as_ref().map(|t| &t.profile) == t2.as_ref().map(|t| &t.profile)
            }
            (a, b) => a == b,
        }
    }
}

/// A monitor as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSpec {
    /// Name from the configuration.
    pub name: String,
    /// What to check.
    pub kind: ProbeKind,
    /// Time between probe starts.
    pub interval: Duration,
    /// Down when no probe succeeded for this long.
    pub timeout: Duration,
    /// Consecutive successes that bring a member up.
    pub up_after: u32,
}

impl MonitorSpec {
    fn continues(&self, new: &MonitorSpec) -> bool {
        self.name == new.name
            && self.interval == new.interval
            && self.timeout == new.timeout
            && self.up_after == new.up_after
            && self.kind.continues(&new.kind)
    }
}

/// One member to watch: where it is, the local address to probe from, and which
/// monitor applies. `key` is the caller's identity for the member (pool and index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The caller's name for this member (e.g. pool index and member index).
    pub key: (u32, u32),
    /// Member address.
    pub addr: SocketAddr,
    /// Self IP to probe from (port chosen per probe).
    pub source: std::net::IpAddr,
    /// The monitor.
    pub spec: MonitorSpec,
}

/// A status change, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The member.
    pub key: (u32, u32),
    /// Its address.
    pub addr: SocketAddr,
    /// New status.
    pub status: MonitorStatus,
    /// Why, in words for the log.
    pub reason: String,
    /// For a member marked down: the reason of the last failed probe (`None` when no
    /// probe has finished yet).
    pub failure: Option<ProbeFailure>,
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorCounters {
    /// Probes started.
    pub probes: u64,
    /// Probes that succeeded.
    pub successes: u64,
    /// Probes that failed (refused, reset, timed out, wrong answer).
    pub failures: u64,
    /// Status changes.
    pub transitions: u64,
}

#[derive(Debug)]
struct Watch {
    target: Target,
    status: MonitorStatus,
    next_probe: Instant,
    last_success: Option<Instant>,
    /// When the member was first polled (the caller may set targets before it has a
    /// clock: `timeout` counts from the first [`Monitors::poll`]).
    started: Option<Instant>,
    streak: u32,
    probe: Option<ConnHandle>,
    probe_deadline: Instant,
    last_failure: Option<ProbeError>,
    /// Index in [`Monitors::stats`] of the monitor's counts.
    stats: usize,
    /// This worker's TLS configuration for an https monitor (or an s3 monitor with
    /// TLS).
    tls: Option<TlsClientConfig>,
}

/// How far a probe got (for the words of a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    TlsHandshake,
    Response,
}

#[derive(Debug)]
struct Probe {
    watch: usize,
    response: Vec<u8>,
    phase: Phase,
    /// The TLS session of an https probe.
    tls: Option<Box<TlsSession>>,
    /// Bytes of the request accepted by the TLS session.
    sent: usize,
}

impl Probe {
    fn new(watch: usize) -> Probe {
        Probe {
            watch,
            response: Vec::new(),
            phase: Phase::Connecting,
            tls: None,
            sent: 0,
        }
    }

    /// Reads what a plain (not TLS) connection holds, keeping up to
    /// [`MAX_RESPONSE`] bytes of the response.
    fn read_plain(&mut self, tcp: &mut TcpStack, h: ConnHandle) {
        let mut buf = [0u8; 2048];
        while let Ok(n) = tcp.read(h, &mut buf) {
            if n == 0 {
                break;
            }
            https::keep(&mut self.response, &buf[..n]);
        }
    }
}

/// Most response bytes kept to look for the receive string.
const MAX_RESPONSE: usize = 4096;

/// The monitor engine of the worker that runs the probes.
#[derive(Default)]
pub struct Monitors {
    watches: Vec<Watch>,
    probes: FastMap<ConnHandle, Probe>,
    counters: MonitorCounters,
    stats: Vec<MonitorStats>,
}

/// Tells whether a (local, remote) pair is used by something other than the TCP stack
/// on this worker (fastl4 flows), so a probe must not take it.
pub type InUse<'a> = &'a dyn Fn(SocketAddr, SocketAddr) -> bool;

impl std::fmt::Debug for Monitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitors")
            .field("targets", &self.watches.len())
            .field("probes", &self.probes.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Monitors {
    /// An engine with no targets.
    pub fn new() -> Monitors {
        Monitors::default()
    }

    /// The engine's counters.
    pub fn counters(&self) -> MonitorCounters {
        self.counters
    }

    /// The counts of every monitor this engine has run, by name.
    pub fn monitor_stats(&self) -> &[MonitorStats] {
        &self.stats
    }

    /// Replaces the targets (`now` may be [`Instant::ZERO`] when the caller has no clock
    /// yet: new members are probed at the first [`Monitors::poll`], and their `timeout`
    /// counts from then). Members watched before (same key, address and monitor;
    /// for https the same TLS profile name, whose new build takes effect from the next
    /// probe) keep their status and history; new ones start `unchecked` and are probed
    /// at once.
    pub fn set_targets(&mut self, now: Instant, targets: Vec<Target>) {
        let mut old = std::mem::take(&mut self.watches);
        for t in targets {
            let stats = match self.stats.iter().position(|s| s.name == t.spec.name) {
                Some(i) => i,
                None => {
                    self.stats.push(MonitorStats {
                        name: t.spec.name.clone(),
                        ..MonitorStats::default()
                    });
                    self.stats.len() - 1
                }
            };
            let continued = old.iter().position(|w| {
                w.target.key == t.key
                    && w.target.addr == t.addr
                    && w.target.source == t.source
                    && w.target.spec.continues(&t.spec)
            });
            let mut w = match continued {
                Some(i) => old.swap_remove(i),
                None => Watch {
                    target: t.clone(),
                    status: MonitorStatus::Unchecked,
                    next_probe: now,
                    last_success: None,
                    started: None,
                    streak: 0,
                    probe: None,
                    probe_deadline: now,
                    last_failure: None,
                    stats,
                    tls: None,
                },
            };
            if w.tls.is_none() || w.target != t {
                w.tls = match &t.spec.kind {
                    ProbeKind::Https { tls, .. } | ProbeKind::S3 { tls: Some(tls), .. } => {
                        Some(tls.config.for_worker(0))
                    }
                    _ => None,
                };
            }
            w.target = t;
            w.stats = stats;
            self.watches.push(w);
        }
        // Probes of members no longer watched are dropped from the table; their
        // connections end by themselves (abort on the next event).
        let live: Vec<Option<ConnHandle>> = self.watches.iter().map(|w| w.probe).collect();
        self.probes.retain(|h, _| live.contains(&Some(*h)));
        for (i, w) in self.watches.iter().enumerate() {
            if let Some(h) = w.probe {
                if let Some(p) = self.probes.get_mut(&h) {
                    p.watch = i;
                }
            }
        }
    }

    /// Passive health marked the member `key` down (real traffic to it kept failing):
    /// its watch counts as down from now, so it comes back only after `up_after`
    /// successful probes. The transition (for the log) goes into `out`.
    pub fn passive_down(&mut self, key: (u32, u32), reason: &str, out: &mut Vec<Transition>) {
        for w in self.watches.iter_mut().filter(|w| w.target.key == key) {
            if w.status == MonitorStatus::Down {
                continue;
            }
            w.status = MonitorStatus::Down;
            w.streak = 0;
            self.counters.transitions += 1;
            out.push(Transition {
                key,
                addr: w.target.addr,
                status: MonitorStatus::Down,
                reason: reason.to_string(),
                failure: None,
            });
        }
    }

    /// Current status of every target: (key, address, status).
    pub fn statuses(&self) -> Vec<((u32, u32), SocketAddr, MonitorStatus)> {
        self.watches
            .iter()
            .map(|w| (w.target.key, w.target.addr, w.status))
            .collect()
    }

    /// Why each member that is not up failed its last probe: (key, address, reason),
    /// for members whose last finished probe failed and that are not up.
    pub fn failing(&self) -> Vec<((u32, u32), SocketAddr, ProbeFailure)> {
        self.watches
            .iter()
            .filter(|w| w.status != MonitorStatus::Up && w.streak == 0)
            .filter_map(|w| {
                let f = w.last_failure.as_ref()?;
                Some((w.target.key, w.target.addr, f.reason))
            })
            .collect()
    }

    /// True if `h` is one of the engine's probe connections.
    pub fn owns(&self, h: ConnHandle) -> bool {
        self.probes.contains_key(&h)
    }

    /// Starts due probes, ends overdue ones, and reports status changes into `out`.
    /// Probes take their source ports from `ports` (ports whose replies reach this
    /// worker, not used by `tcp` nor by anything `other` knows of); a probe that finds
    /// none fails.
    pub fn poll(
        &mut self,
        now: Instant,
        tcp: &mut TcpStack,
        ports: &mut PortAllocator,
        other: InUse<'_>,
        out: &mut Vec<Transition>,
    ) {
        for i in 0..self.watches.len() {
            let w = &self.watches[i];
            if let Some(h) = w.probe {
                if now >= w.probe_deadline {
                    let why = match self.probes.remove(&h) {
                        Some(p) => timed_out(p, now),
                        None => ProbeError::new(ProbeFailure::Timeout, "probe timed out"),
                    };
                    let _ = tcp.abort(now, h);
                    self.finish(i, now, Err(why), out);
                }
            }
            let w = &self.watches[i];
            if w.probe.is_none() && now >= w.next_probe {
                self.start(i, now, tcp, ports, other, out);
            }
            self.check_timeout(i, now, out);
        }
    }

    /// When the engine next needs [`Monitors::poll`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.watches
            .iter()
            .map(|w| {
                if w.probe.is_some() {
                    w.probe_deadline.min(w.next_probe)
                } else {
                    w.next_probe
                }
            })
            .min()
    }

    fn start(
        &mut self,
        i: usize,
        now: Instant,
        tcp: &mut TcpStack,
        ports: &mut PortAllocator,
        other: InUse<'_>,
        out: &mut Vec<Transition>,
    ) {
        let (addr, source, interval, timeout) = {
            let w = &self.watches[i];
            (
                w.target.addr,
                w.target.source,
                w.target.spec.interval,
                w.target.spec.timeout,
            )
        };
        self.watches[i].next_probe = now + interval;
        let port = ports.allocate(source, addr, |p| {
            let local = SocketAddr::new(source, p);
            tcp.in_use(local, addr) || other(local, addr)
        });
        let Some(port) = port else {
            let why = ProbeError::new(ProbeFailure::SourcePort, "no free source port");
            self.finish(i, now, Err(why), out);
            return;
        };
        if let Ok(h) = tcp.connect(now, SocketAddr::new(source, port), addr, ProfileId::DEFAULT) {
            let _ = tcp.set_owner(h, Owner::new(crate::host::app::MONITORS, i as u32));
            self.counters.probes += 1;
            let w = &mut self.watches[i];
            self.stats[w.stats].probes += 1;
            w.probe = Some(h);
            w.probe_deadline = now + timeout.min(interval).max(Duration::from_millis(10));
            self.probes.insert(h, Probe::new(i));
        }
    }

    fn check_timeout(&mut self, i: usize, now: Instant, out: &mut Vec<Transition>) {
        let w = &mut self.watches[i];
        let since = w.last_success.unwrap_or(*w.started.get_or_insert(now));
        if w.status != MonitorStatus::Down && now - since >= w.target.spec.timeout {
            let last = match &w.last_failure {
                Some(e) => e.to_string(),
                None => "no probe answered yet".into(),
            };
            let reason = format!(
                "no successful probe for {} ms (last failure: {last})",
                (now - since).as_millis(),
            );
            w.status = MonitorStatus::Down;
            w.streak = 0;
            self.counters.transitions += 1;
            out.push(Transition {
                key: w.target.key,
                addr: w.target.addr,
                status: MonitorStatus::Down,
                reason,
                failure: w.last_failure.as_ref().map(|e| e.reason),
            });
        }
    }

    fn finish(
        &mut self,
        i: usize,
        now: Instant,
        result: Result<(), ProbeError>,
        out: &mut Vec<Transition>,
    ) {
        let w = &mut self.watches[i];
        w.probe = None;
        let stats = &mut self.stats[w.stats];
        match result {
            Ok(()) => {
                self.counters.successes += 1;
                stats.successes += 1;
                w.last_success = Some(now);
                w.streak += 1;
                if w.status != MonitorStatus::Up && w.streak >= w.target.spec.up_after.max(1) {
                    let reason = format!(
                        "{} consecutive successful probe(s) ({})",
                        w.streak, w.target.spec.name
                    );
                    w.status = MonitorStatus::Up;
                    self.counters.transitions += 1;
                    out.push(Transition {
                        key: w.target.key,
                        addr: w.target.addr,
                        status: MonitorStatus::Up,
                        reason,
                        failure: None,
                    });
                }
            }
            Err(why) => {
                self.counters.failures += 1;
                stats.failures[why.reason as usize] += 1;
                w.streak = 0;
                w.last_failure = Some(why);
            }
        }
        self.check_timeout(i, now, out);
    }

    /// Takes a TCP event of one of the engine's connections (see [`Monitors::owns`]).
    pub fn on_event(
        &mut self,
        now: Instant,
        tcp: &mut TcpStack,
        ev: Event,
        out: &mut Vec<Transition>,
    ) {
        match ev {
            Event::Connected(h) => {
                let Some(p) = self.probes.get_mut(&h) else {
                    return;
                };
                let i = p.watch;
                let w = &mut self.watches[i];
                match &w.target.spec.kind {
                    ProbeKind::Tcp => {
                        self.probes.remove(&h);
                        let _ = tcp.close(now, h);
                        self.finish(i, now, Ok(()), out);
                    }
                    ProbeKind::Http { send, .. } => {
                        p.phase = Phase::Response;
                        let _ = tcp.write(h, send.as_bytes());
                        let _ = tcp.shutdown(now, h);
                    }
                    ProbeKind::S3 { send, tls: None } => {
                        // No half close: some servers end a connection whose client
                        // closed its side before they answered.
                        p.phase = Phase::Response;
                        let _ = tcp.write(h, send.as_bytes());
                    }
                    ProbeKind::Https { .. } | ProbeKind::S3 { tls: Some(_), .. } => {
                        let started = match &w.tls {
                            Some(cfg) => https::start(p, cfg, w.target.addr.ip(), now, tcp, h),
                            None => Err(ProbeError::new(
                                ProbeFailure::Handshake,
                                "no TLS configuration for the monitor",
                            )),
                        };
                        match started {
                            Ok(deadline) => {
                                if let Some(d) = deadline {
                                    w.probe_deadline = w.probe_deadline.min(d);
                                }
                            }
                            Err(why) => {
                                self.probes.remove(&h);
                                let _ = tcp.abort(now, h);
                                self.finish(i, now, Err(why), out);
                            }
                        }
                    }
                }
            }
            Event::Readable(h) | Event::PeerClosed(h) | Event::Closed(h) => {
                let Some(p) = self.probes.get_mut(&h) else {
                    if matches!(ev, Event::Closed(_)) {
                        let _ = tcp.close(now, h);
                    }
                    return;
                };
                let i = p.watch;
                let ended = !matches!(ev, Event::Readable(_));
                let result = match &self.watches[i].target.spec.kind {
                    ProbeKind::Https { send, receive, .. } => https::on_input(
                        p,
                        tcp,
                        h,
                        send.as_bytes(),
                        Expect::Contains(receive.as_bytes()),
                        ended,
                    ),
                    ProbeKind::S3 { send, tls: Some(_) } => {
                        https::on_input(p, tcp, h, send.as_bytes(), Expect::StatusLine, ended)
                    }
                    ProbeKind::Http { receive, .. } => {
                        p.read_plain(tcp, h);
                        answer::judge(&p.response, Expect::Contains(receive.as_bytes()), ended)
                    }
                    ProbeKind::S3 { tls: None, .. } => {
                        p.read_plain(tcp, h);
                        answer::judge(&p.response, Expect::StatusLine, ended)
                    }
                    ProbeKind::Tcp => Some(Ok(())),
                };
                let Some(result) = result else { return };
                if let Some(p) = self.probes.remove(&h) {
                    match p.tls {
                        // TLS ends with close_notify (or the alert sent) and a FIN.
                        Some(mut s) => {
                            let _ = s.close();
                            https::flush(&mut s, tcp, h);
                            let _ = tcp.close(now, h);
                        }
                        None => {
                            let _ = tcp.abort(now, h);
                        }
                    }
                }
                self.finish(i, now, result, out);
            }
            Event::Writable(h) => {
                if let Some(s) = self.probes.get_mut(&h).and_then(|p| p.tls.as_mut()) {
                    https::flush(s, tcp, h);
                }
            }
            Event::Reset(h, reason) => {
                if let Some(p) = self.probes.remove(&h) {
                    let why = match reason {
                        crate::tcp::ResetReason::Refused => {
                            ProbeError::new(ProbeFailure::Tcp, "connection refused")
                        }
                        crate::tcp::ResetReason::TimedOut => {
                            ProbeError::new(ProbeFailure::Timeout, "connection timed out")
                        }
                        crate::tcp::ResetReason::Peer => ProbeError::new(
                            ProbeFailure::Tcp,
                            match p.phase {
                                Phase::TlsHandshake => "connection reset during the TLS handshake",
                                _ => "connection reset",
                            },
                        ),
                    };
                    self.finish(p.watch, now, Err(why), out);
                }
            }
            Event::Accepted(_) => {}
        }
    }
}

/// The failure of a probe whose deadline passed, named after how far it got (the TLS
/// session's own handshake timeout when that is what ran out).
fn timed_out(mut p: Probe, now: Instant) -> ProbeError {
    if let Some(s) = p.tls.as_mut() {
        if let Err(e) = s.handle_timeout(now) {
            return ProbeError::new(ProbeFailure::Timeout, e.to_string());
        }
    }
    let what = match p.phase {
        Phase::Connecting => "probe timed out waiting for the TCP handshake",
        Phase::TlsHandshake => "probe timed out during the TLS handshake",
        Phase::Response => "probe timed out waiting for the response",
    };
    ProbeError::new(ProbeFailure::Timeout, what)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
