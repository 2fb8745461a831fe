//! HTTP flows: `standard` virtual servers with an `http_profile`. The client's
//! connection carries requests one after another (keep-alive, pipelined requests wait
//! in its receive buffer until the response before them is done); each request is
//! routed on its own (the policy picks the pool, the pool's method the member) and sent
//! on a server-side connection taken from this worker's idle connections to that
//! member (F5 OneConnect, `proxy/oneconnect.rs`) or opened for it. Heads are parsed
//! and passed on byte for byte (S3 signatures cover them); bodies stream through the
//! framers of `crate::http::body`, never buffered whole.
//!
//! When the member fails:
//! - before any response byte: a request on a reused connection is sent again once on
//!   a fresh one if its method is idempotent and no body byte went; otherwise the
//!   client gets `502` (`503` when no member is available, `504` when the member did
//!   not answer within `response_timeout`);
//! - in the middle of a `200`/`206` GET with an `ETag` and a length, and with
//!   `s3_resume`: the client's request is sent to another member with
//!   `Range: bytes=<next>-<last>` and `If-Match: <etag>`; a matching `206` continues
//!   the same client response, anything else aborts the client's connection (never
//!   wrong bytes);
//! - otherwise the client's connection is aborted (its response cannot be completed).

use std::io::Write as _;

use arrayvec::ArrayVec;

use crate::http::head::header_value;
use crate::http::{parse_request, parse_response, BodyFramer, BodyKind, HttpError};
use crate::http::{Method, RequestHead, RequestView, ResponseHead};
use crate::tcp::{Owner, State};
use crate::timer_wheel::TimerId;

use super::relay::{finish, move_body, read_head, stream_ended, write_some, HeadRead, Side};
use super::{app, side, Flow, HttpAnswer, Proxy, ProxyCtx, ResetCause};

/// Timer word: the flow's HTTP deadline (header, keep-alive, response, closing).
pub(super) const TIMER_HTTP: u32 = 4;
/// Largest response head read from a member.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// The field added to a response whose client's `Connection: close` was hidden from
/// the member.
const CLOSE: &[u8] = b"Connection: close\r\n";
/// Longest a response head waits for its body's first bytes before it goes alone
/// (`TcpStack::cork`; the stack's timers round it up to their next tick).
const RESPONSE_CORK: std::time::Duration = std::time::Duration::from_micros(500);
/// Phase steps one pump call takes at most (each either changes the phase or waits).
const STEPS_PER_PUMP: usize = 16;

/// Where an HTTP flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reading the next request's head.
    Head,
    /// The request is routed; its server-side connection is opening.
    Connecting,
    /// The request goes to the member and its response comes back.
    Exchange,
    /// After a `101` answer: bytes relayed as they come, both ways.
    Tunnel,
    /// The proxy's own answer is being written; the connection closes after it.
    Answer,
    /// The client's connection is closing (our FIN sent); the flow ends with it.
    Closing,
}

/// What the flow's HTTP timer stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// A keep-alive connection idle between requests.
    KeepAlive,
    /// A request head under way (or a new connection's first request).
    Header,
    /// The member's response head.
    Response,
    /// The client's connection closing.
    Closing,
}

/// A GET being continued from another member.
#[derive(Debug, Clone, Copy)]
struct Resume {
    /// The next byte the client needs (absolute position in the object).
    next: u64,
    /// The last byte of the client's response (absolute).
    last: u64,
}

/// The HTTP state of one client connection.
pub(super) struct HttpFlow {
    pub(super) phase: Phase,
    /// The request head read from the client (kept while its exchange runs: a retry or
    /// a resume sends it again).
    req_buf: Vec<u8>,
    req: Option<RequestHead>,
    /// Header lines added before the head's blank line (`X-Forwarded-For`, a resume's
    /// `Range` and `If-Match`).
    extra: Vec<u8>,
    /// Header lines of `req_buf` left out when sending, in order: a `Connection: close`
    /// toward a member kept for reuse, a resume's rewritten `Range`.
    skips: ArrayVec<(usize, usize), 2>,
    /// The member's connection stays open after this request (it did not hear the
    /// client's `Connection: close`).
    server_keep: bool,
    /// The client's `Connection: close` was left out toward the member: the final
    /// response tells the client `Connection: close` itself (RFC 9112, 9.6).
    hid_close: bool,
    /// `Connection: close` is added to the final response head passed to the client.
    resp_close: bool,
    /// Bytes of the head (as sent: with `extra`, without `skips`) written so far.
    head_sent: usize,
    req_body: BodyFramer,
    /// Request body bytes passed on.
    req_body_moved: u64,
    req_done: bool,
    /// The member's response head being read.
    resp_buf: Vec<u8>,
    resp: Option<ResponseHead>,
    /// Bytes of `resp_buf`'s head written to the client.
    resp_sent: usize,
    resp_body: BodyFramer,
    resp_done: bool,
    /// Response bytes (heads included) passed to the client for this request.
    resp_forwarded: u64,
    timer: Option<TimerId>,
    deadline: Deadline,
    /// Requests this connection has carried.
    requests: u32,
    /// The current server-side connection came from the idle pool.
    reused: bool,
    /// This request was sent again once already.
    retried: bool,
    resume: Option<Resume>,
    /// The entity the client's response carries, when it may be resumed: its first
    /// and last byte positions (its `ETag` in `etag`).
    origin: Option<(u64, u64)>,
    /// The `ETag` of the response being passed on (for a resume).
    etag: Vec<u8>,
    /// The proxy's own answer, and how much of it went.
    answer: Vec<u8>,
    answer_sent: usize,
}

impl HttpFlow {
    /// A client connection waiting for its first request.
    pub(super) fn new() -> HttpFlow {
        HttpFlow {
            phase: Phase::Head,
            req_buf: Vec::new(),
            req: None,
            extra: Vec::new(),
            skips: ArrayVec::new(),
            server_keep: false,
            hid_close: false,
            resp_close: false,
            head_sent: 0,
            req_body: BodyFramer::new(BodyKind::None),
            req_body_moved: 0,
            req_done: false,
            resp_buf: Vec::new(),
            resp: None,
            resp_sent: 0,
            resp_body: BodyFramer::new(BodyKind::None),
            resp_done: false,
            resp_forwarded: 0,
            timer: None,
            deadline: Deadline::Header,
            requests: 0,
            reused: false,
            retried: false,
            resume: None,
            origin: None,
            etag: Vec::new(),
            answer: Vec::new(),
            answer_sent: 0,
        }
    }

    /// Forgets the finished exchange (buffers kept for the next).
    fn next_request(&mut self) {
        self.phase = Phase::Head;
        self.req_buf.clear();
        self.req = None;
        self.extra.clear();
        self.skips.clear();
        self.server_keep = false;
        self.hid_close = false;
        self.head_sent = 0;
        self.req_body = BodyFramer::new(BodyKind::None);
        self.req_body_moved = 0;
        self.req_done = false;
        self.reset_response();
        self.reused = false;
        self.retried = false;
        self.resume = None;
    }

    fn reset_response(&mut self) {
        self.resp_buf.clear();
        self.resp = None;
        self.resp_sent = 0;
        self.resp_close = false;
        self.resp_body = BodyFramer::new(BodyKind::None);
        self.resp_done = false;
        self.resp_forwarded = 0;
        self.origin = None;
    }

    /// The length of the head as sent to the member.
    fn out_len(&self) -> usize {
        let head = self.req.as_ref().map_or(0, |r| r.head_len);
        let skipped: usize = self.skips.iter().map(|(a, b)| b - a).sum();
        head + self.extra.len() - skipped
    }

    /// The length of the final response head as passed to the client.
    fn resp_out_len(&self) -> usize {
        let added = if self.resp_close { CLOSE.len() } else { 0 };
        self.resp.as_ref().map_or(0, |r| r.head_len + added)
    }

    /// True when the member's connection may carry another request after this
    /// exchange.
    fn server_reusable(&self) -> bool {
        self.req_done
            && self.resp_done
            && self.server_keep
            && self.req.as_ref().is_some_and(|r| !r.upgrade)
            && self.resp.as_ref().is_some_and(|r| r.keep_alive)
            && self.resume.is_none()
    }
}

/// Writes the head of the current request (with `extra`, without `skips`) from where
/// it stopped; true once all of it went.
fn send_head(cx: &mut ProxyCtx<'_>, h: &mut HttpFlow, dst: &mut Side<'_>) -> bool {
    let Some(req) = h.req.as_ref() else {
        return true;
    };
    let head = &h.req_buf[..req.head_len];
    // The head as sent: its lines up to the blank line less the skipped ones, the
    // extra lines, the blank line.
    let end = head.len() - 2;
    let mut pieces: ArrayVec<&[u8], 5> = ArrayVec::new();
    let mut from = 0;
    for &(a, b) in &h.skips {
        pieces.push(&head[from..a]);
        from = b;
    }
    pieces.push(&head[from..end]);
    pieces.push(&h.extra);
    pieces.push(b"\r\n");
    let mut at = 0;
    for p in pieces {
        let start = at;
        at += p.len();
        if h.head_sent >= at {
            continue;
        }
        let from = h.head_sent - start;
        let n = write_some(cx.tcp, dst, &p[from..]);
        h.head_sent += n;
        if h.head_sent < at {
            let _ = cx.tcp.arm_writable(dst.conn, 0);
            return false;
        }
    }
    true
}

/// What of the entity a resumable response carries: a GET (without a body, and not
/// ranged by a signed `Range`) answered `200` or `206` with an `ETag` and a length.
/// Returns its first and last byte positions; `etag` gets the `ETag`.
fn resumable(
    req: &RequestHead,
    resp: &ResponseHead,
    head: &[u8],
    etag: &mut Vec<u8>,
) -> Option<(u64, u64)> {
    if req.method != Method::Get || req.range_signed || req.body != BodyKind::None {
        return None;
    }
    let BodyKind::Length(len) = resp.body else {
        return None;
    };
    let tag = resp.etag.clone()?;
    let (first, last) = match resp.status {
        200 if req.range.is_none() => (0, len.checked_sub(1)?),
        206 => {
            let cr = resp.content_range?;
            (cr.first == cr.last + 1 - len).then_some((cr.first, cr.last))?
        }
        _ => return None,
    };
    etag.clear();
    etag.extend_from_slice(&head[tag]);
    Some((first, last))
}

/// Where a resumable response stands: the next byte the client needs and the last.
fn resume_point(h: &HttpFlow) -> Option<Resume> {
    let (first, last) = h.origin?;
    let next = first + h.resp_body.payload_bytes();
    (next <= last).then_some(Resume { next, last })
}

/// The answer the proxy writes itself.
fn answer_bytes(status: u16, reason: &str) -> Vec<u8> {
    let phrase = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("{status} {phrase}: {reason}\n");
    let mut out = Vec::with_capacity(160 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    out
}

impl Proxy {
    /// Starts the HTTP life of flow `i` (just accepted): waits for its first request.
    pub(super) fn http_start(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        self.http_arm(cx, i, Deadline::Header);
    }

    /// Moves flow `i` on as far as it can go now.
    pub(super) fn http_pump(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        if let Some(f) = self.slots[i].flow.as_mut() {
            // Records a session could not write out earlier (its send buffer was full)
            // go first, whatever the phase: the last records of a response, written
            // when the exchange ended, must not wait for the client's next request.
            if let Some(t) = f.client_tls.as_deref_mut() {
                super::relay::flush(cx.tcp, f.client, t);
            }
            if let (Some(s), Some(t)) = (f.server, f.server_tls.as_deref_mut()) {
                super::relay::flush(cx.tcp, s, t);
            }
        }
        for _ in 0..STEPS_PER_PUMP {
            let Some(f) = self.slots[i].flow.as_mut() else {
                return;
            };
            let Some(h) = f.http.as_deref() else {
                return;
            };
            let moved_on = match h.phase {
                Phase::Head => self.http_read_request(cx, i),
                Phase::Connecting => {
                    let ready = f.connected && !f.server_handshaking() && f.server.is_some();
                    if ready {
                        let h = f.http.as_deref_mut().expect("http flow");
                        h.phase = Phase::Exchange;
                    }
                    ready
                }
                Phase::Exchange => self.http_exchange(cx, i),
                Phase::Tunnel => {
                    self.relay_both(cx, i);
                    self.close_when_done(cx, i);
                    false
                }
                Phase::Answer => self.http_write_answer(cx, i),
                Phase::Closing => {
                    self.http_closing(cx, i);
                    false
                }
            };
            if !moved_on {
                break;
            }
        }
        // Segments both ways at every pump, as the plain relay counts them: a long
        // transfer shows its packets while it runs, and a client whose connection the
        // stack has let go of by the time the flow ends is still counted.
        if let Some(f) = self.slots[i].flow.as_mut() {
            let shard = f.vs.counters.shard(self.worker);
            super::count_segments(cx.tcp, f.client, &mut f.seen[0], &shard.client);
            if let Some(s) = f.server {
                super::count_segments(cx.tcp, s, &mut f.seen[1], &shard.server);
            }
        }
    }

    /// Reads the next request head; routes it and finds its member once complete.
    fn http_read_request(&mut self, cx: &mut ProxyCtx<'_>, i: usize) -> bool {
        let worker = self.worker;
        let f = self.flow_mut(i);
        let Some(http) = f.vs.http.clone() else {
            return false;
        };
        let limits = http.profile.limits;
        let h = f.http.as_deref_mut().expect("http flow");
        let was_empty = h.req_buf.is_empty();
        let read = read_head(
            cx.tcp,
            &mut side(f.client, &mut f.client_tls),
            &mut h.req_buf,
            limits.max_header_bytes,
        );
        let first_bytes = was_empty && !h.req_buf.is_empty();
        let vs = f.vs.clone();
        let shard = vs.counters.shard(worker);
        let req = match read {
            HeadRead::Partial | HeadRead::TooLarge => {
                let e = match parse_request(&h.req_buf, &limits) {
                    Err(e) => Some(e),
                    Ok(_) if read == HeadRead::TooLarge => Some(HttpError::HeadersTooLarge),
                    Ok(_) => None,
                };
                if let Some(e) = e {
                    shard.http.refused[e as usize].inc();
                    self.http_answer(cx, i, e.status(), e.to_string().as_str());
                    return true;
                }
                if first_bytes && h.deadline == Deadline::KeepAlive {
                    self.http_arm(cx, i, Deadline::Header);
                }
                return false;
            }
            HeadRead::Ended => {
                // The client closed between requests (or gave up in a head).
                self.http_close_client(cx, i);
                return true;
            }
            HeadRead::Complete => match parse_request(&h.req_buf, &limits) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    shard.http.refused[HttpError::Malformed as usize].inc();
                    self.http_answer(cx, i, 400, "incomplete request head");
                    return true;
                }
                Err(e) => {
                    shard.http.refused[e as usize].inc();
                    self.http_answer(cx, i, e.status(), e.to_string().as_str());
                    return true;
                }
            },
        };
        shard.http.requests.inc();
        if req.method == Method::Connect {
            shard.http.refused[HttpError::Malformed as usize].inc();
            self.http_answer(cx, i, 400, "CONNECT is not proxied");
            return true;
        }
        let route = http.policy.as_ref().and_then(|p| {
            let view = RequestView {
                method: req.method,
                host: req.host.clone().map_or(&[][..], |r| &h.req_buf[r]),
                target: &h.req_buf[req.target.clone()],
                head: &h.req_buf[..req.head_len],
            };
            p.route(&view).map(|(_, pool)| pool)
        });
        if route.is_some() {
            shard.http.policy_routed.inc();
        }
        h.extra.clear();
        if http.profile.insert_xff {
            let _ = write!(h.extra, "X-Forwarded-For: {}\r\n", f.client_addr.ip());
        }
        h.skips.clear();
        h.server_keep = req.keep_alive;
        if http.profile.oneconnect && !req.keep_alive && req.version == 1 {
            // The client's `Connection: close` is for its own connection: the member's
            // is kept for reuse (unless a signature covers the field).
            if let Some(line) = req.close_line.clone() {
                h.skips.push((line.start, line.end));
                h.server_keep = true;
                h.hid_close = true;
            }
        }
        h.req_body = BodyFramer::new(req.body);
        h.req_done = false;
        h.requests += 1;
        h.req = Some(req);
        h.phase = Phase::Connecting;
        f.route = route;
        f.tried.clear();
        self.http_disarm(cx, i);
        self.connect(cx, i);
        true
    }

    /// Sends the request and passes the response back; true when the phase changed.
    fn http_exchange(&mut self, cx: &mut ProxyCtx<'_>, i: usize) -> bool {
        let worker = self.worker;
        let f = self.flow_mut(i);
        let Some(s) = f.server else {
            return false;
        };
        let c = f.client;
        let marks = (f.vs.buffer_high.max(1), f.vs.buffer_low);
        let vs = f.vs.clone();
        let shard = vs.counters.shard(worker);
        let h = f.http.as_deref_mut().expect("http flow");
        // Up: the head, then the body.
        let mut to_server = side(s, &mut f.server_tls);
        let sent_before = h.head_sent;
        let head_done = h.head_sent >= h.out_len() || send_head(cx, h, &mut to_server);
        let head_bytes = (h.head_sent - sent_before) as u64;
        f.up.bytes += head_bytes;
        shard.client.bytes_in.add(head_bytes);
        shard.server.bytes_out.add(head_bytes);
        if head_done && !h.req_done {
            let mut from_client = side(c, &mut f.client_tls);
            match move_body(
                cx.tcp,
                &mut from_client,
                &mut to_server,
                marks,
                &mut h.req_body,
            ) {
                Ok(n) => {
                    h.req_body_moved += n;
                    f.up.bytes += n;
                    shard.client.bytes_in.add(n);
                    shard.server.bytes_out.add(n);
                }
                Err(e) => {
                    shard.http.refused[e as usize].inc();
                    self.http_release_server(cx, i, false);
                    self.http_answer(cx, i, e.status(), e.to_string().as_str());
                    return true;
                }
            }
            let f = self.flow_mut(i);
            let h = f.http.as_deref_mut().expect("http flow");
            if h.req_body.is_done() {
                h.req_done = true;
                if h.resp.is_none() || h.resume.is_some() {
                    self.http_arm(cx, i, Deadline::Response);
                }
            } else if stream_ended(cx.tcp, &mut side(c, &mut f.client_tls)) {
                // The client ended in the middle of its body: nothing to answer.
                self.end(cx, i, Some(ResetCause::ClientReset));
                return true;
            }
        }
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        // Down: the response head, then its body.
        let head_pending = h.resp.is_none() || h.resume.is_some() || h.resp_sent < h.resp_out_len();
        if head_pending {
            if !self.http_response_head(cx, i) {
                return !matches!(self.phase(i), Some(Phase::Exchange));
            }
            // The member answered: passive health counts a success.
            self.passive_result(i, true);
        }
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        if !h.resp_done {
            let mut from_server = side(s, &mut f.server_tls);
            let mut to_client = side(c, &mut f.client_tls);
            match move_body(
                cx.tcp,
                &mut from_server,
                &mut to_client,
                marks,
                &mut h.resp_body,
            ) {
                Ok(n) => {
                    h.resp_forwarded += n;
                    f.down.bytes += n;
                    shard.server.bytes_in.add(n);
                    shard.client.bytes_out.add(n);
                }
                Err(_) => {
                    shard.http.refused[HttpError::BadResponse as usize].inc();
                    self.end(cx, i, Some(ResetCause::ServerReset));
                    return true;
                }
            }
            let f = self.flow_mut(i);
            let h = f.http.as_deref_mut().expect("http flow");
            if h.resp_body.is_done() {
                h.resp_done = true;
            } else if stream_ended(cx.tcp, &mut side(s, &mut f.server_tls)) {
                if h.resp_body.kind() == BodyKind::UntilClose {
                    h.resp_done = true;
                } else {
                    // The member closed in the middle of its response.
                    self.http_server_failed(cx, i);
                    return true;
                }
            }
        }
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        // A final response's head waits (corked, at most RESPONSE_CORK) for the first
        // bytes of its body, which members often write a moment later: a small response
        // then reaches the client in one segment, as a kernel proxy's single `recv` of
        // both would send it. Never an interim (1xx) head: the client waits for it.
        let hold = !h.resp_done
            && h.resp_forwarded == h.resp_sent as u64
            && h.resume.is_none()
            && h.resp.as_ref().is_some_and(|r| r.status >= 200)
            && h.resp_sent >= h.resp_out_len();
        // An error here means the client's connection is gone; the flow's events end it.
        let _ = if hold {
            cx.tcp.cork(cx.now, c, cx.now + RESPONSE_CORK)
        } else {
            cx.tcp.uncork(c)
        };
        if !h.resp_done {
            return false;
        }
        self.http_exchange_done(cx, i);
        true
    }

    fn phase(&self, i: usize) -> Option<Phase> {
        self.slots[i]
            .flow
            .as_ref()
            .and_then(|f| f.http.as_ref())
            .map(|h| h.phase)
    }

    /// Reads and passes on the response head (interim `1xx` heads go through as they
    /// come); true when the final head is complete and written to the client. A
    /// resumed GET's head is checked, not written.
    fn http_response_head(&mut self, cx: &mut ProxyCtx<'_>, i: usize) -> bool {
        let worker = self.worker;
        let f = self.flow_mut(i);
        let Some(s) = f.server else {
            return false;
        };
        let c = f.client;
        let s3_resume = f.vs.http.as_ref().is_some_and(|x| x.profile.s3_resume);
        let vs = f.vs.clone();
        let shard = vs.counters.shard(worker);
        loop {
            let h = f.http.as_deref_mut().expect("http flow");
            if h.resp.is_none() || h.resume.is_some() {
                let read = read_head(
                    cx.tcp,
                    &mut side(s, &mut f.server_tls),
                    &mut h.resp_buf,
                    MAX_RESPONSE_HEAD,
                );
                match read {
                    HeadRead::Partial => return false,
                    HeadRead::Ended => {
                        self.http_server_failed(cx, i);
                        return false;
                    }
                    HeadRead::TooLarge => {
                        shard.http.refused[HttpError::BadResponse as usize].inc();
                        self.http_bad_gateway(cx, i, "response head too large");
                        return false;
                    }
                    HeadRead::Complete => {}
                }
                let method = h.req.as_ref().map_or(Method::Get, |r| r.method);
                let limits = crate::http::Limits {
                    max_header_bytes: MAX_RESPONSE_HEAD,
                    max_headers: 128,
                    ..Default::default()
                };
                let Ok(Some(r)) = parse_response(&h.resp_buf, method, &limits) else {
                    shard.http.refused[HttpError::BadResponse as usize].inc();
                    self.http_bad_gateway(cx, i, "malformed response head");
                    return false;
                };
                if let Some(resume) = h.resume.take() {
                    let etag = r.etag.clone().map(|e| &h.resp_buf[e]);
                    let matches = r.status == 206
                        && etag == Some(&h.etag[..])
                        && r.content_range
                            .is_some_and(|cr| cr.first == resume.next && cr.last == resume.last)
                        && r.body == BodyKind::Length(resume.last - resume.next + 1);
                    if !matches {
                        shard.http.resumes_refused.inc();
                        self.end(cx, i, Some(ResetCause::ServerReset));
                        return false;
                    }
                    // The client's response goes on from the other member: its head
                    // went long ago; the first response's framer follows the rest.
                    shard.http.resumes_succeeded.inc();
                    h.resp_buf.clear();
                    if let Some(t) = h.timer.take() {
                        cx.timers.cancel(t);
                    }
                    return true;
                }
                let class = match r.status {
                    100..=199 => 4,
                    200..=299 => 0,
                    300..=399 => 1,
                    400..=499 => 2,
                    _ => 3,
                };
                shard.http.responses[class].inc();
                if r.status >= 200 || r.status == 101 {
                    h.resp_close = h.hid_close && r.status >= 200 && r.keep_alive;
                    h.resp_body = BodyFramer::new(r.body);
                    h.origin = None;
                    if s3_resume {
                        if let Some(req) = h.req.as_ref() {
                            h.origin = resumable(req, &r, &h.resp_buf, &mut h.etag);
                        }
                    }
                    if let Some(t) = h.timer.take() {
                        cx.timers.cancel(t);
                    }
                }
                h.resp = Some(r);
            }
            let r = h.resp.as_ref().expect("response head");
            let head_len = r.head_len;
            let status = r.status;
            // The head as passed on: as the member sent it, with `Connection: close`
            // added before its blank line when the client's was hidden.
            let close: &[u8] = if h.resp_close { CLOSE } else { b"" };
            let pieces = [&h.resp_buf[..head_len - 2], close, b"\r\n"];
            let mut at = 0;
            for p in pieces {
                let start = at;
                at += p.len();
                while h.resp_sent < at {
                    let n = write_some(
                        cx.tcp,
                        &mut side(c, &mut f.client_tls),
                        &p[h.resp_sent - start..],
                    );
                    if n == 0 {
                        let _ = cx.tcp.arm_writable(c, 0);
                        return false;
                    }
                    h.resp_sent += n;
                    h.resp_forwarded += n as u64;
                    f.down.bytes += n as u64;
                    shard.server.bytes_in.add(n as u64);
                    shard.client.bytes_out.add(n as u64);
                }
            }
            if status == 101 {
                // Switching protocols: from here on bytes go as they come.
                h.phase = Phase::Tunnel;
                h.resp_done = true;
                self.http_disarm(cx, i);
                return false;
            }
            if status >= 200 {
                return true;
            }
            // An interim answer (`100 Continue`): the final one follows. Until it
            // starts, the proxy may still answer itself (`502`, `504`).
            h.resp_buf.clear();
            h.resp = None;
            h.resp_sent = 0;
            h.resp_forwarded = 0;
        }
    }

    /// The exchange finished: the member's connection is kept for reuse or closed;
    /// the client's goes on to its next request or closes.
    fn http_exchange_done(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        let reusable = h.server_reusable();
        let client_goes_on = h.req_done
            && h.req.as_ref().is_some_and(|r| r.keep_alive)
            && h.resp.as_ref().is_some_and(|r| r.keep_alive);
        self.http_release_server(cx, i, reusable);
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        if client_goes_on {
            h.next_request();
            self.http_arm(cx, i, Deadline::KeepAlive);
        } else {
            self.http_close_client(cx, i);
        }
    }

    /// The member failed (reset, closed early, went down) during the exchange.
    pub(super) fn http_server_failed(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let worker = self.worker;
        let f = self.flow_mut(i);
        let vs = f.vs.clone();
        let shard = vs.counters.shard(worker);
        let Some(http) = f.vs.http.clone() else {
            return;
        };
        let h = f.http.as_deref_mut().expect("http flow");
        if h.phase != Phase::Exchange && h.phase != Phase::Connecting {
            self.http_release_server(cx, i, false);
            return;
        }
        let nothing_back = h.resp.is_none() && h.resp_buf.is_empty();
        let idempotent = h.req.as_ref().is_some_and(|r| r.method.is_idempotent());
        if nothing_back && h.resume.is_none() {
            if h.reused && !h.retried && idempotent && h.req_body_moved == 0 {
                // A reused connection the member had closed meanwhile: once more on a
                // fresh one.
                shard.http.retries.inc();
                h.retried = true;
                h.head_sent = 0;
                h.req_done = false;
                h.req_body = BodyFramer::new(h.req.as_ref().map_or(BodyKind::None, |r| r.body));
                h.phase = Phase::Connecting;
                self.http_release_server(cx, i, false);
                let f = self.flow_mut(i);
                f.tried.clear();
                self.connect(cx, i);
                return;
            }
            if !h.reused {
                self.passive_result(i, false);
            }
            self.http_release_server(cx, i, false);
            self.http_bad_gateway(cx, i, "the member closed the connection without a response");
            return;
        }
        let headed = h.resp.as_ref().is_some_and(|r| r.status >= 200) && !h.resp_done;
        let point = if http.profile.s3_resume && headed {
            resume_point(h)
        } else {
            None
        };
        let Some(point) = point else {
            if h.resume.is_some() {
                shard.http.resumes_refused.inc();
            }
            self.end(cx, i, Some(ResetCause::ServerReset));
            return;
        };
        shard.http.resumes_attempted.inc();
        let req = h.req.as_ref().expect("request");
        // The client's request again, with the bytes still missing asked for.
        if let Some(line) = req
            .range
            .as_ref()
            .and_then(|r| line_around(&h.req_buf, r.start))
        {
            if !h.skips.contains(&line) {
                h.skips.push(line);
                h.skips.sort_unstable();
            }
        }
        h.extra.clear();
        if http.profile.insert_xff {
            let _ = write!(h.extra, "X-Forwarded-For: {}\r\n", f.client_addr.ip());
        }
        let _ = write!(h.extra, "Range: bytes={}-{}\r\n", point.next, point.last);
        if header_value(&h.req_buf[..req.head_len], "if-match").is_none() {
            h.extra.extend_from_slice(b"If-Match: ");
            h.extra.extend_from_slice(&h.etag);
            h.extra.extend_from_slice(b"\r\n");
        }
        h.head_sent = 0;
        h.req_done = false;
        h.resume = Some(point);
        h.resp_buf.clear();
        h.phase = Phase::Connecting;
        self.http_release_server(cx, i, false);
        // Another member (the failed one stays in `tried`).
        self.connect(cx, i);
    }

    /// The member failed before a usable response: `502` to the client when nothing
    /// of a response went to it yet, else its connection is aborted.
    fn http_bad_gateway(&mut self, cx: &mut ProxyCtx<'_>, i: usize, reason: &str) {
        let f = self.flow_mut(i);
        let sent = f.http.as_ref().map_or(0, |h| h.resp_forwarded);
        self.http_release_server(cx, i, false);
        if sent > 0 {
            self.end(cx, i, Some(ResetCause::ServerReset));
            return;
        }
        self.http_answer_kind(cx, i, HttpAnswer::BadGateway, reason);
    }

    /// No member could take the request of flow `i` (`connect` gave up): `503` when
    /// none was available, `502` when those tried failed. A resumed GET is aborted.
    pub(super) fn http_no_member(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let worker = self.worker;
        let f = self.flow_mut(i);
        let vs = f.vs.clone();
        let shard = vs.counters.shard(worker);
        let h = f.http.as_deref_mut().expect("http flow");
        if h.resume.is_some() || h.resp_forwarded > 0 {
            shard.http.resumes_refused.inc();
            self.end(cx, i, Some(ResetCause::NoMember));
            return;
        }
        if f.tried.is_empty() {
            self.http_answer_kind(
                cx,
                i,
                HttpAnswer::NoMember,
                "no member of the pool is available",
            );
        } else {
            self.http_answer_kind(
                cx,
                i,
                HttpAnswer::BadGateway,
                "no member accepted the connection",
            );
        }
    }

    /// Answers with one of the proxy's own counted answers.
    fn http_answer_kind(&mut self, cx: &mut ProxyCtx<'_>, i: usize, a: HttpAnswer, reason: &str) {
        let worker = self.worker;
        let f = self.flow_mut(i);
        f.vs.counters.shard(worker).http.answers[a as usize].inc();
        self.http_answer(cx, i, a.status(), reason);
    }

    /// Starts writing the proxy's own answer `status` to the client of flow `i`; the
    /// connection closes after it.
    fn http_answer(&mut self, cx: &mut ProxyCtx<'_>, i: usize, status: u16, reason: &str) {
        self.http_release_server(cx, i, false);
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        h.answer = answer_bytes(status, reason);
        h.answer_sent = 0;
        h.phase = Phase::Answer;
        self.http_arm(cx, i, Deadline::Closing);
    }

    fn http_write_answer(&mut self, cx: &mut ProxyCtx<'_>, i: usize) -> bool {
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        let mut to_client = side(f.client, &mut f.client_tls);
        while h.answer_sent < h.answer.len() {
            let n = write_some(cx.tcp, &mut to_client, &h.answer[h.answer_sent..]);
            if n == 0 {
                let _ = cx.tcp.arm_writable(f.client, 0);
                return false;
            }
            h.answer_sent += n;
        }
        finish(cx.tcp, cx.now, &mut to_client);
        self.http_close_client(cx, i);
        true
    }

    /// Our end of the client's connection is closing: what the client still sends is
    /// read and dropped until it closes too.
    fn http_close_client(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        let h = f.http.as_deref_mut().expect("http flow");
        if h.phase != Phase::Closing {
            h.phase = Phase::Closing;
            self.http_arm(cx, i, Deadline::Closing);
        }
        self.http_closing(cx, i);
    }

    fn http_closing(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        let mut to_client = side(f.client, &mut f.client_tls);
        // Records (our answer, `close_notify`) still waiting for room go first.
        if !f.down.fin_sent {
            f.down.fin_sent = finish(cx.tcp, cx.now, &mut to_client);
        }
        match f.client_tls.as_deref_mut() {
            Some(t) => {
                super::relay::ingest(cx.tcp, f.client, t);
                let n = t.plaintext().len();
                t.consume_plaintext(n);
            }
            None => {
                let n = cx.tcp.readable_bytes(f.client);
                let _ = cx.tcp.consume(f.client, n);
            }
        }
        if f.client_closed {
            self.end(cx, i, None);
        }
    }

    /// Takes the server-side connection off flow `i`: kept idle for reuse when
    /// `reuse` allows and the pool has room, else closed.
    pub(super) fn http_release_server(&mut self, cx: &mut ProxyCtx<'_>, i: usize, reuse: bool) {
        let worker = self.worker;
        let f = self.flow_mut(i);
        if let Some(t) = f.timer.take() {
            cx.timers.cancel(t);
        }
        let Some(s) = f.server.take() else {
            self.release_member(i);
            let f = self.flow_mut(i);
            if let Some(t) = f.server_tls.take() {
                f.end_tls_side(worker, super::Which::Server, &t);
            }
            return;
        };
        let vs = f.vs.clone();
        let shard = vs.counters.shard(worker);
        super::count_segments(cx.tcp, s, &mut f.seen[1], &shard.server);
        f.count_tls_bytes(worker);
        let healthy = cx.tcp.state(s) == Some(State::Established)
            && cx.tcp.readable_bytes(s) == 0
            && !f.server_closed
            && f.server_tls
                .as_ref()
                .is_none_or(|t| t.error().is_none() && !t.peer_closed());
        let kept = reuse && healthy && f.connected && self.park(cx, i, s);
        let f = self.flow_mut(i);
        if !kept {
            if let Some(mut t) = f.server_tls.take() {
                if t.error().is_none() && !t.is_handshaking() {
                    let _ = t.close();
                    super::relay::flush(cx.tcp, s, &mut t);
                }
                f.end_tls_side(worker, super::Which::Server, &t);
            }
            if healthy {
                let _ = cx.tcp.close(cx.now, s);
            } else {
                let _ = cx.tcp.abort(cx.now, s);
            }
            if f.connected {
                shard.server.conns_closed.inc();
            }
        }
        let f = self.flow_mut(i);
        f.server_tls = None;
        f.connected = false;
        f.server_open = false;
        f.server_closed = false;
        f.server_addr = None;
        f.snat = None;
        f.seen[1] = (0, 0);
        f.tls_seen[1] = (0, 0);
        f.up.fin_sent = false;
        f.down.fin_sent = false;
        self.release_member(i);
    }

    /// Arms the flow's HTTP deadline of `kind` (replacing the one armed).
    fn http_arm(&mut self, cx: &mut ProxyCtx<'_>, i: usize, kind: Deadline) {
        let f = self.flow_mut(i);
        let Some(http) = f.vs.http.as_ref() else {
            return;
        };
        let p = &http.profile;
        let after = match kind {
            Deadline::KeepAlive => p.keepalive_timeout,
            Deadline::Header => p.header_timeout,
            Deadline::Response => p.response_timeout,
            Deadline::Closing => p.header_timeout,
        };
        let h = f.http.as_deref_mut().expect("http flow");
        if let Some(t) = h.timer.take() {
            cx.timers.cancel(t);
        }
        h.deadline = kind;
        h.timer = Some(
            cx.timers
                .set(cx.now + after, Owner::new(app::PROXY, i as u32), TIMER_HTTP),
        );
    }

    fn http_disarm(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let f = self.flow_mut(i);
        if let Some(t) = f.http.as_deref_mut().and_then(|h| h.timer.take()) {
            cx.timers.cancel(t);
        }
    }

    /// The flow's HTTP deadline passed.
    pub(super) fn http_timeout(&mut self, cx: &mut ProxyCtx<'_>, i: usize) {
        let Some(f) = self.slots.get_mut(i).and_then(|s| s.flow.as_mut()) else {
            return;
        };
        let Some(h) = f.http.as_deref_mut() else {
            return;
        };
        h.timer = None;
        match (h.deadline, h.phase) {
            (Deadline::KeepAlive, Phase::Head) => {
                // Idle between requests: closed quietly.
                self.http_close_client(cx, i);
            }
            (Deadline::Header, Phase::Head) => {
                if h.req_buf.is_empty() && h.requests > 0 {
                    self.http_close_client(cx, i);
                } else {
                    self.http_answer_kind(
                        cx,
                        i,
                        HttpAnswer::HeaderTimeout,
                        "the request head did not arrive in time",
                    );
                    self.http_pump(cx, i);
                }
            }
            (Deadline::Response, Phase::Exchange) if h.resume.is_some() => {
                // The member asked to continue a GET did not answer in time.
                f.vs.counters.shard(self.worker).http.resumes_refused.inc();
                self.end(cx, i, Some(ResetCause::Timeout));
            }
            (Deadline::Response, Phase::Exchange) if h.resp.is_none() => {
                if h.resp_forwarded > 0 {
                    self.end(cx, i, Some(ResetCause::Timeout));
                } else {
                    self.http_answer_kind(
                        cx,
                        i,
                        HttpAnswer::GatewayTimeout,
                        "the member did not answer in time",
                    );
                    self.http_pump(cx, i);
                }
            }
            (Deadline::Closing, _) => self.end(cx, i, Some(ResetCause::Timeout)),
            _ => {}
        }
    }
}

/// The header line of `head` that contains offset `at`, as (start, end) with its CRLF.
fn line_around(head: &[u8], at: usize) -> Option<(usize, usize)> {
    let start = head[..at].iter().rposition(|&b| b == b'\n')? + 1;
    let end = at + head[at..].iter().position(|&b| b == b'\n')? + 1;
    Some((start, end))
}

impl Proxy {
    /// Passive health: the member of flow `i` answered (`ok`) or its connection failed
    /// before any answer. With the profile's `passive_down_after` failures in a row on
    /// this worker, the member is marked down (its monitor brings it back), counted.
    pub(super) fn passive_result(&mut self, i: usize, ok: bool) {
        let worker = self.worker;
        let Some(f) = self.slots[i].flow.as_ref() else {
            return;
        };
        let limit =
            f.vs.http
                .as_ref()
                .map_or(0, |h| h.profile.passive_down_after);
        let Some(member) = f.member else {
            return;
        };
        if limit == 0 {
            return;
        }
        let b = f.binding();
        let key = (std::sync::Arc::as_ptr(&b.states) as usize, member.0);
        if ok {
            self.failures.remove(&key);
            return;
        }
        let n = self.failures.entry(key).or_insert(0);
        *n += 1;
        if *n >= limit {
            self.failures.remove(&key);
            if b.states.mark_passive_down(member) {
                f.vs.counters.shard(worker).http.passive_down.inc();
            }
        }
    }
}

impl HttpFlow {
    /// True when the request must go on a fresh connection (it is being sent again
    /// after a reused one failed).
    pub(super) fn fresh_only(&self) -> bool {
        self.retried
    }

    /// Takes the flow's HTTP timer (the flow ends).
    pub(super) fn take_timer(&mut self) -> Option<TimerId> {
        self.timer.take()
    }

    /// Records whether the request's server-side connection came from the idle pool.
    pub(super) fn mark_reused(&mut self, reused: bool) {
        self.reused = reused;
    }
}

impl Flow {
    /// True for flows of virtual servers with an `http_profile`.
    pub(super) fn is_http(&self) -> bool {
        self.http.is_some()
    }
}
