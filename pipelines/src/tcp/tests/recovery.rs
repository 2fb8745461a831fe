//! Loss recovery: RTO with back-off (RFC 6298), go-back-N, fast retransmit and NewReno
//! partial ACKs (RFC 6582), SACK-based recovery (RFC 6675).

use super::*;

#[test]
fn rto_retransmits_with_exponential_backoff_then_gives_up() {
    let mut p = profile();
    p.max_retries = 3;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    let (mut s, h, iss) = established_with(p, syn);
    s.write(h, &[1u8; 100]).unwrap();
    recv!(s, 10, [(PSHACK, iss + 1, PEER_ISS + 1, 100)]);
    // RTO is 200 ms (the minimum: the handshake measured 1 ms), doubling each time.
    recv_nothing!(s, 209);
    recv!(s, 210, [(PSHACK, iss + 1, PEER_ISS + 1, 100)]);
    recv_nothing!(s, 609);
    recv!(s, 610, [(PSHACK, iss + 1, PEER_ISS + 1, 100)]);
    recv_nothing!(s, 1409);
    recv!(s, 1410, [(PSHACK, iss + 1, PEER_ISS + 1, 100)]);
    assert!(events(&mut s).is_empty());
    recv_nothing!(s, 3009);
    recv!(s, 3010, [(RSTACK, iss + 101, PEER_ISS + 1, 0)]);
    assert_eq!(events(&mut s), vec![Event::Reset(h, ResetReason::TimedOut)]);
    assert_eq!(s.counters().timeouts, 3);
    assert_eq!(s.counters().retransmits, 3);
}

#[test]
fn rto_collapses_the_window_and_goes_back_n() {
    let (mut s, h, iss) = established();
    s.write(h, &[1u8; 5000]).unwrap();
    let out = recv_all(&mut s, t(10));
    assert_eq!(out.len(), 5);
    recv!(s, 210, [(ACK, iss + 1, PEER_ISS + 1, 1000)]);
    assert_eq!(
        s.connection(h).unwrap().cc.cwnd(),
        1000,
        "one segment after a timeout"
    );
    // The first retransmission is acknowledged: slow start resends the next two.
    send!(s, 220, seg(ACK, PEER_ISS + 1, iss + 1001));
    recv!(
        s,
        220,
        [
            (ACK, iss + 1001, PEER_ISS + 1, 1000),
            (ACK, iss + 2001, PEER_ISS + 1, 1000)
        ]
    );
    // An ACK for everything (the originals had arrived after all) ends it.
    send!(s, 230, seg(ACK, PEER_ISS + 1, iss + 5001));
    recv_nothing!(s, 230);
    assert_eq!(s.connection(h).unwrap().outstanding(), 0);
}

#[test]
fn fast_retransmit_and_newreno_partial_acks() {
    let (mut s, h, iss) = established();
    s.write(h, &[1u8; 6000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 6);
    send!(s, 20, seg(ACK, PEER_ISS + 1, iss + 1001));
    recv_nothing!(s, 20);
    // Three duplicate ACKs: the segment at snd_una goes again at once.
    send!(s, 21, seg(ACK, PEER_ISS + 1, iss + 1001));
    send!(s, 22, seg(ACK, PEER_ISS + 1, iss + 1001));
    recv_nothing!(s, 22);
    send!(s, 23, seg(ACK, PEER_ISS + 1, iss + 1001));
    recv!(s, 23, [(ACK, iss + 1001, PEER_ISS + 1, 1000)]);
    assert_eq!(s.counters().fast_recoveries, 1);
    let c = s.connection(h).unwrap();
    // ssthresh = flight / 2 = 2500; cwnd = ssthresh + 3 MSS.
    assert_eq!((c.cc.ssthresh(), c.cc.cwnd()), (2500, 5500));
    // Each further duplicate inflates the window by one MSS: new data may go.
    s.write(h, &[2u8; 1000]).unwrap();
    recv_nothing!(s, 24);
    send!(s, 25, seg(ACK, PEER_ISS + 1, iss + 1001));
    recv!(s, 25, [(PSHACK, iss + 6001, PEER_ISS + 1, 1000)]);
    // A partial ACK: the next hole is resent at once.
    send!(s, 30, seg(ACK, PEER_ISS + 1, iss + 3001));
    recv!(s, 30, [(ACK, iss + 3001, PEER_ISS + 1, 1000)]);
    assert!(s
        .connection(h)
        .unwrap()
        .has(super::super::state::flag::RECOVERY));
    // The full ACK (past `recover`) ends recovery.
    send!(s, 40, seg(ACK, PEER_ISS + 1, iss + 7001));
    let c = s.connection(h).unwrap();
    assert!(!c.has(super::super::state::flag::RECOVERY));
    assert_eq!(c.cc.cwnd(), 1000, "min(ssthresh, flight + MSS)");
    assert_eq!(s.counters().timeouts, 0);
}

#[test]
fn sack_recovery_resends_only_the_holes() {
    let mut p = profile();
    p.sack = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, h, iss) = established_with(p, syn);
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    // Segments 1 and 4 (0-based) are lost: the peer SACKs 2-3 and 5-7.
    let b = iss + 1;
    let mut a = seg(ACK, PEER_ISS + 1, b + 1000);
    a.sack[0] = (b + 2000, b + 4000);
    a.sack_len = 1;
    send!(s, 20, a);
    recv_nothing!(s, 20);
    a.sack[0] = (b + 5000, b + 8000);
    a.sack[1] = (b + 2000, b + 4000);
    a.sack_len = 2;
    send!(s, 21, a);
    // More than 2 MSS SACKed above snd_una: recovery. Both holes, nothing SACKed.
    recv!(
        s,
        21,
        [
            (ACK, b + 1000, PEER_ISS + 1, 1000),
            (ACK, b + 4000, PEER_ISS + 1, 1000)
        ]
    );
    assert_eq!(s.counters().fast_recoveries, 1);
    assert_eq!(s.counters().retransmits, 2);
    // The retransmissions fill both holes.
    send!(s, 30, seg(ACK, PEER_ISS + 1, b + 8000));
    recv_nothing!(s, 30);
    let c = s.connection(h).unwrap();
    assert!(!c.has(super::super::state::flag::RECOVERY));
    assert!(c.scoreboard.is_empty());
    assert_eq!(s.counters().timeouts, 0);
}

#[test]
fn after_a_timeout_sacked_data_is_not_resent() {
    let mut p = profile();
    p.sack = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, h, iss) = established_with(p, syn);
    s.write(h, &[1u8; 3000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 3);
    let b = iss + 1;
    let mut a = seg(ACK, PEER_ISS + 1, b);
    a.sack[0] = (b + 1000, b + 2000);
    a.sack_len = 1;
    send!(s, 20, a);
    recv_nothing!(s, 20);
    recv!(s, 210, [(ACK, b, PEER_ISS + 1, 1000)]);
    send!(s, 220, {
        let mut a2 = a;
        a2.ack = b + 1000;
        a2
    });
    // Go-back-N skips the SACKed segment.
    recv!(s, 220, [(PSHACK, b + 2000, PEER_ISS + 1, 1000)]);
    let _ = h;
}

#[test]
fn early_retransmit_with_few_segments_out() {
    let mut p = profile();
    p.sack = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, h, iss) = established_with(p, syn);
    s.write(h, &[1u8; 3000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 3);
    let b = iss + 1;
    // Only three segments out: the first is lost, the other two SACKed. Two duplicate
    // ACKs are all there can be; RFC 5827 retransmits without waiting for the RTO.
    let mut a = seg(ACK, PEER_ISS + 1, b);
    a.sack[0] = (b + 1000, b + 2000);
    a.sack_len = 1;
    send!(s, 20, a);
    recv_nothing!(s, 20);
    a.sack[0] = (b + 1000, b + 3000);
    send!(s, 21, a);
    recv!(s, 21, [(ACK, b, PEER_ISS + 1, 1000)]);
    assert_eq!(s.counters().timeouts, 0);
}

#[test]
fn sack_acks_count_as_duplicates_when_the_window_moves() {
    let mut p = profile();
    p.sack = true;
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, h, iss) = established_with(p, syn);
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    let b = iss + 1;
    let mut a = seg(ACK, PEER_ISS + 1, b);
    a.sack_len = 1;
    a.sack[0] = (b + 1000, b + 2000);
    a.window = 7000;
    send!(s, 20, a);
    assert_eq!(
        s.connection(h).unwrap().dupacks,
        1,
        "new SACK info, window changed"
    );
    a.window = 7000;
    send!(s, 21, a);
    assert_eq!(
        s.connection(h).unwrap().dupacks,
        2,
        "same window, plain duplicate"
    );
}
