//! The TLS side of an https probe: a client [`TlsSession`] over the probe's TCP
//! connection. The ClientHello leaves once the TCP handshake completes; the request is
//! encrypted once the TLS handshake finished; the decrypted response is searched for
//! the receive string (an s3 monitor with TLS: checked for an HTTP status line). TLS errors become probe failures by reason: a refused
//! certificate is [`ProbeFailure::Certificate`], the profile's handshake timeout is
//! [`ProbeFailure::Timeout`], anything else (an alert from the member, nothing in
//! common, a truncated handshake) is [`ProbeFailure::Handshake`].

use std::net::IpAddr;

use super::answer::{judge, Expect};
use super::{Phase, Probe, ProbeError, ProbeFailure, MAX_RESPONSE};
use crate::tcp::{ConnHandle, TcpStack};
use crate::tls::{TlsClientConfig, TlsError, TlsFailure, TlsSession};
use crate::Instant;

/// Starts the TLS handshake on a probe whose TCP handshake just completed; returns the
/// TLS handshake's deadline.
pub(super) fn start(
    p: &mut Probe,
    cfg: &TlsClientConfig,
    server: IpAddr,
    now: Instant,
    tcp: &mut TcpStack,
    h: ConnHandle,
) -> Result<Option<Instant>, ProbeError> {
    let mut s = TlsSession::client(cfg, server, now).map_err(|e| failure(&e))?;
    flush(&mut s, tcp, h);
    let deadline = s.poll_timeout();
    p.phase = Phase::TlsHandshake;
    p.tls = Some(Box::new(s));
    Ok(deadline)
}

/// Takes what the member sent (`ended`: its direction closed); returns the probe's
/// result once there is one.
pub(super) fn on_input(
    p: &mut Probe,
    tcp: &mut TcpStack,
    h: ConnHandle,
    send: &[u8],
    expect: Expect<'_>,
    ended: bool,
) -> Option<Result<(), ProbeError>> {
    let Probe {
        tls,
        response,
        phase,
        sent,
        ..
    } = p;
    let Some(s) = tls.as_mut() else {
        return Some(Err(ProbeError::new(
            ProbeFailure::Handshake,
            "data before the TLS handshake started",
        )));
    };
    let mut buf = [0u8; 4096];
    while let Ok(n) = tcp.read(h, &mut buf) {
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            match s.feed_ciphertext(&buf[off..n]) {
                Ok(k) => {
                    off += k;
                    keep(response, s.plaintext());
                    let all = s.plaintext().len();
                    s.consume_plaintext(all);
                    if k == 0 {
                        break;
                    }
                }
                Err(e) => return Some(Err(failure(&e))),
            }
        }
    }
    if !s.is_handshaking() {
        *phase = super::Phase::Response;
        if *sent < send.len() {
            match s.write_plaintext(&send[*sent..]) {
                Ok(k) => *sent += k,
                Err(e) => return Some(Err(failure(&e))),
            }
        }
    }
    flush(s, tcp, h);
    if let Some(verdict) = judge(response, expect, false) {
        return Some(verdict);
    }
    if ended || s.peer_closed() || response.len() >= MAX_RESPONSE {
        if ended {
            if let Err(e) = s.end_of_input() {
                return Some(Err(failure(&e)));
            }
        }
        return judge(response, expect, true);
    }
    None
}

/// Moves the records the session holds into the connection's send buffer (the rest
/// goes on `Writable`).
pub(super) fn flush(s: &mut TlsSession, tcp: &mut TcpStack, h: ConnHandle) {
    while s.wants_write() {
        match tcp.write(h, s.pending_ciphertext()) {
            Ok(n) if n > 0 => s.consume_ciphertext(n),
            Ok(_) => {
                let _ = tcp.arm_writable(h, 0);
                break;
            }
            Err(_) => break,
        }
    }
}

/// Keeps up to [`MAX_RESPONSE`] bytes of the response.
pub(super) fn keep(response: &mut Vec<u8>, data: &[u8]) {
    let room = MAX_RESPONSE.saturating_sub(response.len());
    response.extend_from_slice(&data[..data.len().min(room)]);
}

/// A TLS error as a probe failure (its words name the reason and the alerts, never key
/// material).
fn failure(e: &TlsError) -> ProbeError {
    let reason = match e.reason {
        TlsFailure::PeerCertificate => ProbeFailure::Certificate,
        TlsFailure::HandshakeTimeout => ProbeFailure::Timeout,
        _ => ProbeFailure::Handshake,
    };
    ProbeError::new(reason, e.to_string())
}
