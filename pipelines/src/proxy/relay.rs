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
    while tls.wants_write() {
        match tcp.write(h, tls.pending_ciphertext()) {
            Ok(0) | Err(_) => return false,
            Ok(n) => tls.consume_ciphertext(n),
        }
    }
    true
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
                flush(tcp, dst, d);
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
                flush(tcp, dst, d);
                n
            }
        };
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
