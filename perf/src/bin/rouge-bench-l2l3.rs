//! `rouge-bench-l2l3`: packets per second per core of Rouge's L2/L3 pipeline over
//! in-memory `pipe` ports (no kernel, no NIC): ICMP echo answered by the appliance, ARP
//! requests answered, or UDP forwarded through a forwarding virtual server. The same
//! worker loop shape as the appliance: receive a burst, run each packet through the
//! pipeline, transmit in bursts. Run it under `valgrind --tool=callgrind` for
//! instructions per packet (repeatable on a noisy machine).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant as WallClock;

use clap::{Parser, ValueEnum};
use rouge_drivers::pipe;
use rouge_drivers::{Burst, MacAddr, Packet, PacketPool, Port, BURST_SIZE};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::wire::arp::{ArpRepr, Operation};
use rouge_pipelines::wire::checksum;
use rouge_pipelines::wire::ethernet::{self as eth};
use rouge_pipelines::wire::ipv4::Ipv4Repr;
use rouge_pipelines::{testing, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which path to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Path {
    /// ICMP echo requests to the self IP 198.18.1.1, answered in place.
    Echo,
    /// ARP requests for 198.18.1.1, answered in place.
    Arp,
    /// UDP 198.18.1.2 -> 198.18.2.11 routed by the forwarding virtual server.
    Forward,
}

/// Push PACKETS frames through the L2/L3 pipeline and report packets per second.
#[derive(Debug, Parser)]
#[command(name = "rouge-bench-l2l3", version)]
struct Args {
    /// Path to measure.
    #[arg(long, value_enum, default_value = "echo")]
    path: Path,
    /// Frames to push (at most 100 million).
    #[arg(long, default_value_t = 2_000_000)]
    packets: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const LB_C: MacAddr = MacAddr([0x02, 0x52, 0, 0, 0, 100]);
const LB_S: MacAddr = MacAddr([0x02, 0x52, 0, 0, 0, 101]);
const CLIENT: MacAddr = MacAddr([0x02, 0x52, 0, 0, 0, 1]);
const SERVER: MacAddr = MacAddr([0x02, 0x52, 0, 0, 0, 2]);

fn frame(path: Path) -> Vec<u8> {
    let mut b = vec![0u8; 98];
    match path {
        Path::Arp => {
            let hl = eth::emit_header(&mut b, MacAddr::BROADCAST, CLIENT, None, eth::ETHERTYPE_ARP);
            ArpRepr {
                op: Operation::Request,
                sender_mac: CLIENT,
                sender_ip: Ipv4Addr::new(198, 18, 1, 2),
                target_mac: MacAddr::ZERO,
                target_ip: Ipv4Addr::new(198, 18, 1, 1),
            }
            .emit(&mut b[hl..]);
            b.truncate(60);
        }
        Path::Echo | Path::Forward => {
            let hl = eth::emit_header(&mut b, LB_C, CLIENT, None, eth::ETHERTYPE_IPV4);
            let (dst, proto) = match path {
                Path::Echo => (Ipv4Addr::new(198, 18, 1, 1), 1),
                _ => (Ipv4Addr::new(198, 18, 2, 11), 17),
            };
            let payload = 64;
            Ipv4Repr {
                src: Ipv4Addr::new(198, 18, 1, 2),
                dst,
                protocol: proto,
                payload_len: payload,
                ttl: 64,
                ident: 1,
                dont_frag: true,
            }
            .emit(&mut b[hl..]);
            let l4 = &mut b[hl + 20..hl + 20 + payload];
            l4[0] = 8; // echo request (or UDP source port high byte)
            let c = checksum::checksum(l4);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
            b.truncate(hl + 20 + payload);
        }
    }
    b
}

fn main() {
    let args = Args::parse();
    let packets = args.packets.min(100_000_000);
    let pool = PacketPool::new(4096);
    let (mut client_end, mut lb_c) = pipe::pair("c0", "lb-c", 1, 1024);
    let (mut lb_s, mut server_end) = pipe::pair("lb-s", "s0", 2, 1024);
    lb_c.set_mac(LB_C);
    lb_s.set_mac(LB_S);
    let dp = Arc::new(testing::dataplane(1));
    let bus = NeighbourBus::new(1).pop().expect("one bus end");
    let counters = PipelineCounters::new_shared();
    let mut l2 = L2L3::new(
        0,
        dp,
        vec![LB_C, LB_S],
        vec![1500, 1500],
        counters.clone(),
        bus,
        pool.clone(),
    );
    let mut now = Instant::from_secs(1);
    let mut out: [Vec<Packet>; 2] = [Vec::with_capacity(256), Vec::with_capacity(256)];
    // Resolve the server first so forwarding never waits for ARP.
    let mut learn = vec![0u8; 60];
    let hl = eth::emit_header(&mut learn, LB_S, SERVER, None, eth::ETHERTYPE_ARP);
    ArpRepr {
        op: Operation::Request,
        sender_mac: SERVER,
        sender_ip: Ipv4Addr::new(198, 18, 2, 11),
        target_mac: MacAddr::ZERO,
        target_ip: Ipv4Addr::new(198, 18, 2, 1),
    }
    .emit(&mut learn[hl..]);
    if let Some(mut p) = pool.alloc_from(&learn) {
        p.meta.port = 1;
        l2.process(now, p, &mut |port, pkt| out[port as usize].push(pkt));
    }
    out.iter_mut().for_each(Vec::clear);
    let template = frame(args.path);
    let mut ports = [lb_c, lb_s];
    let start = WallClock::now();
    let mut sent = 0u64;
    let mut delivered = 0u64;
    while sent < packets {
        // The wire: the client side puts a burst on lb-c.
        let mut burst = Burst::new();
        while !burst.is_full() && sent < packets {
            match pool.alloc_from(&template) {
                Some(p) => burst.push(p),
                None => break,
            }
            sent += 1;
        }
        client_end.tx_burst(&mut burst);
        // The worker turn.
        now += std::time::Duration::from_micros(10);
        for (i, port) in ports.iter_mut().enumerate() {
            let mut rx = Burst::new();
            port.rx_burst(&pool, &mut rx);
            for mut p in rx.drain(..) {
                p.meta.port = i as u16;
                l2.process(now, p, &mut |port, pkt| out[port as usize].push(pkt));
            }
        }
        l2.poll(now, &mut |port, pkt| out[port as usize].push(pkt));
        for (q, port) in out.iter_mut().zip(ports.iter_mut()) {
            while !q.is_empty() {
                let mut b = Burst::new();
                let n = q.len().min(BURST_SIZE);
                b.extend(q.drain(..n));
                port.tx_burst(&mut b);
            }
        }
        // The far ends take what came out.
        for end in [&mut client_end, &mut server_end] {
            let mut got = Burst::new();
            while end.rx_burst(&pool, &mut got) > 0 {
                delivered += got.len() as u64;
                got.clear();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let pps = sent as f64 / secs;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"path": format!("{:?}", args.path).to_lowercase(), "packets": sent,
                "delivered": delivered, "seconds": secs, "pps": pps,
                "answered": counters.answered.get(), "forwarded": counters.forwarded.get(),
                "dropped": counters.dropped_total()})
        );
    } else {
        println!(
            "{:?}: {sent} packets in {secs:.3} s = {:.2} Mpps on one core ({delivered} delivered, {} answered, {} forwarded, {} dropped)",
            args.path,
            pps / 1e6,
            counters.answered.get(),
            counters.forwarded.get(),
            counters.dropped_total()
        );
    }
    assert!(
        delivered >= sent,
        "every packet answered or forwarded ({delivered} of {sent})"
    );
}
