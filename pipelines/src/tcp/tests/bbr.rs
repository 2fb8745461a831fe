//! BBR through the stack, segment by segment on the virtual clock: pacing lets one
//! burst go, then spaces segments by their length at the pacing rate, and the stack's
//! `poll_timeout` says exactly when the next one is due; loss-based algorithms are not
//! paced; fast recovery does not cut BBR's window below what is in flight.

use super::*;

fn bbr_profile(cc: CongestionAlgo) -> TcpProfile {
    TcpProfile {
        congestion: cc,
        send_buffer: 512 * 1024,
        recv_buffer: 64 * 1024,
        initial_cwnd: 100,
        window_scaling: true,
        sack: true,
        ..profile()
    }
}

/// Established with a peer offering 1 MB of window (8000 << 7) and SACK.
fn established_cc(cc: CongestionAlgo) -> (TcpStack, ConnHandle, u32) {
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.wscale = Some(7);
    syn.sack_permitted = true;
    established_with(bbr_profile(cc), syn)
}

fn ns(n: u64) -> Instant {
    Instant::from_nanos(n)
}

fn payload(out: &[Out]) -> usize {
    out.iter().map(|o| o.payload.len()).sum()
}

#[test]
fn pacing_lets_one_burst_go_then_spaces_segments_on_the_clock() {
    let (mut s, h, _iss) = established_cc(CongestionAlgo::Bbr);
    let c = s.connection(h).unwrap();
    let rate = c.cc.pacing_rate().expect("BBR paces");
    let burst = c.cc.pacing_burst();
    let cwnd = c.cc.cwnd();
    // 100 segments of window, a burst of about a millisecond (at most 64 KiB).
    assert!(burst < cwnd && burst >= 2000, "burst {burst}, cwnd {cwnd}");
    s.write(h, &[7u8; 200_000]).unwrap();
    let t0 = 10_000_000u64;
    let first = recv_all(&mut s, ns(t0));
    assert_eq!(payload(&first), burst, "one burst, not the window");
    assert!(s.counters().pacing_waits >= 1);
    // The next segment is due one segment's time later: 1000 bytes at the rate.
    let gap = 1000 * 1_000_000_000 / rate;
    let mut prev = t0;
    let mut sent = payload(&first);
    for i in 0..20 {
        let next = s
            .poll_timeout()
            .expect("the paced segment's time")
            .as_nanos();
        let want = if i == 0 { t0 + gap } else { prev + gap };
        assert!(
            next.abs_diff(want) <= 100,
            "segment {i} due at {next} ns, want {want} ({gap} ns apart)"
        );
        // Not a nanosecond early, exactly one at its time.
        assert!(
            recv_all(&mut s, ns(next - 1)).is_empty(),
            "segment {i} early"
        );
        let out = recv_all(&mut s, ns(next));
        assert_eq!(payload(&out), 1000, "segment {i}");
        sent += 1000;
        prev = next;
    }
    // Over the whole stretch: a burst plus the rate, never more.
    let secs = (prev - t0) as f64 / 1e9;
    assert!(sent as f64 <= burst as f64 + rate as f64 * secs + 1000.0);
    // A sender woken late may catch up by at most one burst.
    let late = prev + 50_000_000;
    let out = recv_all(&mut s, ns(late));
    assert!(
        payload(&out) <= burst,
        "{} after a late wake-up",
        payload(&out)
    );
}

#[test]
fn cubic_is_not_paced() {
    let (mut s, h, _) = established_cc(CongestionAlgo::Cubic);
    assert_eq!(s.connection(h).unwrap().cc.pacing_rate(), None);
    s.write(h, &[7u8; 200_000]).unwrap();
    let out = recv_all(&mut s, t(10));
    assert_eq!(payload(&out), 100_000, "the whole initial window at once");
    assert_eq!(s.counters().pacing_waits, 0);
    // Nothing due before the tail loss probe (two RTTs: the handshake's 1 ms).
    assert!(s.poll_timeout().unwrap() >= t(12));
}

#[test]
fn fast_recovery_keeps_bbr_s_window_at_the_flight() {
    for cc in [CongestionAlgo::Bbr, CongestionAlgo::Cubic] {
        let (mut s, h, iss) = established_cc(cc);
        s.write(h, &[7u8; 30_000]).unwrap();
        // Everything goes (BBR: in bursts, so let the clock run 1 ms).
        let mut n = 0;
        let mut now = 10_000_000;
        while n < 30_000 && now < 12_000_000 {
            n += payload(&recv_all(&mut s, ns(now)));
            now += 10_000;
        }
        assert_eq!(n, 30_000, "{cc:?}");
        let before = s.connection(h).unwrap().cc.cwnd();
        // The first segment is lost; the peer SACKs the next ten, 2 ms after the send.
        let mut a = seg(ACK, PEER_ISS + 1, iss + 1);
        a.sack[0] = (iss + 1001, iss + 11_001);
        a.sack_len = 1;
        send_seg(&mut s, ns(13_000_000), &a, &[]);
        let c = s.connection(h).unwrap();
        assert!(c.recovering(), "{cc:?}");
        let flight = c.flight();
        match cc {
            CongestionAlgo::Bbr => assert!(
                c.cc.cwnd() >= flight && c.cc.cwnd() >= before.min(flight + 10_000),
                "BBR holds the flight: cwnd {} flight {flight}",
                c.cc.cwnd()
            ),
            _ => assert!(c.cc.cwnd() < before, "CUBIC cuts its window"),
        }
        // Either way the lost segment goes again at once.
        let out = recv_all(&mut s, ns(13_000_000));
        assert_eq!(out.first().map(|o| o.repr.seq), Some(iss + 1), "{cc:?}");
        assert_eq!(s.counters().fast_recoveries, 1);
    }
}
