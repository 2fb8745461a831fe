//! Unit tests of [`L2L3::poll_timeout`]: the pipeline's one wake-up time folds the
//! deadlines of every engine, driven with an injected clock (no sleeping).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rouge_drivers::{MacAddr, Packet, PacketPool};

use super::*;
use crate::arp::SWEEP_INTERVAL;
use crate::counters::PipelineCounters;
use crate::tcp::ProfileId;
use crate::testing;

const MEMBER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);
const SELF_S: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
/// A neighbour on the server VLAN that never answers ARP.
const SILENT: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 99);
const ARP_RETRY: Duration = Duration::from_secs(2);

/// Worker `worker` of two on the fastl4 test data plane (ARP retries every
/// [`ARP_RETRY`]), with the other worker's end of the neighbour bus.
fn pipeline(worker: usize) -> (L2L3, NeighbourBus, PacketPool) {
    let mut dp = testing::fastl4_dataplane(2);
    dp.arp.retry = ARP_RETRY;
    let pool = PacketPool::new(64);
    let mut bus = NeighbourBus::new(2);
    let other = bus.remove(1 - worker);
    let mine = bus.remove(0);
    let l2 = L2L3::new(
        worker,
        Arc::new(dp),
        vec![MacAddr::local(1), MacAddr::local(2)],
        vec![1500, 1500],
        Arc::new(PipelineCounters::default()),
        mine,
        pool.clone(),
    );
    (l2, other, pool)
}

/// Runs the timers at `now`, returning what was sent.
fn poll(l2: &mut L2L3, now: Instant) -> Vec<(u16, Packet)> {
    let mut out = Vec::new();
    l2.poll(now, &mut |port, p| out.push((port, p)));
    out
}

/// True for an untagged IPv4 TCP SYN (without ACK) to `dst`.
fn is_syn_to(frame: &[u8], dst: Ipv4Addr) -> bool {
    frame.len() >= 14 + 20 + 20
        && frame[12..14] == [0x08, 0x00]
        && frame[14 + 9] == ipv4::PROTO_TCP
        && frame[14 + 16..14 + 20] == dst.octets()
        && frame[14 + 20 + 13] & 0x12 == 0x02
}

#[test]
fn nothing_scheduled_means_no_deadline_and_pending_work_is_due_at_once() {
    let (mut l2, other, _) = pipeline(1);
    let t0 = Instant::from_secs(100);
    poll(&mut l2, t0);
    assert_eq!(
        l2.poll_timeout(),
        None,
        "an idle pipeline waits for packets only"
    );
    other.publish(NeighbourUpdate {
        ip: MEMBER.into(),
        mac: MacAddr::local(7),
        vlan: 1,
    });
    assert_eq!(
        l2.poll_timeout(),
        Some(Instant::ZERO),
        "an update from another worker is work to do now"
    );
    poll(&mut l2, t0);
    assert_eq!(l2.poll_timeout(), None);

    // Worker 0 announces its addresses with gratuitous ARP on the first poll.
    let (mut w0, _, _) = pipeline(0);
    assert_eq!(w0.poll_timeout(), Some(Instant::ZERO));
    assert!(!poll(&mut w0, t0).is_empty(), "announcements were sent");
    assert_eq!(w0.poll_timeout(), None);
}

#[test]
fn a_tcp_retransmission_earlier_than_every_other_engine_is_the_wake_up_time() {
    let (mut l2, _, pool) = pipeline(1);
    let t0 = Instant::from_secs(100);
    // The member's MAC is known; SILENT never answers.
    assert!(l2
        .arp
        .learn(MEMBER, MacAddr::local(7), 1, t0, true, |_, _, _| {}));
    poll(&mut l2, t0);
    assert!(matches!(
        l2.arp.hold(SILENT, 1, pool.alloc().unwrap(), t0),
        Hold::QueuedSendRequest
    ));
    let arp_due = (t0 + ARP_RETRY).max(t0 + SWEEP_INTERVAL);
    assert_eq!(l2.poll_timeout(), Some(arp_due), "only ARP has a timer yet");

    let local = SocketAddr::new(SELF_S.into(), 40_000);
    let remote = SocketAddr::new(MEMBER.into(), 80);
    l2.tcp_mut()
        .connect(t0, local, remote, ProfileId::DEFAULT)
        .expect("connect");
    let sent = poll(&mut l2, t0);
    assert!(
        sent.iter()
            .any(|(port, p)| *port == 1 && is_syn_to(p.data(), MEMBER)),
        "the SYN left on the server port"
    );

    // The SYN's retransmission (initial RTO 1 s, rounded up to the wheel's tick) comes
    // before the ARP retry (2 s): it is the wake-up time.
    let rto = l2.poll_timeout().expect("a deadline");
    assert!(
        rto >= t0 + Duration::from_secs(1) && rto < t0 + Duration::from_millis(1_100),
        "{rto:?}"
    );
    assert!(rto < arp_due);
    assert_eq!(Some(rto), l2.host.tcp_mut().poll_timeout());

    // Nothing happens just before it; the SYN is sent again at it.
    let early = poll(&mut l2, Instant::from_nanos(rto.as_nanos() - 1_000_000));
    assert!(!early.iter().any(|(_, p)| is_syn_to(p.data(), MEMBER)));
    let at = poll(&mut l2, rto);
    assert!(
        at.iter().any(|(_, p)| is_syn_to(p.data(), MEMBER)),
        "the retransmission is due at the folded deadline"
    );

    // The next retransmission backs off past the ARP retry, which becomes the earliest.
    assert!(l2
        .host
        .tcp_mut()
        .poll_timeout()
        .is_some_and(|t| t > arp_due));
    assert_eq!(l2.poll_timeout(), Some(arp_due));
}

/// Every received frame is counted on its port by verdict, with its bytes.
#[test]
fn frames_are_counted_per_port_by_verdict() {
    let (mut l2, _bus, pool) = pipeline(0);
    let t0 = Instant::from_secs(1);
    // An ARP request for the client-side self IP on port 0: answered.
    let mut req = pool.alloc().unwrap();
    req.set_len(60);
    let d = req.data_mut();
    d.fill(0);
    let hl = eth::emit_header(
        d,
        MacAddr::BROADCAST,
        MacAddr::local(7),
        None,
        eth::ETHERTYPE_ARP,
    );
    ArpRepr {
        op: Operation::Request,
        sender_mac: MacAddr::local(7),
        sender_ip: Ipv4Addr::new(198, 18, 1, 2),
        target_mac: MacAddr::ZERO,
        target_ip: Ipv4Addr::new(198, 18, 1, 1),
    }
    .emit(&mut d[hl..]);
    req.meta.port = 0;
    assert_eq!(l2.process(t0, req, &mut |_, _| {}), Verdict::Answered);
    // Garbage on port 1: dropped.
    let mut junk = pool.alloc_from(&[0u8; 20]).unwrap();
    junk.meta.port = 1;
    assert!(matches!(
        l2.process(t0, junk, &mut |_, _| {}),
        Verdict::Dropped(_)
    ));
    let c = l2.counters();
    assert_eq!(c.by_port[0].packets[1].get(), 1, "answered on port 0");
    assert_eq!(c.by_port[0].bytes[1].get(), 60);
    assert_eq!(c.by_port[1].packets[4].get(), 1, "dropped on port 1");
    assert_eq!(c.by_port[1].bytes[4].get(), 20);
    assert_eq!(c.by_port[0].packets[4].get(), 0);
}
