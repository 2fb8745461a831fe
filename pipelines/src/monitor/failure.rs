//! Why a probe failed, and the per-monitor counts of those reasons.

use std::fmt;

/// Why a probe failed: one counter each, per monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ProbeFailure {
    /// The member refused or reset the TCP connection.
    Tcp,
    /// Nothing came back in time: the TCP handshake, the TLS handshake (the profile's
    /// handshake timeout) or the response did not finish before the probe's deadline.
    Timeout,
    /// The member's certificate was refused by the TLS profile's verification (unknown
    /// CA, expired, not valid for the member's address or the profile's server name).
    Certificate,
    /// The TLS handshake failed otherwise: an alert from the member, no version or suite
    /// in common, a malformed or truncated handshake (also a TLS error on the response).
    Handshake,
    /// The response ended without the receive string.
    Response,
    /// No source port was free for the probe.
    SourcePort,
}

impl ProbeFailure {
    /// Every reason, in counter order.
    pub const ALL: [ProbeFailure; 6] = [
        ProbeFailure::Tcp,
        ProbeFailure::Timeout,
        ProbeFailure::Certificate,
        ProbeFailure::Handshake,
        ProbeFailure::Response,
        ProbeFailure::SourcePort,
    ];

    /// The name in logs, `show monitor` and the metrics' `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeFailure::Tcp => "tcp",
            ProbeFailure::Timeout => "timeout",
            ProbeFailure::Certificate => "certificate",
            ProbeFailure::Handshake => "handshake",
            ProbeFailure::Response => "response",
            ProbeFailure::SourcePort => "source_port",
        }
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: its reason and, for the log, what happened (never key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    /// The counter it belongs to.
    pub reason: ProbeFailure,
    /// What happened, in words.
    pub detail: String,
}

impl ProbeError {
    /// A failure with its detail.
    pub fn new(reason: ProbeFailure, detail: impl Into<String>) -> ProbeError {
        ProbeError {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// The counts of one monitor (a `[[monitor]]` name) over every member it watches on
/// the worker that probes. They outlive configuration changes, so they only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorStats {
    /// The monitor's name.
    pub name: String,
    /// Probes started.
    pub probes: u64,
    /// Probes that succeeded.
    pub successes: u64,
    /// Probes that failed, indexed like [`ProbeFailure::ALL`].
    pub failures: [u64; ProbeFailure::ALL.len()],
}

impl MonitorStats {
    /// The count of one reason.
    pub fn failed(&self, reason: ProbeFailure) -> u64 {
        self.failures[reason as usize]
    }

    /// Every failure, whatever the reason.
    pub fn failures_total(&self) -> u64 {
        self.failures.iter().sum()
    }
}
