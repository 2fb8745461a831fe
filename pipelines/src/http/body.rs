//! Where a body ends. The proxy passes a body on as it arrives; a [`BodyFramer`] looks
//! at the bytes on their way (chunk sizes, chunk ends, trailers) and says how many of
//! them still belong to the body, so the next message's head is never relayed as
//! body. Nothing is buffered or rewritten.

use super::HttpError;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: chunks, the last of size 0, then trailers and a
    /// blank line.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Longest chunk-size line (size, extensions, CRLF) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Follows one body through the bytes that carry it.
#[derive(Debug, Clone)]
pub struct BodyFramer {
    kind: BodyKind,
}

impl BodyFramer {
    /// A framer at the start of a body of `kind`.
    pub fn new(kind: BodyKind) -> BodyFramer {
        todo!()
    }

    /// Looks at `data`, the next bytes of the stream, and returns how many of them
    /// belong to the body (all, or those up to its end). Chunk framing is checked as it
    /// passes: a malformed size line, chunk end or trailer is [`HttpError::BadChunk`].
    /// State carries over between calls: a size line may arrive one byte at a time.
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        todo!()
    }

    /// True once the whole body (for chunked, the last chunk, trailers and the final
    /// blank line) went by. Always true for [`BodyKind::None`]; never for
    /// [`BodyKind::UntilClose`].
    pub fn is_done(&self) -> bool {
        todo!()
    }

    /// The kind this framer follows.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// Payload bytes seen so far (chunk framing not counted).
    pub fn payload_bytes(&self) -> u64 {
        todo!()
    }
}
