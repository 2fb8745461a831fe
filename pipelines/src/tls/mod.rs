//! TLS termination and origination: Rouge's own small sans-I/O interface over rustls
//! (0.23, the `unbuffered` API) with ring as the crypto provider. Everything
//! rustls-specific lives in this module, so moving to rustls's next caller-buffer API is
//! a local change.
//!
//! - [`TlsServerConfig`] (clients to the appliance): certificates chosen by SNI with a
//!   default, an ECDSA and an RSA certificate for the same names chosen by what the
//!   client can verify, TLS 1.2/1.3 with AEAD suites only (AES-GCM, ChaCha20-Poly1305)
//!   and X25519/P-256, ALPN, session tickets sealed with [`TicketKeys`] shared by every
//!   worker, client certificates (`none`, `request`, `require`) against a CA bundle.
//! - [`TlsClientConfig`] (the appliance to members): CA bundle, verification (or
//!   explicitly none), the server name sent as SNI, a per-worker session cache.
//! - [`TlsSession`]: one connection, driven with bytes in and bytes out, time passed in.
//!   See its documentation for the call order.
//!
//! Nothing here performs I/O or reads a clock: [`WallClock`] is set by the caller, and
//! handshake deadlines compare against the [`Instant`](crate::time::Instant) passed in.
//! Bad peers end with a [`TlsError`] that names the alert sent and a [`TlsFailure`]
//! reason for the counters, never a panic.

mod config;
mod session;
mod ticket;
pub mod x509;

#[cfg(test)]
pub(crate) mod test_certs;
#[cfg(test)]
mod tests;

use std::fmt;

pub use config::{
    CaBundle, ClientAuth, ClientProfile, ServerProfile, TlsClientConfig, TlsConfigError,
    TlsIdentity, TlsServerConfig, TlsVersion, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use session::{TlsSession, MAX_RECORD_PLAINTEXT, MAX_WIRE_RECORD, PLAINTEXT_HIGH};
pub use ticket::{TicketKeys, WallClock};

/// A TLS alert description (RFC 8446 section 6), as sent to or received from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsAlert(pub u8);

impl TlsAlert {
    /// `unexpected_message`.
    pub const UNEXPECTED_MESSAGE: TlsAlert = TlsAlert(10);
    /// `bad_record_mac`.
    pub const BAD_RECORD_MAC: TlsAlert = TlsAlert(20);
    /// `record_overflow`.
    pub const RECORD_OVERFLOW: TlsAlert = TlsAlert(22);
    /// `handshake_failure`.
    pub const HANDSHAKE_FAILURE: TlsAlert = TlsAlert(40);
    /// `bad_certificate`.
    pub const BAD_CERTIFICATE: TlsAlert = TlsAlert(42);
    /// `certificate_expired`.
    pub const CERTIFICATE_EXPIRED: TlsAlert = TlsAlert(45);
    /// `unknown_ca`.
    pub const UNKNOWN_CA: TlsAlert = TlsAlert(48);
    /// `access_denied`.
    pub const ACCESS_DENIED: TlsAlert = TlsAlert(49);
    /// `decode_error`.
    pub const DECODE_ERROR: TlsAlert = TlsAlert(50);
    /// `protocol_version`.
    pub const PROTOCOL_VERSION: TlsAlert = TlsAlert(70);
    /// `internal_error`.
    pub const INTERNAL_ERROR: TlsAlert = TlsAlert(80);
    /// `certificate_required`.
    pub const CERTIFICATE_REQUIRED: TlsAlert = TlsAlert(116);
    /// `no_application_protocol`.
    pub const NO_APPLICATION_PROTOCOL: TlsAlert = TlsAlert(120);

    /// The alert's name, as RFC 8446 writes it (`alert_N` for others).
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            22 => "record_overflow",
            40 => "handshake_failure",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            90 => "user_canceled",
            100 => "no_renegotiation",
            109 => "missing_extension",
            110 => "unsupported_extension",
            112 => "unrecognized_name",
            116 => "certificate_required",
            120 => "no_application_protocol",
            _ => "other",
        }
    }
}

impl fmt::Display for TlsAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "other" => write!(f, "alert_{}", self.0),
            n => f.write_str(n),
        }
    }
}

/// Why a TLS connection failed: one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TlsFailure {
    /// The first bytes were not a TLS record (plain HTTP, garbage, SSLv2).
    NotTls,
    /// A record or handshake message could not be parsed.
    Decode,
    /// A record longer than TLS allows.
    RecordOverflow,
    /// The peer ended the connection inside a record or before the handshake finished.
    Truncated,
    /// A message out of place (for example early application data).
    UnexpectedMessage,
    /// A new handshake after the first one (renegotiation), refused.
    Renegotiation,
    /// No version, suite, group or signature scheme in common.
    Incompatible,
    /// The client asked for a name no certificate covers, and `sni_required` is set.
    UnknownSni,
    /// No certificate for the name has a key the client can verify.
    NoUsableCertificate,
    /// The peer's certificate was refused (unknown CA, expired, wrong name...).
    PeerCertificate,
    /// A client certificate was required and none was given.
    ClientCertificateMissing,
    /// A record failed authentication.
    BadRecordMac,
    /// The client and server share no ALPN protocol.
    NoApplicationProtocol,
    /// The peer sent a fatal alert.
    AlertReceived,
    /// The handshake did not finish within the handshake timeout.
    HandshakeTimeout,
    /// A handshake message too large for the staging buffer.
    HandshakeTooLarge,
    /// Some other protocol violation by the peer.
    Misbehaved,
    /// An error on this side (should not happen; counted to be seen).
    Internal,
}

impl TlsFailure {
    /// Every reason, in counter order.
    pub const ALL: [TlsFailure; 18] = [
        TlsFailure::NotTls,
        TlsFailure::Decode,
        TlsFailure::RecordOverflow,
        TlsFailure::Truncated,
        TlsFailure::UnexpectedMessage,
        TlsFailure::Renegotiation,
        TlsFailure::Incompatible,
        TlsFailure::UnknownSni,
        TlsFailure::NoUsableCertificate,
        TlsFailure::PeerCertificate,
        TlsFailure::ClientCertificateMissing,
        TlsFailure::BadRecordMac,
        TlsFailure::NoApplicationProtocol,
        TlsFailure::AlertReceived,
        TlsFailure::HandshakeTimeout,
        TlsFailure::HandshakeTooLarge,
        TlsFailure::Misbehaved,
        TlsFailure::Internal,
    ];

    /// The counter's name in `show tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::NotTls => "not-tls",
            TlsFailure::Decode => "decode",
            TlsFailure::RecordOverflow => "record-overflow",
            TlsFailure::Truncated => "truncated",
            TlsFailure::UnexpectedMessage => "unexpected-message",
            TlsFailure::Renegotiation => "renegotiation",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::UnknownSni => "unknown-sni",
            TlsFailure::NoUsableCertificate => "no-usable-certificate",
            TlsFailure::PeerCertificate => "peer-certificate",
            TlsFailure::ClientCertificateMissing => "client-certificate-missing",
            TlsFailure::BadRecordMac => "bad-record-mac",
            TlsFailure::NoApplicationProtocol => "no-application-protocol",
            TlsFailure::AlertReceived => "alert-received",
            TlsFailure::HandshakeTimeout => "handshake-timeout",
            TlsFailure::HandshakeTooLarge => "handshake-too-large",
            TlsFailure::Misbehaved => "misbehaved",
            TlsFailure::Internal => "internal",
        }
    }
}

/// A TLS connection's end by error: the reason, the alert sent to the peer (when one
/// was; [`TlsSession::pending_ciphertext`] holds it until taken), the alert received
/// (for [`TlsFailure::AlertReceived`]) and rustls's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The counter it belongs to.
    pub reason: TlsFailure,
    /// The alert sent to the peer, if any.
    pub alert_sent: Option<TlsAlert>,
    /// The alert the peer sent, for [`TlsFailure::AlertReceived`].
    pub alert_received: Option<TlsAlert>,
    /// What went wrong, for the log (never key material).
    pub detail: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls {}: {}", self.reason.as_str(), self.detail)?;
        if let Some(a) = self.alert_sent {
            write!(f, " (sent {a})")?;
        }
        if let Some(a) = self.alert_received {
            write!(f, " (received {a})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {}

/// Per-worker TLS counters (plain numbers: one worker owns them; the integrator
/// publishes them as it does the proxy's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsCounters {
    /// Full handshakes completed, by version: [TLS 1.2, TLS 1.3].
    pub full: [u64; 2],
    /// Resumed handshakes completed, by version: [TLS 1.2, TLS 1.3].
    pub resumed: [u64; 2],
    /// Failures, indexed like [`TlsFailure::ALL`].
    pub failures: [u64; TlsFailure::ALL.len()],
    /// Application bytes decrypted.
    pub bytes_decrypted: u64,
    /// Application bytes encrypted.
    pub bytes_encrypted: u64,
}

impl TlsCounters {
    /// Counts a failure.
    pub fn failure(&mut self, e: &TlsError) {
        self.failures[e.reason as usize] += 1;
    }

    /// The count of one failure reason.
    pub fn failed(&self, reason: TlsFailure) -> u64 {
        self.failures[reason as usize]
    }

    /// Counts a completed handshake of `s` (call once, when
    /// [`TlsSession::take_handshake_done`] says so).
    pub fn handshake(&mut self, s: &TlsSession) {
        let v = match s.version() {
            Some(TlsVersion::V1_3) => 1,
            _ => 0,
        };
        if s.resumed() {
            self.resumed[v] += 1;
        } else {
            self.full[v] += 1;
        }
    }
}
