//! The bounded run loop: transmit bursts at a rate, receive and account, then drain.
//!
//! One thread does everything (run to completion, as the appliance does): each turn it
//! transmits the frames that are due and then polls the receive port once. Every run is
//! bounded by a packet count and by a duration (at most [`MAX_DURATION`]).

use std::time::{Duration, Instant};

use rouge_drivers::{Burst, MacAddr, PacketPool, Port, PortDrop, BURST_SIZE};

use std::net::IpAddr;

use crate::frame::{arp_reply_from, arp_request, neighbour_advert_from, neighbour_solicitation};
use crate::gen::{Generator, Receiver};

/// Longest run allowed.
pub const MAX_DURATION: Duration = Duration::from_secs(60);

/// Where replies or forwarded frames are received.
pub enum RxSide<'a, R: Port> {
    /// Transmit only.
    None,
    /// On the transmitting port itself (ICMP echo replies).
    Same,
    /// On another port (frames forwarded by the system under test).
    Other(&'a mut R),
}

/// Bounds and pace of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunLimits {
    /// Packets per second, or `None` for as fast as the port takes them.
    pub rate_pps: Option<f64>,
    /// Stop after this many packets (if given).
    pub count: Option<u64>,
    /// Stop after this long (capped at [`MAX_DURATION`]).
    pub duration: Duration,
    /// After transmitting, keep receiving this long for frames still in flight.
    pub drain: Duration,
}

/// Figures of a run from the transmit side.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct TxStats {
    /// Frames built.
    pub generated: u64,
    /// Frames the port accepted.
    pub sent: u64,
    /// Frames the port dropped (ring full, errors).
    pub tx_dropped: u64,
    /// Frames accepted by the port that were still queued when the drain ended (not
    /// counted in `sent`).
    pub unsent_at_end: u64,
    /// Bytes built (with FCS).
    pub generated_bytes: u64,
    /// Seconds from the first to the last transmit.
    pub tx_seconds: f64,
    /// Seconds including the drain.
    pub total_seconds: f64,
    /// Frames the packet pool could not supply in time (rx holding buffers).
    pub pool_exhausted: u64,
}

/// Runs the generator until a limit is reached, receiving on `rx` as it goes, then drains.
/// `start` is the instant timestamps are measured from.
pub fn run<T: Port, R: Port>(
    tx: &mut T,
    mut rx: RxSide<'_, R>,
    gen: &mut Generator,
    recv: &mut Receiver,
    pool: &PacketPool,
    limits: &RunLimits,
    start: Instant,
) -> TxStats {
    let duration = limits.duration.min(MAX_DURATION);
    let count = limits.count.unwrap_or(u64::MAX);
    let mut out = Burst::new();
    let mut inb = Burst::new();
    let mut sent = 0u64;
    let drops_before = tx_drops(tx);
    let t0 = start.elapsed();
    let mut now = t0;
    loop {
        let elapsed = now - t0;
        if elapsed >= duration || gen.generated >= count {
            break;
        }
        let left = count - gen.generated;
        let due = match limits.rate_pps {
            None => BURST_SIZE as u64,
            Some(r) => ((elapsed.as_secs_f64() * r) as u64 + 1)
                .saturating_sub(gen.generated)
                .min(BURST_SIZE as u64),
        }
        .min(left) as usize;
        if due > 0 {
            let filled = gen.fill(pool, &mut out, due, now.as_nanos() as u64);
            let accepted = tx.tx_burst(&mut out);
            sent += accepted as u64;
            // A sweep must not spend its tuples on frames the port dropped (the burst's
            // tail, for the AF_PACKET port): they are used by the next frames instead.
            gen.rewind(filled.saturating_sub(accepted));
            out.clear();
        }
        let got = poll_rx(tx, &mut rx, pool, &mut inb, recv, start);
        if due == 0 && got == 0 {
            std::hint::spin_loop();
        }
        now = start.elapsed();
    }
    let tx_end = start.elapsed();
    let drain_end = tx_end + limits.drain;
    // Frames still queued for the kernel (a TX ring whose last kick found the send
    // buffer full) are kicked until they are on the wire or the drain ends.
    let mut unsent = tx.tx_pending();
    loop {
        let waiting = !matches!(rx, RxSide::None) && recv.answered() < gen.generated;
        if start.elapsed() >= drain_end || (unsent == 0 && !waiting) {
            break;
        }
        let got = if matches!(rx, RxSide::None) {
            0
        } else {
            poll_rx(tx, &mut rx, pool, &mut inb, recv, start)
        };
        if unsent > 0 {
            unsent = tx.tx_pending();
        }
        if got == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let end = start.elapsed();
    // What never left is not counted as sent: the report says how many did.
    let unsent = unsent as u64;
    TxStats {
        generated: gen.generated,
        sent: sent - unsent.min(sent),
        unsent_at_end: unsent,
        tx_dropped: tx_drops(tx) - drops_before,
        generated_bytes: gen.generated_bytes,
        tx_seconds: (tx_end - t0).as_secs_f64(),
        total_seconds: (end - t0).as_secs_f64(),
        pool_exhausted: pool.exhausted(),
    }
}

fn tx_drops<T: Port>(p: &T) -> u64 {
    let c = p.counters();
    c.dropped(PortDrop::TxRingFull) + c.dropped(PortDrop::TxTooBig) + c.dropped(PortDrop::TxError)
}

#[inline]
fn poll_rx<T: Port, R: Port>(
    tx: &mut T,
    rx: &mut RxSide<'_, R>,
    pool: &PacketPool,
    inb: &mut Burst,
    recv: &mut Receiver,
    start: Instant,
) -> usize {
    let n = match rx {
        RxSide::None => return 0,
        RxSide::Same => tx.rx_burst(pool, inb),
        RxSide::Other(r) => r.rx_burst(pool, inb),
    };
    if n > 0 {
        let now_ns = start.elapsed().as_nanos() as u64;
        for p in inb.iter() {
            recv.handle(p.data(), now_ns);
        }
        inb.clear();
    }
    n
}

/// Error resolving a MAC address.
#[derive(Debug, thiserror::Error)]
pub enum ArpError {
    /// No reply came in time.
    #[error(
        "no ARP or neighbour advertisement from {ip} on {port} within {timeout:?}: is the next hop up and on this link?"
    )]
    NoReply {
        /// The address asked for.
        ip: IpAddr,
        /// The port asked on.
        port: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The packet pool was empty.
    #[error("packet pool empty")]
    NoBuffer,
}

/// Asks for `target`'s MAC from `src_ip` on `port` (ARP for IPv4, a neighbour
/// solicitation for IPv6), retrying every 200 ms until `timeout`.
pub fn resolve_mac<T: Port>(
    port: &mut T,
    pool: &PacketPool,
    src_ip: IpAddr,
    target: IpAddr,
    timeout: Duration,
) -> Result<MacAddr, ArpError> {
    let start = Instant::now();
    let mut next_ask = start;
    let mut burst = Burst::new();
    while start.elapsed() < timeout {
        if Instant::now() >= next_ask {
            let req = match (src_ip, target) {
                (IpAddr::V4(s), IpAddr::V4(t)) => {
                    pool.alloc_from(&arp_request(port.mac(), s.octets(), t.octets()))
                }
                (IpAddr::V6(s), IpAddr::V6(t)) => {
                    pool.alloc_from(&neighbour_solicitation(port.mac(), s.octets(), t.octets()))
                }
                // Families never mixed: nothing to ask.
                _ => break,
            };
            burst.push(req.ok_or(ArpError::NoBuffer)?);
            port.tx_burst(&mut burst);
            burst.clear();
            next_ask += Duration::from_millis(200);
        }
        if port.rx_burst(pool, &mut burst) == 0 {
            port.wait_rx(Duration::from_millis(1));
            continue;
        }
        let found = burst.iter().find_map(|p| match target {
            IpAddr::V4(t) => arp_reply_from(p.data(), t.octets()),
            IpAddr::V6(t) => neighbour_advert_from(p.data(), t.octets()),
        });
        burst.clear();
        if let Some(mac) = found {
            return Ok(mac);
        }
    }
    Err(ArpError::NoReply {
        ip: target,
        port: port.name().to_string(),
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Endpoints, Kind};
    use crate::gen::{flows, Sizes};
    use rouge_drivers::faulty::{FaultConfig, Faulty};
    use rouge_drivers::pipe::{pair, PipePort};

    fn generator(kind: Kind, n_flows: u16) -> Generator {
        let ep = Endpoints {
            src_mac: MacAddr::local(1),
            dst_mac: MacAddr::local(2),
            dst_ip: [198, 18, 2, 11].into(),
            dst_port: 9,
        };
        let fl = flows(
            (
                std::net::Ipv4Addr::from(0xc612_0102).into(),
                std::net::Ipv4Addr::from(0xc612_0102).into(),
            ),
            (1024, 1024 + n_flows - 1),
        );
        Generator::new(kind, &ep, Sizes::Fixed(64), fl)
    }

    fn limits(count: u64) -> RunLimits {
        RunLimits {
            rate_pps: None,
            count: Some(count),
            duration: Duration::from_secs(10),
            drain: Duration::from_millis(20),
        }
    }

    #[test]
    fn a_clean_wire_loses_nothing_and_reorders_nothing() {
        let pool = PacketPool::new(4096);
        let (mut a, mut b) = pair("a", "b", 1, 4096);
        let mut gen = generator(Kind::Udp, 8);
        let mut recv = Receiver::new(gen.flow_count());
        let st = run(
            &mut a,
            RxSide::Other(&mut b),
            &mut gen,
            &mut recv,
            &pool,
            &limits(10_000),
            Instant::now(),
        );
        assert_eq!(st.generated, 10_000);
        assert_eq!(st.sent, 10_000);
        assert_eq!(recv.received, 10_000);
        assert_eq!(recv.unique(), 10_000);
        assert_eq!(
            (recv.reordered(), recv.duplicates(), recv.bad_checksum),
            (0, 0, 0)
        );
        assert_eq!(recv.latency.len(), 10_000);
        assert!(recv.flows().iter().all(|f| f.unique == 1250));
    }

    #[test]
    fn loss_reordering_and_duplicates_through_faulty_are_counted() {
        let pool = PacketPool::new(8192);
        let (a, mut b) = pair("a", "b", 1, 8192);
        let cfg = FaultConfig {
            seed: 7,
            loss: 0.05,
            duplicate: 0.02,
            reorder: 0.0,
            ..FaultConfig::default()
        };
        let mut a = Faulty::new(a, cfg);
        let mut gen = generator(Kind::Udp, 4);
        let mut recv = Receiver::new(gen.flow_count());
        let st = run(
            &mut a,
            RxSide::Other(&mut b),
            &mut gen,
            &mut recv,
            &pool,
            &limits(20_000),
            Instant::now(),
        );
        let fs = a.stats();
        assert_eq!(st.generated, 20_000);
        assert!(fs.lost > 500 && fs.duplicated > 100, "{fs:?}");
        assert_eq!(recv.unique(), 20_000 - fs.lost);
        assert_eq!(recv.duplicates(), fs.duplicated);
        assert_eq!(recv.reordered(), 0);
    }

    #[test]
    fn reordering_through_faulty_is_counted_as_late_arrivals() {
        let pool = PacketPool::new(8192);
        let (a, mut b) = pair("a", "b", 1, 8192);
        let cfg = FaultConfig {
            seed: 3,
            reorder: 0.1,
            reorder_delay_ns: 1,
            ..FaultConfig::default()
        };
        let mut a = Faulty::new(a, cfg);
        let mut gen = generator(Kind::Udp, 1);
        let mut recv = Receiver::new(1);
        let start = Instant::now();
        let mut out = Burst::new();
        let mut inb = Burst::new();
        // Drive by hand so the injected clock moves between bursts.
        for turn in 0..100u64 {
            gen.fill(&pool, &mut out, 32, 0);
            a.tx_burst(&mut out);
            out.clear();
            a.advance_to(turn + 10);
            while b.rx_burst(&pool, &mut inb) > 0 {
                for p in &inb {
                    recv.handle(p.data(), start.elapsed().as_nanos() as u64);
                }
                inb.clear();
            }
        }
        a.advance_to(u64::MAX / 2);
        while b.rx_burst(&pool, &mut inb) > 0 {
            for p in &inb {
                recv.handle(p.data(), 0);
            }
            inb.clear();
        }
        let fs = a.stats();
        assert!(fs.reordered > 100, "{fs:?}");
        assert_eq!(recv.unique(), 3200);
        // A held frame arrives after the later frames of its burst, so it is one late
        // arrival, unless it was among the last of its burst (a few per hundred bursts).
        assert!(recv.reordered() <= fs.reordered);
        assert!(
            recv.reordered() + 40 >= fs.reordered,
            "{} of {fs:?}",
            recv.reordered()
        );
        assert_eq!(recv.duplicates(), 0);
    }

    #[test]
    fn arp_resolution_finds_the_peer_or_times_out() {
        let pool = PacketPool::new(64);
        let (mut a, mut b): (PipePort, PipePort) = pair("a", "b", 1, 64);
        // The peer answers only after the first request is on the wire.
        let mut inb = Burst::new();
        let _ = resolve_mac(
            &mut a,
            &pool,
            [198, 18, 1, 2].into(),
            [198, 18, 1, 1].into(),
            Duration::from_millis(1),
        );
        assert_eq!(b.rx_burst(&pool, &mut inb), 1);
        let mut reply = arp_request(b.mac(), [198, 18, 1, 1], [198, 18, 1, 2]);
        reply[21] = 2;
        inb.clear();
        inb.push(pool.alloc_from(&reply).unwrap());
        b.tx_burst(&mut inb);
        let mac = resolve_mac(
            &mut a,
            &pool,
            [198, 18, 1, 2].into(),
            [198, 18, 1, 1].into(),
            Duration::from_millis(50),
        );
        assert_eq!(mac.unwrap(), b.mac());
        let err = resolve_mac(
            &mut a,
            &pool,
            [198, 18, 1, 2].into(),
            [198, 18, 1, 9].into(),
            Duration::from_millis(5),
        );
        assert!(err.unwrap_err().to_string().contains("198.18.1.9"));
    }
}
