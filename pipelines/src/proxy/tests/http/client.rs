//! The test client: requests sent one after another on a keep-alive connection or
//! pipelined, responses parsed (interim ones apart) and every body checked byte for
//! byte against what its request asked for.

use super::*;

/// A request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    None,
    Length(u64),
    Chunked(u64),
}

/// What a response body must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// The object `/obj/<size>` (whole, or the part a `206` says).
    Object(u64),
    /// The upload's byte count, as text.
    Count(u64),
    /// Protocols switched (`101`): this many bytes sent and echoed back.
    Echo(u64),
    /// Anything.
    Nothing,
}

/// A request the client sends.
#[derive(Debug, Clone)]
pub(super) struct Req {
    /// The head without its blank line (or the raw bytes sent, when `raw`).
    pub(super) head: String,
    pub(super) raw: bool,
    pub(super) body: Body,
    pub(super) expect_continue: bool,
    pub(super) check: Check,
}

impl Req {
    /// `GET target` with `Host: host`.
    pub(super) fn get(host: &str, target: &str) -> Req {
        let size = target
            .rsplit_once("/obj/")
            .and_then(|(_, n)| n.parse::<u64>().ok());
        Req {
            head: format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rouge-test\r\n"),
            raw: false,
            body: Body::None,
            expect_continue: false,
            check: size.map_or(Check::Nothing, Check::Object),
        }
    }

    /// `GET /obj/<size>`.
    pub(super) fn obj(size: u64) -> Req {
        Req::get("s3.rouge.test", &format!("/obj/{size}"))
    }

    /// `method /up/<n>` with a body of `body`.
    pub(super) fn upload(method: &str, body: Body) -> Req {
        let (len, framing) = match body {
            Body::None => (0, String::new()),
            Body::Length(n) => (n, format!("Content-Length: {n}\r\n")),
            Body::Chunked(n) => (n, "Transfer-Encoding: chunked\r\n".to_string()),
        };
        Req {
            head: format!("{method} /up/{len} HTTP/1.1\r\nHost: s3.rouge.test\r\n{framing}"),
            raw: false,
            body,
            expect_continue: false,
            check: Check::Count(len),
        }
    }

    /// Exactly these bytes, nothing checked of the answer.
    pub(super) fn raw(bytes: &str) -> Req {
        Req {
            head: bytes.to_string(),
            raw: true,
            body: Body::None,
            expect_continue: false,
            check: Check::Nothing,
        }
    }

    /// `GET /chat` asking to switch protocols, then `n` bytes sent after the `101`,
    /// to be echoed.
    pub(super) fn upgrade(n: u64) -> Req {
        Req {
            head: "GET /chat HTTP/1.1\r\nHost: s3.rouge.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n".into(),
            raw: false,
            body: Body::Length(n),
            expect_continue: true,
            check: Check::Echo(n),
        }
    }

    /// With one more header field.
    pub(super) fn with(mut self, name: &str, value: &str) -> Req {
        self.head.push_str(&format!("{name}: {value}\r\n"));
        self
    }

    /// With `Expect: 100-continue`: the body waits for the `100`.
    pub(super) fn expecting_continue(self) -> Req {
        let mut r = self.with("Expect", "100-continue");
        r.expect_continue = true;
        r
    }

    pub(super) fn head_bytes(&self) -> Vec<u8> {
        let mut b = self.head.clone().into_bytes();
        if !self.raw {
            b.extend_from_slice(b"\r\n");
        }
        b
    }
}

/// A response the client received.
#[derive(Debug, Clone)]
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) head: String,
    pub(super) body_len: u64,
    /// The body (when it is not an object's).
    pub(super) text: String,
    /// The body is what its request's check says, whole.
    pub(super) intact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Head,
    WaitContinue,
    Body(u64),
}

#[derive(Debug)]
pub(super) struct Incoming {
    pub(super) status: u16,
    pub(super) head: String,
    /// Body bytes still expected (`None`: until the connection closes).
    pub(super) left: Option<u64>,
    /// Position in the object of the body's first byte.
    pub(super) base: u64,
    pub(super) got: u64,
    pub(super) text: Vec<u8>,
    pub(super) intact: bool,
    /// Where a chunked body stands (`None`: not chunked).
    pub(super) chunked: Option<InBody>,
}

impl Incoming {
    /// Takes body bytes `data` (checked against `check`).
    pub(super) fn absorb(&mut self, check: Check, data: &[u8]) {
        match check {
            Check::Echo(_) if self.status == 101 => {
                for (j, b) in data.iter().enumerate() {
                    if *b != pattern(UP_SEED, self.got + j as u64) {
                        self.intact = false;
                    }
                }
            }
            Check::Object(size) if self.status == 200 || self.status == 206 => {
                for (j, b) in data.iter().enumerate() {
                    if *b != obj_byte(size, self.base + self.got + j as u64) {
                        self.intact = false;
                    }
                }
            }
            _ => {
                let room = 4096usize.saturating_sub(self.text.len()).min(data.len());
                self.text.extend_from_slice(&data[..room]);
            }
        }
        self.got += data.len() as u64;
    }
}

/// A test client on one connection.
#[derive(Debug)]
pub(in crate::proxy::tests) struct Client {
    pub(super) reqs: Vec<Req>,
    /// Sends every request at once (else each after the previous response).
    pub(super) pipelined: bool,
    /// Closes (FIN) once every response came.
    pub(super) close_at_end: bool,
    /// Closes (FIN) once every request went, before the responses (like `nc`).
    pub(super) half_close: bool,
    pub(super) sending: usize,
    pub(super) stage: Stage,
    pub(super) out: Vec<u8>,
    pub(super) out_at: usize,
    pub(super) inb: Vec<u8>,
    pub(super) cur: Option<Incoming>,
    /// Final responses, in order.
    pub(super) responses: Vec<Resp>,
    /// Interim responses: (index of the request, status).
    pub(super) interim: Vec<(usize, u16)>,
    /// The proxy closed the connection.
    pub(super) eof: bool,
}

impl Client {
    pub(super) fn new(reqs: Vec<Req>) -> Client {
        Client {
            reqs,
            pipelined: false,
            close_at_end: true,
            half_close: false,
            sending: 0,
            stage: Stage::Head,
            out: Vec::new(),
            out_at: 0,
            inb: Vec::new(),
            cur: None,
            responses: Vec::new(),
            interim: Vec::new(),
            eof: false,
        }
    }

    pub(super) fn pipelined(mut self) -> Client {
        self.pipelined = true;
        self
    }

    /// Every request has its final response.
    pub(super) fn done(&self) -> bool {
        self.responses.len() == self.reqs.len()
    }

    pub(super) fn verdict(&self) -> Verdict {
        let all_sent = self.sending == self.reqs.len() && self.out_at == self.out.len();
        if (self.close_at_end && self.done()) || (self.half_close && all_sent) || self.eof {
            Verdict::Shutdown
        } else {
            Verdict::Open
        }
    }

    pub(super) fn pending(&mut self) -> &[u8] {
        for _ in 0..100_000 {
            if self.out_at < self.out.len() {
                break;
            }
            self.out.clear();
            self.out_at = 0;
            let k = self.sending;
            if k >= self.reqs.len() || (!self.pipelined && self.responses.len() < k) {
                break;
            }
            let req = &self.reqs[k];
            match self.stage {
                Stage::Head => {
                    self.out = req.head_bytes();
                    self.stage = match (req.body, req.expect_continue) {
                        (Body::None, _) => {
                            self.sending += 1;
                            Stage::Head
                        }
                        (_, true) => Stage::WaitContinue,
                        (_, false) => Stage::Body(0),
                    };
                }
                Stage::WaitContinue => {
                    if self
                        .interim
                        .iter()
                        .any(|&(i, s)| i == k && (s == 100 || s == 101))
                    {
                        self.stage = Stage::Body(0);
                    } else if self.responses.len() > k {
                        // Answered without the body: nothing more to send.
                        self.sending = self.reqs.len();
                    } else {
                        break;
                    }
                }
                Stage::Body(sent) => {
                    let (total, chunked) = match req.body {
                        Body::None => (0, false),
                        Body::Length(n) => (n, false),
                        Body::Chunked(n) => (n, true),
                    };
                    let n = (total - sent).min(if chunked { 10_000 } else { 64 * 1024 });
                    if chunked && n > 0 {
                        self.out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    }
                    self.out
                        .extend((sent..sent + n).map(|off| pattern(UP_SEED, off)));
                    if chunked && n > 0 {
                        self.out.extend_from_slice(b"\r\n");
                    }
                    self.stage = Stage::Body(sent + n);
                    if sent + n == total {
                        if chunked {
                            self.out.extend_from_slice(b"0\r\n\r\n");
                        }
                        self.sending += 1;
                        self.stage = Stage::Head;
                    }
                }
            }
        }
        &self.out[self.out_at..]
    }

    pub(super) fn recv(&mut self, data: &[u8]) {
        self.inb.extend_from_slice(data);
        loop {
            let k = self.responses.len();
            let Some(cur) = self.cur.as_mut() else {
                let Some(end) = find(&self.inb, b"\r\n\r\n") else {
                    return;
                };
                let head = String::from_utf8_lossy(&self.inb[..end]).to_string();
                self.inb.drain(..end + 4);
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let echo = match self.reqs.get(k).map(|r| r.check) {
                    Some(Check::Echo(n)) if status == 101 => Some(n),
                    _ => None,
                };
                if (100..200).contains(&status) {
                    self.interim.push((k, status));
                    if let Some(n) = echo {
                        // Bytes both ways from here: the echo is the answer's body.
                        self.cur = Some(Incoming {
                            status,
                            head,
                            left: Some(n),
                            base: 0,
                            got: 0,
                            text: Vec::new(),
                            intact: true,
                            chunked: None,
                        });
                        if n == 0 {
                            self.finish();
                        }
                    }
                    continue;
                }
                let field = |name: &str| {
                    head.split("\r\n").skip(1).find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_string())
                    })
                };
                let len: Option<u64> = field("content-length").and_then(|v| v.parse().ok());
                let chunked =
                    field("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
                let base = field("content-range")
                    .and_then(|v| {
                        v.strip_prefix("bytes ")?
                            .split_once('-')?
                            .0
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0);
                let head_req = self
                    .reqs
                    .get(k)
                    .is_some_and(|r| r.head.starts_with("HEAD "));
                let left = if head_req || status == 204 || status == 304 {
                    Some(0)
                } else {
                    len
                };
                let mut intact = true;
                if let Some(Check::Object(size)) = self.reqs.get(k).map(|r| r.check) {
                    let want = match status {
                        200 => Some(size),
                        206 => None,
                        _ => Some(0),
                    };
                    if want.is_some_and(|w| len.is_some_and(|l| l != w)) {
                        intact = false;
                    }
                }
                self.cur = Some(Incoming {
                    status,
                    head,
                    left,
                    base,
                    got: 0,
                    text: Vec::new(),
                    intact,
                    chunked: (chunked && left != Some(0)).then_some(InBody::Size),
                });
                continue;
            };
            let check = self.reqs.get(k).map_or(Check::Nothing, |r| r.check);
            if let Some(st) = cur.chunked {
                match st {
                    InBody::Size | InBody::Trailer => {
                        let Some(end) = find(&self.inb, b"\r\n") else {
                            return;
                        };
                        let line = String::from_utf8_lossy(&self.inb[..end]).to_string();
                        self.inb.drain(..end + 2);
                        cur.chunked = Some(match (st, u64::from_str_radix(line.trim(), 16)) {
                            (InBody::Trailer, _) if end == 0 => InBody::Done,
                            (InBody::Trailer, _) => InBody::Trailer,
                            (_, Ok(0)) => InBody::Trailer,
                            (_, Ok(n)) => InBody::Data(n),
                            (_, Err(_)) => {
                                cur.intact = false;
                                InBody::Trailer
                            }
                        });
                    }
                    InBody::Data(left) => {
                        let n = (left as usize).min(self.inb.len());
                        if n == 0 {
                            return;
                        }
                        cur.absorb(check, &self.inb[..n]);
                        self.inb.drain(..n);
                        let left = left - n as u64;
                        cur.chunked = Some(if left == 0 {
                            InBody::DataEnd
                        } else {
                            InBody::Data(left)
                        });
                    }
                    InBody::DataEnd => {
                        if self.inb.len() < 2 {
                            return;
                        }
                        if &self.inb[..2] != b"\r\n" {
                            cur.intact = false;
                        }
                        self.inb.drain(..2);
                        cur.chunked = Some(InBody::Size);
                    }
                    InBody::Done | InBody::Length(_) => self.finish(),
                }
                if self
                    .cur
                    .as_ref()
                    .is_some_and(|c| c.chunked == Some(InBody::Done))
                {
                    self.finish();
                }
                continue;
            }
            let n = cur.left.unwrap_or(u64::MAX).min(self.inb.len() as u64) as usize;
            cur.absorb(check, &self.inb[..n]);
            self.inb.drain(..n);
            if let Some(left) = cur.left.as_mut() {
                *left -= n as u64;
                if *left == 0 {
                    self.finish();
                    continue;
                }
            }
            return;
        }
    }

    pub(super) fn finish(&mut self) {
        let Some(cur) = self.cur.take() else {
            return;
        };
        let k = self.responses.len();
        let text = String::from_utf8_lossy(&cur.text).to_string();
        let mut intact = cur.intact;
        if let Some(Check::Object(size)) = self.reqs.get(k).map(|r| r.check) {
            if cur.status == 200 && !self.reqs[k].head.starts_with("HEAD ") {
                intact &= cur.got == size;
            }
        }
        if let Some(Check::Count(n)) = self.reqs.get(k).map(|r| r.check) {
            intact &= cur.status == 200 && text == n.to_string();
        }
        self.responses.push(Resp {
            status: cur.status,
            head: cur.head,
            body_len: cur.got,
            text,
            intact,
        });
    }

    pub(super) fn peer_closed(&mut self) {
        self.eof = true;
        if self
            .cur
            .as_ref()
            .is_some_and(|c| c.left.is_none() && c.chunked.is_none())
        {
            self.finish();
        }
    }
}
