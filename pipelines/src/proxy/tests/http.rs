//! The proxy's HTTP flows in memory, on the bed of `proxy::tests`: a small HTTP/1.1
//! test member (`member`: objects with an `ETag`, `Range`, `If-Match`, uploads of
//! either framing, `100 Continue`, and the ways members misbehave: dying in the middle
//! of a response, closing idle connections, never answering) and a test client
//! (`client`: keep-alive or pipelined requests, every response body checked byte for
//! byte). This file holds what both share, their plumbing into the bed's endpoints,
//! and the tests.

use super::*;
use crate::http::{HttpError, HttpProfile, Policy, Rule};

mod client;
mod member;

use client::{Body, Client, Req};
pub(super) use member::Behaviour;
use member::{Cut, Framing, Server};

/// Stream seed of the bytes clients upload.
const UP_SEED: u64 = 0x5EED_0001;

/// Byte `off` of the object `/obj/<size>` (the same on every member).
fn obj_byte(size: u64, off: u64) -> u8 {
    pattern(0x0B1E_C700 ^ size, off)
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What an endpoint's application wants done with its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Keep it open.
    Open,
    /// Send our FIN (after what is queued).
    Shutdown,
    /// Reset it now.
    Reset,
}

/// An HTTP application on one connection: sans-I/O, bytes in and bytes out.
#[derive(Debug)]
pub(super) enum App {
    Server(Server),
    Client(Client),
}

impl App {
    pub(super) fn server(b: Behaviour) -> App {
        App::Server(Server::new(b))
    }

    pub(super) fn recv(&mut self, data: &[u8]) {
        match self {
            App::Server(s) => s.recv(data),
            App::Client(c) => c.recv(data),
        }
    }

    pub(super) fn peer_closed(&mut self) {
        match self {
            App::Server(s) => s.peer_eof = true,
            App::Client(c) => c.peer_closed(),
        }
    }

    /// Bytes to send next (empty: nothing now).
    fn pending(&mut self) -> &[u8] {
        match self {
            App::Server(s) => s.pending(),
            App::Client(c) => c.pending(),
        }
    }

    /// `n` bytes of `pending` were sent.
    fn sent(&mut self, n: usize) {
        match self {
            App::Server(s) => s.out_at += n,
            App::Client(c) => c.out_at += n,
        }
    }

    pub(super) fn verdict(&self) -> Verdict {
        match self {
            App::Server(s) => s.verdict,
            App::Client(c) => c.verdict(),
        }
    }

    /// Writes what is pending into the TLS session `t` (`close_notify` once done);
    /// returns the bytes written.
    pub(super) fn send_tls(&mut self, t: &mut TlsSession) -> usize {
        let mut total = 0;
        loop {
            let p = self.pending();
            if p.is_empty() {
                break;
            }
            match t.write_plaintext(p) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.sent(n);
                    total += n;
                }
            }
        }
        if self.verdict() == Verdict::Shutdown {
            let _ = t.close();
        }
        total
    }
}

impl Endpoint {
    /// `pump` for an endpoint speaking HTTP over plain TCP.
    pub(super) fn pump_http(&mut self, tcp: &mut TcpStack, now: Instant, h: ConnHandle) {
        let Some(app) = self.http.as_deref_mut() else {
            return;
        };
        let mut buf = [0u8; 16384];
        for _ in 0..10_000 {
            let mut progress = false;
            while !self.stalled {
                match tcp.read(h, &mut buf) {
                    Ok(0) => {
                        if !self.eof {
                            self.eof = true;
                            app.peer_closed();
                            progress = true;
                        }
                        break;
                    }
                    Ok(n) => {
                        app.recv(&buf[..n]);
                        self.received += n as u64;
                        progress = true;
                    }
                    Err(_) => break,
                }
            }
            loop {
                let p = app.pending();
                if p.is_empty() {
                    break;
                }
                match tcp.write(h, p) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        app.sent(n);
                        self.sent += n as u64;
                        progress = true;
                    }
                }
            }
            match app.verdict() {
                Verdict::Open => {}
                Verdict::Shutdown if !self.shut => {
                    self.shut = true;
                    let _ = tcp.shutdown(now, h);
                }
                Verdict::Shutdown => {}
                Verdict::Reset => {
                    if !self.shut {
                        self.shut = true;
                        let _ = tcp.abort(now, h);
                    }
                    return;
                }
            }
            if !progress {
                return;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Where a body being read stands (the test member's requests, the test client's
/// chunked responses).
pub(super) enum InBody {
    /// This many bytes left.
    Length(u64),
    /// Chunked: reading a size line.
    Size,
    /// Chunked: this many data bytes left in the chunk.
    Data(u64),
    /// Chunked: the CRLF after a chunk's data.
    DataEnd,
    /// Chunked: trailer lines up to the blank one.
    Trailer,
    /// Complete.
    Done,
}

// ---------------------------------------------------------------------------------
// The bed.

/// The test profile: short timeouts (the clock is virtual, but steps cost).
fn http_profile() -> HttpProfile {
    let mut p = HttpProfile::new("t");
    p.header_timeout = Duration::from_secs(2);
    p.response_timeout = Duration::from_secs(2);
    p.keepalive_timeout = Duration::from_secs(5);
    p
}

/// A bed of `n` HTTP members (those in `closed` not listening) behaving as `b`, behind
/// a virtual server with the HTTP profile `p`.
fn http_bed(n: u8, closed: &[u8], p: HttpProfile, b: Behaviour) -> Bed {
    http_bed_with(n, closed, p, b, |_| {})
}

/// As `http_bed`, the virtual server tweaked.
fn http_bed_with(
    n: u8,
    closed: &[u8],
    p: HttpProfile,
    b: Behaviour,
    tweak: impl FnOnce(&mut StandardVs),
) -> Bed {
    let mut bed = Bed::new(n, closed, Endpoint::default, |vs| {
        vs.http = Some(Arc::new(HttpVs {
            profile: p,
            policy: None,
            pools: Vec::new(),
        }));
        tweak(vs);
    });
    for m in &mut bed.members {
        m.http = Some(b.clone());
    }
    bed
}

impl Bed {
    /// A client sending as `c` says.
    fn http_client(&mut self, port: u16, c: Client) -> ConnHandle {
        self.connect(
            port,
            Endpoint {
                http: Some(Box::new(App::Client(c))),
                ..Endpoint::default()
            },
        )
    }

    fn app(&self, h: ConnHandle) -> &Client {
        match self.clients[&h].http.as_deref() {
            Some(App::Client(c)) => c,
            _ => panic!("not an HTTP client"),
        }
    }

    /// The connections of member `m` (in no order).
    fn served(&self, m: usize) -> Vec<&Server> {
        self.members[m]
            .conns
            .values()
            .filter_map(|e| match e.http.as_deref() {
                Some(App::Server(s)) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Every request head member `m` received.
    fn heads(&self, m: usize) -> Vec<String> {
        self.served(m)
            .iter()
            .flat_map(|s| s.heads.iter().cloned())
            .collect()
    }

    fn accepted(&self) -> u64 {
        self.members.iter().map(|m| m.accepted).sum()
    }

    /// Runs until client `h` has every response and the proxy no flow left.
    fn run_http(&mut self, limit: Duration, h: ConnHandle) -> bool {
        self.run_until(limit, |b| {
            b.app(h).done() && b.clients[&h].eof && b.host.proxy().flow_count() == 0
        })
    }

    fn http(&self) -> HttpTotals {
        self.vs().counters.http()
    }
}

/// Asserts every response of `h` is a `2xx` with its body intact.
fn assert_intact(bed: &Bed, h: ConnHandle) {
    let c = bed.app(h);
    assert!(
        c.done(),
        "{} of {} responses",
        c.responses.len(),
        c.reqs.len()
    );
    for (k, r) in c.responses.iter().enumerate() {
        assert!(
            (200..300).contains(&r.status) && r.intact,
            "response {k}: {} {:?} ({} body bytes, {:?})",
            r.status,
            r.head,
            r.body_len,
            r.text
        );
    }
    assert!(!bed.clients[&h].reset);
}

// ---------------------------------------------------------------------------------
// Tests.

#[test]
fn twenty_keep_alive_gets_on_one_connection_use_few_member_connections() {
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    let sizes = [0u64, 1, 1000, 70_000, 300_000];
    let reqs: Vec<Req> = (0..20).map(|k| Req::obj(sizes[k % sizes.len()])).collect();
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(20), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let k = bed.http();
    assert_eq!(k.requests, 20);
    assert_eq!(k.responses, [20, 0, 0, 0, 0]);
    assert!(bed.accepted() <= 2, "{} member connections", bed.accepted());
    assert_eq!(k.server_connections_opened, bed.accepted());
    assert_eq!(k.server_connections_reused, 20 - bed.accepted());
    let heads: usize = (0..2).map(|m| bed.heads(m).len()).sum();
    assert_eq!(heads, 20);
    let (cs, ss) = (
        bed.vs().counters.client_side(),
        bed.vs().counters.server_side(),
    );
    assert_eq!(cs.total, 1);
    // Segments are counted as they pass, both sides, like the bytes (not only when the
    // flow ends, when the client's connection may already be gone).
    let body: u64 = (0..20).map(|k| sizes[k % sizes.len()]).sum();
    assert!(cs.bytes_out >= body, "{cs:?}");
    assert!(
        cs.packets_out >= body / 1460 && cs.packets_in > 0,
        "client side: {cs:?}"
    );
    assert!(
        ss.packets_in >= body / 1460 && ss.packets_out > 0,
        "server side: {ss:?}"
    );
}

impl Bed {
    /// Lets the held bodies of member `m` go (`Behaviour::body_held`) and writes them.
    fn release_bodies(&mut self, m: usize) {
        let now = self.now;
        let member = &mut self.members[m];
        for (h, e) in member.conns.iter_mut() {
            if let Some(App::Server(s)) = e.http.as_deref_mut() {
                s.body_released = true;
            }
            e.pump(&mut member.tcp, now, *h);
        }
    }
}

#[test]
fn a_response_head_waits_for_its_body_and_goes_alone_only_when_the_body_is_late() {
    // The member writes a small response's head, and its body a moment later (two
    // segments): the proxy corks the client's connection after the head, so head and
    // body reach the client in one segment, as a kernel proxy's one `recv` of both
    // would send them.
    let mut b = Behaviour::new();
    b.body_held = true;
    let mut bed = http_bed(1, &[], http_profile(), b);
    bed.members_nodelay();
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(1000)]));
    assert!(bed.run_until(Duration::from_secs(2), |b| b
        .served(0)
        .iter()
        .any(|s| s.served == 1)));
    // The head leaves the member and reaches the proxy; the body follows a step later.
    bed.step();
    bed.release_bodies(0);
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert_eq!(
        bed.client_data_segments, 1,
        "head and body of a 1,000-byte response in one segment"
    );
    assert_eq!(bed.host.tcp().counters().corks, 1);

    // A body that comes long after its head: the head goes alone when the cork runs
    // out, and the body after it; nothing is lost or reordered.
    let mut b = Behaviour::new();
    b.body_held = true;
    let mut bed = http_bed(1, &[], http_profile(), b);
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(1000)]));
    assert!(bed.run_until(Duration::from_secs(2), |b| b
        .served(0)
        .iter()
        .any(|s| s.served == 1)));
    bed.run_until(Duration::from_millis(20), |_| false);
    assert_eq!(bed.client_data_segments, 1, "the head, alone");
    assert!(!bed.app(h).done());
    bed.release_bodies(0);
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert_eq!(bed.client_data_segments, 2);
    let k = bed.host.tcp().counters();
    assert_eq!((k.corks, k.cork_expired), (1, 1));
}

#[test]
fn oneconnect_reuses_member_connections_across_clients_and_can_be_turned_off() {
    for oneconnect in [true, false] {
        let mut p = http_profile();
        p.oneconnect = oneconnect;
        p.idle_timeout = Duration::from_secs(1);
        let mut bed = http_bed(2, &[], p, Behaviour::new());
        for c in 0..10u16 {
            let reqs = vec![Req::obj(1000), Req::obj(20_000), Req::obj(5)];
            let h = bed.http_client(40_000 + c, Client::new(reqs));
            assert!(bed.run_http(Duration::from_secs(5), h), "client {c}");
            assert_intact(&bed, h);
        }
        let k = bed.http();
        assert_eq!(k.requests, 30);
        if oneconnect {
            assert!(k.server_connections_reused >= 25, "{k:?}");
            assert!(bed.accepted() <= 4, "{} member connections", bed.accepted());
            assert_eq!(bed.host.proxy().idle_connections() as u64, bed.accepted());
            // `show connections` lists them as idle, without a client.
            let idle: Vec<_> = bed
                .host
                .proxy()
                .flows(bed.now)
                .into_iter()
                .filter(|f| f.state == FlowState::Idle)
                .collect();
            assert_eq!(idle.len() as u64, bed.accepted(), "{idle:?}");
            assert!(idle
                .iter()
                .all(|f| f.client.is_none() && f.server.is_some() && f.snat.is_some()));
            // With no client left, they still expire after `idle_timeout`.
            assert!(bed.run_until(Duration::from_millis(1500), |b| b
                .host
                .proxy()
                .idle_connections()
                == 0));
            assert!(bed.run_until(Duration::from_millis(100), |b| (0..2)
                .all(|m| b.served(m).iter().all(|s| s.peer_eof))));
        } else {
            assert_eq!(k.server_connections_reused, 0);
            assert_eq!(bed.accepted(), 30, "one member connection per request");
            assert_eq!(bed.host.proxy().idle_connections(), 0);
        }
        assert_eq!(bed.vs().counters.client_side().total, 10);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    let mut head = Req::obj(70_000);
    head.head = head.head.replacen("GET", "HEAD", 1);
    let reqs = vec![
        Req::obj(200_000),
        Req::obj(3),
        Req::upload("PUT", Body::Length(50_000)),
        head,
        Req::obj(0),
        Req::obj(100_001),
    ];
    let h = bed.http_client(40_000, Client::new(reqs).pipelined());
    assert!(bed.run_http(Duration::from_secs(10), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let lens: Vec<u64> = bed.app(h).responses.iter().map(|r| r.body_len).collect();
    assert_eq!(lens, [200_000, 3, 5, 0, 0, 100_001]);
    assert_eq!(bed.http().requests, 6);
}

#[test]
fn request_bodies_of_both_framings_reach_the_member_byte_for_byte() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let sizes = [0u64, 1, 70_000, 1 << 20];
    let mut reqs = Vec::new();
    for &n in &sizes {
        reqs.push(Req::upload("PUT", Body::Length(n)));
        reqs.push(Req::upload("POST", Body::Chunked(n)));
    }
    reqs.push(Req::obj(10));
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(20), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let s = bed.served(0);
    assert!(s.iter().all(|s| !s.corrupt), "an upload byte differed");
    let mut got: Vec<u64> = s.iter().flat_map(|s| s.uploads.iter().copied()).collect();
    got.sort_unstable();
    let mut want: Vec<u64> = sizes.iter().flat_map(|&n| [n, n]).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    // A chunked request reaches the member chunked, as sent.
    assert!(bed
        .heads(0)
        .iter()
        .any(|h| h.contains("Transfer-Encoding: chunked")));
}

#[test]
fn expect_100_continue_passes_the_members_100_and_the_body_follows() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let reqs = vec![
        Req::upload("PUT", Body::Length(300_000)).expecting_continue(),
        Req::upload("PUT", Body::Chunked(20_000)).expecting_continue(),
    ];
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(10), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert_eq!(bed.app(h).interim, [(0, 100), (1, 100)]);
    assert_eq!(bed.http().responses, [2, 0, 0, 0, 2]);
    assert!(bed.served(0).iter().all(|s| !s.corrupt));
    // The client waits for the `100` before its body: an interim head is never corked
    // (and each final answer came whole, head and body in one write).
    assert_eq!(bed.host.tcp().counters().corks, 0);
}

/// Sends `raw` alone; returns the bed and the client once the proxy answered and
/// closed.
fn refused(raw: &str) -> (Bed, ConnHandle) {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let mut c = Client::new(vec![Req::raw(raw)]);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    let ok = bed.run_until(Duration::from_secs(5), |b| {
        b.app(h).done() && b.clients[&h].eof
    });
    assert!(ok, "{:?}", bed.app(h));
    let r = &bed.app(h).responses[0];
    assert!(
        r.head.contains("Connection: close") && !r.text.is_empty(),
        "{r:?}"
    );
    (bed, h)
}

#[test]
fn smuggling_and_oversized_heads_are_refused_and_nothing_reaches_a_member() {
    let cases: [(String, u16, HttpError); 5] = [
        (
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /obj/1 HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            400,
            HttpError::Smuggling,
        ),
        (
            "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".into(),
            400,
            HttpError::Smuggling,
        ),
        (
            format!(
                "GET /obj/1 HTTP/1.1\r\nHost: a\r\n{}\r\n",
                (0..150).map(|k| format!("X-F{k}: v\r\n")).collect::<String>()
            ),
            431,
            HttpError::HeadersTooLarge,
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000)),
            400,
            HttpError::RequestLineTooLong,
        ),
        (
            // Never ends: refused once the head passes its limit.
            format!("GET /obj/1 HTTP/1.1\r\nHost: a\r\nX-Big: {}", "b".repeat(40_000)),
            431,
            HttpError::HeadersTooLarge,
        ),
    ];
    for (raw, status, why) in cases {
        let (bed, h) = refused(&raw);
        let c = bed.app(h);
        assert_eq!(c.responses.len(), 1, "{why:?}: {:?}", c.responses);
        assert_eq!(c.responses[0].status, status, "{why:?}");
        assert_eq!(bed.accepted(), 0, "{why:?}: a member was reached");
        let k = bed.http();
        assert_eq!(k.refused[why as usize], 1, "{why:?}: {k:?}");
        assert_eq!(k.refused.iter().sum::<u64>(), 1, "{why:?}: {k:?}");
    }
}

#[test]
fn a_slow_head_gets_408_after_the_header_timeout() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let start = bed.now;
    let mut c = Client::new(vec![Req::raw("GET /obj/10 HTTP/1.1\r\nHost: a\r\n")]);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.app(h).done()
        && b.clients[&h].eof));
    let took = bed.now - start;
    assert_eq!(bed.app(h).responses[0].status, 408);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(bed.http().answers[HttpAnswer::HeaderTimeout as usize], 1);
    assert_eq!(bed.accepted(), 0);
}

#[test]
fn a_member_that_never_answers_gets_504_after_the_response_timeout() {
    let mut b = Behaviour::new();
    b.silent = true;
    let mut bed = http_bed(1, &[], http_profile(), b);
    let start = bed.now;
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(10)]));
    assert!(bed.run_until(Duration::from_secs(5), |b| b.app(h).done()
        && b.clients[&h].eof));
    let took = bed.now - start;
    let r = &bed.app(h).responses[0];
    assert_eq!(r.status, 504, "{r:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(bed.heads(0).len(), 1, "the request reached the member");
    let k = bed.http();
    assert_eq!(k.answers[HttpAnswer::GatewayTimeout as usize], 1, "{k:?}");
    assert!(bed.run_until(Duration::from_secs(1), |b| b.host.proxy().flow_count() == 0));
}

#[test]
fn no_member_available_is_503_and_every_member_refusing_is_502() {
    // Every member marked down: none to try.
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    for m in 0..2 {
        bed.vs()
            .lb
            .states
            .set_monitor(MemberId(m), MonitorStatus::Down);
    }
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(10)]));
    assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
        && b.clients[&h].eof));
    assert_eq!(bed.app(h).responses[0].status, 503);
    assert_eq!(bed.http().answers[HttpAnswer::NoMember as usize], 1);
    assert_eq!(bed.accepted(), 0);

    // Every member refusing (RST to the SYN): tried and failed.
    let mut bed = http_bed(2, &[11, 12], http_profile(), Behaviour::new());
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(10)]));
    assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
        && b.clients[&h].eof));
    let r = &bed.app(h).responses[0];
    assert_eq!(r.status, 502, "{r:?}");
    let k = bed.http();
    assert_eq!(k.answers[HttpAnswer::BadGateway as usize], 1, "{k:?}");
    assert_eq!(k.answers[HttpAnswer::NoMember as usize], 0, "{k:?}");
    assert!(bed.vs().counters.reselects() >= 1);

    // Every member silent (SYNs lost): 502 once the connect timeouts ran out.
    let mut bed = http_bed_with(2, &[], http_profile(), Behaviour::new(), |vs| {
        vs.connect_timeout = Duration::from_millis(300);
    });
    for m in &mut bed.members {
        m.ip = IpAddr::V4(Ipv4Addr::new(198, 18, 9, 9));
    }
    let start = bed.now;
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(10)]));
    assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
        && b.clients[&h].eof));
    assert_eq!(bed.app(h).responses[0].status, 502);
    assert!(
        bed.now - start < Duration::from_secs(2),
        "{:?}",
        bed.now - start
    );
    assert!(bed.run_until(Duration::from_secs(1), |b| b.host.proxy().flow_count() == 0));
}

#[test]
fn a_get_on_a_reused_connection_the_member_dropped_is_retried_a_post_is_not() {
    for how in [Cut::Reset, Cut::Close] {
        let mut b = Behaviour::new();
        b.drop_after = Some((1, how));
        let mut bed = http_bed(1, &[], http_profile(), b);
        let reqs = vec![
            Req::obj(1000),
            Req::obj(50_000),
            Req::upload("PUT", Body::Length(0)),
            Req::obj(7),
        ];
        let h = bed.http_client(40_000, Client::new(reqs));
        assert!(
            bed.run_http(Duration::from_secs(5), h),
            "{how:?}: {:?}",
            bed.app(h)
        );
        assert_intact(&bed, h);
        let k = bed.http();
        assert_eq!(k.retries, 3, "{how:?}: {k:?}");
        assert_eq!(k.server_connections_reused, 3, "{how:?}: {k:?}");
        assert_eq!(bed.accepted(), 4, "{how:?}: a fresh connection per retry");
        assert_eq!(bed.app(h).responses.len(), 4);
    }
    let mut b = Behaviour::new();
    b.drop_after = Some((1, Cut::Reset));

    // A POST is not sent twice: 502.
    let mut bed = http_bed(1, &[], http_profile(), b);
    let reqs = vec![Req::obj(1000), Req::upload("POST", Body::Length(100))];
    let mut c = Client::new(reqs);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.app(h).done()
        && b.clients[&h].eof));
    let r = &bed.app(h).responses;
    assert_eq!((r[0].status, r[0].intact), (200, true));
    assert_eq!(r[1].status, 502, "{:?}", r[1]);
    let k = bed.http();
    assert_eq!(k.retries, 0, "{k:?}");
    assert_eq!(k.answers[HttpAnswer::BadGateway as usize], 1, "{k:?}");
    assert_eq!(bed.accepted(), 1);
    assert!(bed.served(0).iter().all(|s| s.uploads.is_empty()));
}

#[test]
fn idle_connections_the_member_closed_are_not_reused() {
    let mut b = Behaviour::new();
    b.close_after_response = true;
    let mut bed = http_bed(1, &[], http_profile(), b);
    let reqs: Vec<Req> = (0..5).map(|k| Req::obj(1000 * k)).collect();
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let k = bed.http();
    assert_eq!(k.server_connections_reused, 0, "{k:?}");
    assert_eq!(k.retries, 0, "{k:?}");
    assert_eq!(bed.accepted(), 5);
}

const BIG: u64 = 4 << 20;

/// Two members behind an `s3_resume` profile (`resume`); member .11 cuts its object
/// responses after 1 MiB as `cut` says, member .12 behaves as `other`.
fn resume_bed(resume: bool, cut: Cut, other: Behaviour) -> Bed {
    let mut p = http_profile();
    p.s3_resume = resume;
    let mut bed = http_bed(2, &[], p, Behaviour::new());
    let mut b = Behaviour::new();
    b.cut = Some((1 << 20, cut));
    bed.members[0].http = Some(b);
    bed.members[1].http = Some(other);
    bed
}

#[test]
fn a_get_whose_member_dies_midway_is_resumed_from_another() {
    for cut in [Cut::Reset, Cut::Close] {
        let mut bed = resume_bed(true, cut, Behaviour::new());
        let reqs = vec![Req::obj(BIG), Req::obj(1000)];
        let h = bed.http_client(40_000, Client::new(reqs));
        assert!(
            bed.run_http(Duration::from_secs(20), h),
            "{cut:?}: {:?}",
            bed.app(h)
        );
        assert_intact(&bed, h);
        assert_eq!(bed.app(h).responses[0].body_len, BIG);
        let k = bed.http();
        assert_eq!((k.resumes_attempted, k.resumes_succeeded), (1, 1), "{k:?}");
        assert_eq!(k.resumes_refused, 0);
        let resumed = bed
            .heads(1)
            .into_iter()
            .find(|h| h.contains("Range:"))
            .expect("a ranged request to the other member");
        let from: u64 = resumed
            .split("Range: bytes=")
            .nth(1)
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse().ok())
            .expect("Range: bytes=N-");
        assert!(from > 0 && from <= 1 << 20, "{resumed}");
        let range = format!("Range: bytes={from}-{}", BIG - 1);
        assert!(resumed.lines().any(|l| l == range), "{resumed}");
        assert!(resumed.contains("If-Match: \"v1\""), "{resumed}");
        assert!(resumed.starts_with(&format!("GET /obj/{BIG} HTTP/1.1\r\n")));
    }
}

#[test]
fn a_ranged_get_is_resumed_within_its_range() {
    let mut bed = resume_bed(true, Cut::Reset, Behaviour::new());
    let req = Req::obj(BIG)
        .with("Range", "bytes=100000-3999999")
        .with("If-Match", "\"v1\"");
    let h = bed.http_client(40_000, Client::new(vec![req]));
    assert!(bed.run_http(Duration::from_secs(20), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let r = &bed.app(h).responses[0];
    assert_eq!((r.status, r.body_len), (206, 3_900_000));
    assert!(r
        .head
        .contains("Content-Range: bytes 100000-3999999/4194304"));
    let k = bed.http();
    assert_eq!((k.resumes_attempted, k.resumes_succeeded), (1, 1), "{k:?}");
    let resumed = bed
        .heads(1)
        .into_iter()
        .find(|h| h.contains("Range:"))
        .expect("a ranged request to the other member");
    assert_eq!(
        resumed.matches("Range:").count(),
        1,
        "the client's Range replaced: {resumed}"
    );
    assert_eq!(
        resumed.matches("If-Match:").count(),
        1,
        "the client's own If-Match kept alone: {resumed}"
    );
    assert!(
        resumed
            .lines()
            .any(|l| l.starts_with("Range: bytes=") && l.ends_with("-3999999")),
        "{resumed}"
    );
}

/// The client's response of `h` was cut, and what came of it was right.
fn assert_aborted(bed: &Bed, h: ConnHandle) {
    let c = bed.app(h);
    assert!(
        c.responses.is_empty(),
        "a whole response: {:?}",
        c.responses
    );
    let cur = c.cur.as_ref().expect("a response under way");
    assert_eq!(cur.status, 200);
    assert!(cur.intact, "wrong bytes reached the client");
    assert!(cur.got < BIG);
}

#[test]
fn a_resume_answered_with_another_entity_aborts_the_client() {
    let mut other_tag = Behaviour::new();
    other_tag.etag = "\"v2\"";
    let mut ignoring = other_tag.clone();
    ignoring.ignore_conditions = true;
    for other in [other_tag, ignoring] {
        let mut bed = resume_bed(true, Cut::Reset, other.clone());
        let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
        assert!(
            bed.run_until(Duration::from_secs(20), |b| b.clients[&h].reset
                || b.clients[&h].eof),
            "{other:?}"
        );
        assert_aborted(&bed, h);
        let k = bed.http();
        assert_eq!(
            (k.resumes_attempted, k.resumes_succeeded, k.resumes_refused),
            (1, 0, 1),
            "{other:?}: {k:?}"
        );
        assert!(bed.heads(1).iter().any(|h| h.contains("If-Match: \"v1\"")));
    }
}

#[test]
fn without_s3_resume_a_member_dying_midway_aborts_the_client() {
    let mut bed = resume_bed(false, Cut::Reset, Behaviour::new());
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
    assert!(
        bed.run_until(Duration::from_secs(20), |b| b.clients[&h].reset
            || b.clients[&h].eof)
    );
    assert_aborted(&bed, h);
    let k = bed.http();
    assert_eq!(k.resumes_attempted, 0, "{k:?}");
    assert!(bed.heads(1).is_empty(), "nothing sent to the other member");
}

/// Members .11 (the virtual server's pool) and .12 (pool `a`, index 0), behind a
/// policy sending bucket `bucket-a` (either addressing style) to pool `a`.
fn policy_bed() -> Bed {
    let addrs = [member_addr(11), member_addr(12)];
    let mut bed = Bed::new(2, &[], Endpoint::default, |vs| {
        vs.lb = testing::pool_binding(&addrs[..1]);
        let rule = Rule {
            name: "bucket-a".into(),
            host: None,
            path_prefix: None,
            methods: Vec::new(),
            header: None,
            bucket: Some("bucket-a".into()),
            pool: 0,
        };
        vs.http = Some(Arc::new(HttpVs {
            profile: http_profile(),
            policy: Some(Policy {
                name: "s3".into(),
                s3_domain: Some("s3.rouge.test".into()),
                rules: vec![rule],
            }),
            pools: vec![("a".into(), testing::pool_binding(&addrs[1..]))],
        }));
    });
    for m in &mut bed.members {
        m.http = Some(Behaviour::new());
    }
    bed
}

#[test]
fn a_policy_routes_each_request_of_one_connection_by_bucket() {
    let mut bed = policy_bed();
    let reqs = vec![
        Req::get("s3.rouge.test", "/bucket-a/obj/100"),
        Req::get("bucket-a.s3.rouge.test", "/obj/200"),
        Req::get("s3.rouge.test", "/bucket-b/obj/300"),
        Req::get("bucket-b.s3.rouge.test:443", "/obj/400"),
        Req::get("s3.rouge.test", "/bucket-aa/obj/500"),
        Req::get("bucket-a.s3.rouge.test:443", "/obj/600?x=1"),
    ];
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    let targets = |m: usize| -> Vec<String> {
        let mut t: Vec<String> = bed
            .heads(m)
            .iter()
            .map(|h| h.split(' ').nth(1).unwrap_or("").to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(
        targets(1),
        ["/bucket-a/obj/100", "/obj/200", "/obj/600?x=1"],
        "pool a"
    );
    assert_eq!(
        targets(0),
        ["/bucket-aa/obj/500", "/bucket-b/obj/300", "/obj/400"],
        "default pool"
    );
    assert_eq!(bed.http().policy_routed, 3);
    assert_eq!(bed.accepted(), 2, "one member connection per pool, reused");
    assert_eq!(bed.vs().counters.client_side().total, 1, "one connection");
}

/// A bed as `http_bed`, its virtual server terminating TLS.
fn tls_bed(n: u8, closed: &[u8], p: HttpProfile, b: Behaviour) -> Bed {
    http_bed_with(n, closed, p, b, |vs| {
        vs.client_tls = Some(("vip".into(), super::tls::vip_tls(Duration::from_secs(10))));
    })
}

impl Bed {
    /// A client speaking TLS (verifying `s3.rouge.test`), sending as `c` says.
    fn tls_client(&mut self, port: u16, c: Client) -> ConnHandle {
        let cfg = super::tls::client_cfg("ca", Some("s3.rouge.test"));
        let vip: IpAddr = "198.18.1.100".parse().unwrap();
        let e = Endpoint {
            http: Some(Box::new(App::Client(c))),
            tls: Some(Box::new(TlsSession::client(&cfg, vip, self.now).unwrap())),
            ..Endpoint::default()
        };
        self.connect(port, e)
    }
}

#[test]
fn over_client_tls_a_response_head_and_its_late_body_share_one_segment() {
    // The cork sits under TLS: the head's record waits in the client's send buffer and
    // leaves with the body's record.
    let mut b = Behaviour::new();
    b.body_held = true;
    let mut bed = tls_bed(1, &[], http_profile(), b);
    bed.members_nodelay();
    let h = bed.tls_client(40_000, Client::new(vec![Req::obj(1000)]));
    assert!(bed.run_until(Duration::from_secs(2), |b| b
        .served(0)
        .iter()
        .any(|s| s.served == 1)));
    let before = bed.client_data_segments;
    bed.step();
    bed.release_bodies(0);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.app(h).done()));
    assert_intact(&bed, h);
    assert_eq!(
        bed.client_data_segments - before,
        1,
        "the head's and the body's records in one segment"
    );
    assert_eq!(bed.host.tcp().counters().corks, 1);
}

#[test]
fn keep_alive_gets_over_client_tls() {
    let mut bed = tls_bed(2, &[], http_profile(), Behaviour::new());
    let reqs: Vec<Req> = (0..10)
        .map(|k| Req::obj([100, 1 << 20, 0, 40_000][k % 4]))
        .collect();
    let h = bed.tls_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(20), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert!(!bed.clients[&h].tls_failed);
    let k = bed.http();
    assert_eq!(k.requests, 10);
    assert_eq!(k.responses[0], 10);
    assert!(bed.accepted() <= 2);
    assert_eq!(bed.vs().counters.client_tls().full, [0, 1]);
}

#[test]
fn the_last_records_of_a_response_go_out_when_the_client_send_buffer_was_full() {
    // A small client-side send buffer: the end of each 1 MiB response is still in the
    // client's TLS session when the exchange is over, and must go out without the
    // client's next request (which waits for it).
    let mut bed = http_bed_with(2, &[], http_profile(), Behaviour::new(), |vs| {
        vs.client_tls = Some(("vip".into(), super::tls::vip_tls(Duration::from_secs(10))));
        vs.client_profile.send_buffer = 24 * 1024;
        vs.buffer_high = 16 * 1024;
        vs.buffer_low = 8 * 1024;
    });
    let reqs: Vec<Req> = (0..4).map(|_| Req::obj(1 << 20)).collect();
    let h = bed.tls_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(30), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert_eq!(bed.http().requests, 4);
}

#[test]
fn over_client_tls_a_get_is_resumed_and_the_proxys_own_answers_arrive() {
    let mut p = http_profile();
    p.s3_resume = true;
    let mut bed = tls_bed(2, &[], p, Behaviour::new());
    let mut b = Behaviour::new();
    b.cut = Some((1 << 20, Cut::Reset));
    bed.members[0].http = Some(b);
    let h = bed.tls_client(40_000, Client::new(vec![Req::obj(BIG), Req::obj(10)]));
    assert!(bed.run_http(Duration::from_secs(20), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let k = bed.http();
    assert_eq!((k.resumes_attempted, k.resumes_succeeded), (1, 1), "{k:?}");

    // No member: 503, then close_notify and the end of the connection.
    let mut bed = tls_bed(1, &[], http_profile(), Behaviour::new());
    bed.vs()
        .lb
        .states
        .set_monitor(MemberId(0), MonitorStatus::Down);
    let mut c = Client::new(vec![Req::obj(10)]);
    c.close_at_end = false;
    let h = bed.tls_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
        && b.clients[&h].eof
        && b.host.proxy().flow_count() == 0));
    assert_eq!(bed.app(h).responses[0].status, 503);
    assert!(!bed.clients[&h].tls_failed && !bed.clients[&h].reset);
}

#[test]
fn requests_survive_loss_on_both_sides() {
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    bed.client_faults = Faults {
        loss: 0.02,
        dup: 0.005,
        reorder: 0.01,
    };
    bed.server_faults = Faults {
        loss: 0.01,
        dup: 0.005,
        reorder: 0.01,
    };
    let reqs = vec![
        Req::obj(300_000),
        Req::upload("PUT", Body::Length(200_000)),
        Req::obj(1),
        Req::upload("POST", Body::Chunked(100_000)),
        Req::obj(150_000),
    ];
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(60), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert!((0..2).all(|m| bed.served(m).iter().all(|s| !s.corrupt)));
}

#[test]
fn heads_404_412_pass_through_and_requests_reach_the_member_byte_for_byte() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let mut head = Req::obj(5000);
    head.head = head.head.replacen("GET", "HEAD", 1);
    let reqs = vec![
        head,
        Req::obj(3000).with("If-Match", "\"v9\""),
        Req::get("s3.rouge.test", "/nothing?list-type=2&prefix=a%2Fb"),
        Req::obj(3000)
            .with("Authorization", "AWS4-HMAC-SHA256 Credential=rouge-test/20261207/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd")
            .with("x-amz-date", "20261207T000000Z")
            .with("X-Mixed-CASE", "  spaced value\t"),
        Req::obj(100),
    ];
    let sent: Vec<String> = reqs
        .iter()
        .map(|r| r.head.trim_end_matches("\r\n").to_string())
        .collect();
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    let r = &bed.app(h).responses;
    let status: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(status, [200, 412, 404, 200, 200]);
    assert!(r.iter().all(|r| r.intact), "{r:?}");
    assert_eq!(r[0].body_len, 0, "a HEAD answer has no body");
    assert!(r[0].head.contains("Content-Length: 5000"));
    assert_eq!((r[3].body_len, r[4].body_len), (3000, 100));
    assert_eq!(bed.heads(0), sent, "heads reach the member as sent");
    assert_eq!(bed.http().responses, [3, 0, 2, 0, 0]);
    assert_eq!(bed.accepted(), 1);
}

#[test]
fn insert_xff_adds_the_clients_address() {
    let mut p = http_profile();
    p.insert_xff = true;
    let mut bed = http_bed(1, &[], p, Behaviour::new());
    let reqs = vec![Req::obj(10), Req::upload("PUT", Body::Length(1000))];
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let heads = bed.heads(0);
    assert_eq!(heads.len(), 2);
    for head in &heads {
        assert_eq!(
            head.matches("X-Forwarded-For: 198.18.1.2").count(),
            1,
            "{head}"
        );
        assert!(head.ends_with("X-Forwarded-For: 198.18.1.2"), "{head}");
    }
    assert!(bed.served(0).iter().all(|s| !s.corrupt));
}

#[test]
fn a_client_that_half_closes_after_its_requests_still_gets_every_answer() {
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    let mut c = Client::new(vec![Req::obj(300_000), Req::obj(5), Req::obj(70_000)]).pipelined();
    c.half_close = true;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
}

#[test]
fn a_malformed_member_answer_is_502() {
    let mut b = Behaviour::new();
    b.garbage = true;
    let mut bed = http_bed(1, &[], http_profile(), b);
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(10)]));
    assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
        && b.clients[&h].eof));
    assert_eq!(bed.app(h).responses[0].status, 502);
    let k = bed.http();
    assert_eq!(k.refused[HttpError::BadResponse as usize], 1, "{k:?}");
    assert_eq!(k.answers[HttpAnswer::BadGateway as usize], 1, "{k:?}");
    assert_eq!(bed.host.proxy().idle_connections(), 0);
}

#[test]
fn an_idle_keep_alive_client_is_closed_after_the_keepalive_timeout() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let mut c = Client::new(vec![Req::obj(10)]);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(1), |b| b.app(h).done()));
    let answered = bed.now;
    assert!(bed.run_until(Duration::from_secs(10), |b| b.clients[&h].eof));
    let idle = bed.now - answered;
    assert!(
        idle >= Duration::from_secs(5) && idle < Duration::from_millis(5500),
        "{idle:?}"
    );
    assert_eq!(bed.app(h).responses.len(), 1, "closed without an answer");
    assert!(!bed.clients[&h].reset);
    assert!(bed.run_until(Duration::from_secs(1), |b| b.host.proxy().flow_count() == 0));
}

#[test]
fn requests_after_a_member_is_disabled_go_to_the_others() {
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    let reqs: Vec<Req> = (0..12).map(|k| Req::obj(1000 + k)).collect();
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_until(Duration::from_secs(5), |b| b.app(h).responses.len() >= 4));
    let before = bed.heads(0).len();
    assert!(before >= 1, "member .11 took requests");
    bed.vs()
        .lb
        .states
        .set_admin(MemberId(0), crate::lb::AdminState::Disabled);
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    // One request may have been under way when the member was disabled.
    assert!(bed.heads(0).len() <= before + 1, "{}", bed.heads(0).len());
    assert!(bed.heads(1).len() >= 12 - before - 1);
}

#[test]
fn a_member_marked_down_midway_through_a_get_is_resumed_from_another() {
    let mut p = http_profile();
    p.s3_resume = true;
    let mut bed = http_bed(2, &[], p, Behaviour::new());
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
    assert!(bed.run_until(Duration::from_secs(2), |b| b.clients[&h].received > 0));
    bed.clients.get_mut(&h).unwrap().stalled = true;
    bed.run_until(Duration::from_millis(50), |_| false);
    let at = bed.clients[&h].received;
    assert!(at < BIG / 2, "{at}");
    bed.vs()
        .lb
        .states
        .set_monitor(MemberId(0), MonitorStatus::Down);
    assert!(bed.run_until(Duration::from_secs(2), |b| b.http().resumes_attempted == 1));
    bed.clients.get_mut(&h).unwrap().stalled = false;
    let now = bed.now;
    let e = bed.clients.get_mut(&h).unwrap();
    e.pump(&mut bed.client, now, h);
    assert!(bed.run_http(Duration::from_secs(10), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let k = bed.http();
    assert_eq!((k.resumes_succeeded, k.resumes_refused), (1, 0), "{k:?}");
    assert!(bed.heads(1).iter().any(|h| h.contains("If-Match: \"v1\"")));
}

#[test]
fn chunked_answers_keep_the_connections_and_until_close_answers_close_the_client() {
    let mut b = Behaviour::new();
    b.framing = Framing::Chunked;
    let mut bed = http_bed(2, &[], http_profile(), b);
    let reqs: Vec<Req> = [0u64, 1, 300_000, 65_536, 9]
        .iter()
        .map(|&n| Req::obj(n))
        .collect();
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert!(bed.app(h).responses[2]
        .head
        .contains("Transfer-Encoding: chunked"));
    assert!(bed.accepted() <= 2, "{}", bed.accepted());
    assert_eq!(bed.http().server_connections_reused, 5 - bed.accepted());

    let mut b = Behaviour::new();
    b.framing = Framing::UntilClose;
    let mut bed = http_bed(1, &[], http_profile(), b);
    for (k, n) in [200_000u64, 0, 17].into_iter().enumerate() {
        let mut c = Client::new(vec![Req::obj(n), Req::obj(1)]);
        c.close_at_end = false;
        let h = bed.http_client(40_000 + k as u16, c);
        assert!(
            bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof
                && b.host.proxy().flow_count() == 0),
            "{:?}",
            bed.app(h)
        );
        let r = &bed.app(h).responses;
        assert_eq!(r.len(), 1, "{n}: only the first is answered: {r:?}");
        assert!(r[0].intact && r[0].body_len == n, "{n}: {r:?}");
    }
    assert_eq!(bed.host.proxy().idle_connections(), 0);
    assert_eq!(bed.http().requests, 3);
}

#[test]
fn a_request_with_connection_close_or_http_1_0_closes_after_its_answer() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let reqs = vec![Req::obj(5000).with("Connection", "close"), Req::obj(1)];
    let mut c = Client::new(reqs);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof
        && b.host.proxy().flow_count() == 0));
    let r = &bed.app(h).responses;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].intact && r[0].body_len == 5000);
    // The client hears the close it asked for (RFC 9112, 9.6), once.
    assert_eq!(
        r[0].head.matches("Connection: close").count(),
        1,
        "{}",
        r[0].head
    );
    // The close was the client's: its connection closed, the member's is kept for
    // reuse (OneConnect), the member never heard the field.
    assert_eq!(bed.host.proxy().idle_connections(), 1);
    let heads = bed.heads(0);
    assert_eq!(heads.len(), 1);
    assert!(
        !heads[0].to_ascii_lowercase().contains("connection"),
        "{heads:?}"
    );
    // A signature that covers `Connection` keeps the field (and the member closes).
    let signed = Req::obj(10).with("Connection", "close").with(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=connection;host, Signature=0",
    );
    let mut c = Client::new(vec![signed]);
    c.close_at_end = false;
    let h = bed.http_client(40_002, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof
        && b.host.proxy().flow_count() == 0));
    assert!(bed.app(h).responses[0].intact);
    assert!(bed.heads(0).iter().any(|h| h.contains("Connection: close")));
    assert_eq!(bed.host.proxy().idle_connections(), 0);

    let mut req = Req::obj(300);
    req.head = req.head.replacen("HTTP/1.1", "HTTP/1.0", 1);
    let mut c = Client::new(vec![req, Req::obj(1)]);
    c.close_at_end = false;
    let h = bed.http_client(40_001, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof
        && b.host.proxy().flow_count() == 0));
    let r = &bed.app(h).responses;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].intact && r[0].body_len == 300);
    assert_eq!(bed.http().requests, 3);
}

#[test]
fn a_head_trickled_byte_by_byte_still_times_out() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let mut c = Client::new(vec![Req::raw("")]);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(
        bed.run_until(Duration::from_millis(100), |b| b.client.state(h)
            == Some(crate::tcp::State::Established))
    );
    let start = bed.now;
    let head = format!(
        "GET /obj/1 HTTP/1.1\r\nHost: a\r\nX-Slow: {}",
        "z".repeat(100)
    );
    for &byte in head.as_bytes() {
        if bed.app(h).done() {
            break;
        }
        let _ = bed.client.write(h, &[byte]);
        bed.run_until(Duration::from_millis(100), |_| false);
    }
    assert!(bed.run_until(Duration::from_secs(1), |b| b.app(h).done()));
    let took = bed.now - start;
    assert_eq!(bed.app(h).responses[0].status, 408);
    assert!(took < Duration::from_millis(2300), "{took:?}");
    assert_eq!(bed.accepted(), 0);
}

#[test]
fn a_get_whose_signature_covers_its_range_is_not_resumed() {
    let mut bed = resume_bed(true, Cut::Reset, Behaviour::new());
    let req = Req::obj(BIG).with("Range", "bytes=0-4194303").with(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=rouge-test/20261207/us-east-1/s3/aws4_request, \
         SignedHeaders=host;range;x-amz-date, Signature=0123",
    );
    let h = bed.http_client(40_000, Client::new(vec![req]));
    assert!(
        bed.run_until(Duration::from_secs(20), |b| b.clients[&h].reset
            || b.clients[&h].eof)
    );
    let c = bed.app(h);
    assert!(c.responses.is_empty(), "{:?}", c.responses);
    let cur = c.cur.as_ref().expect("a response under way");
    assert!(cur.status == 206 && cur.intact && cur.got < BIG);
    assert_eq!(bed.http().resumes_attempted, 0);
    assert!(bed.heads(1).is_empty());
}

#[test]
fn oneconnect_keeps_at_most_max_idle_per_member_and_closes_them_after_idle_timeout() {
    let mut p = http_profile();
    p.max_idle_per_member = 2;
    p.idle_timeout = Duration::from_secs(1);
    p.keepalive_timeout = Duration::from_secs(30);
    let mut bed = http_bed(1, &[], p, Behaviour::new());
    // Six clients at once: six member connections, two kept.
    let hs: Vec<ConnHandle> = (0..6)
        .map(|k| {
            let mut c = Client::new(vec![Req::obj(100_000), Req::obj(10)]);
            c.close_at_end = false;
            bed.http_client(40_000 + k, c)
        })
        .collect();
    assert!(bed.run_until(Duration::from_secs(2), |b| hs
        .iter()
        .all(|&h| b.app(h).done())));
    for &h in &hs {
        assert_intact(&bed, h);
    }
    assert!(bed.accepted() >= 3, "{}", bed.accepted());
    bed.run_until(Duration::from_millis(100), |_| false);
    assert_eq!(bed.host.proxy().idle_connections(), 2);
    let open = |b: &Bed| b.served(0).iter().filter(|s| !s.peer_eof).count();
    assert_eq!(open(&bed), 2, "the others closed");
    // Idle past `idle_timeout` (a sweep later at most): closed.
    assert!(bed.run_until(Duration::from_millis(1500), |b| b
        .host
        .proxy()
        .idle_connections()
        == 0));
    assert!(bed.run_until(Duration::from_millis(100), |b| open(b) == 0));
    // The next request opens a new one.
    let before = bed.accepted();
    let h = bed.http_client(41_000, Client::new(vec![Req::obj(10)]));
    // (The six clients stay connected: only this one's end is waited for.)
    assert!(bed.run_until(Duration::from_secs(2), |b| b.app(h).done()
        && b.clients[&h].eof));
    assert_intact(&bed, h);
    assert_eq!(bed.accepted(), before + 1);
}

#[test]
fn keep_alive_gets_to_tls_members_reuse_their_sessions() {
    let mut bed = http_bed_with(2, &[], http_profile(), Behaviour::new(), |vs| {
        let cfg = super::tls::client_cfg("ca", None);
        vs.server_tls = Some(("members".into(), Arc::new(cfg), 16));
    });
    for m in bed.members.iter_mut() {
        m.tls = Some(super::tls::server_cfg(
            vec![crate::tls::test_certs::ident("member")],
            Duration::from_secs(10),
        ));
    }
    for c in 0..3u16 {
        let reqs: Vec<Req> = (0..4).map(|k| Req::obj([5, 200_000][k % 2])).collect();
        let h = bed.http_client(40_000 + c, Client::new(reqs));
        assert!(bed.run_http(Duration::from_secs(10), h), "{:?}", bed.app(h));
        assert_intact(&bed, h);
    }
    assert!(bed.accepted() <= 2, "{}", bed.accepted());
    let st = bed.vs().counters.server_tls();
    assert_eq!(st.full.iter().sum::<u64>(), bed.accepted(), "{st:?}");
    assert_eq!(st.failures.iter().sum::<u64>(), 0, "{st:?}");
    assert_eq!(bed.http().server_connections_reused, 12 - bed.accepted());
}

#[test]
fn an_upgrade_switches_the_connection_to_a_tunnel() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let reqs = vec![Req::obj(1000), Req::upgrade(500_000)];
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    let r = &bed.app(h).responses;
    assert_eq!((r[0].status, r[0].intact), (200, true));
    assert_eq!(
        (r[1].status, r[1].intact, r[1].body_len),
        (101, true, 500_000)
    );
    assert_eq!(bed.http().responses, [1, 0, 0, 0, 1]);
    assert_eq!(
        bed.host.proxy().idle_connections(),
        0,
        "a tunnel is not reused"
    );
}

#[test]
fn many_clients_at_once_with_mixed_requests_through_loss() {
    let mut p = http_profile();
    p.max_idle_per_member = 2;
    let mut bed = http_bed(3, &[], p, Behaviour::new());
    let faults = Faults {
        loss: 0.01,
        dup: 0.002,
        reorder: 0.01,
    };
    bed.client_faults = faults;
    bed.server_faults = faults;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut hs = Vec::new();
    for c in 0..16u16 {
        let reqs: Vec<Req> = (0..6)
            .map(|_| match next(5) {
                0 => Req::upload("PUT", Body::Length(next(100_000))),
                1 => Req::upload("POST", Body::Chunked(next(50_000))),
                2 => {
                    let a = next(100_000);
                    Req::obj(200_000).with("Range", &format!("bytes={a}-{}", a + next(90_000)))
                }
                _ => Req::obj(next(200_000)),
            })
            .collect();
        let mut client = Client::new(reqs);
        client.pipelined = c % 2 == 1;
        hs.push(bed.http_client(40_000 + c, client));
    }
    let ok = bed.run_until(Duration::from_secs(60), |b| {
        hs.iter().all(|&h| b.app(h).done() && b.clients[&h].eof) && b.host.proxy().flow_count() == 0
    });
    assert!(
        ok,
        "{} of 16 done",
        hs.iter().filter(|&&h| bed.app(h).done()).count()
    );
    for &h in &hs {
        assert_intact(&bed, h);
    }
    assert!((0..3).all(|m| bed.served(m).iter().all(|s| !s.corrupt)));
    let k = bed.http();
    assert_eq!(k.requests, 96);
    assert_eq!(k.responses[0], 96);
    assert!(bed.host.proxy().idle_connections() <= 6);
}

#[test]
fn a_member_silent_after_its_100_continue_gets_504() {
    let mut b = Behaviour::new();
    b.silent = true;
    let mut bed = http_bed(1, &[], http_profile(), b);
    let req = Req::upload("PUT", Body::Length(10_000)).expecting_continue();
    let mut c = Client::new(vec![req]);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof
        || b.clients[&h].reset));
    let c = bed.app(h);
    assert_eq!(c.interim, [(0, 100)]);
    assert_eq!(
        c.responses.first().map(|r| r.status),
        Some(504),
        "reset {}",
        bed.clients[&h].reset
    );
}

#[test]
fn a_resume_that_cannot_be_had_aborts_the_client() {
    // The other member never answers: the resume times out.
    let mut silent = Behaviour::new();
    silent.silent = true;
    let mut bed = resume_bed(true, Cut::Reset, silent);
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
    let start = bed.now;
    let ended = bed.run_until(Duration::from_secs(10), |b| {
        b.clients[&h].reset || b.clients[&h].eof
    });
    let k = bed.http();
    assert!(
        ended,
        "the client still waits {:?} later: {k:?}, flows {:?}",
        bed.now - start,
        bed.host.proxy().flows(bed.now)
    );
    assert_aborted(&bed, h);
    assert_eq!((k.resumes_attempted, k.resumes_succeeded), (1, 0), "{k:?}");
    assert_eq!(k.resumes_refused, 1, "{k:?}");

    // The other member refuses connections.
    let mut p = http_profile();
    p.s3_resume = true;
    let mut bed = http_bed(2, &[12], p, Behaviour::new());
    let mut b = Behaviour::new();
    b.cut = Some((1 << 20, Cut::Reset));
    bed.members[0].http = Some(b);
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
    assert!(
        bed.run_until(Duration::from_secs(10), |b| b.clients[&h].reset
            || b.clients[&h].eof)
    );
    assert_aborted(&bed, h);
    let k = bed.http();
    assert_eq!((k.resumes_attempted, k.resumes_refused), (1, 1), "{k:?}");
    assert!(bed.run_until(Duration::from_secs(1), |b| b.host.proxy().flow_count() == 0));
}

#[test]
fn a_client_reset_mid_response_resets_the_member_connection_not_parks_it() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
    assert!(bed.run_until(Duration::from_secs(2), |b| b.clients[&h].received > 100_000));
    let now = bed.now;
    bed.client.abort(now, h).unwrap();
    assert!(bed.run_until(Duration::from_secs(2), |b| b.host.proxy().flow_count() == 0));
    assert_eq!(bed.host.proxy().idle_connections(), 0);
    assert_eq!(bed.vs().counters.resets(ResetCause::ClientReset), 1);
    assert!(bed.run_until(Duration::from_secs(1), |b| b.members[0]
        .conns
        .values()
        .all(|e| e.reset || e.eof)));
}

#[test]
fn an_upload_to_a_member_disabled_midway_finishes_there() {
    let mut bed = http_bed(2, &[], http_profile(), Behaviour::new());
    let reqs = vec![Req::upload("PUT", Body::Length(1 << 20)), Req::obj(10)];
    let h = bed.http_client(40_000, Client::new(reqs));
    assert!(bed.run_until(Duration::from_secs(2), |b| b
        .served(0)
        .iter()
        .any(|s| s.heads.len() == 1)));
    bed.run_until(Duration::from_millis(2), |_| false);
    assert!(bed.app(h).responses.is_empty(), "still uploading");
    bed.vs()
        .lb
        .states
        .set_admin(MemberId(0), crate::lb::AdminState::Disabled);
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    assert_eq!(
        bed.served(0)
            .iter()
            .flat_map(|s| s.uploads.iter())
            .collect::<Vec<_>>(),
        [&(1 << 20)]
    );
    assert_eq!(bed.heads(1).len(), 1, "the next request went elsewhere");
}

#[test]
fn a_bad_request_pipelined_behind_a_good_one_is_answered_after_it() {
    let mut bed = http_bed(1, &[], http_profile(), Behaviour::new());
    let bad = Req::raw(
        "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let mut c = Client::new(vec![Req::obj(300_000), bad, Req::obj(1)]).pipelined();
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(5), |b| b.clients[&h].eof
        && b.host.proxy().flow_count() == 0));
    let r = &bed.app(h).responses;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        (r[0].status, r[0].intact, r[0].body_len),
        (200, true, 300_000)
    );
    assert_eq!(r[1].status, 400);
    assert_eq!(
        bed.heads(0).len(),
        1,
        "only the good request reached the member"
    );
    assert_eq!(bed.http().refused[HttpError::Smuggling as usize], 1);
}

#[test]
fn a_get_is_resumed_twice_and_from_a_cut_right_after_the_head() {
    // .11 and .12 each die 1 MiB into what they send; .13 finishes.
    let mut p = http_profile();
    p.s3_resume = true;
    let mut bed = http_bed(3, &[], p, Behaviour::new());
    let mut b = Behaviour::new();
    b.cut = Some((1 << 20, Cut::Reset));
    bed.members[0].http = Some(b.clone());
    bed.members[1].http = Some(b);
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG)]));
    assert!(bed.run_http(Duration::from_secs(20), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let k = bed.http();
    assert_eq!((k.resumes_attempted, k.resumes_succeeded), (2, 2), "{k:?}");
    assert_eq!(bed.heads(2).len(), 1);

    // The head and not one body byte, then the FIN: resumed from byte 0.
    let mut p = http_profile();
    p.s3_resume = true;
    let mut bed = http_bed(2, &[], p, Behaviour::new());
    let mut b = Behaviour::new();
    b.cut = Some((0, Cut::Close));
    bed.members[0].http = Some(b);
    let h = bed.http_client(40_000, Client::new(vec![Req::obj(300_000)]));
    assert!(bed.run_http(Duration::from_secs(5), h), "{:?}", bed.app(h));
    assert_intact(&bed, h);
    let resumed = bed.heads(1);
    assert!(
        resumed[0].lines().any(|l| l == "Range: bytes=0-299999"),
        "{resumed:?}"
    );
}

#[test]
fn passive_health_marks_a_failing_member_down_before_its_monitor() {
    // .11 refuses connections, then (second bed) accepts them and closes them at
    // each request: after `passive_down_after` failures in a row it is marked down
    // and the requests after that go to .12 only.
    for refusing in [true, false] {
        let mut p = http_profile();
        p.passive_down_after = 3;
        let closed: &[u8] = if refusing { &[11] } else { &[] };
        let mut bed = http_bed(2, closed, p, Behaviour::new());
        let mut b = Behaviour::new();
        b.drop_after = Some((0, Cut::Close));
        if !refusing {
            bed.members[0].http = Some(b);
        }
        for m in 0..2 {
            bed.vs()
                .lb
                .states
                .set_monitor(MemberId(m), MonitorStatus::Up);
        }
        let mut failed = 0;
        for c in 0..10u16 {
            let h = bed.http_client(40_000 + c, Client::new(vec![Req::obj(100)]));
            assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
                && b.clients[&h].eof));
            match bed.app(h).responses[0].status {
                200 => assert!(bed.app(h).responses[0].intact),
                502 if !refusing => failed += 1,
                s => panic!("refusing {refusing}: {s}"),
            }
        }
        let k = bed.http();
        assert_eq!(k.passive_down, 1, "refusing {refusing}: {k:?}");
        assert_eq!(bed.vs().lb.states.monitor(MemberId(0)), MonitorStatus::Down);
        assert_eq!(bed.vs().lb.states.monitor(MemberId(1)), MonitorStatus::Up);
        if refusing {
            // Each failure was passed over to .12 without the client noticing.
            assert_eq!(bed.vs().counters.reselects(), 3);
        } else {
            assert_eq!(failed, 3, "three 502s, then .12 only");
            assert_eq!(bed.heads(0).len(), 3);
            assert_eq!(bed.heads(1).len(), 7);
        }
    }
}

#[test]
fn with_tls_members_a_dead_reused_connection_is_retried_and_a_get_resumed() {
    let tls_members = |bed: &mut Bed| {
        for m in bed.members.iter_mut() {
            m.tls = Some(super::tls::server_cfg(
                vec![crate::tls::test_certs::ident("member")],
                Duration::from_secs(10),
            ));
        }
    };
    let reencrypt = |vs: &mut StandardVs| {
        let cfg = super::tls::client_cfg("ca", None);
        vs.server_tls = Some(("members".into(), Arc::new(cfg), 16));
    };
    for how in [Cut::Reset, Cut::Close] {
        let mut b = Behaviour::new();
        b.drop_after = Some((1, how));
        let mut bed = http_bed_with(1, &[], http_profile(), b, reencrypt);
        tls_members(&mut bed);
        let reqs = vec![Req::obj(1000), Req::obj(50_000), Req::obj(7)];
        let h = bed.http_client(40_000, Client::new(reqs));
        assert!(
            bed.run_http(Duration::from_secs(5), h),
            "{how:?}: {:?}",
            bed.app(h)
        );
        assert_intact(&bed, h);
        assert_eq!(bed.http().retries, 2, "{how:?}");
    }

    for how in [Cut::Reset, Cut::Close] {
        let mut p = http_profile();
        p.s3_resume = true;
        let mut bed = http_bed_with(2, &[], p, Behaviour::new(), reencrypt);
        tls_members(&mut bed);
        let mut b = Behaviour::new();
        b.cut = Some((1 << 20, how));
        bed.members[0].http = Some(b);
        let h = bed.http_client(40_000, Client::new(vec![Req::obj(BIG), Req::obj(10)]));
        assert!(
            bed.run_http(Duration::from_secs(20), h),
            "{how:?}: {:?}",
            bed.app(h)
        );
        assert_intact(&bed, h);
        let k = bed.http();
        assert_eq!(
            (k.resumes_attempted, k.resumes_succeeded),
            (1, 1),
            "{how:?}: {k:?}"
        );
        let st = bed.vs().counters.server_tls();
        assert_eq!(st.failures.iter().sum::<u64>(), 0, "{how:?}: {st:?}");
    }
}

#[test]
fn a_routed_pool_without_members_is_503_while_the_default_pool_serves() {
    let mut bed = policy_bed();
    let a = bed.vs().http.as_ref().unwrap().pools[0].1.clone();
    a.states.set_monitor(MemberId(0), MonitorStatus::Down);
    let mut c = Client::new(vec![
        Req::get("s3.rouge.test", "/bucket-b/obj/300"),
        Req::get("bucket-a.s3.rouge.test", "/obj/200"),
    ]);
    c.close_at_end = false;
    let h = bed.http_client(40_000, c);
    assert!(bed.run_until(Duration::from_secs(3), |b| b.app(h).done()
        && b.clients[&h].eof));
    let r = &bed.app(h).responses;
    assert_eq!((r[0].status, r[0].intact), (200, true));
    assert_eq!(r[1].status, 503, "{:?}", r[1]);
    assert_eq!(bed.heads(1).len(), 0);
    assert_eq!(bed.http().answers[HttpAnswer::NoMember as usize], 1);
}
