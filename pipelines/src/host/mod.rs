//! The host of one worker: its userspace TCP stack and the applications over it (the
//! built-in services, the health monitors, the full proxy), the source ports they open
//! connections from, and their timers.
//!
//! The L2/L3 stage hands the host the TCP segments addressed to the appliance and
//! drains the segments it sends; everything between belongs here. Every connection
//! and listener carries an [`Owner`](crate::tcp::Owner) (see [`app`]), and each stack event goes straight
//! to its owner: no application scans the others' connections. Application timers
//! ([`AppTimers`]) live on one wheel whose deadline, with the stack's and the
//! monitors', makes [`Host::poll_timeout`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rouge_drivers::steer::Steering;

use crate::counters::PipelineCounters;
use crate::dataplane::Dataplane;
use crate::monitor::{InUse, Monitors, Transition};
use crate::ports::{PortAllocator, SourcePorts};
use crate::proxy::{FlowView, Proxy, ProxyCtx};
use crate::services::Services;
use crate::tcp::{StackConfig, TcpProfile, TcpStack, Transmit};
use crate::time::Instant;

mod timers;

pub use timers::{AppTimers, Fired, APP_TIMER_TICK};

/// The applications of the host, as the `app` of an [`Owner`](crate::tcp::Owner).
pub mod app {
    /// Nobody: a connection whose application let go of it.
    pub const NONE: u16 = 0;
    /// The built-in services (tag: the service's index).
    pub const SERVICES: u16 = 1;
    /// The health monitors (tag: the watch's index).
    pub const MONITORS: u16 = 2;
    /// The full proxy (tag: the flow's slot).
    pub const PROXY: u16 = 3;
}

/// The TCP stack and applications of one worker.
pub struct Host {
    worker: usize,
    tcp: TcpStack,
    ports: PortAllocator,
    services: Services,
    monitors: Option<Monitors>,
    transitions: Vec<Transition>,
    timers: AppTimers,
    proxy: Proxy,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("worker", &self.worker)
            .field("connections", &self.tcp.connection_count())
            .field("timers", &self.timers)
            .finish()
    }
}

impl Host {
    /// The host of worker `worker` serving the services of `dp`, with a default stack.
    pub fn new(worker: usize, dp: &Dataplane, counters: Arc<PipelineCounters>) -> Host {
        let mut tcp = TcpStack::new(StackConfig::default(), TcpProfile::default());
        let mut services = Services::new(worker);
        services.configure(&mut tcp, Instant::ZERO, &dp.services);
        let mut proxy = Proxy::new(worker);
        proxy.configure(&mut tcp, Instant::ZERO, dp);
        Host {
            proxy,
            worker,
            tcp,
            ports: PortAllocator::new(worker, Steering::Opaque, dp.source_ports, counters),
            services,
            monitors: None,
            transitions: Vec::new(),
            timers: AppTimers::default(),
        }
    }

    /// Replaces the TCP stack (before any traffic) and re-listens for the services.
    pub fn set_tcp(&mut self, dp: &Dataplane, cfg: StackConfig, profile: TcpProfile) {
        self.tcp = TcpStack::new(cfg, profile);
        self.services = Services::new(self.worker);
        self.services
            .configure(&mut self.tcp, Instant::ZERO, &dp.services);
        self.proxy = Proxy::new(self.worker);
        self.proxy.configure(&mut self.tcp, Instant::ZERO, dp);
    }

    /// Runs the health monitors of `dp` on this host.
    pub fn start_monitors(&mut self, dp: &Dataplane) {
        let mut m = Monitors::new();
        m.set_targets(Instant::ZERO, dp.monitor_targets.clone());
        self.monitors = Some(m);
    }

    /// Tells the source-port allocator how the ports steer frames over the workers.
    pub fn set_steering(&mut self, steering: Steering) {
        self.ports.set_steering(steering);
    }

    /// Takes a new configuration snapshot: port range, services, monitor targets.
    pub fn set_dataplane(&mut self, dp: &Dataplane) {
        self.ports.set_range(dp.source_ports);
        self.services
            .configure(&mut self.tcp, Instant::ZERO, &dp.services);
        if let Some(m) = self.monitors.as_mut() {
            m.set_targets(Instant::ZERO, dp.monitor_targets.clone());
        }
        self.proxy.configure(&mut self.tcp, Instant::ZERO, dp);
    }

    /// The proxy's flows on this worker, for `show connections`.
    pub fn proxy_flows(&self, now: Instant) -> Vec<FlowView> {
        self.proxy.flows(now)
    }

    /// The full proxy.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The TCP stack.
    pub fn tcp(&self) -> &TcpStack {
        &self.tcp
    }

    /// The TCP stack, to drive connections from beside the applications.
    pub fn tcp_mut(&mut self) -> &mut TcpStack {
        &mut self.tcp
    }

    /// The source ports with the stack that holds some of them, for fastl4's SNAT.
    pub fn source_ports(&mut self) -> SourcePorts<'_> {
        SourcePorts {
            alloc: &mut self.ports,
            tcp: &self.tcp,
        }
    }

    /// The monitor engine, when this host runs it.
    pub fn monitors(&self) -> Option<&Monitors> {
        self.monitors.as_ref()
    }

    /// The application timers.
    pub fn timers(&self) -> &AppTimers {
        &self.timers
    }

    /// Status changes found by the monitors since the last call (already applied to the
    /// pools' shared states), for the log.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// A TCP segment to one of the appliance's addresses. `trusted`: the port verified
    /// its checksum.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        seg: &[u8],
        trusted: bool,
    ) {
        if trusted {
            self.tcp.handle_segment_trusted(now, src, dst, seg);
        } else {
            self.tcp.handle_segment(now, src, dst, seg);
        }
    }

    /// Runs the stack's timers, the monitors, the application timers and every pending
    /// event, each delivered to its owner. `other` says whether a (local, remote) pair is
    /// held outside the stack (fastl4 flows), so a probe does not take it.
    pub fn poll(&mut self, now: Instant, dp: &Dataplane, other: InUse<'_>) {
        self.tcp.handle_timeout(now);
        let mut changed = std::mem::take(&mut self.transitions);
        let before = changed.len();
        if let Some(m) = self.monitors.as_mut() {
            m.poll(now, &mut self.tcp, &mut self.ports, other, &mut changed);
        }
        {
            // Flows that waited for handshake budget go first.
            let mut cx = ProxyCtx {
                now,
                tcp: &mut self.tcp,
                ports: &mut self.ports,
                timers: &mut self.timers,
                other,
                dp,
            };
            self.proxy.begin_turn(&mut cx);
        }
        self.timers.expire(now);
        let fired = self.timers.take_fired();
        for f in &fired {
            if f.owner.app == app::PROXY {
                let mut cx = ProxyCtx {
                    now,
                    tcp: &mut self.tcp,
                    ports: &mut self.ports,
                    timers: &mut self.timers,
                    other,
                    dp,
                };
                self.proxy.on_timer(&mut cx, *f);
            }
        }
        self.timers.give_back(fired);
        while let Some((owner, ev)) = self.tcp.poll_owned_event() {
            match owner.app {
                app::PROXY => {
                    let mut cx = ProxyCtx {
                        now,
                        tcp: &mut self.tcp,
                        ports: &mut self.ports,
                        timers: &mut self.timers,
                        other,
                        dp,
                    };
                    self.proxy.on_event(&mut cx, owner, ev);
                }
                app::SERVICES => self.services.handle_event(&mut self.tcp, now, ev),
                app::MONITORS => {
                    if let Some(m) = self.monitors.as_mut() {
                        m.on_event(now, &mut self.tcp, ev, &mut changed);
                    }
                }
                // Connections opened beside the applications (tests, benchmarks) are
                // driven by whoever opened them, through `tcp_mut`.
                _ => {}
            }
        }
        if let Some(m) = self.monitors.as_mut() {
            // Members passive health marked down on any worker: their watches restart.
            for (pi, (_, b)) in dp.pools.iter().enumerate() {
                for id in b.states.take_passive() {
                    m.passive_down(
                        (pi as u32, id.0 as u32),
                        "passive health: connections to it kept failing",
                        &mut changed,
                    );
                }
            }
        }
        for t in &changed[before..] {
            if let Some((_, b)) = dp.pools.get(t.key.0 as usize) {
                if (t.key.1 as usize) < b.states.len() {
                    b.states
                        .set_monitor(crate::lb::MemberId(t.key.1 as u16), t.status);
                }
            }
        }
        self.transitions = changed;
    }

    /// The next segment to send (see [`TcpStack::poll_transmit`]).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.tcp.poll_transmit(now, buf)
    }

    /// The next segment to send, shaped connections only while `room` says their class
    /// can take it (see [`TcpStack::poll_transmit_shaped`]).
    pub fn poll_transmit_shaped(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        room: &mut dyn FnMut(crate::tcp::Shaping, usize) -> bool,
    ) -> Option<Transmit> {
        self.tcp.poll_transmit_shaped(now, buf, room)
    }

    /// When [`Host::poll`] must run next: the stack's timers, the monitors' probes, the
    /// application timers; a time already past when events wait (or TLS handshakes wait
    /// for the next turn's budget).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.tcp.has_events() || self.proxy.has_deferred() {
            return Some(Instant::ZERO);
        }
        crate::time::earliest([
            self.tcp.poll_timeout(),
            self.monitors.as_ref().and_then(Monitors::next_deadline),
            self.timers.next_deadline(),
        ])
    }

    /// True when a connection or TIME-WAIT entry of the stack holds `local`–`remote`.
    pub fn in_use(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.tcp.in_use(local, remote)
    }
}
