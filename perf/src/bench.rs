//! The per-packet path over `pipe` ports, for instruction counts (`perf/run callgrind`).
//!
//! Each turn builds a burst with the generator, transmits it on one end of a pipe,
//! receives it on the other and accounts every frame in the receiver. The clock is a
//! counter, not a clock read, so the instruction count of a run is the same every time.
//! When the L2/L3 pipeline lands, it goes between the two pipe ends.

use rouge_drivers::pipe::pair;
use rouge_drivers::{Burst, MacAddr, PacketPool, Port, BURST_SIZE};

use crate::frame::{Endpoints, Kind};
use crate::gen::{flows, Generator, Receiver, Sizes};

/// What a bench run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BenchResult {
    /// Frames generated and transmitted.
    pub sent: u64,
    /// Frames received and accounted.
    pub received: u64,
}

/// Moves `packets` UDP frames of `sizes` over `flow_count` flows through a pipe.
pub fn pipe_path(packets: u64, sizes: Sizes, flow_count: u16) -> BenchResult {
    let pool = PacketPool::new(4 * BURST_SIZE);
    let (mut a, mut b) = pair("bench-a", "bench-b", 1, 2 * BURST_SIZE);
    let ep = Endpoints {
        src_mac: a.mac(),
        dst_mac: MacAddr::local(9),
        dst_ip: [198, 18, 2, 11].into(),
        dst_port: 9,
    };
    let fl = flows(
        (
            std::net::Ipv4Addr::from(0xc612_0102).into(),
            std::net::Ipv4Addr::from(0xc612_0102).into(),
        ),
        (1024, 1024 + flow_count.max(1) - 1),
    );
    let mut gen = Generator::new(Kind::Udp, &ep, sizes, fl);
    let mut recv = Receiver::new(gen.flow_count());
    let mut out = Burst::new();
    let mut inb = Burst::new();
    let mut now_ns = 0u64;
    while gen.generated < packets {
        let n = (packets - gen.generated).min(BURST_SIZE as u64) as usize;
        gen.fill(&pool, &mut out, n, now_ns);
        a.tx_burst(&mut out);
        now_ns += 1_000;
        b.rx_burst(&pool, &mut inb);
        for p in &inb {
            recv.handle(p.data(), now_ns);
        }
        inb.clear();
    }
    BenchResult {
        sent: gen.generated,
        received: recv.received,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_crosses_the_pipe() {
        let r = pipe_path(1000, Sizes::Imix, 16);
        assert_eq!(
            r,
            BenchResult {
                sent: 1000,
                received: 1000
            }
        );
    }
}
