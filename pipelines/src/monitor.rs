//! Health monitors run from the data plane: probes leave through the appliance's own
//! TCP stack, from a self IP, like any other traffic.
//!
//! A sans-I/O engine: [`Monitors::poll`] starts the probes that are due and reports
//! status changes; [`Monitors::on_event`] takes the TCP events of its own connections.
//! Types: `tcp` (the handshake completes) and `http` (send a request, the response
//! must contain the receive string, e.g. `200 OK`).
//!
//! Semantics (as an F5 operator expects): a probe starts every `interval`; a member is
//! marked **down** when no probe has succeeded within `timeout`; a member that is down
//! (or not yet checked) is marked **up** after `up_after` consecutive successes. Every
//! transition is reported with its reason. Each probe is bounded by `timeout` too, and
//! a probe that has not finished when the next is due is abandoned (counted as failed).

use crate::hashing::FastMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::lb::MonitorStatus;
use crate::ports::PortAllocator;
use crate::tcp::{ConnHandle, Event, Owner, ProfileId, TcpStack};
use crate::Instant;

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
    started: Instant,
    streak: u32,
    probe: Option<ConnHandle>,
    probe_deadline: Instant,
    last_failure: &'static str,
}

#[derive(Debug)]
struct Probe {
    watch: usize,
    response: Vec<u8>,
}

/// Most response bytes kept to look for the receive string.
const MAX_RESPONSE: usize = 4096;

/// The monitor engine of the worker that runs the probes.
#[derive(Default)]
pub struct Monitors {
    watches: Vec<Watch>,
    probes: FastMap<ConnHandle, Probe>,
    counters: MonitorCounters,
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

    /// Replaces the targets. Members watched before (same key, address and monitor)
    /// keep their status and history; new ones start `unchecked` and are probed at once.
    pub fn set_targets(&mut self, now: Instant, targets: Vec<Target>) {
        let mut old = std::mem::take(&mut self.watches);
        for t in targets {
            match old.iter().position(|w| w.target == t) {
                Some(i) => self.watches.push(old.swap_remove(i)),
                None => self.watches.push(Watch {
                    target: t,
                    status: MonitorStatus::Unchecked,
                    next_probe: now,
                    last_success: None,
                    started: now,
                    streak: 0,
                    probe: None,
                    probe_deadline: now,
                    last_failure: "no probe answered yet",
                }),
            }
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

    /// Current status of every target: (key, address, status).
    pub fn statuses(&self) -> Vec<((u32, u32), SocketAddr, MonitorStatus)> {
        self.watches
            .iter()
            .map(|w| (w.target.key, w.target.addr, w.status))
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
                    let _ = tcp.abort(now, h);
                    self.probes.remove(&h);
                    self.finish(i, now, Err("probe timed out"), out);
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
            self.finish(i, now, Err("no free source port"), out);
            return;
        };
        if let Ok(h) = tcp.connect(now, SocketAddr::new(source, port), addr, ProfileId::DEFAULT) {
            let _ = tcp.set_owner(h, Owner::new(crate::host::app::MONITORS, i as u32));
            self.counters.probes += 1;
            let w = &mut self.watches[i];
            w.probe = Some(h);
            w.probe_deadline = now + timeout.min(interval).max(Duration::from_millis(10));
            self.probes.insert(
                h,
                Probe {
                    watch: i,
                    response: Vec::new(),
                },
            );
        }
    }

    fn check_timeout(&mut self, i: usize, now: Instant, out: &mut Vec<Transition>) {
        let w = &mut self.watches[i];
        let since = w.last_success.unwrap_or(w.started);
        if w.status != MonitorStatus::Down && now - since >= w.target.spec.timeout {
            let reason = format!(
                "no successful probe for {} ms (last failure: {})",
                (now - since).as_millis(),
                w.last_failure
            );
            w.status = MonitorStatus::Down;
            w.streak = 0;
            self.counters.transitions += 1;
            out.push(Transition {
                key: w.target.key,
                addr: w.target.addr,
                status: MonitorStatus::Down,
                reason,
            });
        }
    }

    fn finish(
        &mut self,
        i: usize,
        now: Instant,
        result: Result<(), &'static str>,
        out: &mut Vec<Transition>,
    ) {
        let w = &mut self.watches[i];
        w.probe = None;
        match result {
            Ok(()) => {
                self.counters.successes += 1;
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
                    });
                }
            }
            Err(why) => {
                self.counters.failures += 1;
                w.streak = 0;
                w.last_failure = why;
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
                let Some(p) = self.probes.get(&h) else { return };
                let i = p.watch;
                match &self.watches[i].target.spec.kind {
                    ProbeKind::Tcp => {
                        self.probes.remove(&h);
                        let _ = tcp.close(now, h);
                        self.finish(i, now, Ok(()), out);
                    }
                    ProbeKind::Http { send, .. } => {
                        let _ = tcp.write(h, send.as_bytes());
                        let _ = tcp.shutdown(now, h);
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
                let mut buf = [0u8; 2048];
                while let Ok(n) = tcp.read(h, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let room = MAX_RESPONSE.saturating_sub(p.response.len());
                    p.response.extend_from_slice(&buf[..n.min(room)]);
                }
                let i = p.watch;
                let matched = match &self.watches[i].target.spec.kind {
                    ProbeKind::Http { receive, .. } => contains(&p.response, receive.as_bytes()),
                    ProbeKind::Tcp => true,
                };
                let ended = !matches!(ev, Event::Readable(_)) || p.response.len() >= MAX_RESPONSE;
                if matched || ended {
                    self.probes.remove(&h);
                    let _ = tcp.abort(now, h);
                    let result = if matched {
                        Ok(())
                    } else {
                        Err("response did not contain the receive string")
                    };
                    self.finish(i, now, result, out);
                }
            }
            Event::Reset(h, reason) => {
                if let Some(p) = self.probes.remove(&h) {
                    let why = match reason {
                        crate::tcp::ResetReason::Refused => "connection refused",
                        crate::tcp::ResetReason::TimedOut => "connection timed out",
                        crate::tcp::ResetReason::Peer => "connection reset",
                    };
                    self.finish(p.watch, now, Err(why), out);
                }
            }
            Event::Writable(_) | Event::Accepted(_) => {}
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
