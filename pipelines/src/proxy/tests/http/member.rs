//! The test member: a small HTTP/1.1 server on one connection (objects with an
//! `ETag`, `Range` and `If-Match`, uploads of either framing checked byte for byte,
//! `100 Continue`, `Upgrade` to an echo), and the ways members misbehave.

use super::*;

/// How a test member's connections cut a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// FIN.
    Close,
    /// RST.
    Reset,
}

/// How a test member behaves (every connection it accepts).
#[derive(Debug, Clone)]
pub(in crate::proxy::tests) struct Behaviour {
    /// The `ETag` of its objects.
    pub(super) etag: &'static str,
    /// Ends the connection after this many body bytes of an object's response.
    pub(super) cut: Option<(u64, Cut)>,
    /// `(n, how)`: a request after the first `n` on a connection finds it reset or
    /// closed, as `how` says (with `n = 1`: as if the member closed the idle connection
    /// just as the request was sent; with `n = 0`: a member that fails every request).
    pub(super) drop_after: Option<(u32, Cut)>,
    /// Closes the connection (FIN) after each response, without saying so.
    pub(super) close_after_response: bool,
    /// Answers `100 Continue` to `Expect: 100-continue` before reading the body.
    pub(super) send_continue: bool,
    /// Reads requests and never answers.
    pub(super) silent: bool,
    /// Ignores `Range` and `If-Match`: always the whole object, `200`.
    pub(super) ignore_conditions: bool,
    /// Answers with a head that is not HTTP.
    pub(super) garbage: bool,
    /// How object bodies are framed.
    pub(super) framing: Framing,
    /// Writes a response's head and holds its body until the test lets it go
    /// (`Server::body_released`), so head and body leave in different segments.
    pub(super) body_held: bool,
}

/// How a test member frames object bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends with the connection (`Connection: close`).
    UntilClose,
}

impl Behaviour {
    pub(super) fn new() -> Behaviour {
        Behaviour {
            etag: "\"v1\"",
            cut: None,
            drop_after: None,
            close_after_response: false,
            send_continue: true,
            silent: false,
            ignore_conditions: false,
            garbage: false,
            framing: Framing::Length,
            body_held: false,
        }
    }
}

/// A request whose body is being read.
#[derive(Debug)]
pub(super) struct InReq {
    pub(super) method: String,
    pub(super) target: String,
    /// Header fields, names in lower case.
    pub(super) fields: Vec<(String, String)>,
    pub(super) body: InBody,
    pub(super) got: u64,
}

impl InReq {
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An object body being written.
#[derive(Debug)]
pub(super) struct Gen {
    pub(super) size: u64,
    pub(super) next: u64,
    pub(super) end: u64,
    /// Body bytes generated for this response.
    pub(super) done: u64,
    pub(super) chunked: bool,
}

/// One connection of a test member.
#[derive(Debug)]
pub(in crate::proxy::tests) struct Server {
    pub(super) b: Behaviour,
    pub(super) inb: Vec<u8>,
    pub(super) req: Option<InReq>,
    /// Every request head received, as text.
    pub(super) heads: Vec<String>,
    /// Every request body received: its size.
    pub(super) uploads: Vec<u64>,
    /// An upload byte differed from what the client sent.
    pub(super) corrupt: bool,
    /// Requests answered.
    pub(super) served: u32,
    pub(super) silenced: bool,
    /// Switched protocols: echoes what it receives.
    pub(super) echo: bool,
    pub(super) out: Vec<u8>,
    pub(super) out_at: usize,
    pub(super) gen: Option<Gen>,
    pub(super) cut_pending: Option<Cut>,
    pub(super) close_pending: bool,
    pub(super) peer_eof: bool,
    pub(super) verdict: Verdict,
    /// The held body (`Behaviour::body_held`) may go.
    pub(in crate::proxy::tests) body_released: bool,
}

impl Server {
    pub(super) fn new(b: Behaviour) -> Server {
        Server {
            b,
            inb: Vec::new(),
            req: None,
            heads: Vec::new(),
            uploads: Vec::new(),
            corrupt: false,
            served: 0,
            silenced: false,
            echo: false,
            out: Vec::new(),
            out_at: 0,
            gen: None,
            cut_pending: None,
            close_pending: false,
            peer_eof: false,
            verdict: Verdict::Open,
            body_released: false,
        }
    }

    pub(super) fn recv(&mut self, data: &[u8]) {
        if self.silenced {
            return;
        }
        if self.echo {
            self.out.extend_from_slice(data);
            return;
        }
        self.inb.extend_from_slice(data);
    }

    pub(super) fn pending(&mut self) -> &[u8] {
        for _ in 0..100_000 {
            if self.verdict != Verdict::Open {
                self.out.clear();
                self.out_at = 0;
                break;
            }
            if self.out_at < self.out.len() {
                break;
            }
            self.out.clear();
            self.out_at = 0;
            if let Some(g) = self.gen.as_mut() {
                if self.b.body_held && !self.body_released {
                    break;
                }
                let mut n = (g.end - g.next).min(64 * 1024);
                if let Some((at, _)) = self.b.cut {
                    n = n.min(at.saturating_sub(g.done));
                }
                if g.chunked && n > 0 {
                    self.out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                }
                self.out
                    .extend((g.next..g.next + n).map(|off| obj_byte(g.size, off)));
                if g.chunked && n > 0 {
                    self.out.extend_from_slice(b"\r\n");
                }
                g.next += n;
                g.done += n;
                if g.next == g.end {
                    if g.chunked {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                    }
                    self.gen = None;
                } else if let Some((at, how)) = self.b.cut {
                    if g.done >= at {
                        self.gen = None;
                        self.cut_pending = Some(how);
                    }
                }
                continue;
            }
            if let Some(how) = self.cut_pending {
                self.verdict = match how {
                    Cut::Close => Verdict::Shutdown,
                    Cut::Reset => Verdict::Reset,
                };
                break;
            }
            if self.close_pending {
                self.verdict = Verdict::Shutdown;
                break;
            }
            if !self.process() {
                if self.peer_eof && self.req.is_none() {
                    self.verdict = Verdict::Shutdown;
                }
                break;
            }
        }
        &self.out[self.out_at..]
    }

    /// Reads the next request (head, then body) and queues its answer; true on
    /// progress.
    pub(super) fn process(&mut self) -> bool {
        if self.silenced {
            self.inb.clear();
            return false;
        }
        let Some(req) = self.req.as_mut() else {
            return self.read_head();
        };
        let mut progress = false;
        loop {
            match req.body {
                InBody::Done => {
                    self.respond();
                    return true;
                }
                InBody::Length(0) => req.body = InBody::Done,
                InBody::Length(left) | InBody::Data(left) => {
                    let n = (left as usize).min(self.inb.len());
                    if n == 0 {
                        return progress;
                    }
                    for (k, b) in self.inb[..n].iter().enumerate() {
                        if *b != pattern(UP_SEED, req.got + k as u64) {
                            self.corrupt = true;
                        }
                    }
                    req.got += n as u64;
                    self.inb.drain(..n);
                    progress = true;
                    let left = left - n as u64;
                    req.body = match req.body {
                        InBody::Length(_) => InBody::Length(left),
                        _ if left == 0 => InBody::DataEnd,
                        _ => InBody::Data(left),
                    };
                }
                InBody::Size => {
                    let Some(end) = find(&self.inb, b"\r\n") else {
                        return progress;
                    };
                    let line = String::from_utf8_lossy(&self.inb[..end]).to_string();
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).unwrap_or_else(|_| {
                        self.corrupt = true;
                        0
                    });
                    self.inb.drain(..end + 2);
                    progress = true;
                    req.body = if size == 0 {
                        InBody::Trailer
                    } else {
                        InBody::Data(size)
                    };
                }
                InBody::DataEnd => {
                    if self.inb.len() < 2 {
                        return progress;
                    }
                    if &self.inb[..2] != b"\r\n" {
                        self.corrupt = true;
                    }
                    self.inb.drain(..2);
                    progress = true;
                    req.body = InBody::Size;
                }
                InBody::Trailer => {
                    let Some(end) = find(&self.inb, b"\r\n") else {
                        return progress;
                    };
                    self.inb.drain(..end + 2);
                    progress = true;
                    if end == 0 {
                        req.body = InBody::Done;
                    }
                }
            }
        }
    }

    pub(super) fn read_head(&mut self) -> bool {
        let Some(end) = find(&self.inb, b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&self.inb[..end]).to_string();
        self.inb.drain(..end + 4);
        self.heads.push(head.clone());
        if let Some((_, how)) = self.b.drop_after.filter(|&(n, _)| self.served >= n) {
            self.verdict = match how {
                Cut::Close => Verdict::Shutdown,
                Cut::Reset => Verdict::Reset,
            };
            return false;
        }
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let fields: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut req = InReq {
            method,
            target,
            fields,
            body: InBody::Done,
            got: 0,
        };
        if req
            .field("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            req.body = InBody::Size;
        } else if let Some(n) = req.field("content-length") {
            req.body = InBody::Length(n.parse().unwrap_or(0));
        }
        let expect = req
            .field("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if expect && self.b.send_continue {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        if self.b.silent {
            // (After its `100 Continue`, if asked for one.)
            self.silenced = true;
            self.inb.clear();
            return true;
        }
        self.req = Some(req);
        true
    }

    /// The framing header of an object body of `len` bytes.
    pub(super) fn framing(&self, len: u64) -> String {
        match self.b.framing {
            Framing::Length => format!("Content-Length: {len}\r\n"),
            Framing::Chunked => "Transfer-Encoding: chunked\r\n".into(),
            Framing::UntilClose => String::new(),
        }
    }

    /// Queues the answer to the request read.
    pub(super) fn respond(&mut self) {
        let req = self.req.take().expect("a request");
        self.served += 1;
        let close = req
            .field("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let until_close = self.b.framing == Framing::UntilClose;
        let chunked = self.b.framing == Framing::Chunked;
        let conn = if close || until_close {
            "Connection: close\r\n"
        } else {
            ""
        };
        self.close_pending = close || until_close || self.b.close_after_response;
        let etag = self.b.etag;
        let size = req
            .target
            .rsplit_once("/obj/")
            .and_then(|(_, n)| n.parse::<u64>().ok());
        let upgrade = req
            .field("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
            && req.field("upgrade").is_some();
        let head = match (req.method.as_str(), size) {
            _ if upgrade => {
                self.echo = true;
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                    .to_string()
            }
            _ if self.b.garbage => "HTTP/1.1 2OO Fine\r\nContent-Length: 0\r\n\r\n".to_string(),
            ("GET" | "HEAD", Some(size)) => {
                let if_match = req.field("if-match");
                let range = req
                    .field("range")
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.split_once('-'))
                    .map(|(a, b)| {
                        let a: u64 = a.parse().unwrap_or(0);
                        let b: u64 = b.parse().unwrap_or(size.saturating_sub(1));
                        (a, b.min(size.saturating_sub(1)))
                    });
                let (status, first, last) = match (self.b.ignore_conditions, range) {
                    (false, _) if if_match.is_some_and(|m| m != etag) => (412, 0, 0),
                    (false, Some((a, b))) if a <= b && b < size => (206, a, b),
                    _ => (200, 0, size),
                };
                match status {
                    412 => format!(
                        "HTTP/1.1 412 Precondition Failed\r\nETag: {etag}\r\nContent-Length: 0\r\n{conn}\r\n"
                    ),
                    206 => {
                        if req.method == "GET" {
                            self.gen = Some(Gen {
                                size,
                                next: first,
                                end: last + 1,
                                done: 0,
                                chunked,
                            });
                        }
                        let framing = self.framing(last + 1 - first);
                        format!(
                            "HTTP/1.1 206 Partial Content\r\n{framing}Content-Range: bytes {first}-{last}/{size}\r\nETag: {etag}\r\n{conn}\r\n",
                        )
                    }
                    _ => {
                        let framing = self.framing(size);
                        let mut head = format!(
                            "HTTP/1.1 200 OK\r\n{framing}ETag: {etag}\r\n{conn}\r\n"
                        );
                        if req.method == "GET" && size > 0 {
                            self.gen = Some(Gen {
                                size,
                                next: 0,
                                end: size,
                                done: 0,
                                chunked,
                            });
                        } else if req.method == "GET" && chunked {
                            head.push_str("0\r\n\r\n");
                        }
                        head
                    }
                }
            }
            ("PUT" | "POST", _) => {
                self.uploads.push(req.got);
                let text = req.got.to_string();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{conn}\r\n{text}",
                    text.len()
                )
            }
            _ => format!("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n{conn}\r\n"),
        };
        self.out.extend_from_slice(head.as_bytes());
        if self.echo {
            let early = std::mem::take(&mut self.inb);
            self.out.extend_from_slice(&early);
        }
    }
}
