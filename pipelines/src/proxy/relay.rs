//! Moving a flow's bytes from one side to the other, each side plain TCP or TLS over
//! TCP: ciphertext taken from a connection's receive buffer into its TLS session,
//! plaintext carried from one side's source (the receive buffer, or the session's
//! decrypted bytes) into the other side's sink (the send buffer, or the session, whose
//! records are then written to the send buffer), and the end of each stream passed on
//! (a TCP FIN, or `close_notify` and then the FIN).
//!
//! Backpressure is the same whatever the sides: a sink holding `high` bytes not yet
//! sent (records waiting in its session included) stops the carrying until it drains to
//! `low`; a session holding its limit of plaintext takes no more ciphertext, so the
//! source's receive buffer fills and its peer's window closes.
//!
//! Errors of a TLS session are not returned: the session keeps them
//! ([`TlsSession::error`]), and the flow looks once the relay is done.

use crate::http::{BodyFramer, HttpError};
use crate::tcp::{ConnHandle, TcpError, TcpStack};
use crate::time::Instant;
use crate::tls::TlsSession;

/// One direction's relay state.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Direction {
    /// Plaintext bytes moved.
    pub bytes: u64,
    /// The end of the stream was passed on (the FIN, after `close_notify` for TLS).
    pub fin_sent: bool,
}

/// One side of a flow: its connection and, for TLS, its session.
pub(super) struct Side<'a> {
    /// The TCP connection.
    pub conn: ConnHandle,
    /// The TLS session over it, if the side speaks TLS.
    pub tls: Option<&'a mut TlsSession>,
}

/// Feeds the ciphertext `h` received into `tls` as far as the session takes it (it
/// stops above its plaintext limit, or at an error it keeps). Returns true when any
/// was taken. With nothing received, `h`'s `Readable` is armed.
pub(super) fn ingest(tcp: &mut TcpStack, h: ConnHandle, tls: &mut TlsSession) -> bool {
    let mut any = false;
    loop {
        let Ok((a, _)) = tcp.recv_slices(h) else {
            return any;
        };
        if a.is_empty() {
            // Arms `Readable` (or says end of stream; either way nothing to do).
            let _ = tcp.read(h, &mut []);
            return any;
        }
        let len = a.len();
        let n = tls.feed_ciphertext(a).unwrap_or(0);
        if n > 0 {
            let _ = tcp.consume(h, n);
            any = true;
        }
        if n < len {
            return any;
        }
    }
}

/// Writes the records `tls` has ready into `h`'s send buffer; true when none is left.
pub(super) fn flush(tcp: &mut TcpStack, h: ConnHandle, tls: &mut TlsSession) -> bool {
    write_records(tcp, h, tls);
    !tls.wants_write()
}

/// Writes the records `tls` has ready into `h`'s send buffer as far as it has room;
/// returns the bytes written. (Short: `h`'s `Writable` is armed by the short write.)
fn write_records(tcp: &mut TcpStack, h: ConnHandle, tls: &mut TlsSession) -> usize {
    let mut written = 0;
    while tls.wants_write() {
        match tcp.write(h, tls.pending_ciphertext()) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tls.consume_ciphertext(n);
                written += n;
            }
        }
    }
    written
}

/// Carries plaintext from `from` to `to` while `to` holds less than `high` bytes not
/// yet sent; above it, waits for `to` to drain to `low`. Passes the end of the stream
/// on after the last byte. Returns the plaintext bytes moved.
pub(super) fn carry(
    tcp: &mut TcpStack,
    now: Instant,
    from: Side<'_>,
    to: Side<'_>,
    (high, low): (usize, usize),
    dir: &mut Direction,
) -> u64 {
    let Side {
        conn: src,
        tls: mut src_tls,
    } = from;
    let Side {
        conn: dst,
        tls: mut dst_tls,
    } = to;
    let mut moved = 0u64;
    loop {
        let pending = dst_tls.as_ref().map_or(0, |t| t.pending_ciphertext().len());
        let queued = tcp.send_unsent(dst) + pending;
        if queued >= high {
            let _ = tcp.arm_writable(dst, low);
            break;
        }
        let room = high - queued;
        // Records written out free the session's output for more plaintext: progress
        // even when no plaintext moved (else nothing would wake the flow again).
        let mut flushed = 0;
        let n = match (src_tls.as_deref_mut(), dst_tls.as_deref_mut()) {
            (None, None) => match tcp.relay(src, dst, room) {
                Ok(n) => n,
                // `dst` no longer sends (its peer reset it, or the FIN went): what
                // `src` still sends cannot be delivered; it stays unread, so its window
                // closes; the flow ends with the other side's events.
                Err(TcpError::NotWritable) => break,
                Err(_) => 0,
            },
            (Some(s), None) => {
                if s.plaintext().is_empty() && !s.is_handshaking() {
                    ingest(tcp, src, s);
                }
                let p = s.plaintext();
                if p.is_empty() {
                    0
                } else {
                    match tcp.write(dst, &p[..p.len().min(room)]) {
                        Ok(n) => {
                            s.consume_plaintext(n);
                            n
                        }
                        Err(_) => break,
                    }
                }
            }
            (None, Some(d)) => {
                let n = match tcp.recv_slices(src) {
                    Ok((a, _)) if !a.is_empty() => {
                        d.write_plaintext(&a[..a.len().min(room)]).unwrap_or(0)
                    }
                    Ok(_) => {
                        let _ = tcp.read(src, &mut []);
                        0
                    }
                    Err(_) => 0,
                };
                if n > 0 {
                    let _ = tcp.consume(src, n);
                }
                flushed = write_records(tcp, dst, d);
                n
            }
            (Some(s), Some(d)) => {
                if s.plaintext().is_empty() && !s.is_handshaking() {
                    ingest(tcp, src, s);
                }
                let p = s.plaintext();
                let n = if p.is_empty() {
                    0
                } else {
                    d.write_plaintext(&p[..p.len().min(room)]).unwrap_or(0)
                };
                s.consume_plaintext(n);
                flushed = write_records(tcp, dst, d);
                n
            }
        };
        if n == 0 && flushed > 0 {
            continue;
        }
        if n == 0 {
            if !dir.fin_sent && ended(tcp, src, src_tls.as_deref_mut()) {
                dir.fin_sent = pass_end(tcp, now, dst, dst_tls.as_deref_mut());
            }
            break;
        }
        moved += n as u64;
    }
    dir.bytes += moved;
    moved
}

/// True when the stream from `h` (through `tls` if any) ended and every byte of it
/// was taken: the TCP FIN after the last byte, or the session's `close_notify` (a FIN
/// without it between records also ends the stream; inside a record or a handshake it
/// is a truncation the session keeps as its error).
fn ended(tcp: &TcpStack, h: ConnHandle, tls: Option<&mut TlsSession>) -> bool {
    match tls {
        None => tcp.read_closed(h),
        Some(t) => {
            t.plaintext().is_empty()
                && (t.peer_closed() || (tcp.read_closed(h) && t.end_of_input().is_ok()))
        }
    }
}

/// Passes the end of a stream on to `h`: its FIN, after `close_notify` when it speaks
/// TLS (not before its handshake finished: then later). True once the FIN is queued.
fn pass_end(tcp: &mut TcpStack, now: Instant, h: ConnHandle, tls: Option<&mut TlsSession>) -> bool {
    if let Some(t) = tls {
        if t.is_handshaking() && t.error().is_none() {
            return false;
        }
        let _ = t.close();
        if !flush(tcp, h, t) {
            let _ = tcp.arm_writable(h, 0);
            return false;
        }
    }
    let _ = tcp.shutdown(now, h);
    true
}

/// How reading a message head went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadRead {
    /// The head is complete in the buffer (it ends with the blank line).
    Complete,
    /// More bytes are needed.
    Partial,
    /// The buffer holds `max` bytes and no end of head.
    TooLarge,
    /// The stream ended (the peer's FIN or `close_notify`) before a complete head.
    Ended,
}

/// Takes the bytes of a message head from `src` into `buf`, up to and including the
/// blank line that ends it, and not one byte more (the body stays in `src`); at most
/// `max` bytes in `buf`. Empty lines before a head (RFC 9112, 2.2) are skipped.
pub(super) fn read_head(
    tcp: &mut TcpStack,
    src: &mut Side<'_>,
    buf: &mut Vec<u8>,
    max: usize,
) -> HeadRead {
    loop {
        let view: &[u8] = match src.tls.as_deref_mut() {
            Some(t) => {
                if t.plaintext().is_empty() && !t.is_handshaking() {
                    ingest(tcp, src.conn, t);
                }
                src.tls.as_deref().map_or(&[][..], |t| t.plaintext())
            }
            None => tcp.recv_slices(src.conn).map_or(&[][..], |(a, _)| a),
        };
        if view.is_empty() {
            if stream_ended(tcp, src) {
                return HeadRead::Ended;
            }
            if src.tls.is_none() {
                // Arms `Readable`.
                let _ = tcp.read(src.conn, &mut []);
            }
            return HeadRead::Partial;
        }
        // Empty lines before a head are skipped.
        let skip = if buf.is_empty() {
            view.iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count()
        } else {
            0
        };
        let data = &view[skip..];
        let data = &data[..data.len().min(max - buf.len())];
        let (used, complete) = match end_of_head(buf, data) {
            Some(end) => (end, true),
            None => (data.len(), false),
        };
        buf.extend_from_slice(&data[..used]);
        let taken = skip + used;
        consume(tcp, src, taken);
        if complete {
            return HeadRead::Complete;
        }
        if buf.len() >= max {
            return HeadRead::TooLarge;
        }
    }
}

/// Where the blank line ending a head is in `data`, the bytes that follow `head` (a
/// head's first bytes, which may end in part of the `CRLF CRLF`): the count of `data`'s
/// bytes up to and including it.
fn end_of_head(head: &[u8], data: &[u8]) -> Option<usize> {
    const END: &[u8; 4] = b"\r\n\r\n";
    // Across the seam: the last three bytes of `head` and the first three of `data`.
    let tail = &head[head.len().saturating_sub(3)..];
    for k in 1..=3.min(data.len()) {
        let need = 4 - k;
        if tail.len() >= need && tail.ends_with(&END[..need]) && data[..k] == END[need..] {
            return Some(k);
        }
    }
    let mut from = 0;
    while let Some(p) = data[from..].iter().position(|&b| b == b'\n') {
        let at = from + p;
        if at >= 3 && &data[at - 3..=at] == END {
            return Some(at + 1);
        }
        from = at + 1;
    }
    None
}

/// Removes `n` bytes seen at the front of `src`.
fn consume(tcp: &mut TcpStack, src: &mut Side<'_>, n: usize) {
    match src.tls.as_deref_mut() {
        Some(t) => t.consume_plaintext(n),
        None => {
            let _ = tcp.consume(src.conn, n);
        }
    }
}

/// True when the stream from `src` ended and every byte of it was taken.
pub(super) fn stream_ended(tcp: &TcpStack, src: &mut Side<'_>) -> bool {
    ended(tcp, src.conn, src.tls.as_deref_mut())
}

/// Writes as much of `data` to `dst` as it takes now (records flushed toward a TLS
/// peer); returns the count.
pub(super) fn write_some(tcp: &mut TcpStack, dst: &mut Side<'_>, data: &[u8]) -> usize {
    match dst.tls.as_deref_mut() {
        Some(t) => {
            let n = t.write_plaintext(data).unwrap_or(0);
            write_records(tcp, dst.conn, t);
            n
        }
        None => tcp.write(dst.conn, data).unwrap_or(0),
    }
}

/// Bytes queued toward `dst` and not sent yet (records waiting in its session
/// included): what backpressure looks at.
pub(super) fn queued(tcp: &TcpStack, dst: &Side<'_>) -> usize {
    tcp.send_unsent(dst.conn) + dst.tls.as_ref().map_or(0, |t| t.pending_ciphertext().len())
}

/// Moves the bytes of one message body from `src` to `dst`: as many as `framer` says
/// still belong to it, while `dst` holds less than `high` bytes not sent (then its
/// `Writable` is armed at `low`). Each byte is looked at by the framer once, and only
/// bytes written are consumed. Returns the count moved.
pub(super) fn move_body(
    tcp: &mut TcpStack,
    src: &mut Side<'_>,
    dst: &mut Side<'_>,
    (high, low): (usize, usize),
    framer: &mut BodyFramer,
) -> Result<u64, HttpError> {
    let mut moved = 0u64;
    while !framer.is_done() {
        let q = queued(tcp, dst);
        if q >= high {
            let _ = tcp.arm_writable(dst.conn, low);
            break;
        }
        let mut room = high - q;
        if dst.tls.is_none() {
            room = room.min(tcp.send_capacity(dst.conn));
        }
        if room == 0 {
            // The send buffer is full of bytes in flight: wait for their ACKs.
            let _ = tcp.arm_writable(dst.conn, low);
            break;
        }
        if let Some(t) = dst.tls.as_deref_mut() {
            // Records waiting to go out first make room in the session.
            write_records(tcp, dst.conn, t);
        }
        // The framer looks ahead on a copy; the bytes actually written are then
        // followed by the framer itself (all of them: the copy is taken as it is).
        let mut ahead = framer.clone();
        let n = match (src.tls.as_deref_mut(), dst.tls.as_deref_mut()) {
            (None, None) => {
                let allowed = match tcp.recv_slices(src.conn) {
                    Ok((a, _)) if !a.is_empty() => ahead.advance(&a[..a.len().min(room)])?,
                    _ => {
                        let _ = tcp.read(src.conn, &mut []);
                        0
                    }
                };
                if allowed == 0 {
                    break;
                }
                let n = tcp.relay(src.conn, dst.conn, allowed).unwrap_or(0);
                if n != allowed {
                    // The send buffer took less than it said it had room for (its
                    // memory limit): the framer cannot follow bytes it no longer sees.
                    return Err(HttpError::BadChunk);
                }
                *framer = ahead;
                n
            }
            (Some(s), None) => {
                if s.plaintext().is_empty() && !s.is_handshaking() {
                    ingest(tcp, src.conn, s);
                }
                let p = s.plaintext();
                let allowed = ahead.advance(&p[..p.len().min(room)])?;
                let n = if allowed == 0 {
                    0
                } else {
                    tcp.write(dst.conn, &p[..allowed]).unwrap_or(0)
                };
                follow(framer, &ahead, p, allowed, n)?;
                s.consume_plaintext(n);
                n
            }
            (None, Some(d)) => {
                let n = match tcp.recv_slices(src.conn) {
                    Ok((a, _)) if !a.is_empty() => {
                        let allowed = ahead.advance(&a[..a.len().min(room)])?;
                        let n = d.write_plaintext(&a[..allowed]).unwrap_or(0);
                        follow(framer, &ahead, a, allowed, n)?;
                        n
                    }
                    _ => {
                        let _ = tcp.read(src.conn, &mut []);
                        0
                    }
                };
                if n > 0 {
                    let _ = tcp.consume(src.conn, n);
                }
                write_records(tcp, dst.conn, d);
                n
            }
            (Some(s), Some(d)) => {
                if s.plaintext().is_empty() && !s.is_handshaking() {
                    ingest(tcp, src.conn, s);
                }
                let p = s.plaintext();
                let allowed = ahead.advance(&p[..p.len().min(room)])?;
                let n = d.write_plaintext(&p[..allowed]).unwrap_or(0);
                follow(framer, &ahead, p, allowed, n)?;
                s.consume_plaintext(n);
                write_records(tcp, dst.conn, d);
                n
            }
        };
        if n == 0 {
            break;
        }
        moved += n as u64;
    }
    Ok(moved)
}

/// Brings `framer` past the `n` bytes of `seen` that were written: the look-ahead
/// copy `ahead` when all `allowed` went, else the framer follows the `n` itself.
fn follow(
    framer: &mut BodyFramer,
    ahead: &BodyFramer,
    seen: &[u8],
    allowed: usize,
    n: usize,
) -> Result<(), HttpError> {
    if n == allowed {
        *framer = ahead.clone();
        Ok(())
    } else {
        framer.advance(&seen[..n]).map(|_| ())
    }
}

/// Passes the end of the stream on to `dst` (its FIN, after `close_notify` toward a
/// TLS peer); true once the FIN is queued.
pub(super) fn finish(tcp: &mut TcpStack, now: Instant, dst: &mut Side<'_>) -> bool {
    pass_end(tcp, now, dst.conn, dst.tls.as_deref_mut())
}

#[cfg(test)]
mod tests {
    use super::end_of_head;

    #[test]
    fn the_end_of_a_head_is_found_at_every_split() {
        let msg = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        let end = msg.len() - 4;
        for cut in 0..=msg.len() {
            let (head, data) = msg.split_at(cut);
            let got = end_of_head(head, data);
            if cut < end {
                assert_eq!(got, Some(end - cut), "cut {cut}");
            } else {
                // The end was in `head` already: not looked for again.
                assert!(got.is_none() || cut == end, "cut {cut}: {got:?}");
            }
        }
        assert_eq!(end_of_head(b"", b"GET / HTTP/1.0\r\n\r\n"), Some(18));
        assert_eq!(
            end_of_head(b"GET / HTTP/1.1\r\nA: b\r\n", b"B: c\r\n"),
            None
        );
        assert_eq!(
            end_of_head(b"", b"\n\r\n"),
            None,
            "no CR before the first LF"
        );
    }
}
