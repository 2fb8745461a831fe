//! ARP, ICMP and forwarding across `pipe` ports: the pipeline between two in-memory
//! wires, driven like a worker loop (receive a burst, process, transmit), with the
//! "hosts" at the far ends speaking plain frames.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use rouge_drivers::pipe::{self, PipePort};
use rouge_drivers::{Burst, MacAddr, Packet, PacketPool, Port};
use rouge_pipelines::counters::PipelineCounters;
use rouge_pipelines::l2l3::{NeighbourBus, L2L3};
use rouge_pipelines::wire::arp::{ArpRepr, Operation};
use rouge_pipelines::wire::checksum;
use rouge_pipelines::wire::ethernet::{self as eth, EthernetFrame};
use rouge_pipelines::wire::icmp::{self, IcmpPacket};
use rouge_pipelines::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use rouge_pipelines::{testing, Instant};

const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

struct Wires {
    l2: L2L3,
    pool: PacketPool,
    ports: [PipePort; 2],
    client: PipePort,
    server: PipePort,
    now: Instant,
}

impl Wires {
    fn new() -> Wires {
        let pool = PacketPool::new(256);
        let (client, lb_c) = pipe::pair("c0", "lb-c", 1, 64);
        let (lb_s, server) = pipe::pair("lb-s", "s0", 2, 64);
        let macs = vec![lb_c.mac(), lb_s.mac()];
        let bus = NeighbourBus::new(1).pop().unwrap();
        let l2 = L2L3::new(
            0,
            Arc::new(testing::dataplane(1)),
            macs,
            vec![1500, 1500],
            PipelineCounters::new_shared(),
            bus,
            pool.clone(),
        );
        Wires {
            l2,
            pool,
            ports: [lb_c, lb_s],
            client,
            server,
            now: Instant::from_secs(1),
        }
    }

    /// One worker turn.
    fn turn(&mut self) {
        self.now += Duration::from_millis(1);
        let mut out: Vec<(u16, Packet)> = Vec::new();
        for i in 0..2 {
            let mut b = Burst::new();
            self.ports[i].rx_burst(&self.pool, &mut b);
            for mut p in b.drain(..) {
                p.meta.port = i as u16;
                self.l2
                    .process(self.now, p, &mut |port, pkt| out.push((port, pkt)));
            }
        }
        self.l2
            .poll(self.now, &mut |port, pkt| out.push((port, pkt)));
        for (port, pkt) in out {
            let mut b = Burst::new();
            b.push(pkt);
            self.ports[port as usize].tx_burst(&mut b);
        }
    }

    fn send(port: &mut PipePort, pool: &PacketPool, frame: &[u8]) {
        let mut b = Burst::new();
        b.push(pool.alloc_from(frame).unwrap());
        port.tx_burst(&mut b);
    }

    fn recv(port: &mut PipePort, pool: &PacketPool) -> Vec<Vec<u8>> {
        let mut b = Burst::new();
        port.rx_burst(pool, &mut b);
        b.iter().map(|p| p.data().to_vec()).collect()
    }
}

fn arp_request(smac: MacAddr, sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let hl = eth::emit_header(&mut f, MacAddr::BROADCAST, smac, None, eth::ETHERTYPE_ARP);
    ArpRepr {
        op: Operation::Request,
        sender_mac: smac,
        sender_ip: sip,
        target_mac: MacAddr::ZERO,
        target_ip: tip,
    }
    .emit(&mut f[hl..]);
    f
}

fn echo(dmac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 16];
    eth::emit_header(&mut f, dmac, CLIENT_MAC, None, eth::ETHERTYPE_IPV4);
    Ipv4Repr {
        src,
        dst,
        protocol: 1,
        payload_len: 16,
        ttl,
        ident: 3,
        dont_frag: false,
    }
    .emit(&mut f[14..]);
    f[34] = icmp::ECHO_REQUEST;
    f[38..50].copy_from_slice(b"pipe-payload");
    let c = checksum::checksum(&f[34..]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn arp_ping_and_forwarding_across_pipe_ports() {
    let mut w = Wires::new();
    w.turn();
    // Start-up announcements reach both wires.
    assert!(!Wires::recv(&mut w.client, &w.pool).is_empty());
    assert!(!Wires::recv(&mut w.server, &w.pool).is_empty());

    // ARP for the self IP.
    Wires::send(
        &mut w.client,
        &w.pool,
        &arp_request(
            CLIENT_MAC,
            Ipv4Addr::new(198, 18, 1, 2),
            Ipv4Addr::new(198, 18, 1, 1),
        ),
    );
    w.turn();
    let got = Wires::recv(&mut w.client, &w.pool);
    assert_eq!(got.len(), 1);
    let reply = ArpRepr::parse(&got[0][14..]).unwrap();
    assert_eq!(reply.op, Operation::Reply);
    let lb_mac = reply.sender_mac;
    assert_eq!(lb_mac, w.ports[0].mac());

    // Ping the self IP.
    Wires::send(
        &mut w.client,
        &w.pool,
        &echo(
            lb_mac,
            Ipv4Addr::new(198, 18, 1, 2),
            Ipv4Addr::new(198, 18, 1, 1),
            64,
        ),
    );
    w.turn();
    let got = Wires::recv(&mut w.client, &w.pool);
    let ip = Ipv4Packet::new_checked(&got[0][14..]).unwrap();
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), icmp::ECHO_REPLY);
    assert_eq!(
        &ip.payload()[4..16],
        b"pipe-payload",
        "identifier, sequence and data echoed"
    );

    // Ping through to the server: the appliance asks for its MAC, the server answers,
    // and the echo request arrives with TTL decremented.
    Wires::send(
        &mut w.client,
        &w.pool,
        &echo(
            lb_mac,
            Ipv4Addr::new(198, 18, 1, 2),
            Ipv4Addr::new(198, 18, 2, 11),
            64,
        ),
    );
    w.turn();
    let got = Wires::recv(&mut w.server, &w.pool);
    let ask = ArpRepr::parse(&got[0][14..]).unwrap();
    assert_eq!(
        (ask.op, ask.target_ip),
        (Operation::Request, Ipv4Addr::new(198, 18, 2, 11))
    );
    let mut answer = vec![0u8; 60];
    eth::emit_header(
        &mut answer,
        ask.sender_mac,
        SERVER_MAC,
        None,
        eth::ETHERTYPE_ARP,
    );
    ArpRepr {
        op: Operation::Reply,
        sender_mac: SERVER_MAC,
        sender_ip: ask.target_ip,
        target_mac: ask.sender_mac,
        target_ip: ask.sender_ip,
    }
    .emit(&mut answer[14..]);
    Wires::send(&mut w.server, &w.pool, &answer);
    w.turn();
    let got = Wires::recv(&mut w.server, &w.pool);
    assert_eq!(got.len(), 1);
    let e = EthernetFrame::new_checked(&got[0][..]).unwrap();
    assert_eq!(e.dst(), SERVER_MAC);
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert_eq!((ip.ttl(), ip.dst()), (63, Ipv4Addr::new(198, 18, 2, 11)));
    let c = w.l2.counters();
    assert_eq!((c.answered.get(), c.forwarded.get()), (2, 1));
    assert_eq!(w.ports[0].counters().rx_packets.get(), 3);
}
