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
///
/// Constant memory, no allocation: a `Length` body counts down, a chunked body is a
/// state machine fed byte by byte (chunk data is skipped in bulk). Chunk size lines
/// are strict: one to 16 hex digits, optional whitespace, optional `;` extensions,
/// CRLF (a bare LF or CR is [`HttpError::BadChunk`]); the whole line (CRLF included)
/// at most [`MAX_CHUNK_LINE`] bytes. Trailer lines must look like `name: value`
/// (a token name directly followed by its colon, no folding) and end in CRLF; the
/// trailer section (its final CRLF included) at most [`MAX_TRAILERS`] bytes. An error
/// is final: every later [`BodyFramer::advance`] returns it again.
#[derive(Debug, Clone)]
pub struct BodyFramer {
    kind: BodyKind,
    /// Content bytes seen.
    payload: u64,
    /// `Length`: bytes still to come; `Chunked`: bytes of the current chunk still to
    /// come, or the size being read.
    remaining: u64,
    /// Where a chunked body is.
    state: Chunk,
    /// Bytes of the current size line, or of the trailer section so far.
    line: usize,
    /// Hex digits of the current chunk size.
    digits: u8,
}

/// The states of a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before the first hex digit of a size.
    SizeStart,
    /// In the hex digits of a size.
    Size,
    /// Whitespace after the size.
    SizeWs,
    /// In a chunk extension (after `;`).
    Ext,
    /// The CR of a size line went by: LF next.
    SizeLf,
    /// In chunk data (`remaining` bytes to come).
    Data,
    /// After the data: CR next.
    DataCr,
    /// After the data and its CR: LF next.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer field's name.
    TrailerName,
    /// In a trailer field's value.
    TrailerValue,
    /// The CR of a trailer line went by: LF next.
    TrailerLf,
    /// The CR of the final empty line went by: LF next.
    FinalLf,
    /// The whole body went by.
    Done,
    /// The framing was wrong.
    Failed,
}

impl BodyFramer {
    /// A framer at the start of a body of `kind`.
    pub fn new(kind: BodyKind) -> BodyFramer {
        BodyFramer {
            kind,
            payload: 0,
            remaining: match kind {
                BodyKind::Length(n) => n,
                _ => 0,
            },
            state: Chunk::SizeStart,
            line: 0,
            digits: 0,
        }
    }

    /// Looks at `data`, the next bytes of the stream, and returns how many of them
    /// belong to the body (all, or those up to its end). Chunk framing is checked as it
    /// passes: a malformed size line, chunk end or trailer is [`HttpError::BadChunk`].
    /// State carries over between calls: a size line may arrive one byte at a time.
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        match self.kind {
            BodyKind::None => Ok(0),
            BodyKind::UntilClose => {
                self.payload += data.len() as u64;
                Ok(data.len())
            }
            BodyKind::Length(_) => {
                let n = self.remaining.min(data.len() as u64);
                self.remaining -= n;
                self.payload += n;
                Ok(n as usize)
            }
            BodyKind::Chunked => self.advance_chunked(data),
        }
    }

    /// True once the whole body (for chunked, the last chunk, trailers and the final
    /// blank line) went by. Always true for [`BodyKind::None`]; never for
    /// [`BodyKind::UntilClose`].
    pub fn is_done(&self) -> bool {
        match self.kind {
            BodyKind::None => true,
            BodyKind::Length(_) => self.remaining == 0,
            BodyKind::Chunked => self.state == Chunk::Done,
            BodyKind::UntilClose => false,
        }
    }

    /// The kind this framer follows.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// Payload bytes seen so far (chunk framing not counted).
    pub fn payload_bytes(&self) -> u64 {
        self.payload
    }

    /// The chunked state machine over `data`.
    fn advance_chunked(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                Chunk::Done => break,
                Chunk::Failed => return Err(HttpError::BadChunk),
                Chunk::Data => {
                    let n = self.remaining.min((data.len() - pos) as u64);
                    self.remaining -= n;
                    self.payload += n;
                    pos += n as usize;
                    if self.remaining == 0 {
                        self.state = Chunk::DataCr;
                    }
                }
                _ => {
                    let b = data[pos];
                    pos += 1;
                    if let Err(e) = self.step(b) {
                        self.state = Chunk::Failed;
                        return Err(e);
                    }
                }
            }
        }
        if self.state == Chunk::Failed {
            return Err(HttpError::BadChunk);
        }
        Ok(pos)
    }

    /// One framing byte (anything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        const BAD: Result<(), HttpError> = Err(HttpError::BadChunk);
        match self.state {
            Chunk::SizeStart | Chunk::Size | Chunk::SizeWs | Chunk::Ext | Chunk::SizeLf => {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return BAD;
                }
            }
            Chunk::TrailerStart
            | Chunk::TrailerName
            | Chunk::TrailerValue
            | Chunk::TrailerLf
            | Chunk::FinalLf => {
                self.line += 1;
                if self.line > MAX_TRAILERS {
                    return BAD;
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (Chunk::SizeStart | Chunk::Size, _) if hex_digit(b).is_some() => {
                if self.digits == 16 {
                    return BAD;
                }
                self.digits += 1;
                self.remaining = self.remaining << 4 | u64::from(hex_digit(b).unwrap_or(0));
                Chunk::Size
            }
            (Chunk::Size | Chunk::SizeWs, b' ' | b'\t') => Chunk::SizeWs,
            (Chunk::Size | Chunk::SizeWs, b';') => Chunk::Ext,
            (Chunk::Size | Chunk::SizeWs | Chunk::Ext, b'\r') => Chunk::SizeLf,
            (Chunk::Ext, _) if b == b'\t' || !b.is_ascii_control() => Chunk::Ext,
            (Chunk::SizeLf, b'\n') => {
                self.line = 0;
                self.digits = 0;
                if self.remaining == 0 {
                    Chunk::TrailerStart
                } else {
                    Chunk::Data
                }
            }
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::SizeStart,
            (Chunk::TrailerStart, b'\r') => Chunk::FinalLf,
            (Chunk::TrailerStart | Chunk::TrailerName, _) if is_tchar(b) => Chunk::TrailerName,
            (Chunk::TrailerName, b':') => Chunk::TrailerValue,
            (Chunk::TrailerValue, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerValue, _) if b == b'\t' || !b.is_ascii_control() => Chunk::TrailerValue,
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::FinalLf, b'\n') => Chunk::Done,
            _ => return BAD,
        };
        Ok(())
    }
}

/// The value of a hex digit.
pub(super) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A token character of a field name (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
