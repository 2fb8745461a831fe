//! Built-in TCP services on the appliance's own addresses, to prove the userspace TCP
//! stack against real peers: `echo` (RFC 862: sends back what it receives), `discard`
//! (RFC 863: reads and drops) and `chargen` (RFC 864: sends the rotating character
//! pattern until the peer closes).
//!
//! A sans-I/O application over [`TcpStack`]: it reacts to the stack's events and never
//! buffers beyond what the stack accepts, so a slow peer slows the service through the
//! TCP windows (echo reads only as much as it can write back).

use crate::hashing::{self, FastMap};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::dataplane::VsCounters;
use crate::tcp::{
    ConnHandle, Event, ListenerHandle, Owner, ProfileId, TcpError, TcpProfile, TcpStack,
};
use crate::Instant;

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// RFC 862.
    Echo,
    /// RFC 863.
    Discard,
    /// RFC 864.
    Chargen,
}

/// A configured service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Name from the configuration.
    pub name: String,
    /// What it does.
    pub kind: ServiceKind,
    /// Address and port it listens on (a self IP).
    pub addr: SocketAddr,
    /// Connections and bytes (packets = connections accepted, bytes = payload received).
    pub counters: Arc<VsCounters>,
    /// The TCP profile of its connections (`None`: the stack's default profile).
    pub profile: Option<TcpProfile>,
}

/// Length of one chargen line: 72 characters and CR LF.
const LINE: usize = 74;
/// The chargen pattern repeats after 95 lines (one per printable character).
const PATTERN: usize = 95 * LINE;
/// Accept queue of each service listener.
const BACKLOG: usize = 1024;

#[derive(Debug)]
struct Conn {
    kind: ServiceKind,
    service: usize,
    /// Chargen: offset into the pattern; echo: nothing.
    offset: usize,
    closing: bool,
}

/// The services of one worker.
pub struct Services {
    worker: usize,
    specs: Vec<ServiceSpec>,
    listeners: Vec<(ListenerHandle, usize)>,
    conns: FastMap<ConnHandle, Conn>,
    scratch: Box<[u8]>,
    pattern: Box<[u8]>,
}

fn chargen_pattern() -> Box<[u8]> {
    let mut p = Vec::with_capacity(PATTERN + LINE);
    for line in 0..95usize {
        for i in 0..72 {
            p.push(b' ' + ((line + i) % 95) as u8);
        }
        p.extend_from_slice(b"\r\n");
    }
    // One extra line so a write can always take a contiguous run of up to a line.
    let head: Vec<u8> = p[..LINE].to_vec();
    p.extend_from_slice(&head);
    p.into_boxed_slice()
}

impl Services {
    /// No services yet, for worker `worker`.
    pub fn new(worker: usize) -> Services {
        Services {
            worker,
            specs: Vec::new(),
            listeners: Vec::new(),
            conns: hashing::with_capacity(1024),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            pattern: chargen_pattern(),
        }
    }

    /// Listens for exactly `specs`: new services start listening, removed ones stop
    /// (their established connections continue to the end).
    pub fn configure(&mut self, tcp: &mut TcpStack, now: Instant, specs: &[ServiceSpec]) {
        let old = std::mem::take(&mut self.listeners);
        for (l, i) in old {
            let keep = self.specs.get(i).and_then(|s| {
                specs
                    .iter()
                    .position(|n| n.addr == s.addr && n.kind == s.kind && n.profile == s.profile)
            });
            match keep {
                Some(j) => self.listeners.push((l, j)),
                None => tcp.unlisten(now, l),
            }
        }
        for (j, s) in specs.iter().enumerate() {
            if self.listeners.iter().any(|(_, k)| *k == j) {
                continue;
            }
            let profile = s
                .profile
                .as_ref()
                .map_or(ProfileId::DEFAULT, |p| tcp.add_profile(p.clone()));
            if let Ok(l) = tcp.listen(s.addr, BACKLOG, profile) {
                tcp.set_listener_owner(l, Owner::new(crate::host::app::SERVICES, j as u32));
                self.listeners.push((l, j));
            }
        }
        // Connections keep the index of their service; remap to the new list.
        for c in self.conns.values_mut() {
            let name = self.specs.get(c.service).map(|s| s.addr);
            c.service = name
                .and_then(|a| specs.iter().position(|s| s.addr == a))
                .unwrap_or(usize::MAX);
        }
        self.specs = specs.to_vec();
    }

    /// Connections being served.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Reacts to every pending stack event.
    pub fn handle_events(&mut self, tcp: &mut TcpStack, now: Instant) {
        while let Some(ev) = tcp.poll_event() {
            self.handle_event(tcp, now, ev);
        }
    }

    /// Reacts to one stack event (of a service connection or listener).
    pub fn handle_event(&mut self, tcp: &mut TcpStack, now: Instant, ev: Event) {
        {
            match ev {
                Event::Accepted(l) => {
                    let Some(&(_, svc)) = self.listeners.iter().find(|(x, _)| *x == l) else {
                        return;
                    };
                    while let Some(h) = tcp.accept(l) {
                        let kind = self.specs[svc].kind;
                        self.specs[svc].counters.shard(self.worker).packets.inc();
                        self.conns.insert(
                            h,
                            Conn {
                                kind,
                                service: svc,
                                offset: 0,
                                closing: false,
                            },
                        );
                        self.pump(tcp, now, h);
                    }
                }
                Event::Readable(h) | Event::Writable(h) => self.pump(tcp, now, h),
                Event::PeerClosed(h) => {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.closing = true;
                    }
                    self.pump(tcp, now, h);
                }
                Event::Closed(h) => {
                    self.conns.remove(&h);
                    let _ = tcp.close(now, h);
                }
                Event::Reset(h, _) => {
                    self.conns.remove(&h);
                }
                Event::Connected(_) => {}
            }
        }
    }

    /// Moves as much data as the windows allow for connection `h`.
    fn pump(&mut self, tcp: &mut TcpStack, now: Instant, h: ConnHandle) {
        let Some(conn) = self.conns.get_mut(&h) else {
            return;
        };
        let counters = self.specs.get(conn.service).map(|s| s.counters.clone());
        let mut received = 0u64;
        match conn.kind {
            ServiceKind::Discard => loop {
                match tcp.read(h, &mut self.scratch) {
                    Ok(0) => break,
                    Ok(n) => received += n as u64,
                    Err(_) => break,
                }
            },
            ServiceKind::Echo => loop {
                let room = tcp.send_capacity(h).min(self.scratch.len());
                if room == 0 {
                    if tcp.readable_bytes(h) > 0 {
                        // Arms the Writable event: a write that finds no room returns 0.
                        let _ = tcp.write(h, &self.pattern[..1]);
                    }
                    break;
                }
                match tcp.read(h, &mut self.scratch[..room]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        received += n as u64;
                        // Cannot fall short: no more was read than the send buffer had room for.
                        let _ = tcp.write(h, &self.scratch[..n]);
                    }
                }
            },
            ServiceKind::Chargen => {
                // Input is read and ignored (RFC 864).
                while let Ok(n) = tcp.read(h, &mut self.scratch) {
                    if n == 0 {
                        break;
                    }
                    received += n as u64;
                }
                if !conn.closing {
                    loop {
                        let room = tcp.send_capacity(h);
                        if room == 0 {
                            // Arms the Writable event: a write that finds no room returns 0.
                            let _ = tcp.write(h, &self.pattern[..1]);
                            break;
                        }
                        let take = room.min(PATTERN - conn.offset).min(self.scratch.len());
                        match tcp.write(h, &self.pattern[conn.offset..conn.offset + take]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => conn.offset = (conn.offset + n) % PATTERN,
                        }
                    }
                }
            }
        }
        if let Some(c) = counters {
            c.shard(self.worker).bytes.add(received);
        }
        let drained = tcp.readable_bytes(h) == 0 || conn.kind == ServiceKind::Chargen;
        if conn.closing && drained {
            // Everything read has been written back (echo); the stack sends it before FIN.
            match tcp.shutdown(now, h) {
                Ok(()) | Err(TcpError::NotWritable) => {}
                Err(_) => {
                    self.conns.remove(&h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_pattern_follows_rfc_864() {
        let p = chargen_pattern();
        assert_eq!(&p[..10], b" !\"#$%&'()");
        assert_eq!(&p[72..74], b"\r\n");
        assert_eq!(p[LINE], b'!', "each line starts one character later");
        assert_eq!(&p[PATTERN..PATTERN + LINE], &p[..LINE], "wraps around");
        assert!(p[..PATTERN]
            .iter()
            .all(|&b| (32..127).contains(&b) || b == b'\r' || b == b'\n'));
    }
}
