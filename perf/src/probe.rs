//! The probe carried at the start of every generated frame's payload.
//!
//! Layout (16 bytes, big-endian): magic `u16` (`"RG"`), flow id `u16`, sequence number
//! `u32` (per flow), transmit timestamp `u64` (nanoseconds since the run's start, on the
//! monotonic clock). It fits a 64-byte UDP frame (60 bytes without the FCS, 18 of them
//! payload).

/// Length of the probe in bytes.
pub const PROBE_LEN: usize = 16;
/// The probe's magic number: ASCII "RG".
pub const MAGIC: u16 = 0x5247;

/// A decoded probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Flow index (0-based).
    pub flow: u16,
    /// Sequence number within the flow, from 0.
    pub seq: u32,
    /// Transmit time in nanoseconds since the run's start.
    pub tx_ns: u64,
}

impl Probe {
    /// Writes the probe into the first [`PROBE_LEN`] bytes of `buf` (which must be that long).
    #[inline]
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        buf[2..4].copy_from_slice(&self.flow.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_be_bytes());
        buf[8..16].copy_from_slice(&self.tx_ns.to_be_bytes());
    }

    /// Reads a probe from the start of `buf`, or `None` when it is too short or the magic
    /// does not match.
    #[inline]
    pub fn read(buf: &[u8]) -> Option<Probe> {
        let b: &[u8; PROBE_LEN] = buf.get(..PROBE_LEN)?.try_into().ok()?;
        if u16::from_be_bytes([b[0], b[1]]) != MAGIC {
            return None;
        }
        Some(Probe {
            flow: u16::from_be_bytes([b[2], b[3]]),
            seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            tx_ns: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip_and_reject_foreign_payloads() {
        let p = Probe {
            flow: 513,
            seq: 0xdead_beef,
            tx_ns: 1 << 40,
        };
        let mut buf = [0u8; 20];
        p.write(&mut buf);
        assert_eq!(Probe::read(&buf), Some(p));
        assert_eq!(Probe::read(&buf[..15]), None);
        buf[0] = 0;
        assert_eq!(Probe::read(&buf), None);
    }
}
