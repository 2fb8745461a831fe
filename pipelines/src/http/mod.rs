//! HTTP/1.1 for `standard` virtual servers with an `http_profile`: the sans-I/O pieces
//! the proxy's HTTP flows are made of.
//!
//! - [`head`]: request and response heads parsed (with `httparse`) under limits, strict
//!   against request smuggling, with what the proxy needs to know of them (framing,
//!   keep-alive, `Expect`, `Upgrade`, `Host`, `ETag`, `Content-Range`);
//! - [`body`]: where a streamed body ends (`Content-Length`, chunked, until close),
//!   looked at as the bytes pass, never buffered whole;
//! - [`policy`]: routing rules (F5's LTM policies) choosing a pool per request;
//! - [`profile`]: the settings of an `[[http_profile]]`.
//!
//! Messages are passed on byte for byte (S3 signatures cover them): the engine reads,
//! it does not rewrite, except where the profile asks (`insert_xff`) or a resumed GET
//! needs its own request.

pub mod body;
pub mod head;
pub mod policy;
pub mod profile;
#[cfg(test)]
mod tests;

pub use body::{BodyFramer, BodyKind};
pub use head::{parse_request, parse_response, Method, RequestHead, ResponseHead};
pub use policy::{HostMatch, Policy, RequestView, Rule};
pub use profile::HttpProfile;

/// Why the engine refused a message; each maps to the status the client gets and a
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(usize)]
pub enum HttpError {
    /// Not HTTP/1.x, or a malformed request line or header.
    #[error("malformed request")]
    Malformed,
    /// Both `Content-Length` and `Transfer-Encoding`, duplicate or conflicting
    /// `Content-Length`, a `Transfer-Encoding` other than a final `chunked`, or
    /// obsolete line folding: refused against request smuggling.
    #[error("ambiguous message framing")]
    Smuggling,
    /// A malformed chunk size line, chunk end or trailer.
    #[error("malformed chunked body")]
    BadChunk,
    /// The request line is longer than `max_request_line`.
    #[error("request line too long")]
    RequestLineTooLong,
    /// The header block is larger than `max_header_bytes` or has more than
    /// `max_headers` fields.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// A member's response head could not be parsed (or exceeded the limits).
    #[error("malformed response from the member")]
    BadResponse,
}

impl HttpError {
    /// Every error, in counter order.
    pub const ALL: [HttpError; 6] = [
        HttpError::Malformed,
        HttpError::Smuggling,
        HttpError::BadChunk,
        HttpError::RequestLineTooLong,
        HttpError::HeadersTooLarge,
        HttpError::BadResponse,
    ];

    /// The status the client gets: `400` (a malformed or smuggling request, a request
    /// line over the limit), `431` (header fields over the limits) or `502`.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed
            | HttpError::Smuggling
            | HttpError::BadChunk
            | HttpError::RequestLineTooLong => 400,
            HttpError::HeadersTooLarge => 431,
            HttpError::BadResponse => 502,
        }
    }

    /// Name in `show` output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpError::Malformed => "malformed",
            HttpError::Smuggling => "smuggling",
            HttpError::BadChunk => "bad_chunk",
            HttpError::RequestLineTooLong => "request_line_too_long",
            HttpError::HeadersTooLarge => "headers_too_large",
            HttpError::BadResponse => "bad_response",
        }
    }
}

/// Limits on a message head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version), bytes.
    pub max_request_line: usize,
    /// Largest head (request or status line and every header), bytes.
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 8 KiB request line, 32 KiB head, 100 fields.
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}
