//! The proxy in memory: a client stack, a proxying host and member stacks joined by
//! links that lose, duplicate and reorder segments (seeded, each side on its own), on a
//! virtual clock. No sleeping; every loop is bounded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::dataplane::Dataplane;
use crate::host::Host;
use crate::lb::{MemberId, MonitorStatus};
use crate::tcp::{StackConfig, TcpProfile};
use crate::testing;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const TICK: Duration = Duration::from_millis(1);

/// Faults of one link (both directions).
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    loss: f64,
    dup: f64,
    reorder: f64,
}

struct Wire {
    at: Instant,
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

/// The byte at `offset` of the stream `seed`.
fn pattern(seed: u64, offset: u64) -> u8 {
    let x = (offset ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 29) as u8
}

/// One side's application: sends `to_send` bytes of its pattern then (optionally after
/// the peer's FIN) shuts down; checks every byte it receives against the peer's.
#[derive(Debug, Default)]
struct Endpoint {
    to_send: u64,
    sent: u64,
    received: u64,
    send_seed: u64,
    recv_seed: u64,
    eof: bool,
    shut: bool,
    /// Send only after the peer's FIN (a request-then-response half-close).
    after_eof: bool,
    /// Do not read (a stalled reader).
    stalled: bool,
    reset: bool,
    corrupt: bool,
    /// Speaks TLS over the connection (see `Endpoint::pump_tls`).
    tls: Option<Box<TlsSession>>,
    /// The TLS session failed.
    tls_failed: bool,
    /// Speaks HTTP instead of the pattern (see `http::App`).
    http: Option<Box<http::App>>,
}

impl Endpoint {
    fn pump(&mut self, tcp: &mut TcpStack, now: Instant, h: ConnHandle) {
        if self.tls.is_some() {
            return self.pump_tls(tcp, now, h);
        }
        if self.http.is_some() {
            return self.pump_http(tcp, now, h);
        }
        if !self.stalled {
            let mut buf = [0u8; 16384];
            loop {
                match tcp.read(h, &mut buf) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => {
                        for (k, b) in buf[..n].iter().enumerate() {
                            if *b != pattern(self.recv_seed, self.received + k as u64) {
                                self.corrupt = true;
                            }
                        }
                        self.received += n as u64;
                    }
                    Err(_) => break,
                }
            }
        }
        if self.after_eof && !self.eof {
            return;
        }
        let mut buf = [0u8; 16384];
        while self.sent < self.to_send {
            let n = ((self.to_send - self.sent) as usize).min(buf.len());
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(self.send_seed, self.sent + k as u64);
            }
            match tcp.write(h, &buf[..n]) {
                Ok(0) | Err(_) => break,
                Ok(w) => self.sent += w as u64,
            }
        }
        if self.sent == self.to_send && !self.shut {
            self.shut = true;
            let _ = tcp.shutdown(now, h);
        }
    }
}

impl Endpoint {
    /// As `pump`, through the endpoint's TLS session: ciphertext in and out of the
    /// connection, the pattern checked and written as plaintext, `close_notify` before
    /// the FIN.
    fn pump_tls(&mut self, tcp: &mut TcpStack, now: Instant, h: ConnHandle) {
        let Some(t) = self.tls.as_deref_mut() else {
            return;
        };
        for _ in 0..10_000 {
            let mut progress = false;
            if let Ok((a, _)) = tcp.recv_slices(h) {
                if !a.is_empty() && t.error().is_none() {
                    match t.feed_ciphertext(a) {
                        Ok(n) if n > 0 => {
                            let _ = tcp.consume(h, n);
                            progress = true;
                        }
                        Ok(_) => {}
                        Err(_) => self.tls_failed = true,
                    }
                }
            }
            if !self.stalled {
                let p = t.plaintext();
                match self.http.as_deref_mut() {
                    Some(app) => app.recv(p),
                    None => {
                        for (k, b) in p.iter().enumerate() {
                            if *b != pattern(self.recv_seed, self.received + k as u64) {
                                self.corrupt = true;
                            }
                        }
                    }
                }
                let n = p.len();
                self.received += n as u64;
                t.consume_plaintext(n);
                progress |= n > 0;
            }
            if let (Some(app), false) = (self.http.as_deref_mut(), t.is_handshaking()) {
                progress |= app.send_tls(t) > 0;
                if app.verdict() == http::Verdict::Reset {
                    if !self.shut {
                        self.shut = true;
                        let _ = tcp.abort(now, h);
                    }
                    return;
                }
            } else if (self.eof || !self.after_eof) && !t.is_handshaking() {
                let mut buf = [0u8; 16384];
                while self.sent < self.to_send {
                    let n = ((self.to_send - self.sent) as usize).min(buf.len());
                    for (k, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern(self.send_seed, self.sent + k as u64);
                    }
                    match t.write_plaintext(&buf[..n]) {
                        Ok(0) | Err(_) => break,
                        Ok(w) => {
                            self.sent += w as u64;
                            progress = true;
                        }
                    }
                }
                if self.sent == self.to_send && !self.shut {
                    let _ = t.close();
                }
            }
            while t.wants_write() {
                match tcp.write(h, t.pending_ciphertext()) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        t.consume_ciphertext(n);
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        self.tls_failed |= t.error().is_some();
        if (t.peer_closed() && t.plaintext().is_empty()) || tcp.read_closed(h) {
            if let Some(app) = self.http.as_deref_mut() {
                app.peer_closed();
            }
            self.eof = true;
        } else if tcp.readable_bytes(h) == 0 {
            let _ = tcp.read(h, &mut []);
        }
        let app_done = self
            .http
            .as_deref()
            .is_none_or(|a| a.verdict() != http::Verdict::Open);
        if self.sent == self.to_send
            && app_done
            && !self.shut
            && !t.wants_write()
            && !t.is_handshaking()
        {
            self.shut = true;
            let _ = tcp.shutdown(now, h);
        }
    }
}

struct Member {
    ip: IpAddr,
    tcp: TcpStack,
    listening: bool,
    /// What each accepted connection does.
    template: fn() -> Endpoint,
    conns: HashMap<ConnHandle, Endpoint>,
    accepted: u64,
    /// Speaks TLS with this configuration.
    tls: Option<crate::tls::TlsServerConfig>,
    /// Speaks HTTP, behaving so (see `http::Behaviour`).
    http: Option<http::Behaviour>,
}

struct Bed {
    now: Instant,
    dp: Arc<Dataplane>,
    host: Host,
    client: TcpStack,
    clients: HashMap<ConnHandle, Endpoint>,
    members: Vec<Member>,
    flight: Vec<Wire>,
    rng: u64,
    client_faults: Faults,
    server_faults: Faults,
    buf: Vec<u8>,
    /// Segments with data delivered to the client from the proxy.
    client_data_segments: u64,
}

fn profile() -> TcpProfile {
    TcpProfile {
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        delayed_ack: Duration::ZERO,
        min_rto: Duration::from_millis(20),
        initial_rto: Duration::from_millis(200),
        ..TcpProfile::default()
    }
}

fn big_stack() -> TcpStack {
    big_stack_with(profile())
}

fn big_stack_with(p: TcpProfile) -> TcpStack {
    let cfg = StackConfig {
        max_connections: 65_536,
        max_buffer_bytes: 1 << 34,
        ..StackConfig::default()
    };
    TcpStack::new(cfg, p)
}

fn member_addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 2, i)), 80)
}

impl Bed {
    /// The proxy in front of members 198.18.2.11..(11+n), each listening unless in
    /// `closed`; each accepted connection behaves as `template` says.
    fn new(
        n: u8,
        closed: &[u8],
        template: fn() -> Endpoint,
        tweak: impl FnOnce(&mut StandardVs),
    ) -> Bed {
        let addrs: Vec<SocketAddr> = (0..n).map(|i| member_addr(11 + i)).collect();
        let mut vs = StandardVs::new(
            "web-proxy",
            "198.18.1.100:8080".parse().unwrap(),
            testing::pool_binding(&addrs),
            Snat::Automap,
            1,
        );
        vs.client_profile = profile();
        vs.server_profile = profile();
        tweak(&mut vs);
        let dp = Arc::new(testing::dataplane(1).with_standard(vec![vs]));
        let mut host = Host::new(0, &dp, crate::counters::PipelineCounters::new_shared());
        let cfg = StackConfig {
            max_connections: 65_536,
            max_buffer_bytes: 1 << 34,
            ..StackConfig::default()
        };
        host.set_tcp(&dp, cfg, profile());
        let members = addrs
            .iter()
            .map(|a| {
                let mut tcp = big_stack();
                let listening = !closed.contains(
                    &(a.ip()
                        .to_string()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .parse::<u8>()
                        .unwrap()),
                );
                if listening {
                    tcp.listen(*a, 65_536, ProfileId::DEFAULT).unwrap();
                }
                Member {
                    ip: a.ip(),
                    tcp,
                    listening,
                    template,
                    conns: HashMap::new(),
                    accepted: 0,
                    tls: None,
                    http: None,
                }
            })
            .collect();
        Bed {
            now: Instant::from_secs(1),
            dp,
            host,
            client: big_stack(),
            clients: HashMap::new(),
            members,
            flight: Vec::new(),
            rng: 0x1234_5678_9abc_def1,
            client_faults: Faults::default(),
            client_data_segments: 0,
            server_faults: Faults::default(),
            buf: vec![0u8; 2048],
        }
    }

    /// Members that send every write at once (Nagle off, as nginx's `tcp_nodelay`),
    /// before any connection.
    fn members_nodelay(&mut self) {
        for (i, m) in self.members.iter_mut().enumerate() {
            let mut p = profile();
            p.nagle = false;
            m.tcp = big_stack_with(p);
            if m.listening {
                m.tcp
                    .listen(member_addr(11 + i as u8), 65_536, ProfileId::DEFAULT)
                    .unwrap();
            }
        }
    }

    fn vs(&self) -> &StandardVs {
        &self.dp.standard[0]
    }

    fn rand(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn connect(&mut self, port: u16, e: Endpoint) -> ConnHandle {
        let h = self
            .client
            .connect(
                self.now,
                SocketAddr::new(IpAddr::V4(CLIENT), port),
                "198.18.1.100:8080".parse().unwrap(),
                ProfileId::DEFAULT,
            )
            .unwrap();
        self.clients.insert(h, e);
        h
    }

    /// A client speaking TLS with `cfg` (its ClientHello goes with the handshake).
    fn connect_tls(
        &mut self,
        port: u16,
        mut e: Endpoint,
        cfg: &crate::tls::TlsClientConfig,
    ) -> ConnHandle {
        let vip: IpAddr = "198.18.1.100".parse().unwrap();
        e.tls = Some(Box::new(TlsSession::client(cfg, vip, self.now).unwrap()));
        self.connect(port, e)
    }

    fn send(&mut self, src: IpAddr, dst: IpAddr, len: usize, faults: Faults) {
        if self.rand() < faults.loss {
            return;
        }
        let copies = if self.rand() < faults.dup { 2 } else { 1 };
        for _ in 0..copies {
            let extra = if self.rand() < faults.reorder { 3 } else { 0 };
            let at = self.now + TICK * (1 + extra);
            self.flight.push(Wire {
                at,
                src,
                dst,
                bytes: self.buf[..len].to_vec(),
            });
        }
    }

    /// One millisecond: transmit, deliver what is due, run timers and applications.
    fn step(&mut self) {
        let now = self.now;
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(t) = self.client.poll_transmit(now, &mut buf) {
            self.buf = std::mem::take(&mut buf);
            self.send(t.src, t.dst, t.len, self.client_faults);
            buf = std::mem::take(&mut self.buf);
        }
        for m in 0..self.members.len() {
            while let Some(t) = self.members[m].tcp.poll_transmit(now, &mut buf) {
                self.buf = std::mem::take(&mut buf);
                self.send(t.src, t.dst, t.len, self.server_faults);
                buf = std::mem::take(&mut self.buf);
            }
        }
        while let Some(t) = self.host.poll_transmit(now, &mut buf) {
            let to_member = self.members.iter().any(|m| m.ip == t.dst);
            let faults = if !to_member {
                self.client_faults
            } else {
                self.server_faults
            };
            self.buf = std::mem::take(&mut buf);
            self.send(t.src, t.dst, t.len, faults);
            buf = std::mem::take(&mut self.buf);
        }
        self.buf = buf;
        self.now += TICK;
        let now = self.now;
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.flight.len() {
            if self.flight[i].at <= now {
                due.push(self.flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        for w in due {
            let from_member = self.members.iter().any(|m| m.ip == w.src);
            if w.dst == IpAddr::V4(CLIENT) && !from_member {
                let header = usize::from(w.bytes.get(12).map_or(0, |b| b >> 4)) * 4;
                if w.bytes.len() > header {
                    self.client_data_segments += 1;
                }
                self.client.handle_segment(now, w.src, w.dst, &w.bytes);
            } else if let Some(m) = self.members.iter_mut().find(|m| m.ip == w.dst) {
                m.tcp.handle_segment(now, w.src, w.dst, &w.bytes);
            } else {
                self.host.handle_segment(now, w.src, w.dst, &w.bytes, false);
            }
        }
        let dp = self.dp.clone();
        self.host.poll(now, &dp, &|_, _| false);
        self.client.handle_timeout(now);
        while let Some(ev) = self.client.poll_event() {
            match ev {
                Event::Connected(h)
                | Event::Readable(h)
                | Event::Writable(h)
                | Event::PeerClosed(h) => {
                    if let Some(e) = self.clients.get_mut(&h) {
                        e.pump(&mut self.client, now, h);
                    }
                }
                Event::Closed(h) => {
                    // A stalled reader keeps its unread bytes (closing would reset).
                    if self.client.readable_bytes(h) == 0 {
                        let _ = self.client.close(now, h);
                    }
                }
                Event::Reset(h, _) => {
                    if let Some(e) = self.clients.get_mut(&h) {
                        e.reset = true;
                    }
                }
                Event::Accepted(_) => {}
            }
        }
        for m in self.members.iter_mut() {
            m.tcp.handle_timeout(now);
            while let Some(ev) = m.tcp.poll_event() {
                match ev {
                    Event::Accepted(l) => {
                        while let Some(h) = m.tcp.accept(l) {
                            m.accepted += 1;
                            let mut e = (m.template)();
                            if let Some(cfg) = m.tls.as_ref() {
                                e.tls = Some(Box::new(TlsSession::server(cfg, now).unwrap()));
                            }
                            if let Some(b) = m.http.as_ref() {
                                e.http = Some(Box::new(http::App::server(b.clone())));
                            }
                            e.pump(&mut m.tcp, now, h);
                            m.conns.insert(h, e);
                        }
                    }
                    Event::Readable(h)
                    | Event::Writable(h)
                    | Event::PeerClosed(h)
                    | Event::Connected(h) => {
                        if let Some(e) = m.conns.get_mut(&h) {
                            e.pump(&mut m.tcp, now, h);
                        }
                    }
                    Event::Closed(h) => {
                        let _ = m.tcp.close(now, h);
                    }
                    Event::Reset(h, _) => {
                        if let Some(e) = m.conns.get_mut(&h) {
                            e.reset = true;
                        }
                    }
                }
            }
        }
    }

    /// Steps until `done` or `limit` of virtual time passed; true if done.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Bed) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }
}

fn downloader(up: u64) -> Endpoint {
    Endpoint {
        to_send: up,
        send_seed: 1,
        recv_seed: 2,
        ..Endpoint::default()
    }
}

fn transfer(n: u64, faults: Faults, seed: u64) {
    fn server() -> Endpoint {
        Endpoint {
            to_send: SERVER_BYTES.with(|b| *b.borrow()),
            send_seed: 2,
            recv_seed: 1,
            ..Endpoint::default()
        }
    }
    SERVER_BYTES.with(|b| *b.borrow_mut() = n);
    let mut bed = Bed::new(4, &[], server, |_| {});
    bed.rng ^= seed;
    bed.client_faults = faults;
    bed.server_faults = faults;
    let h = bed.connect(40_000, downloader(n));
    let done = bed.run_until(Duration::from_secs(600), |b| {
        let c = &b.clients[&h];
        c.eof && c.shut && c.received == n && b.host.proxy().flow_count() == 0
    });
    let c = &bed.clients[&h];
    assert!(
        done,
        "client sent {} received {} of {n}; eof {}",
        c.sent, c.received, c.eof
    );
    assert!(
        !c.corrupt,
        "download bytes differ from what the member sent"
    );
    let m: Vec<&Endpoint> = bed.members.iter().flat_map(|m| m.conns.values()).collect();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].received, n);
    assert!(
        !m[0].corrupt,
        "upload bytes differ from what the client sent"
    );
    let cs = bed.vs().counters.client_side();
    let ss = bed.vs().counters.server_side();
    assert_eq!((cs.total, cs.current, ss.total, ss.current), (1, 0, 1, 0));
    assert_eq!((cs.bytes_in, cs.bytes_out), (n, n));
    assert_eq!((ss.bytes_in, ss.bytes_out), (n, n));
    assert!(cs.packets_in > 0 && ss.packets_out > 0);
    assert_eq!(bed.host.tcp().buffer_bytes(), 0, "buffers given back");
}

mod http;
mod tls;

thread_local! {
    static SERVER_BYTES: std::cell::RefCell<u64> = const { std::cell::RefCell::new(0) };
}

/// 1 GiB each way through 1 % loss with duplication and reordering on each side when
/// `ROUGE_PROXY_FULL=1` (`scripts/test.sh` runs it so, in release); 4 MiB otherwise.
#[test]
fn relays_both_ways_through_loss_duplication_and_reordering() {
    let full = std::env::var("ROUGE_PROXY_FULL").is_ok_and(|v| v == "1");
    let faults = Faults {
        loss: 0.01,
        dup: 0.005,
        reorder: 0.01,
    };
    let n = if full { 1 << 30 } else { 4 << 20 };
    transfer(n, faults, 7);
}

#[test]
fn half_close_is_carried_both_ways() {
    // The member answers only after the client's FIN (like `nc` sending a request and
    // closing its side): the FIN must cross before the answer can start.
    fn server() -> Endpoint {
        Endpoint {
            to_send: 100_000,
            send_seed: 2,
            recv_seed: 1,
            after_eof: true,
            ..Endpoint::default()
        }
    }
    let mut bed = Bed::new(1, &[], server, |_| {});
    let h = bed.connect(40_000, downloader(5000));
    let ok = bed.run_until(Duration::from_secs(10), |b| {
        b.clients[&h].eof && b.host.proxy().flow_count() == 0
    });
    let c = &bed.clients[&h];
    assert!(ok, "received {}", c.received);
    assert_eq!(c.received, 100_000);
    assert!(!c.corrupt && !c.reset);
    let m = bed.members[0].conns.values().next().unwrap();
    assert_eq!(m.received, 5000);
    assert!(m.eof && !m.reset);
    assert_eq!(bed.vs().counters.resets(ResetCause::ClientReset), 0);
}

fn idle_server() -> Endpoint {
    Endpoint {
        send_seed: 2,
        recv_seed: 1,
        to_send: u64::MAX,
        after_eof: true,
        ..Endpoint::default()
    }
}

#[test]
fn a_reset_on_one_side_resets_the_other() {
    let mut bed = Bed::new(1, &[], idle_server, |_| {});
    let a = bed.connect(40_000, downloader(0));
    bed.clients.get_mut(&a).unwrap().shut = true; // keep the client side open
    assert!(bed.run_until(Duration::from_secs(2), |b| b.members[0].conns.len() == 1));
    bed.run_until(Duration::from_millis(20), |_| false);
    // The member resets: the client is reset too.
    let (&sh, _) = bed.members[0].conns.iter().next().unwrap();
    let now = bed.now;
    bed.members[0].tcp.abort(now, sh).unwrap();
    assert!(bed.run_until(Duration::from_secs(2), |b| b.clients[&a].reset));
    assert_eq!(bed.vs().counters.resets(ResetCause::ServerReset), 1);
    assert_eq!(bed.host.proxy().flow_count(), 0);

    // The client resets: the member is reset too.
    let b = bed.connect(40_001, downloader(0));
    bed.clients.get_mut(&b).unwrap().shut = true;
    assert!(bed.run_until(Duration::from_secs(2), |x| x.members[0].conns.len() == 2));
    bed.run_until(Duration::from_millis(20), |_| false);
    let now = bed.now;
    bed.client.abort(now, b).unwrap();
    assert!(bed.run_until(Duration::from_secs(2), |x| {
        x.members[0].conns.iter().any(|(&k, e)| k != sh && e.reset)
    }));
    assert_eq!(bed.vs().counters.resets(ResetCause::ClientReset), 1);
    assert_eq!(bed.host.proxy().flow_count(), 0);
    assert_eq!(
        bed.vs().lb.counts.current(MemberId(0)),
        0,
        "member slot given back"
    );
}

#[test]
fn a_slow_reader_never_makes_the_proxy_hold_more_than_its_profiles_allow() {
    fn server() -> Endpoint {
        Endpoint {
            to_send: 64 << 20,
            send_seed: 2,
            recv_seed: 1,
            ..Endpoint::default()
        }
    }
    let mut bed = Bed::new(1, &[], server, |vs| {
        vs.buffer_high = 64 * 1024;
        vs.buffer_low = 32 * 1024;
    });
    let mut e = downloader(0);
    e.stalled = true;
    let h = bed.connect(40_000, e);
    let mut peak = 0;
    for _ in 0..3000 {
        bed.step();
        peak = peak.max(bed.host.tcp().buffer_bytes());
    }
    // Per flow: the client side's send buffer with its retransmission records and the
    // server side's receive buffer (256 KiB each as allocated), nothing else, however
    // much the member offers.
    let bound = 2 * 256 * 1024 + 16 * 1024;
    assert!(peak <= bound, "the proxy held {peak} bytes, bound {bound}");
    let member = bed.members[0].conns.values().next().unwrap();
    assert!(
        member.sent < 2 << 20,
        "the member was held back ({} sent)",
        member.sent
    );
    // Moved toward the client: what its receive window took and what the proxy's
    // client-side send buffer holds, no more.
    let cq = {
        let f = bed.host.proxy().flows(bed.now);
        assert_eq!(f.len(), 1);
        f[0].bytes_out
    };
    assert!(cq <= 2 * 256 * 1024, "{cq}");
    // The reader wakes up: everything arrives, intact.
    bed.clients.get_mut(&h).unwrap().stalled = false;
    let now = bed.now;
    bed.clients
        .get_mut(&h)
        .unwrap()
        .pump(&mut bed.client, now, h);
    let done = bed.run_until(Duration::from_secs(120), |b| {
        b.clients[&h].received == 64 << 20
    });
    let member = bed.members[0].conns.values().next().unwrap();
    assert!(
        done,
        "client received {}, member sent {}, flows {:?}",
        bed.clients[&h].received,
        member.sent,
        bed.host.proxy().flows(bed.now)
    );
    assert!(!bed.clients[&h].corrupt);
}

#[test]
fn a_refusing_member_is_passed_over_without_the_client_noticing() {
    // Member .11 refuses (no listener: RST); .12 serves.
    fn server() -> Endpoint {
        Endpoint {
            to_send: 1000,
            send_seed: 2,
            recv_seed: 1,
            after_eof: true,
            ..Endpoint::default()
        }
    }
    let mut bed = Bed::new(2, &[11], server, |_| {});
    let hs: Vec<ConnHandle> = (0..6)
        .map(|i| bed.connect(40_000 + i, downloader(10)))
        .collect();
    assert!(bed.run_until(Duration::from_secs(10), |b| {
        hs.iter().all(|h| b.clients[h].eof) && b.host.proxy().flow_count() == 0
    }));
    for h in &hs {
        let c = &bed.clients[h];
        assert_eq!((c.received, c.reset, c.corrupt), (1000, false, false));
    }
    assert!(!bed.members[0].listening);
    assert_eq!(bed.members[1].accepted, 6);
    assert!(
        bed.vs().counters.reselects() >= 3,
        "{}",
        bed.vs().counters.reselects()
    );
    assert_eq!(bed.vs().counters.resets(ResetCause::NoMember), 0);
}

#[test]
fn a_member_that_never_answers_is_passed_over_after_the_connect_timeout() {
    let mut bed = Bed::new(2, &[], idle_server, |vs| {
        vs.connect_timeout = Duration::from_millis(300);
    });
    // .11 drops everything: its SYNs vanish.
    bed.members[0].ip = IpAddr::V4(Ipv4Addr::new(198, 18, 9, 9));
    let h = bed.connect(40_000, downloader(0));
    bed.clients.get_mut(&h).unwrap().shut = true;
    assert!(bed.run_until(Duration::from_secs(3), |b| b.members[1].accepted == 1));
    assert!(bed.now < Instant::from_secs(1) + Duration::from_millis(1500));
    assert_eq!(bed.vs().counters.reselects(), 1);
    assert!(!bed.clients[&h].reset);
}

#[test]
fn every_member_refusing_resets_the_client_counted_by_reason() {
    let mut bed = Bed::new(2, &[11, 12], idle_server, |_| {});
    let h = bed.connect(40_000, downloader(0));
    assert!(bed.run_until(Duration::from_secs(5), |b| b.clients[&h].reset));
    assert_eq!(bed.vs().counters.resets(ResetCause::NoMember), 1);
    assert_eq!(bed.vs().counters.reselects(), 1);
    assert_eq!(bed.host.proxy().flow_count(), 0);
}

#[test]
fn a_member_gone_down_has_its_flows_reset_on_both_sides() {
    let mut bed = Bed::new(1, &[], idle_server, |_| {});
    let h = bed.connect(40_000, downloader(0));
    bed.clients.get_mut(&h).unwrap().shut = true;
    assert!(bed.run_until(Duration::from_secs(2), |b| b.members[0].conns.len() == 1));
    bed.run_until(Duration::from_millis(20), |_| false);
    // Disabled: the flow continues.
    bed.vs()
        .lb
        .states
        .set_admin(MemberId(0), crate::lb::AdminState::Disabled);
    bed.run_until(Duration::from_millis(500), |_| false);
    assert_eq!(bed.host.proxy().flow_count(), 1);
    bed.vs()
        .lb
        .states
        .set_monitor(MemberId(0), MonitorStatus::Down);
    assert!(bed.run_until(Duration::from_secs(1), |b| {
        b.clients[&h].reset && b.members[0].conns.values().all(|e| e.reset)
    }));
    assert_eq!(bed.vs().counters.resets(ResetCause::MemberDown), 1);
}

#[test]
fn clients_outside_the_allow_list_and_beyond_the_limit_are_reset() {
    let mut bed = Bed::new(1, &[], idle_server, |vs| {
        vs.allow = vec!["198.18.7.0/24".parse().unwrap()];
    });
    let h = bed.connect(40_000, downloader(0));
    assert!(bed.run_until(Duration::from_secs(2), |b| b.clients[&h].reset));
    assert_eq!(bed.vs().counters.resets(ResetCause::NotAllowed), 1);
    assert_eq!(bed.members[0].accepted, 0);

    let mut bed = Bed::new(1, &[], idle_server, |vs| vs.connection_limit = 2);
    let hs: Vec<ConnHandle> = (0..3)
        .map(|i| bed.connect(40_000 + i, downloader(0)))
        .collect();
    for h in &hs {
        bed.clients.get_mut(h).unwrap().shut = true;
    }
    assert!(bed.run_until(Duration::from_secs(2), |b| hs
        .iter()
        .any(|h| b.clients[h].reset)));
    bed.run_until(Duration::from_millis(100), |_| false);
    assert_eq!(hs.iter().filter(|h| bed.clients[h].reset).count(), 1);
    assert_eq!(bed.vs().counters.resets(ResetCause::ConnectionLimit), 1);
    assert_eq!(bed.members[0].accepted, 2);
}

#[test]
fn ten_thousand_concurrent_flows_and_the_memory_of_an_idle_one() {
    let mut bed = Bed::new(4, &[], idle_server, |_| {});
    let n = 10_000u16;
    let before = bed.host.tcp().buffer_bytes();
    let hs: Vec<ConnHandle> = (0..n)
        .map(|i| {
            let h = bed.connect(20_000 + i, downloader(0));
            bed.clients.get_mut(&h).unwrap().shut = true;
            h
        })
        .collect();
    assert!(bed.run_until(Duration::from_secs(20), |b| {
        b.members.iter().map(|m| m.accepted).sum::<u64>() == n as u64
    }));
    bed.run_until(Duration::from_millis(50), |_| false);
    assert_eq!(bed.host.proxy().flow_count(), n as usize);
    assert_eq!(bed.vs().counters.client_side().current, n as u64);
    assert_eq!(bed.vs().counters.server_side().current, n as u64);
    for m in &bed.members {
        assert_eq!(m.accepted, n as u64 / 4, "round robin spreads the flows");
    }
    assert!(hs.iter().all(|h| !bed.clients[h].reset));
    let buffers = bed.host.tcp().buffer_bytes() - before;
    let per_flow = 2 * std::mem::size_of::<crate::tcp::Connection>()
        + std::mem::size_of::<Flow>()
        + buffers / n as usize;
    println!(
        "idle proxied flow: {per_flow} bytes (2 connections of {} bytes, flow record {} bytes, buffers {} bytes)",
        std::mem::size_of::<crate::tcp::Connection>(),
        std::mem::size_of::<Flow>(),
        buffers / n as usize
    );
    assert_eq!(buffers, 0, "idle flows hold no buffers");
}

#[test]
fn members_see_the_snat_address_of_the_mode_chosen() {
    fn server() -> Endpoint {
        Endpoint {
            to_send: 10,
            send_seed: 2,
            recv_seed: 1,
            after_eof: true,
            ..Endpoint::default()
        }
    }
    let pool: Vec<Ipv4Addr> = vec![
        "198.18.2.200".parse().unwrap(),
        "198.18.2.201".parse().unwrap(),
    ];
    for (snat, want) in [
        (
            Snat::Automap,
            vec![IpAddr::V4(Ipv4Addr::new(198, 18, 2, 1))],
        ),
        (
            Snat::Pool(pool.clone()),
            pool.iter().map(|&a| IpAddr::V4(a)).collect(),
        ),
        (Snat::None, vec![IpAddr::V4(CLIENT)]),
    ] {
        let mut bed = Bed::new(1, &[], server, |vs| vs.snat = snat.clone());
        let h = bed.connect(40_000, downloader(10));
        assert!(
            bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof),
            "{snat:?}"
        );
        let c = &bed.clients[&h];
        assert_eq!(
            (c.received, c.corrupt, c.reset),
            (10, false, false),
            "{snat:?}"
        );
        let snat_seen = bed.vs().counters.server_side().total;
        assert_eq!(snat_seen, 1);
        let used = bed
            .host
            .proxy()
            .last_snat()
            .expect("a server-side connection");
        assert!(want.contains(&used.ip()), "{snat:?}: {used}");
        if snat == Snat::None {
            assert_eq!(used.port(), 40_000, "the client's own port");
        }
    }
}

/// Without loss nothing waits on a timer: 32 MiB each way over 1 ms links with
/// 256 KiB windows takes well under a second of virtual time (a stall on a missed
/// `Writable` or a persist probe would show as seconds).
#[test]
fn a_clean_transfer_never_stalls() {
    fn server() -> Endpoint {
        Endpoint {
            to_send: 32 << 20,
            send_seed: 2,
            recv_seed: 1,
            ..Endpoint::default()
        }
    }
    let mut bed = Bed::new(1, &[], server, |vs| {
        vs.buffer_high = 64 * 1024;
        vs.buffer_low = 48 * 1024;
    });
    let start = bed.now;
    let h = bed.connect(40_000, downloader(32 << 20));
    let done = bed.run_until(Duration::from_secs(30), |b| {
        let c = &b.clients[&h];
        c.eof && c.received == 32 << 20 && b.host.proxy().flow_count() == 0
    });
    let took = bed.now - start;
    println!("32 MiB each way through the proxy: {took:?} of virtual time");
    assert!(done, "not done after {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// A member faster than its client: the proxy's windows toward the member close and
/// open as the client reads, and nothing the member sends inside them is dropped.
#[test]
fn a_fast_member_and_a_slow_client_lose_nothing_to_the_window() {
    fn server() -> Endpoint {
        Endpoint {
            to_send: 16 << 20,
            send_seed: 2,
            recv_seed: 1,
            ..Endpoint::default()
        }
    }
    let mut bed = Bed::new(1, &[], server, |_| {});
    let h = bed.connect(40_000, downloader(0));
    // The client reads in bursts: stalled 9 ms of every 10.
    let mut done = false;
    for i in 0..60_000 {
        let stalled = i % 10 != 0;
        bed.clients.get_mut(&h).unwrap().stalled = stalled;
        let open = bed.client.state(h) != Some(crate::tcp::State::SynSent);
        if !stalled && open {
            let now = bed.now;
            bed.clients
                .get_mut(&h)
                .unwrap()
                .pump(&mut bed.client, now, h);
        }
        bed.step();
        if bed.clients[&h].received == 16 << 20 {
            done = true;
            break;
        }
    }
    assert!(
        done,
        "received {}, reset {}, flows {:?}, member sent {:?}",
        bed.clients[&h].received,
        bed.clients[&h].reset,
        bed.host.proxy().flows(bed.now),
        bed.members[0]
            .conns
            .values()
            .map(|e| e.sent)
            .collect::<Vec<_>>()
    );
    assert!(!bed.clients[&h].corrupt);
    let k = bed.host.tcp().counters();
    let drops: Vec<(&str, u64)> = crate::tcp::TcpDrop::ALL
        .iter()
        .map(|d| (d.name(), k.dropped(*d)))
        .filter(|(_, n)| *n > 0)
        .collect();
    println!(
        "proxy stack drops: {drops:?}, retransmits {}",
        k.retransmits
    );
    let member_rtx = bed.members[0].tcp.counters().retransmits;
    assert_eq!(k.dropped(crate::tcp::TcpDrop::BeyondWindow), 0, "{drops:?}");
    assert_eq!(member_rtx, 0, "the member never had to resend");
}
