//! One TLS connection over rustls's unbuffered API: ciphertext in, plaintext out,
//! plaintext in, ciphertext out, with fixed staging buffers.
//!
//! Call order (any number of times, in any order; each call runs the handshake as far
//! as the bytes allow):
//!
//! 1. [`TlsSession::feed_ciphertext`] with the bytes received (for example each slice
//!    of `TcpStack::recv_slices`, then `consume` what it accepted). It takes less than
//!    offered when the plaintext not yet taken is above [`PLAINTEXT_HIGH`]: take that
//!    first (this is the backpressure: the TCP window closes).
//! 2. [`TlsSession::plaintext`] / [`TlsSession::consume_plaintext`] (or
//!    [`TlsSession::take_plaintext`]) for what the peer sent.
//! 3. [`TlsSession::write_plaintext`] to encrypt application data (accepted only once
//!    the handshake is done, and only as much as the output staging holds).
//! 4. [`TlsSession::pending_ciphertext`] / [`TlsSession::consume_ciphertext`] (or
//!    [`TlsSession::ciphertext_to_send`]) for the records to send (handshake, alerts,
//!    tickets, application data), for example into `TcpStack::send_reserve`.
//! 5. [`TlsSession::poll_timeout`] / [`TlsSession::handle_timeout`] for the handshake
//!    deadline; [`TlsSession::end_of_input`] when the TCP peer closed;
//!    [`TlsSession::close`] to send `close_notify`.
//!
//! After an error every call returns it again; the alert rustls sent stays in the
//! output until taken. Staging per connection: the input holds a whole record
//! ([`MAX_WIRE_RECORD`] bytes) and grows only while a handshake message spans records;
//! the plaintext holds at most [`PLAINTEXT_HIGH`] plus one input's worth; the output
//! holds a whole record. rustls 0.23 still copies each record's plaintext into a
//! buffer of its own (allocated per record): in-place decryption only exists in its
//! next API, which this module is built to move to.

use std::time::Duration;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncryptError, InsufficientSizeError, UnbufferedStatus};
use rustls::{AlertDescription, CommonState, HandshakeKind, HandshakeType, ProtocolVersion};

use super::config::{take_hello, Pick, TlsClientConfig, TlsServerConfig, TlsVersion};
use super::{x509, TlsAlert, TlsError, TlsFailure};
use crate::time::Instant;

/// The largest record on the wire rustls accepts: 16,384 bytes of plaintext, 2,048 of
/// expansion, a 5-byte header.
pub const MAX_WIRE_RECORD: usize = 16_384 + 2_048 + 5;
/// The largest plaintext one record carries.
pub const MAX_RECORD_PLAINTEXT: usize = 16_384;
/// Plaintext held for the caller above which [`TlsSession::feed_ciphertext`] takes no
/// more input.
pub const PLAINTEXT_HIGH: usize = 16_384;
/// The most the input staging grows to (a 64 KiB handshake message plus a record).
const MAX_INPUT: usize = 65_536 + 4 + MAX_WIRE_RECORD;
/// Output staging for application records.
const OUTPUT: usize = MAX_WIRE_RECORD;
/// Smallest room worth encrypting into: a header, a tag, a content type, one byte.
const MIN_RECORD_ROOM: usize = 5 + 8 + 16 + 1 + 1;
/// Output room below which a record is only made for the last bytes of a write.
const SMALL_ROOM: usize = 4096;

enum Conn {
    Server(Box<UnbufferedServerConnection>),
    Client(Box<UnbufferedClientConnection>),
}

impl Conn {
    fn common(&self) -> &CommonState {
        match self {
            Conn::Server(c) => c,
            Conn::Client(c) => c,
        }
    }
}

/// What the caller wants done once application data may be written.
enum Action<'a> {
    None,
    Encrypt(&'a [u8]),
    Close,
}

/// What one state told the drive loop.
enum Step {
    /// Ask rustls again.
    Again,
    /// Needs more input.
    Blocked,
    /// Open for application data (and the requested action done).
    Open,
    /// The peer sent close_notify.
    PeerClosed,
    /// Both sides closed.
    Closed,
}

/// Plaintext and ciphertext staging, apart from the input that rustls borrows.
struct Io {
    /// Decrypted bytes not yet taken: `pt[pt_head..]`.
    pt: Vec<u8>,
    pt_head: usize,
    /// Records to send: `tx[tx_head..tx_tail]`.
    tx: Box<[u8]>,
    tx_head: usize,
    tx_tail: usize,
    /// Application plaintext bytes encrypted, decrypted.
    encrypted: u64,
    decrypted: u64,
}

impl Io {
    fn pt_len(&self) -> usize {
        self.pt.len() - self.pt_head
    }

    /// Free output room at the end, compacting first when that helps.
    fn tx_room(&mut self) -> &mut [u8] {
        if self.tx_head == self.tx_tail {
            self.tx_head = 0;
            self.tx_tail = 0;
        } else if self.tx_head > 0 && self.tx.len() - self.tx_tail < MAX_WIRE_RECORD {
            self.tx.copy_within(self.tx_head..self.tx_tail, 0);
            self.tx_tail -= self.tx_head;
            self.tx_head = 0;
        }
        &mut self.tx[self.tx_tail..]
    }

    /// Makes room for `need` more output bytes (handshake records must never be
    /// dropped: rustls has handed them over).
    fn tx_grow(&mut self, need: usize) {
        let used = self.tx_tail - self.tx_head;
        let mut bigger = vec![0u8; (used + need).max(self.tx.len() * 2)].into_boxed_slice();
        bigger[..used].copy_from_slice(&self.tx[self.tx_head..self.tx_tail]);
        self.tx = bigger;
        self.tx_head = 0;
        self.tx_tail = used;
    }

    fn push_plaintext(&mut self, p: &[u8]) {
        if self.pt_head == self.pt.len() {
            self.pt.clear();
            self.pt_head = 0;
        } else if self.pt_head > 0 && self.pt.capacity() - self.pt.len() < p.len() {
            self.pt.drain(..self.pt_head);
            self.pt_head = 0;
        }
        self.pt.extend_from_slice(p);
        self.decrypted += p.len() as u64;
    }
}

/// Handles one state of rustls's connection; generic over client and server.
fn step<Data>(
    state: ConnectionState<'_, '_, Data>,
    io: &mut Io,
    act: &mut Action<'_>,
    accepted: &mut usize,
) -> Result<Step, rustls::Error> {
    match state {
        ConnectionState::ReadTraffic(mut r) => {
            while let Some(rec) = r.next_record() {
                io.push_plaintext(rec?.payload);
            }
            Ok(Step::Again)
        }
        // Early data is off (max_early_data_size 0): rustls refuses it before this.
        ConnectionState::ReadEarlyData(_) => Err(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::TooMuchEarlyDataReceived,
        )),
        ConnectionState::EncodeTlsData(mut e) => loop {
            match e.encode(io.tx_room()) {
                Ok(n) => {
                    io.tx_tail += n;
                    break Ok(Step::Again);
                }
                Err(rustls::unbuffered::EncodeError::InsufficientSize(InsufficientSizeError {
                    required_size,
                })) => io.tx_grow(required_size),
                Err(rustls::unbuffered::EncodeError::AlreadyEncoded) => break Ok(Step::Again),
            }
        },
        ConnectionState::TransmitTlsData(t) => {
            // The records stay in `tx` until the caller takes them; never sent twice.
            t.done();
            Ok(Step::Again)
        }
        ConnectionState::BlockedHandshake => Ok(Step::Blocked),
        ConnectionState::PeerClosed => Ok(Step::PeerClosed),
        ConnectionState::Closed => Ok(Step::Closed),
        ConnectionState::WriteTraffic(mut w) => {
            match std::mem::replace(act, Action::None) {
                Action::None => {}
                Action::Close => loop {
                    match w.queue_close_notify(io.tx_room()) {
                        Ok(n) => {
                            io.tx_tail += n;
                            break;
                        }
                        Err(EncryptError::InsufficientSize(s)) => io.tx_grow(s.required_size),
                        Err(EncryptError::EncryptExhausted) => {
                            return Err(rustls::Error::EncryptError)
                        }
                    }
                },
                Action::Encrypt(data) => {
                    let mut done = 0;
                    while done < data.len() {
                        let room = io.tx_room();
                        let left = data.len() - done;
                        // Small leftovers of the output make small records: wait for room
                        // unless the rest fits.
                        if room.len() < MIN_RECORD_ROOM
                            || (room.len() < SMALL_ROOM && left + 64 > room.len())
                        {
                            break;
                        }
                        let chunk = left.min(MAX_RECORD_PLAINTEXT);
                        let fit = match w.encrypt(&data[done..done + chunk], room) {
                            Ok(n) => {
                                io.tx_tail += n;
                                done += chunk;
                                continue;
                            }
                            Err(EncryptError::InsufficientSize(s)) => {
                                // One record: the overhead is what it needs beyond the data.
                                let overhead = s.required_size.saturating_sub(chunk);
                                room.len().saturating_sub(overhead)
                            }
                            Err(EncryptError::EncryptExhausted) => {
                                return Err(rustls::Error::EncryptError)
                            }
                        };
                        if fit == 0 {
                            break;
                        }
                        match w.encrypt(&data[done..done + fit], io.tx_room()) {
                            Ok(n) => {
                                io.tx_tail += n;
                                done += fit;
                            }
                            Err(_) => break,
                        }
                        break;
                    }
                    io.encrypted += done as u64;
                    *accepted += done;
                }
            }
            Ok(Step::Open)
        }
        _ => Ok(Step::Blocked),
    }
}

/// One TLS connection (see the module doc for the call order).
pub struct TlsSession {
    conn: Conn,
    /// Received records not yet processed: `rx[..rx_len]`.
    rx: Box<[u8]>,
    rx_len: usize,
    io: Io,
    error: Option<TlsError>,
    /// The handshake finished (and the edge not yet reported).
    open: bool,
    done_event: bool,
    peer_closed: bool,
    closed: bool,
    close_sent: bool,
    /// Bytes of input processed (discarded) so far.
    processed: u64,
    deadline: Option<Instant>,
    sni: Option<Box<str>>,
    cert: Option<usize>,
    hello_pick: Option<Pick>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.conn, Conn::Server(_)))
            .field("open", &self.open)
            .field("error", &self.error)
            .finish()
    }
}

impl TlsSession {
    /// A server-side session for a client that just connected at `now`.
    pub fn server(cfg: &TlsServerConfig, now: Instant) -> Result<TlsSession, TlsError> {
        let conn = UnbufferedServerConnection::new(cfg.rustls.clone()).map_err(|e| internal(&e))?;
        Ok(Self::with(
            Conn::Server(Box::new(conn)),
            now,
            cfg.handshake_timeout,
        ))
    }

    /// A client-side session toward `server` (the address verified against the
    /// certificate's IP names unless the configuration names a server): the
    /// ClientHello is ready in [`TlsSession::pending_ciphertext`].
    pub fn client(
        cfg: &TlsClientConfig,
        server: std::net::IpAddr,
        now: Instant,
    ) -> Result<TlsSession, TlsError> {
        let name = cfg
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(server.into()));
        let conn =
            UnbufferedClientConnection::new(cfg.rustls.clone(), name).map_err(|e| internal(&e))?;
        let mut s = Self::with(Conn::Client(Box::new(conn)), now, cfg.handshake_timeout);
        s.drive(Action::None)?;
        Ok(s)
    }

    fn with(conn: Conn, now: Instant, timeout: Duration) -> TlsSession {
        TlsSession {
            conn,
            rx: vec![0u8; MAX_WIRE_RECORD].into_boxed_slice(),
            rx_len: 0,
            io: Io {
                // Grows on the first application data (a connection that never
                // gets that far never holds it).
                pt: Vec::new(),
                pt_head: 0,
                tx: vec![0u8; OUTPUT].into_boxed_slice(),
                tx_head: 0,
                tx_tail: 0,
                encrypted: 0,
                decrypted: 0,
            },
            error: None,
            open: false,
            done_event: false,
            peer_closed: false,
            closed: false,
            close_sent: false,
            processed: 0,
            deadline: Some(now + timeout),
            sni: None,
            cert: None,
            hello_pick: None,
        }
    }

    // ---- inputs ----

    /// Takes received ciphertext and runs the protocol over it; returns the bytes
    /// taken (fewer than given when the plaintext held is above [`PLAINTEXT_HIGH`] or
    /// the connection is closed for input).
    pub fn feed_ciphertext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        self.check()?;
        if self.peer_closed || self.closed {
            // Nothing after close_notify counts: taken and dropped.
            return Ok(data.len());
        }
        let mut taken = 0;
        while taken < data.len() && !self.peer_closed && !self.closed {
            if self.io.pt_len() >= PLAINTEXT_HIGH {
                break;
            }
            if self.rx_len == self.rx.len() {
                // A whole record always fits; a full buffer holds the parts of a
                // handshake message spread over records.
                if self.rx.len() >= MAX_INPUT {
                    return Err(self.fail_with(
                        TlsFailure::HandshakeTooLarge,
                        None,
                        "a handshake message larger than 64 KiB",
                    ));
                }
                let mut bigger = vec![0u8; (self.rx.len() * 2).min(MAX_INPUT)].into_boxed_slice();
                bigger[..self.rx_len].copy_from_slice(&self.rx[..self.rx_len]);
                self.rx = bigger;
            }
            let n = (self.rx.len() - self.rx_len).min(data.len() - taken);
            self.rx[self.rx_len..self.rx_len + n].copy_from_slice(&data[taken..taken + n]);
            self.rx_len += n;
            taken += n;
            self.drive(Action::None)?;
        }
        Ok(taken)
    }

    /// The TCP peer closed its direction: an error when that cuts a record or the
    /// handshake short ([`TlsFailure::Truncated`]); fine after the peer's
    /// `close_notify`, or between records (reported by
    /// [`TlsSession::peer_closed`] staying false).
    pub fn end_of_input(&mut self) -> Result<(), TlsError> {
        self.check()?;
        if self.peer_closed {
            return Ok(());
        }
        if !self.open || self.rx_len > 0 {
            let what = if self.open {
                "the connection ended inside a record"
            } else {
                "the connection ended during the handshake"
            };
            return Err(self.fail_with(TlsFailure::Truncated, None, what));
        }
        Ok(())
    }

    /// Fails the handshake if its deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), TlsError> {
        self.check()?;
        if let Some(d) = self.deadline {
            if !self.open && now >= d {
                self.deadline = None;
                return Err(self.fail_with(
                    TlsFailure::HandshakeTimeout,
                    None,
                    "the handshake did not finish in time",
                ));
            }
        }
        Ok(())
    }

    // ---- application commands ----

    /// Encrypts application data into the output; returns the bytes accepted (0
    /// before the handshake finished, after [`TlsSession::close`], or while the output
    /// is full: take it first).
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        self.check()?;
        if !self.open || self.close_sent || data.is_empty() {
            return Ok(0);
        }
        self.drive(Action::Encrypt(data))
    }

    /// Queues `close_notify` (once the handshake finished; before, the caller just
    /// closes the connection).
    pub fn close(&mut self) -> Result<(), TlsError> {
        self.check()?;
        if self.open && !self.close_sent {
            self.close_sent = true;
            self.drive(Action::Close)?;
        }
        Ok(())
    }

    /// Takes the plaintext not yet taken up to `n` bytes.
    pub fn consume_plaintext(&mut self, n: usize) {
        self.io.pt_head += n.min(self.io.pt_len());
        if self.io.pt_head == self.io.pt.len() {
            self.io.pt.clear();
            self.io.pt_head = 0;
        }
    }

    /// Copies plaintext into `out` and takes it; returns the count.
    pub fn take_plaintext(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.io.pt_len());
        out[..n].copy_from_slice(&self.io.pt[self.io.pt_head..self.io.pt_head + n]);
        self.consume_plaintext(n);
        n
    }

    /// Removes `n` bytes of [`TlsSession::pending_ciphertext`] (sent).
    pub fn consume_ciphertext(&mut self, n: usize) {
        self.io.tx_head += n.min(self.io.tx_tail - self.io.tx_head);
    }

    /// Copies records to send into `out` and removes them; returns the count.
    pub fn ciphertext_to_send(&mut self, out: &mut [u8]) -> usize {
        let p = self.pending_ciphertext();
        let n = p.len().min(out.len());
        out[..n].copy_from_slice(&p[..n]);
        self.consume_ciphertext(n);
        n
    }

    // ---- outputs and getters ----

    /// Decrypted application data not yet taken.
    pub fn plaintext(&self) -> &[u8] {
        &self.io.pt[self.io.pt_head..]
    }

    /// Records to send (handshake, alerts, tickets, application data).
    pub fn pending_ciphertext(&self) -> &[u8] {
        &self.io.tx[self.io.tx_head..self.io.tx_tail]
    }

    /// True when records wait to be sent.
    pub fn wants_write(&self) -> bool {
        self.io.tx_tail > self.io.tx_head
    }

    /// The handshake deadline, while the handshake runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.open || self.error.is_some() {
            None
        } else {
            self.deadline
        }
    }

    /// True until the handshake finished.
    pub fn is_handshaking(&self) -> bool {
        !self.open
    }

    /// True once, right after the handshake finished (for the counters).
    pub fn take_handshake_done(&mut self) -> bool {
        std::mem::take(&mut self.done_event)
    }

    /// The error that ended the connection, if one did.
    pub fn error(&self) -> Option<&TlsError> {
        self.error.as_ref()
    }

    /// The peer sent `close_notify`: nothing more will be decrypted.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The negotiated version.
    pub fn version(&self) -> Option<TlsVersion> {
        match self.conn.common().protocol_version()? {
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::V1_3),
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::V1_2),
            _ => None,
        }
    }

    /// The negotiated suite's IANA name (for example `TLS13_AES_256_GCM_SHA384`).
    pub fn suite(&self) -> Option<&'static str> {
        self.conn
            .common()
            .negotiated_cipher_suite()?
            .suite()
            .as_str()
    }

    /// True when the handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.conn.common().handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The protocol agreed by ALPN.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.common().alpn_protocol()
    }

    /// The name the client asked for (server side).
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// The index in the profile of the certificate served (server side, full
    /// handshakes).
    pub fn certificate_index(&self) -> Option<usize> {
        self.cert
    }

    /// The peer's verified end-entity certificate, DER.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.conn
            .common()
            .peer_certificates()?
            .first()
            .map(|c| c.as_ref())
    }

    /// The peer certificate's subject, as `O=...,CN=...`.
    pub fn peer_subject(&self) -> Option<String> {
        x509::subject(self.peer_certificate()?)
    }

    /// Application bytes (encrypted, decrypted) so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.io.encrypted, self.io.decrypted)
    }

    /// Bytes of staging held (input, plaintext, output).
    pub fn buffer_bytes(&self) -> usize {
        self.rx.len() + self.io.pt.capacity() + self.io.tx.len()
    }

    // ---- the engine ----

    fn check(&self) -> Result<(), TlsError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Runs rustls until it needs more input or is open for writing, doing `act` then;
    /// returns the plaintext bytes accepted by an `Encrypt` action.
    fn drive(&mut self, mut act: Action<'_>) -> Result<usize, TlsError> {
        let mut accepted = 0;
        loop {
            let (discard, res) = match &mut self.conn {
                Conn::Server(c) => {
                    let UnbufferedStatus { discard, state } =
                        c.process_tls_records(&mut self.rx[..self.rx_len]);
                    let r = state.and_then(|s| step(s, &mut self.io, &mut act, &mut accepted));
                    (discard, r)
                }
                Conn::Client(c) => {
                    let UnbufferedStatus { discard, state } =
                        c.process_tls_records(&mut self.rx[..self.rx_len]);
                    let r = state.and_then(|s| step(s, &mut self.io, &mut act, &mut accepted));
                    (discard, r)
                }
            };
            self.discard(discard);
            if matches!(self.conn, Conn::Server(_)) && self.hello_pick.is_none() {
                if let Some(h) = take_hello() {
                    self.sni = h.sni;
                    self.hello_pick = Some(h.pick);
                    if let Pick::Chosen(i) = h.pick {
                        self.cert = Some(i);
                    }
                }
            }
            match res {
                Err(e) => return Err(self.fail(e)),
                Ok(Step::Again) => {}
                Ok(Step::PeerClosed) => self.peer_closed = true,
                Ok(Step::Blocked) => break,
                Ok(Step::Open) => break,
                Ok(Step::Closed) => {
                    self.closed = true;
                    break;
                }
            }
        }
        if !self.open && !self.conn.common().is_handshaking() {
            self.open = true;
            self.done_event = true;
            self.deadline = None;
        }
        Ok(accepted)
    }

    fn discard(&mut self, n: usize) {
        if n > 0 {
            self.rx.copy_within(n..self.rx_len, 0);
            self.rx_len -= n;
            self.processed += n as u64;
        }
    }

    /// Turns rustls's error into ours, flushing the alert rustls queued into the output.
    fn fail(&mut self, e: rustls::Error) -> TlsError {
        let before = self.io.tx_tail - self.io.tx_head;
        // The alert (and anything queued with it) is handed out before rustls looks at
        // the input again; never let it look again: the bad bytes would fail anew.
        for _ in 0..8 {
            if !self.conn.common().wants_write() {
                break;
            }
            let (discard, encoded) = match &mut self.conn {
                Conn::Server(c) => flush_alert(
                    c.process_tls_records(&mut self.rx[..self.rx_len]),
                    &mut self.io,
                ),
                Conn::Client(c) => flush_alert(
                    c.process_tls_records(&mut self.rx[..self.rx_len]),
                    &mut self.io,
                ),
            };
            self.discard(discard);
            if !encoded {
                break;
            }
        }
        let pending = self.pending_ciphertext();
        let added = &pending[before.min(pending.len())..];
        // A plaintext alert can be read back; an encrypted one is named after the error
        // as rustls names it.
        let alert = if added.is_empty() {
            None
        } else if added.len() >= 7 && added[added.len() - 7..][..5] == [0x15, 3, 3, 0, 2] {
            Some(TlsAlert(added[added.len() - 1]))
        } else {
            Some(alert_for(&e))
        };
        let reason = self.classify(&e);
        let received = match &e {
            rustls::Error::AlertReceived(a) => Some(TlsAlert(u8::from(*a))),
            _ => None,
        };
        let err = TlsError {
            reason,
            alert_sent: alert,
            alert_received: received,
            detail: e.to_string(),
        };
        self.error = Some(err.clone());
        err
    }

    fn fail_with(&mut self, reason: TlsFailure, alert: Option<TlsAlert>, detail: &str) -> TlsError {
        let err = TlsError {
            reason,
            alert_sent: alert,
            alert_received: None,
            detail: detail.into(),
        };
        self.error = Some(err.clone());
        err
    }

    fn classify(&self, e: &rustls::Error) -> TlsFailure {
        use rustls::Error as E;
        let server = matches!(self.conn, Conn::Server(_));
        match e {
            E::InvalidMessage(rustls::InvalidMessage::MessageTooLarge)
            | E::PeerSentOversizedRecord => TlsFailure::RecordOverflow,
            E::InvalidMessage(_) if server && self.processed == 0 && self.hello_pick.is_none() => {
                TlsFailure::NotTls
            }
            E::InvalidMessage(_) => TlsFailure::Decode,
            E::DecryptError => TlsFailure::BadRecordMac,
            E::InappropriateHandshakeMessage { got_type, .. }
                if self.open && *got_type == HandshakeType::ClientHello =>
            {
                TlsFailure::Renegotiation
            }
            E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
                TlsFailure::UnexpectedMessage
            }
            E::PeerIncompatible(_) => TlsFailure::Incompatible,
            E::InvalidCertificate(_) => TlsFailure::PeerCertificate,
            E::NoCertificatesPresented => TlsFailure::ClientCertificateMissing,
            E::NoApplicationProtocol => TlsFailure::NoApplicationProtocol,
            E::AlertReceived(_) => TlsFailure::AlertReceived,
            E::General(_) => match self.hello_pick {
                Some(Pick::UnknownSni) => TlsFailure::UnknownSni,
                Some(Pick::NoUsableKey) => TlsFailure::NoUsableCertificate,
                _ => TlsFailure::Internal,
            },
            E::PeerMisbehaved(rustls::PeerMisbehaved::TooManyRenegotiationRequests) => {
                TlsFailure::Renegotiation
            }
            E::PeerMisbehaved(_) => TlsFailure::Misbehaved,
            _ => TlsFailure::Internal,
        }
    }
}

/// Encodes the next record if rustls hands one out (the alert after an error).
fn flush_alert<Data>(status: UnbufferedStatus<'_, '_, Data>, io: &mut Io) -> (usize, bool) {
    let encoded = match status.state {
        Ok(ConnectionState::EncodeTlsData(mut e)) => loop {
            match e.encode(io.tx_room()) {
                Ok(n) => {
                    io.tx_tail += n;
                    break true;
                }
                Err(rustls::unbuffered::EncodeError::InsufficientSize(s)) => {
                    io.tx_grow(s.required_size)
                }
                Err(_) => break false,
            }
        },
        Ok(ConnectionState::TransmitTlsData(t)) => {
            t.done();
            true
        }
        _ => false,
    };
    (status.discard, encoded)
}

/// The alert rustls sends for `e` (as its state machine chooses them).
fn alert_for(e: &rustls::Error) -> TlsAlert {
    use rustls::Error as E;
    let a = match e {
        E::InvalidMessage(m) => AlertDescription::from(*m),
        E::PeerSentOversizedRecord => AlertDescription::RecordOverflow,
        E::DecryptError => AlertDescription::BadRecordMac,
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            AlertDescription::UnexpectedMessage
        }
        E::InvalidCertificate(c) => AlertDescription::from(c.clone()),
        E::NoCertificatesPresented => AlertDescription::CertificateRequired,
        E::NoApplicationProtocol => AlertDescription::NoApplicationProtocol,
        E::PeerIncompatible(_) => AlertDescription::HandshakeFailure,
        E::PeerMisbehaved(_) => AlertDescription::IllegalParameter,
        E::General(_) => AlertDescription::AccessDenied,
        _ => AlertDescription::InternalError,
    };
    TlsAlert(u8::from(a))
}

fn internal(e: &rustls::Error) -> TlsError {
    TlsError {
        reason: TlsFailure::Internal,
        alert_sent: None,
        alert_received: None,
        detail: e.to_string(),
    }
}
