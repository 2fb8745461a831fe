//! AF_XDP driver against the real kernel: each test builds its own network namespace
//! (`rgx-<pid>-<n>`) holding a veth pair `va`/`vb`, and removes it when done, also on
//! failure. Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW); without it the tests say
//! so and pass without checking anything. On veth, AF_XDP runs in copy mode.

use std::process::Command;
use std::time::{Duration, Instant};

use rouge_drivers::afpacket::{AfPacketConfig, AfPacketPort};
use rouge_drivers::afxdp::{AfXdpConfig, AfXdpPort, AttachMode, BindMode};
use rouge_drivers::{Burst, MacAddr, PacketPool, Port, PortDrop};

mod common;
use common::*;

const MAC_A: MacAddr = MacAddr([0x02, 0x52, 0x58, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x02, 0x52, 0x58, 0, 0, 0x0b]);
fn frames_cross_intact_both_ways(attach: AttachMode) {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ip(&["-n", &ns.name, "link", "set", "vb", "mtu", "1400"]);
    ns.run(|| {
        let cfg = AfXdpConfig {
            attach,
            ..AfXdpConfig::default()
        };
        let mut a = AfXdpPort::open("va", &cfg).expect("open va");
        let mut b = AfXdpPort::open("vb", &cfg).expect("open vb");
        assert_eq!(a.program().native(), attach != AttachMode::Generic);
        assert!(
            !a.zero_copy(),
            "veth offers no zero-copy: auto falls back to copy"
        );
        assert_eq!((a.mac(), b.mac()), (MAC_A, MAC_B));
        assert_eq!((a.mtu(), b.mtu()), (1500, 1400));
        assert!(a.raw_fd().is_some());
        assert_eq!(a.queue(), 0);
        let pool = PacketPool::new(256);

        // 42 frames of many sizes (60 to a full 1514), in bursts of 32 and 10.
        let sizes = |i: u32| 60 + (i as usize * 97) % (1514 - 60 + 1);
        let sent: Vec<Vec<u8>> = (0..42)
            .map(|i| test_frame(MAC_B, MAC_A, i, sizes(i)))
            .collect();
        assert_eq!(send(&mut a, &pool, &sent[..32]), 32);
        assert_eq!(send(&mut a, &pool, &sent[32..]), 10);
        let (got, bursts) = recv(&mut b, &pool, 42, Duration::from_secs(5));
        assert_eq!(got.len(), 42, "all frames arrive");
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert!(
                g == s,
                "frame {i} differs: {} vs {} bytes",
                g.len(),
                s.len()
            );
        }
        let bytes: usize = sent.iter().map(Vec::len).sum();
        assert!(bursts.iter().all(|&n| (1..=32).contains(&n)), "{bursts:?}");
        assert_eq!(a.counters().tx_packets.get(), 42);
        assert_eq!(a.counters().tx_bytes.get(), bytes as u64);
        assert_eq!(b.counters().rx_packets.get(), 42);
        assert_eq!(b.counters().rx_bytes.get(), bytes as u64);
        assert_eq!(b.counters().rx_bursts.get(), bursts.len() as u64);

        // The other way, several rounds so UMEM frames are recycled many times over
        // (the rings are 2048 deep: 3000 frames go round both the fill and TX rings).
        for round in 0..100u32 {
            let frames: Vec<_> = (0..30)
                .map(|i| test_frame(MAC_A, MAC_B, round * 100 + i, 60 + (i as usize * 47) % 1300))
                .collect();
            assert_eq!(send(&mut b, &pool, &frames), 30);
            let (got, _) = recv(&mut a, &pool, 30, Duration::from_secs(5));
            assert!(
                got == frames,
                "round {round}: B's frames reach A intact and in order"
            );
        }
        // A never receives its own transmissions.
        let (own, _) = recv(&mut b, &pool, 1, Duration::from_millis(50));
        assert!(own.is_empty(), "{} frames came back", own.len());

        // Larger than MTU + Ethernet header (+ a tag if tagged): dropped and counted,
        // the rest of the burst still leaves.
        assert_eq!(b.max_tx_len(), 1400 + 18);
        let too_big = test_frame(MAC_A, MAC_B, 2000, 1415);
        let fits = test_frame(MAC_A, MAC_B, 2001, 1414);
        assert_eq!(send(&mut b, &pool, &[too_big, fits.clone()]), 1);
        assert_eq!(b.counters().dropped(PortDrop::TxTooBig), 1);
        let (got, _) = recv(&mut a, &pool, 1, Duration::from_secs(2));
        assert!(got == vec![fits]);
        let st = b.poll_kernel_stats();
        assert_eq!(st.tx_invalid_descs, 0, "{st:?}");
        assert_eq!(a.poll_kernel_stats().rx_ring_full, 0);
        assert_eq!(a.tx_kick_errors() + b.tx_kick_errors(), 0);
        assert_eq!(a.rx_invalid() + b.rx_invalid(), 0);
        assert_eq!(pool.available(), 256, "every packet went back to the pool");
    });
}

#[test]
fn frames_cross_intact_both_ways_natively() {
    frames_cross_intact_both_ways(AttachMode::Auto);
}

#[test]
fn frames_cross_intact_both_ways_in_generic_mode() {
    frames_cross_intact_both_ways(AttachMode::Generic);
}

#[test]
fn need_wakeup_decides_the_kicks_and_frames_flow_either_way() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        for need_wakeup in [true, false] {
            let cfg = AfXdpConfig {
                need_wakeup,
                ..AfXdpConfig::default()
            };
            let mut a = AfXdpPort::open("va", &cfg).expect("open va");
            let mut b = AfXdpPort::open("vb", &cfg).expect("open vb");
            let pool = PacketPool::new(64);
            for round in 0..20u32 {
                let frames: Vec<_> = (0..16)
                    .map(|i| test_frame(MAC_B, MAC_A, round * 16 + i, 128))
                    .collect();
                assert_eq!(send(&mut a, &pool, &frames), 16);
                let (got, _) = recv(&mut b, &pool, 16, Duration::from_secs(5));
                assert!(got == frames, "need_wakeup {need_wakeup}, round {round}");
            }
            // Copy mode always flags the TX ring (the kernel sends from inside
            // sendto), so both settings kick once per burst; nothing else needs one.
            assert_eq!(a.tx_kicks(), 20, "need_wakeup {need_wakeup}");
            assert_eq!(a.tx_kick_errors(), 0);
            assert_eq!(a.tx_pending(), 0, "the kernel consumed every descriptor");
            // An empty burst with nothing pending makes no system call.
            assert_eq!(send(&mut a, &pool, &[]), 0);
            assert_eq!(a.tx_kicks(), 20);
            assert_eq!(b.fill_wakeups(), 0, "copy mode never asks to refill");
            drop((a, b));
            assert!(!ns_has_xdp_here("va"), "the program goes with the ports");
        }
    });
}

/// `ip -d link show` from inside the current namespace (the test thread's).
fn ns_has_xdp_here(dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-d", "link", "show", "dev", dev])
        .output()
        .expect("run ip(8)");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn a_full_receive_ring_is_counted_and_does_not_stall() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        let mut a = AfXdpPort::open("va", &AfXdpConfig::default()).unwrap();
        let small = AfXdpConfig {
            rx_frames: 64,
            stats_interval: 1_000_000,
            ..AfXdpConfig::default()
        };
        let mut b = AfXdpPort::open("vb", &small).unwrap();
        let pool = PacketPool::new(64);
        // 192 frames: fewer than veth's own 256-frame queue, so even if the peer's
        // NAPI runs late, every drop is the socket's.
        let mut sent = 0;
        for burst in 0..6u32 {
            let frames: Vec<_> = (0..32)
                .map(|i| test_frame(MAC_B, MAC_A, burst * 32 + i, 200))
                .collect();
            sent += send(&mut a, &pool, &frames);
        }
        assert_eq!(sent, 192);
        std::thread::sleep(Duration::from_millis(50));
        let (got, _) = recv(&mut b, &pool, 192, Duration::from_millis(200));
        assert_eq!(got.len(), 64, "the ring holds 64 frames");
        // Not read yet: the interval is far away.
        assert_eq!(b.counters().dropped(PortDrop::RxRingFull), 0);
        let st = b.poll_kernel_stats();
        eprintln!("kernel statistics after the overflow: {st:?}");
        assert_eq!(
            b.counters().dropped(PortDrop::RxRingFull),
            192 - 64,
            "{st:?}"
        );
        b.poll_kernel_stats();
        assert_eq!(
            b.counters().dropped(PortDrop::RxRingFull),
            192 - 64,
            "cumulative figures are counted once"
        );
        // The frames went back on the fill ring: new frames arrive.
        let more: Vec<_> = (0..32)
            .map(|i| test_frame(MAC_B, MAC_A, 1000 + i, 200))
            .collect();
        assert_eq!(send(&mut a, &pool, &more), 32);
        let (got, _) = recv(&mut b, &pool, 32, Duration::from_secs(2));
        assert!(got == more);
    });
}

#[test]
fn a_worker_holding_every_frame_makes_the_kernel_drop_and_counts_then_recovers() {
    // Received frames are UMEM frames lent to the worker (no copy): while it holds them
    // all, the fill ring cannot be topped up and the kernel drops what arrives; once
    // they are dropped they come back and frames flow again.
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        let mut a = AfXdpPort::open("va", &AfXdpConfig::default()).unwrap();
        let small = AfXdpConfig {
            rx_frames: 64,
            tx_frames: 64,
            ..AfXdpConfig::default()
        };
        let mut b = AfXdpPort::open("vb", &small).unwrap();
        let tx_pool = PacketPool::new(64);
        let pool = PacketPool::new(8);
        // b's share: 64 frames on its fill ring and 64 spares for the pool.
        assert_eq!(b.pool_frames_free(&pool), 64);
        let mut held = Vec::new();
        for round in 0..4u32 {
            let frames: Vec<_> = (0..32)
                .map(|i| test_frame(MAC_B, MAC_A, round * 32 + i, 100))
                .collect();
            assert_eq!(send(&mut a, &tx_pool, &frames), 32);
            let end = Instant::now() + Duration::from_secs(2);
            let mut got = 0;
            while got < 32 && Instant::now() < end {
                let mut out = Burst::new();
                got += b.rx_burst(&pool, &mut out);
                held.extend(out.drain(..));
                b.wait_rx(Duration::from_millis(5));
            }
            assert_eq!(got, 32, "round {round}");
        }
        assert_eq!(
            held.len(),
            128,
            "every frame of b's share is in the worker's hands"
        );
        assert_eq!(pool.available(), 8, "received frames take no pool buffer");
        assert_eq!(b.pool_frames_free(&pool), 0);
        assert!(b.fill_short() > 0, "the fill ring could not be topped up");
        // Nothing to receive into: the kernel drops and says so.
        let lost: Vec<_> = (0..16)
            .map(|i| test_frame(MAC_B, MAC_A, 500 + i, 100))
            .collect();
        assert_eq!(send(&mut a, &tx_pool, &lost), 16);
        std::thread::sleep(Duration::from_millis(20));
        let mut out = Burst::new();
        assert_eq!(b.rx_burst(&pool, &mut out), 0);
        let st = b.poll_kernel_stats();
        assert!(
            st.rx_dropped + st.rx_fill_ring_empty_descs > 0,
            "the kernel counted its drops: {st:?}"
        );
        assert!(b.counters().dropped(PortDrop::RxRingFull) >= 16);
        // The worker lets go: the frames return, the fill ring fills, frames flow, many
        // times over b's share, so a frame lost on any path would show.
        let intact = held
            .iter()
            .enumerate()
            .all(|(i, p)| p.data() == &test_frame(MAC_B, MAC_A, i as u32, 100)[..]);
        assert!(intact, "held frames kept their bytes");
        drop(held);
        assert_eq!(b.pool_frames_free(&pool), 128);
        // The worker's next receive call refills the fill ring (it polls before frames
        // come; here, before they are sent).
        assert_eq!(b.rx_burst(&pool, &mut out), 0);
        assert_eq!(
            b.pool_frames_free(&pool),
            64,
            "64 frames went to the fill ring"
        );
        for round in 0..40u32 {
            let frames: Vec<_> = (0..32)
                .map(|i| test_frame(MAC_B, MAC_A, 1000 + round * 32 + i, 100))
                .collect();
            assert_eq!(send(&mut a, &tx_pool, &frames), 32);
            let (got, _) = recv(&mut b, &pool, 32, Duration::from_secs(2));
            assert!(
                got == frames,
                "round {round}: {} frames, first {:?}",
                got.len(),
                got.first().map(|f| &f[..24])
            );
        }
        assert_eq!(b.rx_invalid(), 0);
    });
}

#[test]
fn a_frame_forwarded_between_ports_of_one_group_is_sent_in_place() {
    // va and vb opened as a group share one UMEM: a frame received on vb and sent out
    // of va (arriving at vb again, the veth's other end) leaves from the very frame it
    // arrived in, with the pipeline's changes, and no frame is lost on the way.
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        let cfg = AfXdpConfig {
            rx_frames: 256,
            tx_frames: 256,
            ..AfXdpConfig::default()
        };
        let mut group = AfXdpPort::open_group(&["va", "vb"], 1, &cfg).expect("open va+vb");
        let mut b = group.pop().unwrap().remove(0);
        let mut a = group.pop().unwrap().remove(0);
        assert_eq!((a.name(), b.name()), ("va", "vb"));
        let pool = PacketPool::new(64);
        assert_eq!(a.pool_frames_free(&pool), 256);
        let spares = b.pool_frames_free(&pool);
        assert_eq!(
            spares, 512,
            "both sockets' spares went to the one pool region"
        );
        let first: Vec<_> = (0..32)
            .map(|i| test_frame(MAC_B, MAC_A, i, 60 + i as usize * 40))
            .collect();
        assert_eq!(send(&mut a, &pool, &first), 32);
        // 100 trips: received on vb, a byte changed, sent in place from va.
        let mut expect = first.clone();
        for trip in 0..100u32 {
            let end = Instant::now() + Duration::from_secs(2);
            let mut burst = Burst::new();
            while burst.len() < 32 && Instant::now() < end {
                // A worker polls every port: va's receive call gives the pool back the
                // frames va's sends completed.
                let mut none = Burst::new();
                assert_eq!(a.rx_burst(&pool, &mut none), 0);
                b.rx_burst(&pool, &mut burst);
                b.wait_rx(Duration::from_millis(5));
            }
            let got: Vec<_> = burst.iter().map(|p| p.data().to_vec()).collect();
            assert!(
                got == expect,
                "trip {trip}: {} of {} frames intact and in order",
                got.len(),
                expect.len()
            );
            for (p, e) in burst.iter_mut().zip(expect.iter_mut()) {
                p.data_mut()[20] = trip as u8;
                e[20] = trip as u8;
            }
            assert_eq!(a.tx_burst(&mut burst), 32);
        }
        assert_eq!(
            a.counters().tx_in_place.get(),
            100 * 32,
            "every forward was in place"
        );
        assert_eq!(
            pool.available(),
            64,
            "no pool buffer was needed after the first send"
        );
        let (last, _) = recv(&mut b, &pool, 32, Duration::from_secs(2));
        assert!(last == expect);
        // Every frame is back: the spares in the pool once the kernel completed the
        // last sends (reaped at the next receive call).
        let end = Instant::now() + Duration::from_secs(2);
        while a.pool_frames_free(&pool) < spares && Instant::now() < end {
            let mut out = Burst::new();
            a.rx_burst(&pool, &mut out);
            b.rx_burst(&pool, &mut out);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(a.pool_frames_free(&pool), spares, "no frame lost");
        assert_eq!(a.poll_kernel_stats().tx_invalid_descs, 0);
        assert_eq!(b.poll_kernel_stats().rx_dropped, 0);
    });
}

#[test]
fn several_queues_each_receive_their_own_frames() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 2, MAC_A, MAC_B);
    ns.run(|| {
        let cfg = AfXdpConfig {
            rx_frames: 256,
            tx_frames: 256,
            ..AfXdpConfig::default()
        };
        let mut a = AfXdpPort::open_queues("va", 2, &cfg).expect("open va queues");
        let mut b = AfXdpPort::open_queues("vb", 2, &cfg).expect("open vb queues");
        assert_eq!((a[1].queue(), b[1].queue()), (1, 1));
        assert!(std::sync::Arc::ptr_eq(a[0].program(), a[1].program()));
        assert_eq!(a[0].program().queues(), 2);
        let pool = PacketPool::new(64);
        // veth delivers a frame sent on TX queue i to the peer's RX queue i.
        for q in [0usize, 1, 1, 0] {
            let frames: Vec<_> = (0..8)
                .map(|i| test_frame(MAC_A, MAC_B, (q as u32) << 8 | i, 90))
                .collect();
            assert_eq!(send(&mut b[q], &pool, &frames), 8);
            let (got, _) = recv(&mut a[q], &pool, 8, Duration::from_secs(2));
            assert!(got == frames, "queue {q}");
            let (other, _) = recv(&mut a[1 - q], &pool, 1, Duration::from_millis(30));
            assert!(other.is_empty(), "queue {}: got queue {q}'s frames", 1 - q);
        }
        // The program stays while any port of the interface is open.
        let last = a.pop().unwrap();
        drop(a);
        assert!(ns_has_xdp_here("va"));
        drop(last);
        assert!(!ns_has_xdp_here("va"));
    });
}

#[test]
fn frames_on_a_queue_without_a_socket_pass_to_the_kernel() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 2, MAC_A, MAC_B);
    ns.run(|| {
        let cfg = AfXdpConfig {
            rx_frames: 256,
            tx_frames: 256,
            ..AfXdpConfig::default()
        };
        // Rouge takes queue 0 of va only; an AF_PACKET tap sees what the kernel gets.
        let mut xsk = AfXdpPort::open("va", &cfg).expect("open va queue 0");
        let mut tap = AfPacketPort::open("va", &AfPacketConfig::default()).expect("tap va");
        let mut b = AfXdpPort::open_queues("vb", 2, &cfg).expect("open vb queues");
        let pool = PacketPool::new(64);
        let to_q0 = vec![test_frame(MAC_A, MAC_B, 1, 100)];
        let to_q1 = vec![test_frame(MAC_A, MAC_B, 2, 100)];
        assert_eq!(send(&mut b[0], &pool, &to_q0), 1);
        assert_eq!(send(&mut b[1], &pool, &to_q1), 1);
        let (got, _) = recv(&mut xsk, &pool, 2, Duration::from_millis(300));
        assert!(
            got == to_q0,
            "queue 0's frame is redirected to the socket only"
        );
        let (passed, _) = recv(&mut tap, &pool, 2, Duration::from_millis(300));
        assert!(passed == to_q1, "queue 1's frame reaches the kernel");
    });
}

#[test]
fn the_program_is_detached_when_the_port_is_dropped() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    assert!(!ns.has_xdp("va"));
    let port = ns.run(|| AfXdpPort::open("va", &AfXdpConfig::default()).expect("open va"));
    assert!(ns.has_xdp("va"), "attached while the port lives");
    assert!(port.program().native(), "veth runs the program natively");
    // A second program on the same interface is refused with a hint.
    let e = ns
        .run(|| AfXdpPort::open("va", &AfXdpConfig::default()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("BPF_LINK_CREATE"), "{e}");
    drop(port);
    assert!(!ns.has_xdp("va"), "detached with the last port");
    // Generic mode works too and goes the same way.
    let generic = AfXdpConfig {
        attach: AttachMode::Generic,
        bind: BindMode::Copy,
        ..AfXdpConfig::default()
    };
    let port = ns.run(|| AfXdpPort::open("va", &generic).expect("open va generic"));
    assert!(!port.program().native());
    assert!(ns.has_xdp("va"));
    drop(port);
    assert!(!ns.has_xdp("va"));
    // Zero-copy on veth is refused with the driver's answer, not silently copied.
    let zc = AfXdpConfig {
        bind: BindMode::ZeroCopy,
        ..AfXdpConfig::default()
    };
    let e = ns
        .run(|| AfXdpPort::open("va", &zc))
        .unwrap_err()
        .to_string();
    assert!(e.contains("XDP_ZEROCOPY"), "{e}");
    assert!(!ns.has_xdp("va"), "a failed open leaves nothing attached");
}

#[test]
fn a_full_tx_ring_drops_and_counts_then_recovers() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        let tiny = AfXdpConfig {
            tx_frames: 8,
            ..AfXdpConfig::default()
        };
        let mut a = AfXdpPort::open("va", &tiny).unwrap();
        let mut b = AfXdpPort::open("vb", &AfXdpConfig::default()).unwrap();
        let pool = PacketPool::new(64);
        for round in 0..50u32 {
            let frames: Vec<_> = (0..32)
                .map(|i| test_frame(MAC_B, MAC_A, round * 32 + i, 300))
                .collect();
            // Eight TX frames: the first eight leave, the rest are counted.
            assert_eq!(send(&mut a, &pool, &frames), 8, "round {round}");
            let (got, _) = recv(&mut b, &pool, 8, Duration::from_secs(2));
            assert!(got == frames[..8], "round {round}");
        }
        assert_eq!(a.counters().dropped(PortDrop::TxRingFull), 50 * 24);
        assert_eq!(a.counters().tx_packets.get(), 50 * 8);
    });
}

#[test]
fn frames_left_in_the_tx_ring_by_a_failed_kick_are_sent_later() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        let mut a = AfXdpPort::open("va", &AfXdpConfig::default()).unwrap();
        let mut b = AfXdpPort::open("vb", &AfXdpConfig::default()).unwrap();
        let pool = PacketPool::new(64);
        let link = |state: &str| {
            let ok = Command::new("ip")
                .args(["link", "set", "va", state])
                .status()
                .expect("run ip(8)")
                .success();
            assert!(ok, "ip link set va {state}");
        };
        // With va down the kernel refuses the kick (ENETDOWN): the frames stay queued.
        link("down");
        let frames: Vec<_> = (0..5).map(|i| test_frame(MAC_B, MAC_A, i, 200)).collect();
        assert_eq!(send(&mut a, &pool, &frames), 5);
        assert_eq!(a.tx_pending(), 5, "queued, not sent");
        assert_eq!(a.tx_kick_errors(), 0, "a down link is a retryable kick");
        link("up");
        // The next burst kicks again although it queues nothing.
        let kicks = a.tx_kicks();
        assert_eq!(send(&mut a, &pool, &[]), 0);
        assert!(a.tx_kicks() > kicks, "the empty burst kicked");
        let (got, _) = recv(&mut b, &pool, 5, Duration::from_secs(3));
        assert!(got == frames, "{} of 5 queued frames arrived", got.len());
        assert_eq!(a.tx_pending(), 0);
    });
}

#[test]
fn an_mtu_larger_than_a_frame_is_refused_with_the_fix() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    for dev in ["va", "vb"] {
        ip(&["-n", &ns.name, "link", "set", dev, "mtu", "3000"]);
    }
    ns.run(|| {
        let e = AfXdpPort::open("va", &AfXdpConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("MTU 3000") && e.contains("use frame_size 4096"),
            "{e}"
        );
        assert!(!ns_has_xdp_here("va"), "nothing attached");
        let big = AfXdpConfig {
            frame_size: 4096,
            ..AfXdpConfig::default()
        };
        let mut a = AfXdpPort::open("va", &big).unwrap();
        let mut b = AfXdpPort::open("vb", &big).unwrap();
        let pool = PacketPool::new(8);
        // The largest frame a pool buffer holds crosses intact.
        let f = vec![test_frame(MAC_B, MAC_A, 7, rouge_drivers::buf::MAX_FRAME)];
        assert_eq!(send(&mut a, &pool, &f), 1);
        let (got, _) = recv(&mut b, &pool, 1, Duration::from_secs(2));
        assert!(got == f);
    });
}

/// Time spent in `rx_burst` per frame for `port`, over `rounds` bursts of 32 frames of
/// `len` bytes sent by `tx` (only calls that returned frames are timed), and the wall
/// time per frame of the whole loop (send, kernel, receive).
fn rx_ns_per_frame<T: Port, R: Port>(
    tx: &mut T,
    rx: &mut R,
    len: usize,
    rounds: u32,
) -> (f64, f64) {
    let pool = PacketPool::new(256);
    let start = Instant::now();
    let frames: Vec<_> = (0..32).map(|i| test_frame(MAC_B, MAC_A, i, len)).collect();
    let (mut spent, mut got) = (Duration::ZERO, 0usize);
    for _ in 0..rounds {
        assert_eq!(send(tx, &pool, &frames), 32);
        let mut n = 0;
        let end = Instant::now() + Duration::from_secs(2);
        while n < 32 && Instant::now() < end {
            let mut out = Burst::new();
            let t = Instant::now();
            let k = rx.rx_burst(&pool, &mut out);
            if k > 0 {
                spent += t.elapsed();
            }
            n += k;
        }
        got += n;
    }
    (
        spent.as_nanos() as f64 / got as f64,
        start.elapsed().as_nanos() as f64 / got as f64,
    )
}

/// The copy `rx_burst` makes, alone: from a UMEM-like 8 MiB area whose frames were
/// just written (as the kernel's copy-mode receive leaves them), into pool buffers.
fn copy_ns_per_frame(len: usize, rounds: u32) -> f64 {
    let pool = PacketPool::new(256);
    let mut umem = vec![0u8; 8 << 20];
    let frames = umem.len() / 2048;
    let mut slot = 0;
    let mut spent = Duration::ZERO;
    for r in 0..rounds {
        let first = slot;
        for i in 0..32 {
            let off = ((first + i) % frames) * 2048 + 256;
            umem[off..off + len].fill(r as u8 ^ i as u8);
        }
        slot = (slot + 32) % frames;
        let mut out = Burst::new();
        let t = Instant::now();
        for i in 0..32 {
            let off = ((first + i) % frames) * 2048 + 256;
            let mut p = pool.alloc().expect("pool");
            p.set_len(len);
            p.data_mut().copy_from_slice(&umem[off..off + len]);
            out.push(p);
        }
        spent += t.elapsed();
        std::hint::black_box(&out);
    }
    spent.as_nanos() as f64 / (rounds as f64 * 32.0)
}

/// Measures what receiving costs per frame (AF_XDP lends its UMEM frames, AF_PACKET
/// copies out of its ring), beside what a copy of the frame into a pool buffer alone
/// costs. Prints figures; asserts nothing about them.
/// `cargo test -p rouge-drivers --release --test afxdp -- --ignored --nocapture receive_copy_cost`
#[test]
#[ignore = "measurement, prints figures"]
fn receive_copy_cost() {
    if !root() {
        return;
    }
    let ns = TestNs::new("rgx", 1, MAC_A, MAC_B);
    ns.run(|| {
        let rounds = 3000;
        for len in [64usize, 1514] {
            let (xdp, pkt, copy) = {
                let mut a = AfXdpPort::open("va", &AfXdpConfig::default()).unwrap();
                let mut b = AfXdpPort::open("vb", &AfXdpConfig::default()).unwrap();
                rx_ns_per_frame(&mut a, &mut b, len, 200);
                let xdp = rx_ns_per_frame(&mut a, &mut b, len, rounds);
                drop((a, b));
                let mut a = AfPacketPort::open("va", &AfPacketConfig::default()).unwrap();
                let mut b = AfPacketPort::open("vb", &AfPacketConfig::default()).unwrap();
                rx_ns_per_frame(&mut a, &mut b, len, 200);
                let pkt = rx_ns_per_frame(&mut a, &mut b, len, rounds);
                copy_ns_per_frame(len, 200);
                (xdp, pkt, copy_ns_per_frame(len, rounds))
            };
            println!(
                "{len:>5} B frames: AF_XDP rx_burst {:.1} ns/frame (a copy into a pool buffer alone: {copy:.1} ns; send+kernel+receive {:.0} ns/frame), AF_PACKET rx_burst {:.1} ns/frame (send+kernel+receive {:.0} ns/frame)",
                xdp.0, xdp.1, pkt.0, pkt.1
            );
        }
    });
}
