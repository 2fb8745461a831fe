//! DPDK port (feature `dpdk`) over virtual devices, without hugepages or PCI. The EAL
//! is process-global and initialises once, so every DPDK test lives in this one test
//! binary, shares one EAL and runs under one lock. Each test probes its own `net_ring`
//! device (a ring whose transmit side feeds its own receive side) so none depends on
//! another's leftovers. Needs no root for `net_ring`; the `net_af_packet` test needs
//! root for its namespace and says so when skipped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rouge_dpdk::{DpdkConfig, DpdkError, DpdkPort, Eal};
use rouge_drivers::{Burst, MacAddr, PacketPool, Port, PortDrop};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

const EAL_ARGS: &[&str] = &[
    "--no-huge",
    "-m",
    "128",
    "--no-pci",
    "--no-shconf",
    "--no-telemetry",
    "-l",
    "0",
    "--log-level",
    "5",
];

/// The process's EAL, initialised on first use, and the lock that serialises tests.
fn eal() -> (Eal, MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    static EAL: OnceLock<Eal> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let eal = *EAL.get_or_init(|| Eal::init(EAL_ARGS).expect("EAL init without hugepages"));
    (eal, guard)
}

/// Probes a fresh `net_ring` device and opens a port on it.
fn ring_port(eal: Eal, config: &DpdkConfig) -> DpdkPort {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!("net_ring{}", SEQ.fetch_add(1, Ordering::Relaxed));
    eal.probe(&name).expect("probe net_ring");
    DpdkPort::open(eal, &name, config).expect("open net_ring port")
}

/// A broadcast test frame from a locally administered address derived from `seq`.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    test_frame(MacAddr::BROADCAST, MacAddr::local(seq), seq, len)
}

#[test]
fn a_second_eal_init_is_refused() {
    let (_eal, _lock) = eal();
    assert!(matches!(
        Eal::init(EAL_ARGS),
        Err(DpdkError::AlreadyInitialised)
    ));
    assert!(Eal::get().is_some());
}

#[test]
fn worker_threads_become_lcores() {
    let (eal, _lock) = eal();
    let ids: Vec<u32> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let id = eal.register_thread().expect("register");
                assert_eq!(
                    eal.register_thread().unwrap(),
                    id,
                    "registering twice is harmless"
                );
                id
            })
            .join()
            .unwrap()
        })
        .collect();
    // The main lcore is 0 (`-l 0`); registered threads get others.
    assert!(ids.iter().all(|&id| id != 0 && id != u32::MAX), "{ids:?}");
}

#[test]
fn frames_loop_back_intact_over_net_ring() {
    let (eal, _lock) = eal();
    let mut port = ring_port(eal, &DpdkConfig::default());
    assert_eq!(port.mtu(), 1500);
    assert_eq!(port.max_tx_len(), 1518);
    let pool = PacketPool::new(128);
    let sizes = |i: u32| 60 + (i as usize * 97) % (1514 - 60 + 1);
    let sent: Vec<_> = (0..42).map(|i| frame(i, sizes(i))).collect();
    assert_eq!(send(&mut port, &pool, &sent[..32]), 32);
    assert_eq!(send(&mut port, &pool, &sent[32..]), 10);
    let got = recv(&mut port, &pool, 42, Duration::from_secs(2)).0;
    assert_eq!(got.len(), 42);
    assert!(got == sent, "frames come back intact and in order");
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    let c = port.counters();
    assert_eq!((c.tx_packets.get(), c.tx_bytes.get()), (42, bytes));
    assert_eq!((c.rx_packets.get(), c.rx_bytes.get()), (42, bytes));
    let st = port.poll_stats();
    assert_eq!((st.opackets, st.ipackets), (42, 42), "{st:?}");
    // Too big (MTU + 18 for untagged frames is 4 bytes too many) and too short frames
    // are dropped and counted; the rest of the burst goes.
    let burst = [frame(100, 1515), vec![0; 10], frame(101, 1514)];
    assert_eq!(send(&mut port, &pool, &burst), 1);
    assert_eq!(port.counters().dropped(PortDrop::TxTooBig), 1);
    assert_eq!(port.counters().dropped(PortDrop::TxError), 1);
    assert_eq!(
        recv(&mut port, &pool, 1, Duration::from_secs(2)).0,
        vec![frame(101, 1514)]
    );
    assert_eq!(pool.available(), 128, "every packet went back to the pool");
    // Many rounds cycle every mbuf of the port's pool several times: a leak shows.
    let before = port.mbufs_available();
    for round in 0..400u32 {
        let frames: Vec<_> = (0..32).map(|i| frame(round * 32 + i, 64)).collect();
        assert_eq!(send(&mut port, &pool, &frames), 32);
        assert!(recv(&mut port, &pool, 32, Duration::from_secs(2)).0 == frames);
    }
    assert_eq!(port.mbufs_available(), before, "no mbuf leaked");
}

#[test]
fn an_empty_pool_drops_and_counts_instead_of_stalling() {
    let (eal, _lock) = eal();
    let mut port = ring_port(eal, &DpdkConfig::default());
    let pool = PacketPool::new(32);
    let frames: Vec<_> = (0..10).map(|i| frame(i, 100)).collect();
    assert_eq!(send(&mut port, &pool, &frames), 10);
    let small = PacketPool::new(4);
    let mut out = Burst::new();
    assert_eq!(port.rx_burst(&small, &mut out), 4);
    assert!(out.iter().zip(&frames).all(|(p, f)| p.data() == &f[..]));
    assert_eq!(port.counters().dropped(PortDrop::RxNoBuffer), 6);
    drop(out);
    assert_eq!(send(&mut port, &pool, &frames[..1]), 1);
    assert!(recv(&mut port, &small, 1, Duration::from_secs(2)).0 == frames[..1]);
}

#[test]
fn a_full_device_ring_is_counted_on_transmit() {
    let (eal, _lock) = eal();
    // net_ring's ring holds 1023 frames; nothing receives, so the rest are refused.
    let mut port = ring_port(eal, &DpdkConfig::default());
    let pool = PacketPool::new(64);
    let mut sent = 0;
    for round in 0..40u32 {
        let frames: Vec<_> = (0..32).map(|i| frame(round * 32 + i, 60)).collect();
        sent += send(&mut port, &pool, &frames);
    }
    assert_eq!(sent, 1023);
    assert_eq!(
        port.counters().dropped(PortDrop::TxRingFull),
        40 * 32 - 1023
    );
    assert_eq!(port.counters().tx_packets.get(), 1023);
    let got = recv(&mut port, &pool, 1023, Duration::from_secs(2)).0;
    assert_eq!(got.len(), 1023);
}

#[test]
fn unknown_devices_and_bad_configurations_are_named() {
    let (eal, _lock) = eal();
    let e = DpdkPort::open(eal, "net_nosuch9", &DpdkConfig::default()).unwrap_err();
    assert!(
        e.to_string().starts_with("net_nosuch9: no DPDK port"),
        "{e}"
    );
    let bad = DpdkConfig {
        mbufs: 100,
        ..DpdkConfig::default()
    };
    let e = DpdkPort::open(eal, "net_nosuch9", &bad).unwrap_err();
    assert!(e.to_string().contains("mbufs (100) must exceed"), "{e}");
    let e = eal.probe("net_nosuchdriver0").unwrap_err();
    assert!(e.to_string().contains("rte_dev_probe"), "{e}");
}

#[test]
fn frames_cross_a_veth_through_net_af_packet() {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the net_af_packet test needs root for its namespace");
        return;
    }
    let (eal, _lock) = eal();
    let ns = TestNs::new("rgd", 1, MacAddr::local(0xa), MacAddr::local(0xb));
    // The PMD opens its AF_PACKET socket at probe time, in the probing thread's
    // namespace; the ports' sockets stay there.
    let (mut a, mut b) = ns.run(|| {
        eal.probe("net_af_packet_va,iface=va").expect("probe va");
        eal.probe("net_af_packet_vb,iface=vb").expect("probe vb");
        (
            DpdkPort::open(eal, "net_af_packet_va", &DpdkConfig::default()).expect("open va"),
            DpdkPort::open(eal, "net_af_packet_vb", &DpdkConfig::default()).expect("open vb"),
        )
    });
    let pool = PacketPool::new(64);
    let frames: Vec<_> = (0..20).map(|i| frame(i, 64 + i as usize * 70)).collect();
    assert_eq!(send(&mut a, &pool, &frames), 20);
    let got = recv(&mut b, &pool, 20, Duration::from_secs(3)).0;
    assert!(got == frames, "{} of 20 frames arrived intact", got.len());
    let back = vec![frame(99, 1514)];
    assert_eq!(send(&mut b, &pool, &back), 1);
    assert!(recv(&mut a, &pool, 1, Duration::from_secs(3)).0 == back);
}

/// An IPv4 UDP frame of flow `sport` (so the kernel's flow hash spreads such frames).
fn udp_frame(sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 18];
    f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f[6..12].copy_from_slice(&MacAddr::local(7).0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 1, 2]);
    ip[16..20].copy_from_slice(&[198, 18, 2, 11]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// One device with two queue pairs (`net_af_packet` with `qpairs=2`: two sockets in a
/// kernel fanout group): frames of 64 flows sent to it arrive spread over both queue
/// ports and none is lost, each queue port transmits, and the device stays open until
/// its last port goes.
#[test]
fn a_device_with_two_queue_pairs_gives_a_port_per_queue() {
    if !root() {
        return;
    }
    let (eal, _lock) = eal();
    let ns = TestNs::new("rgd", 1, MacAddr::local(0xa), MacAddr::local(0xb));
    let cfg = DpdkConfig::default();
    let (mut a, mut b) = ns.run(|| {
        eal.probe("net_af_packet_qa,iface=va").expect("probe va");
        eal.probe("net_af_packet_qb,iface=vb,qpairs=2")
            .expect("probe vb");
        (
            DpdkPort::open(eal, "net_af_packet_qa", &cfg).expect("open va"),
            DpdkPort::open_queues(eal, "net_af_packet_qb", 2, &cfg).expect("open vb"),
        )
    });
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].queue(), b[1].queue()), (0, 1));
    assert_eq!(b[0].port_id(), b[1].port_id());
    let pool = PacketPool::new(256);
    let frames: Vec<_> = (0..64).map(|i| udp_frame(40000 + i)).collect();
    assert_eq!(send(&mut a, &pool, &frames[..32]), 32);
    assert_eq!(send(&mut a, &pool, &frames[32..]), 32);
    let end = std::time::Instant::now() + Duration::from_secs(3);
    let mut got = [Vec::new(), Vec::new()];
    while got[0].len() + got[1].len() < 64 && std::time::Instant::now() < end {
        for (q, port) in b.iter_mut().enumerate() {
            let mut out = Burst::new();
            port.rx_burst(&pool, &mut out);
            got[q].extend(out.iter().map(|p| p.data().to_vec()));
        }
    }
    assert_eq!(got[0].len() + got[1].len(), 64, "every frame arrives once");
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "both queues get flows: {} and {}",
        got[0].len(),
        got[1].len()
    );
    let mut all: Vec<_> = got.concat();
    all.sort();
    let mut want = frames.clone();
    want.sort();
    assert!(all == want, "the frames arrive intact");
    // Each queue port transmits; the device outlives the first port dropped.
    let back = b.pop().unwrap();
    let mut q0 = b.pop().unwrap();
    drop(back);
    assert_eq!(send(&mut q0, &pool, &[frame(7, 200)]), 1);
    assert_eq!(
        recv(&mut a, &pool, 1, Duration::from_secs(3)).0,
        vec![frame(7, 200)]
    );
}
