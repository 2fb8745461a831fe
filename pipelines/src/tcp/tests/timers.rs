//! Keepalive and the RTT-driven timers.

use super::*;

#[test]
fn keepalive_probes_idle_connections_and_gives_up() {
    let mut p = profile();
    p.keepalive = Some(Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 2,
    });
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let (mut s, h, iss) = established_with(p, syn);
    recv_nothing!(s, 10_000);
    // A probe: one byte before snd_una, which the peer must acknowledge.
    recv!(s, 10_001, [(ACK, iss, PEER_ISS + 1, 0)]);
    send!(s, 10_002, seg(ACK, PEER_ISS + 1, iss + 1));
    recv_nothing!(s, 20_001);
    recv!(s, 20_002, [(ACK, iss, PEER_ISS + 1, 0)]);
    recv!(s, 21_002, [(ACK, iss, PEER_ISS + 1, 0)]);
    assert!(events(&mut s).is_empty());
    recv!(s, 22_002, [(RSTACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(events(&mut s), vec![Event::Reset(h, ResetReason::TimedOut)]);
    assert_eq!(s.counters().keepalive_probes, 3);
}

#[test]
fn poll_timeout_reports_the_next_timer() {
    let (mut s, h, iss) = established();
    assert_eq!(
        s.poll_timeout(),
        None,
        "idle, no keepalive: nothing to wake for"
    );
    s.write(h, b"x").unwrap();
    recv!(s, 10, [(PSHACK, iss + 1, PEER_ISS + 1, 1)]);
    assert_eq!(s.poll_timeout(), Some(t(210)));
    send!(s, 20, seg(ACK, PEER_ISS + 1, iss + 2));
    recv_nothing!(s, 20);
    // The wheel entry is cancelled lazily or fires harmlessly; nothing is sent.
    recv_nothing!(s, 210);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn idle_timeout_resets_silent_connections_only() {
    let mut p = profile();
    p.idle_timeout = Some(Duration::from_secs(30));
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let (mut s, h, iss) = established_with(p, syn);
    // Traffic at 20 s pushes the deadline to 50 s.
    send!(s, 20_000, seg(PSHACK, PEER_ISS + 1, iss + 1), b"hi");
    recv!(s, 20_000, [(ACK, iss + 1, PEER_ISS + 3, 0)]);
    recv_nothing!(s, 30_001);
    assert!(events(&mut s)
        .iter()
        .all(|e| !matches!(e, Event::Reset(..))));
    recv_nothing!(s, 49_999);
    recv!(s, 50_000, [(RSTACK, iss + 1, PEER_ISS + 3, 0)]);
    assert_eq!(events(&mut s), vec![Event::Reset(h, ResetReason::TimedOut)]);
}
