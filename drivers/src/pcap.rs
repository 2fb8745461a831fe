//! Packet capture: a pcap file writer and a port wrapper that records every frame
//! received and transmitted (`rouge run --pcap DIR`), for troubleshooting.
//!
//! The writer is buffered, so the wrapper makes a write system call per few kilobytes,
//! not per frame. The clock is read once per burst.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::buf::PacketPool;
use crate::port::{Burst, MacAddr, Port, PortCounters};

/// Writes frames to a classic pcap file (microsecond timestamps, Ethernet link type).
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(path: &Path) -> io::Result<Self> {
        PcapWriter::new(BufWriter::with_capacity(256 * 1024, File::create(path)?))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Wraps `out` and writes the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        hdr[16..20].copy_from_slice(&65535u32.to_le_bytes());
        hdr[20..24].copy_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        out.write_all(&hdr)?;
        Ok(PcapWriter { out })
    }

    /// Appends one frame captured at `ts` since the Unix epoch.
    pub fn write_frame(&mut self, ts: Duration, frame: &[u8]) -> io::Result<()> {
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&ts.subsec_micros().to_le_bytes());
        rec[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(frame)
    }

    /// Flushes buffered records.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A port that records every frame it receives and transmits into `DIR/<name>.pcap`.
pub struct PcapPort<P: Port> {
    inner: P,
    writer: PcapWriter<BufWriter<File>>,
    write_errors: u64,
}

impl<P: Port> PcapPort<P> {
    /// Wraps `inner`, writing to `dir/<port name>.pcap` (or `<name>-<suffix>.pcap`
    /// when several workers capture the same interface).
    pub fn new(inner: P, dir: &Path, suffix: Option<&str>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = match suffix {
            Some(s) => format!("{}-{}.pcap", inner.name(), s),
            None => format!("{}.pcap", inner.name()),
        };
        let writer = PcapWriter::create(&dir.join(file))?;
        Ok(PcapPort {
            inner,
            writer,
            write_errors: 0,
        })
    }

    /// Frames that could not be written to the file.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    fn record(&mut self, burst: &[crate::Packet]) {
        if burst.is_empty() {
            return;
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for p in burst {
            if self.writer.write_frame(ts, p.data()).is_err() {
                self.write_errors += 1;
            }
        }
    }
}

impl<P: Port> Drop for PcapPort<P> {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}

impl<P: Port> Port for PcapPort<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn mac(&self) -> MacAddr {
        self.inner.mac()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn rx_burst(&mut self, pool: &PacketPool, out: &mut Burst) -> usize {
        let before = out.len();
        let n = self.inner.rx_burst(pool, out);
        self.record(&out[before..]);
        n
    }
    fn tx_burst(&mut self, pkts: &mut Burst) -> usize {
        self.record(pkts);
        self.inner.tx_burst(pkts)
    }
    fn wait_rx(&mut self, timeout: Duration) {
        let _ = self.writer.flush();
        self.inner.wait_rx(timeout)
    }
    fn tx_pending(&mut self) -> usize {
        self.inner.tx_pending()
    }
    fn counters(&self) -> &Arc<PortCounters> {
        self.inner.counters()
    }
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.raw_fd()
    }
    fn steering(&self) -> crate::steer::Steering {
        self.inner.steering()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipe;

    #[test]
    fn writer_produces_a_valid_pcap() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(Duration::new(5, 7000), &[1, 2, 3]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(&bytes[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(bytes.len(), 24 + 16 + 3);
        assert_eq!(&bytes[24..28], &5u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &7u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &3u32.to_le_bytes());
        assert_eq!(&bytes[40..], &[1, 2, 3]);
    }

    #[test]
    fn port_wrapper_records_both_directions() {
        let dir = std::env::temp_dir().join(format!("rouge-pcap-{}", std::process::id()));
        let pool = PacketPool::new(8);
        let (a, mut b) = pipe::pair("pa", "pb", 3, 8);
        {
            let mut cap = PcapPort::new(a, &dir, None).unwrap();
            let mut burst = Burst::new();
            burst.push(pool.alloc_from(&[9; 60]).unwrap());
            cap.tx_burst(&mut burst);
            let mut back = Burst::new();
            back.push(pool.alloc_from(&[8; 70]).unwrap());
            b.tx_burst(&mut back);
            let mut got = Burst::new();
            assert_eq!(cap.rx_burst(&pool, &mut got), 1);
        }
        let bytes = std::fs::read(dir.join("pa.pcap")).unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 60 + 16 + 70);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
