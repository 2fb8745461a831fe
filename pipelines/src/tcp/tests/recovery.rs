//! Loss recovery, segment by segment: RTO with back-off (RFC 6298) resending what was
//! not SACKed, fast retransmit and NewReno partial ACKs (RFC 6582), SACK recovery
//! (RFC 6675) with PRR (RFC 6937), RACK-TLP (RFC 8985): a single loss, a burst loss, a
//! lost retransmission, a lost tail, and reordering mistaken for loss then undone by a
//! D-SACK (RFC 2883, RFC 3708). The peer answers 1 ms after each send (the handshake's
//! RTT), so RACK's and TLP's timers are predictable.

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
fn rto_collapses_the_window_and_resends_in_order() {
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
    let c = s.connection(h).unwrap();
    assert_eq!(c.outstanding(), 0);
    assert!(!c.recovering());
    let k = s.counters();
    assert_eq!(
        (k.timeouts, k.retransmits_rto, k.retransmits_fast),
        (1, 3, 0)
    );
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
    // ssthresh = outstanding / 2 = 2500; PRR: pipe (4000) above ssthresh, so the first
    // ACK sends only the retransmission.
    assert_eq!(c.cc.ssthresh(), 2500);
    assert!(c.has(super::super::state::flag::RECOVERY));
    // A partial ACK: the next hole is resent at once.
    send!(s, 30, seg(ACK, PEER_ISS + 1, iss + 3001));
    recv!(s, 30, [(ACK, iss + 3001, PEER_ISS + 1, 1000)]);
    // The full ACK (past `recover`) ends recovery with the window at ssthresh.
    send!(s, 40, seg(ACK, PEER_ISS + 1, iss + 6001));
    let c = s.connection(h).unwrap();
    assert!(!c.recovering());
    assert_eq!(c.cc.cwnd(), 2500);
    let k = s.counters();
    assert_eq!((k.timeouts, k.retransmits_fast), (0, 2));
}

fn sack_profile(send_buffer: usize) -> TcpProfile {
    let mut p = profile();
    p.sack = true;
    p.send_buffer = send_buffer;
    p
}

fn sack_established(send_buffer: usize) -> (TcpStack, ConnHandle, u32) {
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, h, iss) = established_with(sack_profile(send_buffer), syn);
    // A window update: 60,000 bytes.
    send!(s, 2, sack_ack(iss + 1, &[]));
    (s, h, iss)
}

/// An ACK of `ack` SACKing `blocks` (first block first, as sent).
fn sack_ack(ack: u32, blocks: &[(u32, u32)]) -> TcpRepr {
    let mut a = seg(ACK, PEER_ISS + 1, ack);
    a.window = 60000;
    for (i, &b) in blocks.iter().enumerate() {
        a.sack[i] = b;
    }
    a.sack_len = blocks.len() as u8;
    a
}

#[test]
fn single_loss_three_sacked_segments_retransmit_at_once() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    let b = iss + 1;
    // Segment 0 is lost; the peer reports 1, then 1-2: under three segments SACKed
    // RACK waits a reordering window.
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 2000)]));
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 3000)]));
    recv_nothing!(s, 11);
    // The third SACKed segment: lost now (RFC 8985's window is zero without reordering).
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 4000)]));
    recv!(s, 11, [(ACK, b, PEER_ISS + 1, 1000)]);
    send!(s, 12, sack_ack(b + 8000, &[]));
    recv_nothing!(s, 12);
    let c = s.connection(h).unwrap();
    assert!(!c.recovering() && c.rtx.is_empty());
    let k = s.counters();
    assert_eq!(
        (
            k.fast_recoveries,
            k.retransmits_fast,
            k.timeouts,
            k.tlp_probes
        ),
        (1, 1, 0, 0)
    );
}

#[test]
fn single_loss_with_few_segments_is_found_by_the_reorder_timer() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 3000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 3);
    let b = iss + 1;
    // Only three segments out and the first lost: two SACKs are all there can be.
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 2000)]));
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 3000)]));
    recv_nothing!(s, 11);
    // RACK: sent at 10 ms, RTT 1 ms, window a quarter of it: lost at 11.25 ms.
    recv!(s, 12, [(ACK, b, PEER_ISS + 1, 1000)]);
    send!(s, 13, sack_ack(b + 3000, &[]));
    let k = s.counters();
    assert_eq!(
        (k.fast_recoveries, k.retransmits_fast, k.timeouts),
        (1, 1, 0)
    );
    assert_eq!(s.connection(h).unwrap().outstanding(), 0);
}

#[test]
fn burst_loss_resends_every_hole_within_prr() {
    let (mut s, h, iss) = sack_established(16000);
    s.write(h, &[1u8; 16000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 10);
    let b = iss + 1;
    // Segments 0-2 and 5 are lost. The first SACK takes two segments out of the pipe:
    // two new ones go (RFC 6675's limited transmit).
    send!(s, 11, sack_ack(b, &[(b + 3000, b + 5000)]));
    recv!(
        s,
        11,
        [
            (ACK, b + 10000, PEER_ISS + 1, 1000),
            (ACK, b + 11000, PEER_ISS + 1, 1000)
        ]
    );
    send!(
        s,
        11,
        sack_ack(b, &[(b + 6000, b + 10000), (b + 3000, b + 5000)])
    );
    // ssthresh 6000; pipe 2000 (6 SACKed, 4 lost): PRR's slow-start bound lets all
    // four holes go.
    let out = recv_all(&mut s, t(11));
    let seqs: Vec<u32> = out.iter().map(|o| o.repr.seq.wrapping_sub(b)).collect();
    assert_eq!(seqs, vec![0, 1000, 2000, 5000]);
    send!(s, 12, sack_ack(b + 12000, &[]));
    let k = s.counters();
    assert_eq!(
        (k.fast_recoveries, k.retransmits_fast, k.timeouts),
        (1, 4, 0)
    );
    assert!(!s.connection(h).unwrap().recovering());
}

#[test]
fn a_lost_retransmission_is_resent_without_a_timeout() {
    let (mut s, h, iss) = sack_established(16000);
    s.write(h, &[1u8; 16000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 10);
    let b = iss + 1;
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 10000)]));
    // Segment 0 again, and new data as PRR allows (ssthresh 5000, pipe 0).
    let out = recv_all(&mut s, t(11));
    let seqs: Vec<u32> = out.iter().map(|o| o.repr.seq.wrapping_sub(b)).collect();
    assert_eq!(seqs, vec![0, 10000, 11000, 12000, 13000]);
    // The retransmission is lost; the new segments sent after it arrive.
    send!(
        s,
        12,
        sack_ack(b, &[(b + 10000, b + 14000), (b + 1000, b + 10000)])
    );
    let out = recv_all(&mut s, t(12));
    let seqs: Vec<u32> = out.iter().map(|o| o.repr.seq.wrapping_sub(b)).collect();
    assert_eq!(
        seqs,
        vec![0, 14000, 15000],
        "found lost again at once, then new data"
    );
    let k = s.counters();
    assert_eq!(
        (k.lost_retransmits, k.retransmits_fast, k.timeouts),
        (1, 2, 0)
    );
    send!(s, 13, sack_ack(b + 16000, &[]));
    assert!(!s.connection(h).unwrap().recovering());
    assert_eq!(s.counters().fast_recoveries, 1, "one episode");
}

#[test]
fn a_lost_tail_is_probed_and_repaired_without_a_timeout() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 5000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 5);
    let b = iss + 1;
    // The last two segments are lost: the first three are acknowledged, then silence.
    send!(s, 11, sack_ack(b + 3000, &[]));
    // Probe timeout: 2 SRTT (1 ms) + 2 ms after that ACK: the last segment again.
    recv_nothing!(s, 14);
    recv!(s, 15, [(PSHACK, b + 4000, PEER_ISS + 1, 1000)]);
    // The probe is SACKed: RACK finds segment 3 lost, fast recovery resends it.
    send!(s, 16, sack_ack(b + 3000, &[(b + 4000, b + 5000)]));
    recv!(s, 16, [(ACK, b + 3000, PEER_ISS + 1, 1000)]);
    send!(s, 17, sack_ack(b + 5000, &[]));
    let k = s.counters();
    assert_eq!(
        (
            k.tlp_probes,
            k.retransmits_tlp,
            k.fast_recoveries,
            k.timeouts
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(s.connection(h).unwrap().outstanding(), 0);
}

#[test]
fn lost_acks_at_the_tail_are_recovered_by_the_probe() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 3000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 3);
    let b = iss + 1;
    // Every ACK is lost: the probe (4 ms: 2 SRTT + 2 ms) draws a D-SACK for it.
    recv!(s, 14, [(PSHACK, b + 2000, PEER_ISS + 1, 1000)]);
    send!(s, 15, sack_ack(b + 3000, &[(b + 2000, b + 3000)]));
    let k = s.counters();
    assert_eq!((k.tlp_probes, k.timeouts, k.dsacks_received), (1, 0, 1));
    assert_eq!(k.tlp_recoveries, 0, "the D-SACK says nothing was lost");
    let c = s.connection(h).unwrap();
    assert_eq!(
        c.cc.cwnd(),
        13_000,
        "no reduction: initial 10 + 3 acknowledged"
    );
}

#[test]
fn lost_acks_at_the_end_of_a_recovery_are_recovered_by_a_probe() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    let b = iss + 1;
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 4000)]));
    recv!(s, 11, [(ACK, b, PEER_ISS + 1, 1000)]);
    // Every later ACK is lost. In fast recovery too, a probe goes after 2 SRTT + 2 ms
    // (RFC 8985 arms it only outside recovery; the RTO would be 200 ms away).
    recv_nothing!(s, 14);
    recv!(s, 15, [(PSHACK, b + 7000, PEER_ISS + 1, 1000)]);
    send!(s, 16, sack_ack(b + 8000, &[(b + 7000, b + 8000)]));
    let c = s.connection(h).unwrap();
    assert!(!c.recovering() && c.outstanding() == 0);
    let k = s.counters();
    assert_eq!((k.tlp_probes, k.timeouts, k.fast_recoveries), (1, 0, 1));
}

#[test]
fn reordering_mistaken_for_loss_is_undone_by_dsack() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    let b = iss + 1;
    let before = s.connection(h).unwrap().cc.cwnd();
    // Segment 0 is only late: three SACKed segments make it "lost".
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 4000)]));
    recv!(s, 11, [(ACK, b, PEER_ISS + 1, 1000)]);
    assert!(s.connection(h).unwrap().cc.cwnd() < before);
    // The original arrives, then the retransmission: a D-SACK for it.
    send!(s, 12, sack_ack(b + 8000, &[]));
    send!(s, 12, sack_ack(b + 8000, &[(b, b + 1000)]));
    let k = s.counters();
    assert_eq!(
        (k.spurious_retransmits, k.undos, k.dsacks_received),
        (1, 1, 1)
    );
    let c = s.connection(h).unwrap();
    assert!(c.cc.cwnd() >= before, "window restored: {}", c.cc.cwnd());
    assert!(c.rack.reordering_seen());
}

#[test]
fn after_a_timeout_sacked_data_is_not_resent() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 3000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 3);
    let b = iss + 1;
    send!(s, 11, sack_ack(b, &[(b + 1000, b + 2000)]));
    // RACK resends segment 0 at 11.25 ms; that and everything after is lost.
    recv!(s, 12, [(ACK, b, PEER_ISS + 1, 1000)]);
    // RACK finds the retransmission lost only when later data is delivered: here the
    // retransmission timer (200 ms after the first send) does.
    recv!(s, 210, [(ACK, b, PEER_ISS + 1, 1000)]);
    send!(s, 220, sack_ack(b + 2000, &[]));
    // Segment 1 was SACKed: only segment 2 goes.
    recv!(s, 220, [(PSHACK, b + 2000, PEER_ISS + 1, 1000)]);
    assert_eq!(s.counters().timeouts, 1);
    assert_eq!(s.counters().retransmits_rto, 2);
}

#[test]
fn sack_acks_count_as_duplicates_when_the_window_moves() {
    let (mut s, h, iss) = sack_established(8000);
    s.write(h, &[1u8; 8000]).unwrap();
    assert_eq!(recv_all(&mut s, t(10)).len(), 8);
    let b = iss + 1;
    let mut a = sack_ack(b, &[(b + 1000, b + 2000)]);
    a.window = 7000;
    send!(s, 11, a);
    assert_eq!(
        s.connection(h).unwrap().dupacks,
        1,
        "new SACK info, window changed"
    );
    send!(s, 11, a);
    assert_eq!(
        s.connection(h).unwrap().dupacks,
        2,
        "same window, plain duplicate"
    );
}

#[test]
fn a_duplicate_segment_is_reported_with_a_dsack() {
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, _h, iss) = established_with(sack_profile(8000), syn);
    let d = [7u8; 500];
    send!(s, 10, seg(ACK, PEER_ISS + 1, iss + 1), &d);
    recv!(s, 10, [(ACK, iss + 1, PEER_ISS + 501, 0)]);
    send!(s, 11, seg(ACK, PEER_ISS + 1, iss + 1), &d);
    let out = recv!(s, 11, [(ACK, iss + 1, PEER_ISS + 501, 0)]);
    assert_eq!(out[0].repr.sack_blocks(), &[(PEER_ISS + 1, PEER_ISS + 501)]);
    assert_eq!(s.counters().dsacks_sent, 1);
}

/// A duplicate of out-of-order data is reported with a D-SACK first, then the SACK block
/// holding it (RFC 2883 section 4.1.2); a segment whose first part we held already gets
/// a D-SACK for that part (section 4.1.1).
#[test]
fn out_of_order_and_partial_duplicates_are_reported_with_dsacks() {
    let mut syn = seg(SYN, PEER_ISS, 0);
    syn.mss = Some(1000);
    syn.sack_permitted = true;
    let (mut s, _h, iss) = established_with(sack_profile(8000), syn);
    let d = [7u8; 500];
    // 1..501 is lost; 501..1001 arrives twice.
    send!(s, 10, seg(ACK, PEER_ISS + 501, iss + 1), &d);
    let out = recv!(s, 10, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(
        out[0].repr.sack_blocks(),
        &[(PEER_ISS + 501, PEER_ISS + 1001)]
    );
    send!(s, 11, seg(ACK, PEER_ISS + 501, iss + 1), &d);
    let out = recv!(s, 11, [(ACK, iss + 1, PEER_ISS + 1, 0)]);
    assert_eq!(
        out[0].repr.sack_blocks(),
        &[
            (PEER_ISS + 501, PEER_ISS + 1001),
            (PEER_ISS + 501, PEER_ISS + 1001)
        ],
        "the D-SACK, then the block that holds it"
    );
    assert_eq!(s.counters().dsacks_sent, 1);
    // The hole fills; then 1..1001 comes again with 500 new bytes behind it.
    send!(s, 12, seg(ACK, PEER_ISS + 1, iss + 1), &d);
    recv!(s, 12, [(ACK, iss + 1, PEER_ISS + 1001, 0)]);
    let more = [8u8; 1500];
    send!(s, 13, seg(ACK, PEER_ISS + 1, iss + 1), &more);
    let out = recv!(s, 13, [(ACK, iss + 1, PEER_ISS + 1501, 0)]);
    assert_eq!(
        out[0].repr.sack_blocks(),
        &[(PEER_ISS + 1, PEER_ISS + 1001)],
        "the part held already"
    );
    assert_eq!(s.counters().dsacks_sent, 2);
}
