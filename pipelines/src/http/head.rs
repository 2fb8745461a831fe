//! Request and response heads: parsed with `httparse` under [`Limits`], checked against
//! request smuggling, and reduced to what the proxy acts on. Offsets point into the
//! buffer that was parsed (the head is passed on from there, byte for byte).

use std::ops::Range;

use super::body::hex_digit;
use super::{BodyKind, HttpError, Limits};

/// A request method, as far as the proxy treats methods differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD` (its response has no body, whatever its headers say)
    Head,
    /// `PUT`
    Put,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// `PATCH`
    Patch,
    /// `CONNECT` (refused: the proxy does not tunnel)
    Connect,
    /// `TRACE`
    Trace,
    /// Any other token.
    Other,
}

impl Method {
    /// The method of a request line's token (case-sensitive, as RFC 9110 says).
    pub fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"PUT" => Method::Put,
            b"POST" => Method::Post,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// True for the methods RFC 9110 calls idempotent (GET, HEAD, PUT, DELETE,
    /// OPTIONS, TRACE): a request of one may be sent again.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }

    /// The method's name (`"OTHER"` for [`Method::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other => "OTHER",
        }
    }
}

/// A request head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    /// Bytes of the head, the blank line that ends it included.
    pub head_len: usize,
    /// The request target (path and query) in the parsed buffer.
    pub target: Range<usize>,
    /// The `Host` field's value (trimmed) in the parsed buffer, if present.
    pub host: Option<Range<usize>>,
    /// How the body is framed: [`BodyKind::None`], [`BodyKind::Length`] or
    /// [`BodyKind::Chunked`] (never `UntilClose` for a request).
    pub body: BodyKind,
    /// The client keeps the connection open after this exchange (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The request asks for a protocol upgrade (`Connection: upgrade` and `Upgrade`).
    pub upgrade: bool,
    /// The `Range` field's value (trimmed) in the parsed buffer, if present.
    pub range: Option<Range<usize>>,
    /// An AWS SigV4 signature covers the `Range` field (`SignedHeaders=` in
    /// `Authorization`, or `X-Amz-SignedHeaders` in the query, lists `range`): the
    /// request's range cannot be rewritten.
    pub range_signed: bool,
    /// The whole line (its CRLF included) of the request's only `Connection` field when
    /// its value is `close` and no SigV4 signature covers `connection`: a hop-by-hop
    /// field the proxy may leave out toward a member whose connection it keeps.
    pub close_line: Option<Range<usize>>,
}

/// A response head, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    /// Bytes of the head, the blank line that ends it included.
    pub head_len: usize,
    /// How the body is framed, given the request's method: `None` for `HEAD`, 1xx,
    /// 204 and 304; `Chunked`; `Length`; otherwise `UntilClose`.
    pub body: BodyKind,
    /// The member keeps the connection open after this response.
    pub keep_alive: bool,
    /// The `Content-Length` field, if present (also for `HEAD` answers).
    pub content_length: Option<u64>,
    /// The `ETag` field's value (trimmed, quotes kept) in the parsed buffer.
    pub etag: Option<Range<usize>>,
    /// The `Content-Range` field, parsed (`bytes FIRST-LAST/COMPLETE`).
    pub content_range: Option<ContentRange>,
}

/// A `Content-Range: bytes FIRST-LAST/COMPLETE` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
    /// The complete length, if known (`*` is `None`).
    pub complete: Option<u64>,
}

/// Most header fields a head may carry whatever [`Limits::max_headers`] says: the
/// parser's field array lives on the stack, this many entries long.
pub const MAX_HEADERS: usize = 128;

/// Parses a request head at the start of `buf`. `Ok(None)`: the head is not complete
/// yet (and within the limits so far). Refuses request smuggling: both
/// `Content-Length` and `Transfer-Encoding`, several or conflicting `Content-Length`,
/// a `Transfer-Encoding` whose last coding is not `chunked`, obsolete line folding,
/// bare LF line ends in the head.
///
/// Limits are enforced on incomplete heads too: a request line longer than
/// `max_request_line` without its CRLF yet is [`HttpError::RequestLineTooLong`] at
/// once; `max_header_bytes` bytes without the blank line that ends the head, or more
/// than `max_headers` (at most [`MAX_HEADERS`]) fields, are
/// [`HttpError::HeadersTooLarge`]. Also refused: whitespace between a field name and its
/// colon ([`HttpError::Smuggling`]), `Transfer-Encoding` in an HTTP/1.0 request
/// ([`HttpError::Smuggling`]), more than one `Host` or none in HTTP/1.1
/// ([`HttpError::Malformed`]). `Content-Length: 0` is [`BodyKind::Length`]`(0)`.
/// `Expect: 100-continue` counts in HTTP/1.1 only (RFC 9110 §10.1.1).
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HttpError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let max_fields = limits.max_headers.min(MAX_HEADERS);
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let scan =
        scan_head(window, limits.max_request_line, max_fields).map_err(Fault::for_request)?;
    let head_len = match scan {
        Scan::Complete(n) => n,
        Scan::Partial if buf.len() >= limits.max_header_bytes => {
            return Err(HttpError::HeadersTooLarge)
        }
        Scan::Partial => {
            // Not complete: let httparse refuse a malformed start early.
            let mut req = httparse::Request::new(&mut fields[..max_fields]);
            return match req.parse(window) {
                Ok(httparse::Status::Partial) => Ok(None),
                Ok(httparse::Status::Complete(_)) => Err(HttpError::Malformed),
                Err(e) => Err(request_error(e)),
            };
        }
    };
    let head = &buf[..head_len];
    let mut req = httparse::Request::new(&mut fields[..max_fields]);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        Ok(_) => return Err(HttpError::Malformed),
        Err(e) => return Err(request_error(e)),
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed);
    };
    if version > 1 {
        return Err(HttpError::Malformed);
    }
    let mut framing = Framing::default();
    let mut conn = Connection::default();
    let mut host = None;
    let mut hosts = 0usize;
    let mut expect_continue = false;
    let mut upgrade_field = false;
    let mut range = None;
    let mut range_signed = false;
    let mut connection_signed = false;
    let mut connection_fields = 0usize;
    let mut close_line = None;
    for field in req.headers.iter() {
        let name = field.name.as_bytes();
        let value = trim(field.value);
        if framing.add(name, value).is_err() {
            return Err(HttpError::Smuggling);
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host = Some(range_in(head, value));
        } else if name.eq_ignore_ascii_case(b"connection") {
            conn.add(value);
            connection_fields += 1;
            if value.eq_ignore_ascii_case(b"close") {
                close_line = field_line(head, name);
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_field = true;
        } else if name.eq_ignore_ascii_case(b"range") {
            if range.is_none() {
                range = Some(range_in(head, value));
            }
        } else if name.eq_ignore_ascii_case(b"authorization") {
            range_signed |= authorization_signs(value, b"range");
            connection_signed |= authorization_signs(value, b"connection");
        }
    }
    if hosts > 1 || (hosts == 0 && version == 1) {
        return Err(HttpError::Malformed);
    }
    let body = match (framing.content_length, framing.te) {
        (Some(_), Some(_)) => return Err(HttpError::Smuggling),
        (None, Some(te)) if version == 1 && te.is_final_chunked() => BodyKind::Chunked,
        (None, Some(_)) => return Err(HttpError::Smuggling),
        (Some(n), None) => BodyKind::Length(n),
        (None, None) => BodyKind::None,
    };
    let target = range_in(head, path.as_bytes());
    range_signed |= query_signs(path.as_bytes(), b"range");
    connection_signed |= query_signs(path.as_bytes(), b"connection");
    if connection_fields != 1 || connection_signed {
        close_line = None;
    }
    Ok(Some(RequestHead {
        method: Method::from_token(method.as_bytes()),
        version,
        head_len,
        target,
        host,
        body,
        keep_alive: conn.keep_alive(version),
        expect_continue: expect_continue && version == 1,
        upgrade: conn.upgrade && upgrade_field,
        range,
        range_signed,
        close_line,
    }))
}

/// Parses the head of a response to a `method` request at the start of `buf`.
/// `Ok(None)`: not complete yet. Errors are [`HttpError::BadResponse`].
///
/// Strict where RFC 9112 lets a recipient choose: both `Content-Length` and
/// `Transfer-Encoding`, several `Content-Length` fields (even equal ones), a malformed
/// `Content-Length`, `chunked` applied twice, `Transfer-Encoding` in an HTTP/1.0
/// response, a status below 100, bare LF, obsolete line folding and whitespace before a
/// field's colon are all refused. A `Transfer-Encoding` whose last coding is not
/// `chunked` is read until close. A malformed `Content-Range` is not an error: the field
/// is `None`.
pub fn parse_response(
    buf: &[u8],
    method: Method,
    limits: &Limits,
) -> Result<Option<ResponseHead>, HttpError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let max_fields = limits.max_headers.min(MAX_HEADERS);
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let scan = scan_head(window, usize::MAX, max_fields).map_err(|_| HttpError::BadResponse)?;
    let head_len = match scan {
        Scan::Complete(n) => n,
        Scan::Partial if buf.len() >= limits.max_header_bytes => {
            return Err(HttpError::BadResponse)
        }
        Scan::Partial => {
            let mut resp = httparse::Response::new(&mut fields[..max_fields]);
            return match resp.parse(window) {
                Ok(httparse::Status::Partial) => Ok(None),
                _ => Err(HttpError::BadResponse),
            };
        }
    };
    let head = &buf[..head_len];
    let mut resp = httparse::Response::new(&mut fields[..max_fields]);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head_len => {}
        _ => return Err(HttpError::BadResponse),
    }
    let (Some(status), Some(version)) = (resp.code, resp.version) else {
        return Err(HttpError::BadResponse);
    };
    if version > 1 || status < 100 {
        return Err(HttpError::BadResponse);
    }
    let mut framing = Framing::default();
    let mut conn = Connection::default();
    let mut etag = None;
    let mut content_range = None;
    let mut content_range_seen = false;
    for field in resp.headers.iter() {
        let name = field.name.as_bytes();
        let value = trim(field.value);
        if framing.add(name, value).is_err() {
            return Err(HttpError::BadResponse);
        }
        if name.eq_ignore_ascii_case(b"connection") {
            conn.add(value);
        } else if name.eq_ignore_ascii_case(b"etag") {
            if etag.is_none() {
                etag = Some(range_in(head, value));
            }
        } else if name.eq_ignore_ascii_case(b"content-range") && !content_range_seen {
            content_range_seen = true;
            content_range = parse_content_range(value);
        }
    }
    let body = match (framing.content_length, framing.te) {
        (Some(_), Some(_)) => return Err(HttpError::BadResponse),
        (None, Some(_)) if version == 0 => return Err(HttpError::BadResponse),
        (None, Some(te)) if te.chunked > 1 => return Err(HttpError::BadResponse),
        _ if method == Method::Head || status < 200 || status == 204 || status == 304 => {
            BodyKind::None
        }
        (None, Some(te)) if te.is_final_chunked() => BodyKind::Chunked,
        (None, Some(_)) => BodyKind::UntilClose,
        (Some(n), None) => BodyKind::Length(n),
        (None, None) => BodyKind::UntilClose,
    };
    Ok(Some(ResponseHead {
        status,
        version,
        head_len,
        body,
        keep_alive: conn.keep_alive(version) && body != BodyKind::UntilClose,
        content_length: framing.content_length,
        etag,
        content_range,
    }))
}

/// The value (trimmed) of the first header field called `name` (case-insensitive) in
/// the complete head `head`, if any.
///
/// `head` starts with the request or status line (empty lines before it are skipped);
/// the fields end at the first empty line. Lines may end in CRLF or LF (the head was
/// checked when it was parsed); a line without a colon is skipped.
pub fn header_value<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut lines = head.split(|&b| b == b'\n').map(strip_cr);
    // Empty lines before the start line, then the start line itself.
    while lines.next()?.is_empty() {}
    for line in lines {
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
            return Some(trim(&line[colon + 1..]));
        }
    }
    None
}

/// What the line scan of a head found wrong, before it becomes a request's or a
/// response's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The start line is longer than allowed.
    LineTooLong,
    /// More fields than allowed.
    TooManyFields,
    /// Bare LF, obsolete line folding, whitespace before a colon.
    Smuggling,
}

impl Fault {
    fn for_request(self) -> HttpError {
        match self {
            Fault::LineTooLong => HttpError::RequestLineTooLong,
            Fault::TooManyFields => HttpError::HeadersTooLarge,
            Fault::Smuggling => HttpError::Smuggling,
        }
    }
}

/// Where the line scan of a head got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// The head ends here (the blank line included).
    Complete(usize),
    /// No blank line yet.
    Partial,
}

/// The checks `httparse` does not make, line by line over `buf` (which may end in the
/// middle of the head): every line ends in CRLF, no field line starts with whitespace
/// (obsolete folding), no whitespace between a field name and its colon, the start line
/// is at most `max_line` bytes (also before its CRLF arrived), at most `max_fields`
/// field lines. Empty lines before the start line are skipped, as `httparse` does.
fn scan_head(buf: &[u8], max_line: usize, max_fields: usize) -> Result<Scan, Fault> {
    let mut pos = 0;
    while buf[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let mut start_line = true;
    let mut fields = 0usize;
    loop {
        let rest = &buf[pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            // The last line, incomplete.
            let content = rest.strip_suffix(b"\r").unwrap_or(rest);
            if start_line {
                if content.len() > max_line {
                    return Err(Fault::LineTooLong);
                }
            } else {
                check_field_line(content)?;
            }
            return Ok(Scan::Partial);
        };
        let Some(line) = rest[..lf].strip_suffix(b"\r") else {
            return Err(Fault::Smuggling);
        };
        pos += lf + 1;
        if start_line {
            if line.len() > max_line {
                return Err(Fault::LineTooLong);
            }
            start_line = false;
        } else if line.is_empty() {
            return Ok(Scan::Complete(pos));
        } else {
            fields += 1;
            if fields > max_fields {
                return Err(Fault::TooManyFields);
            }
            check_field_line(line)?;
        }
    }
}

/// A field line (or the start of one) neither folded onto the previous line nor with
/// whitespace before its colon.
fn check_field_line(line: &[u8]) -> Result<(), Fault> {
    if line.first().is_some_and(|&b| is_ows(b)) {
        return Err(Fault::Smuggling);
    }
    if let Some(colon) = line.iter().position(|&b| b == b':') {
        if colon > 0 && is_ows(line[colon - 1]) {
            return Err(Fault::Smuggling);
        }
    }
    Ok(())
}

/// A request's error for what `httparse` refused.
fn request_error(e: httparse::Error) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::HeadersTooLarge,
        _ => HttpError::Malformed,
    }
}

/// The `Transfer-Encoding` fields of a message, as a list of codings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TransferCodings {
    /// Codings listed.
    codings: usize,
    /// How many of them are `chunked`.
    chunked: usize,
    /// The last one is `chunked`.
    last_chunked: bool,
}

impl TransferCodings {
    /// `chunked` once, and last.
    fn is_final_chunked(self) -> bool {
        self.last_chunked && self.chunked == 1
    }
}

/// The framing fields of a message: `Content-Length` and `Transfer-Encoding`.
#[derive(Debug, Clone, Copy, Default)]
struct Framing {
    content_length: Option<u64>,
    te: Option<TransferCodings>,
}

impl Framing {
    /// Takes a field into account; `Err` for a second `Content-Length`, a malformed one
    /// (not all digits, a list, too large), or a `Transfer-Encoding` without codings.
    fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), ()> {
        if name.eq_ignore_ascii_case(b"content-length") {
            if self.content_length.is_some() {
                return Err(());
            }
            self.content_length = Some(parse_decimal(value).ok_or(())?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let te = self.te.get_or_insert_with(TransferCodings::default);
            let mut any = false;
            for coding in value.split(|&b| b == b',').map(trim) {
                if coding.is_empty() {
                    continue;
                }
                any = true;
                te.codings += 1;
                te.last_chunked = coding.eq_ignore_ascii_case(b"chunked");
                te.chunked += usize::from(te.last_chunked);
            }
            if !any {
                return Err(());
            }
        }
        Ok(())
    }
}

/// The tokens of the `Connection` fields that matter here.
#[derive(Debug, Clone, Copy, Default)]
struct Connection {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
}

impl Connection {
    /// Adds a `Connection` field's value (a comma-separated list, any case).
    fn add(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',').map(trim) {
            self.close |= token.eq_ignore_ascii_case(b"close");
            self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            self.upgrade |= token.eq_ignore_ascii_case(b"upgrade");
        }
    }

    /// Persistent after this message: HTTP/1.1 unless `close`, HTTP/1.0 only with
    /// `keep-alive` (and without `close`).
    fn keep_alive(self, version: u8) -> bool {
        !self.close && (version >= 1 || self.keep_alive)
    }
}

/// A `Content-Length`-style number: one or more ASCII digits, no sign, no space, no
/// overflow.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// `bytes FIRST-LAST/COMPLETE` (COMPLETE may be `*`), with FIRST ≤ LAST < COMPLETE.
fn parse_content_range(v: &[u8]) -> Option<ContentRange> {
    let unit = v.get(..5)?;
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let rest = v[5..].strip_prefix(b" ")?;
    let rest = trim(rest);
    let dash = rest.iter().position(|&b| b == b'-')?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    if slash < dash {
        return None;
    }
    let first = parse_decimal(&rest[..dash])?;
    let last = parse_decimal(&rest[dash + 1..slash])?;
    let complete = match &rest[slash + 1..] {
        b"*" => None,
        n => Some(parse_decimal(n)?),
    };
    if first > last || complete.is_some_and(|c| last >= c) {
        return None;
    }
    Some(ContentRange {
        first,
        last,
        complete,
    })
}

/// The line of `head` (CRLF included) of the field whose name is `name` (a slice of
/// `head`).
fn field_line(head: &[u8], name: &[u8]) -> Option<Range<usize>> {
    let start = range_in(head, name).start;
    let end = start + head[start..].iter().position(|&b| b == b'\n')? + 1;
    Some(start..end)
}

/// The `SignedHeaders=` list of a SigV4 `Authorization` value names `field` (lower
/// case).
fn authorization_signs(value: &[u8], field: &[u8]) -> bool {
    const KEY: &[u8] = b"signedheaders=";
    let mut from = 0;
    while let Some(at) = find_ignore_case(&value[from..], KEY) {
        let start = from + at;
        from = start + KEY.len();
        let at_boundary = start == 0 || matches!(value[start - 1], b' ' | b'\t' | b',');
        if !at_boundary {
            continue;
        }
        let list = &value[from..];
        let end = list
            .iter()
            .position(|&b| b == b',' || is_ows(b))
            .unwrap_or(list.len());
        return list_names(list[..end].iter().copied(), field);
    }
    false
}

/// The query of `target` has `X-Amz-SignedHeaders=` (a presigned URL) whose value,
/// percent-decoded, names `field` (lower case).
fn query_signs(target: &[u8], field: &[u8]) -> bool {
    let Some(q) = target.iter().position(|&b| b == b'?') else {
        return false;
    };
    target[q + 1..].split(|&b| b == b'&').any(|param| {
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            return false;
        };
        param[..eq].eq_ignore_ascii_case(b"X-Amz-SignedHeaders")
            && list_names(PercentDecoded(&param[eq + 1..]), field)
    })
}

/// A `;`-separated list of header names (as bytes) contains `field` (lower case; the
/// list in any case).
fn list_names(list: impl Iterator<Item = u8>, field: &[u8]) -> bool {
    let mut matched = 0;
    let mut matching = true;
    for b in list {
        if b == b';' {
            if matching && matched == field.len() {
                return true;
            }
            matched = 0;
            matching = true;
        } else if matching && matched < field.len() && b.to_ascii_lowercase() == field[matched] {
            matched += 1;
        } else {
            matching = false;
        }
    }
    matching && matched == field.len()
}

/// The bytes of a query value with `%XX` decoded (a `%` not followed by two hex digits
/// stays as it is).
struct PercentDecoded<'a>(&'a [u8]);

impl Iterator for PercentDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        if b == b'%' {
            if let [h, l, tail @ ..] = rest {
                if let (Some(h), Some(l)) = (hex_digit(*h), hex_digit(*l)) {
                    self.0 = tail;
                    return Some(h << 4 | l);
                }
            }
        }
        self.0 = rest;
        Some(b)
    }
}

/// Where `needle` (lower case) first occurs in `hay`, ignoring ASCII case.
fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Optional whitespace: SP or HTAB.
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `v` without leading and trailing SP and HTAB.
fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// A line without its final CR.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where `part`, a slice of `buf` (as `httparse` hands them out), lies in `buf`. A slice
/// from elsewhere (never, but no panic) gives an empty range at the end of `buf`.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    if start <= buf.len() && part.len() <= buf.len() - start {
        start..start + part.len()
    } else {
        buf.len()..buf.len()
    }
}
