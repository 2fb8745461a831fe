//! Request and response heads: parsed with `httparse` under [`Limits`], checked against
//! request smuggling, and reduced to what the proxy acts on. Offsets point into the
//! buffer that was parsed (the head is passed on from there, byte for byte).

use std::ops::Range;

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
        todo!()
    }

    /// True for the methods RFC 9110 calls idempotent (GET, HEAD, PUT, DELETE,
    /// OPTIONS, TRACE): a request of one may be sent again.
    pub fn is_idempotent(self) -> bool {
        todo!()
    }

    /// The method's name (`"OTHER"` for [`Method::Other`]).
    pub fn as_str(self) -> &'static str {
        todo!()
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

/// Parses a request head at the start of `buf`. `Ok(None)`: the head is not complete
/// yet (and within the limits so far). Refuses request smuggling: both
/// `Content-Length` and `Transfer-Encoding`, several or conflicting `Content-Length`,
/// a `Transfer-Encoding` whose last coding is not `chunked`, obsolete line folding,
/// bare LF line ends in the head.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, HttpError> {
    todo!()
}

/// Parses the head of a response to a `method` request at the start of `buf`.
/// `Ok(None)`: not complete yet. Errors are [`HttpError::BadResponse`].
pub fn parse_response(
    buf: &[u8],
    method: Method,
    limits: &Limits,
) -> Result<Option<ResponseHead>, HttpError> {
    todo!()
}

/// The value (trimmed) of the first header field called `name` (case-insensitive) in
/// the complete head `head`, if any.
pub fn header_value<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    todo!()
}
